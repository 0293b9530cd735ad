package wasmhost

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsim/kvsim/abi/gobuild"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
	"github.com/kvsim/kvsim/policies/tova"
)

var (
	buildDir string // Go policies built once per test binary
	buildMu  sync.Mutex
	built    = map[string]string{}
)

func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		runChild(name)
	}
	dir, err := os.MkdirTemp("", "wasmhost-test-")
	if err != nil {
		panic(err)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goModule builds a Go policy package to WASM once per test binary.
func goModule(t *testing.T, pkg string) string { return goModuleB(t, pkg) }

// goModuleB is goModule for tests and benchmarks.
func goModuleB(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if path, ok := built[pkg]; ok {
		return path
	}
	path := filepath.Join(buildDir, filepath.Base(pkg)+".wasm")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hung build fails
	defer cancel()
	if err := gobuild.WASM(ctx, pkg, path); err != nil {
		t.Fatal(err)
	}
	built[pkg] = path
	return path
}

// watModule compiles a WebAssembly text file into the test's temporary directory.
func watModule(t *testing.T, src string) string {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm not found: install wabt to run this test (Debian/Ubuntu: apt-get install -y wabt)")
	}
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".wat")+".wasm")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "wat2wasm", src, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm %s: %v\n%s", src, err, b)
	}
	return out
}

func mustLoad(t *testing.T, path string, opts Options) *Module {
	t.Helper()
	m, err := Load(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func mustNew(t *testing.T, newPolicy policies.New, params map[string]any) policies.Policy {
	t.Helper()
	p, err := newPolicy(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// drive runs one sequence with a 600-row prefill block, which the host splits into
// chunks, and victim lists of the given stride, then decode steps; it returns every
// victim list.
func drive(t *testing.T, p policies.Policy, stride int) [][]int32 {
	t.Helper()
	const H, P, T, B = 8, 600, 640, 100
	cfg := policies.Config{Layers: 1, Heads: H, HeadDim: 64, PromptLen: P, MaxLen: T, Budget: B, Seed: 1}
	if _, err := p.Init(cfg); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pre := &policies.Attention{Phase: policies.Prefill, Rows: P, Heads: H, Stride: P, Probs: make([]float32, H*P*P)}
	for h := range H {
		for r := range P {
			for s := 0; s <= r; s++ {
				pre.Row(h, r)[s] = rng.Float32()
			}
		}
	}
	if err := p.Observe(pre); err != nil {
		t.Fatal(err)
	}
	e := &policies.Eviction{Phase: policies.Prefill, Pos: P - 1, Heads: H, Stride: stride,
		Need: make([]int32, H), Count: make([]int32, H), Victims: make([]int32, H*stride)}
	var out [][]int32
	free := make([][]int32, H)
	evict := func() {
		clear(e.Count)
		if err := p.Evict(e); err != nil {
			t.Fatal(err)
		}
		for h := range H {
			v := slices.Clone(e.Victims[h*stride : h*stride+int(e.Count[h])])
			out = append(out, v)
			free[h] = append(free[h], v...)
			slices.Sort(free[h])
		}
	}
	for h := range H {
		e.Need[h] = P - B
	}
	evict()
	a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: H, Stride: stride,
		Probs: make([]float32, H*stride), Slot: make([]int32, H), Comp: make([]float32, H)}
	for pos := P; pos < T; pos++ {
		a.Pos, e.Pos, e.Phase = pos, pos, policies.Decode
		for h := range H {
			a.Slot[h], free[h] = free[h][0], free[h][1:]
			e.Need[h] = 1
		}
		for i := range a.Probs {
			a.Probs[i] = rng.Float32()
		}
		if err := p.Observe(a); err != nil {
			t.Fatal(err)
		}
		evict()
	}
	return out
}

// TestChunksAndLargerRegions: a prefill block larger than the region travels in
// chunks, and victim lists wider than the region's make the host ask the guest for a
// larger one; the policy cannot tell.
func TestChunksAndLargerRegions(t *testing.T) {
	m := mustLoad(t, goModule(t, "github.com/kvsim/kvsim/policies/tova"), Options{})
	for _, stride := range []int{640, 1280} {
		want := drive(t, mustNew(t, tova.New, nil), stride)
		if got := drive(t, mustNew(t, m.New, nil), stride); !reflect.DeepEqual(got, want) {
			t.Errorf("stride %d: the WASM build evicted differently", stride)
		}
	}
}

// TestNoAllocationsPerCall: a decode step (Observe, then Evict) of a metered guest
// allocates nothing on the host's side.
func TestNoAllocationsPerCall(t *testing.T) {
	m := mustLoad(t, goModule(t, "github.com/kvsim/kvsim/policies/tova"), Options{})
	p := mustNew(t, m.New, nil)
	const H, P, T, B = 4, 64, 1 << 20, 32
	if _, err := p.Init(policies.Config{Heads: H, PromptLen: P, MaxLen: T, Budget: B}); err != nil {
		t.Fatal(err)
	}
	pre := &policies.Attention{Phase: policies.Prefill, Rows: P, Heads: H, Stride: P, Probs: make([]float32, H*P*P)}
	if err := p.Observe(pre); err != nil {
		t.Fatal(err)
	}
	e := &policies.Eviction{Phase: policies.Prefill, Pos: P - 1, Heads: H, Stride: P,
		Need: []int32{P - B, P - B, P - B, P - B}, Count: make([]int32, H), Victims: make([]int32, H*P)}
	if err := p.Evict(e); err != nil {
		t.Fatal(err)
	}
	a := &policies.Attention{Phase: policies.Decode, Pos: P - 1, Rows: 1, Heads: H, Stride: P,
		Probs: make([]float32, H*P), Slot: make([]int32, H), Comp: make([]float32, H)}
	e.Phase, e.Need = policies.Decode, []int32{1, 1, 1, 1}
	for h := range H {
		a.Slot[h] = e.Victims[h*P]
	}
	step := func() {
		a.Pos++
		e.Pos = a.Pos
		if err := p.Observe(a); err != nil {
			t.Fatal(err)
		}
		if err := p.Evict(e); err != nil {
			t.Fatal(err)
		}
		for h := range H {
			a.Slot[h] = e.Victims[h*P]
		}
	}
	step()
	if n := testing.AllocsPerRun(200, step); n != 0 {
		t.Errorf("%v allocations per decode step, want 0", n)
	}
}

// TestNoAllocationsWithInputs: so does a decode step of an ABI 2.0 guest that asks
// for keys, values, queries and compact rows.
func TestNoAllocationsWithInputs(t *testing.T) {
	m := mustLoad(t, goModule(t, "github.com/kvsim/kvsim/abi/testdata/contract2"), Options{})
	p := mustNew(t, m.New, map[string]any{"kind": "inputs"})
	const H, D, P, T, B = 4, 16, 64, 1 << 16, 32
	layout, err := p.Init(policies.Config{Layers: 1, Heads: H, HeadDim: D, PromptLen: P, MaxLen: T, Budget: B})
	if err != nil || !layout.Keys || !layout.Compact {
		t.Fatalf("layout %+v, %v", layout, err)
	}
	vectors := func(rows int) []float32 {
		v := make([]float32, H*rows*D)
		for i := range v {
			v[i] = float32(i%7) - 3
		}
		return v
	}
	pre := &policies.Attention{Phase: policies.Prefill, Rows: P, Heads: H, Stride: P, HeadDim: D, Probs: make([]float32, H*P*P),
		Keys: vectors(P), Values: vectors(P), Queries: vectors(P)}
	if err := p.Observe(pre); err != nil {
		t.Fatal(err)
	}
	e := &policies.Eviction{Phase: policies.Prefill, Pos: P - 1, Heads: H, Stride: P,
		Need: []int32{P - B, P - B, P - B, P - B}, Count: make([]int32, H), Victims: make([]int32, H*P)}
	if err := p.Evict(e); err != nil {
		t.Fatal(err)
	}
	// Each step the new token enters the slot the last one freed, so every head's
	// compact row lists the same B+1 slots: the survivors and that slot.
	a := &policies.Attention{Phase: policies.Decode, Pos: P - 1, Rows: 1, Heads: H, Stride: P, HeadDim: D,
		Probs: make([]float32, H*P), Slot: make([]int32, H), Comp: make([]float32, H),
		Keys: vectors(1), Values: vectors(1), Queries: vectors(1), Live: make([]int32, H*P), Len: make([]int32, H)}
	for h := range H {
		victims := e.Victims[h*P : h*P+P-B]
		a.Slot[h] = victims[0]
		for s := range int32(P) {
			if s == a.Slot[h] || !slices.Contains(victims, s) {
				a.Live[h*P+int(a.Len[h])], a.Probs[h*P+int(a.Len[h])] = s, 1/float32(B+1)
				a.Len[h]++
			}
		}
	}
	e.Phase, e.Need = policies.Decode, []int32{1, 1, 1, 1}
	step := func() {
		a.Pos++
		e.Pos = a.Pos
		if err := p.Observe(a); err != nil {
			t.Fatal(err)
		}
		if err := p.Evict(e); err != nil {
			t.Fatal(err)
		}
		for h := range H {
			a.Slot[h] = e.Victims[h*P]
		}
	}
	step()
	if n := testing.AllocsPerRun(200, step); n != 0 {
		t.Errorf("%v allocations per decode step, want 0", n)
	}
}

// TestLog: kvpolicy.log writes one line, prefixed with the module, made printable;
// a message outside guest memory fails the call.
func TestLog(t *testing.T) {
	var buf bytes.Buffer
	path := watModule(t, "testdata/log.wat")
	m := mustLoad(t, path, Options{Log: &buf})
	if info := m.Info(); !info.Log || info.WASI || info.ABIMajor != 1 || info.ABIMinor != 0 {
		t.Errorf("info %+v", info)
	}
	_, err := policytest.Run(mustNew(t, m.New, nil), policies.Config{Budget: 4}, policytest.RandomSequence(1, 3, 4, 1))
	if want := "[" + path + "] hello host\n"; buf.String() != want {
		t.Errorf("log %q, want %q", buf.String(), want)
	}
	want := "observe step 3: " + path + ": kvpolicy_observe: kvpolicy.log: message at [4294967292, 4294967292+8) is outside guest memory (in "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v\nwant %s…", err, want)
	}
}

// TestInstanceLifecycle: a failed status leaves the instance usable; Close ends it;
// a clairvoyant policy needs a host that gives the future.
func TestInstanceLifecycle(t *testing.T) {
	m := mustLoad(t, watModule(t, "../../examples/policies/wat/window.wat"), Options{})
	p := mustNew(t, m.New, nil)
	if _, err := p.Init(policies.Config{Heads: 2, PromptLen: 8, MaxLen: 12, Budget: 0}); err == nil || !strings.HasSuffix(err.Error(), "kvpolicy_init: window: budget must be at least 1") {
		t.Errorf("budget 0: %v", err)
	}
	if err := p.Observe(&policies.Attention{}); err == nil || !strings.HasSuffix(err.Error(), "observe before a successful init") {
		t.Errorf("observe after a failed init: %v", err)
	}
	if _, err := policytest.Run(p, policies.Config{Budget: 4}, policytest.RandomSequence(2, 8, 12, 1)); err != nil {
		t.Errorf("after a failed init: %v", err)
	}
	p.(interface{ Close() error }).Close()
	if _, err := p.Init(policies.Config{Heads: 2, PromptLen: 8, MaxLen: 12, Budget: 4}); err == nil || !strings.HasSuffix(err.Error(), "instance closed") {
		t.Errorf("after Close: %v", err)
	}

	oracle := mustNew(t, mustLoad(t, goModule(t, "github.com/kvsim/kvsim/policies/oracle"), Options{}).New, nil)
	layout, err := oracle.Init(policies.Config{Heads: 1, PromptLen: 4, MaxLen: 6, Budget: 2})
	if err != nil || !layout.Clairvoyant {
		t.Fatalf("oracle layout %+v, %v", layout, err)
	}
	err = oracle.Evict(&policies.Eviction{Heads: 1, Stride: 4, Need: []int32{2}, Count: []int32{0}, Victims: make([]int32, 4)})
	if err == nil || !strings.HasSuffix(err.Error(), "evict: the policy is clairvoyant, but this host gives no future attention") {
		t.Errorf("clairvoyant without a future: %v", err)
	}
}

func TestPrintable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"line\nbreak\ttab\x7f", "line break tab "},
		{"c1\u0085\u009bcontrols", "c1  controls"},
		{"evil\u202Etxt.exe", "eviltxt.exe"},
		{"\u2066isolate\u2069 \u200Emark\u200F \u061Carabic", "isolate mark arabic"},
		{"bad utf8 \xff", "bad utf8 ?"},
		{"accents é and 中文 stay", "accents é and 中文 stay"},
	} {
		if got := printable(c.in); got != c.want {
			t.Errorf("printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
