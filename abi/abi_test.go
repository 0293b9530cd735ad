package abi_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/abi/conformance"
	"github.com/kvsim/kvsim/abi/gobuild"
	"github.com/kvsim/kvsim/abi/testdata/contract2"
	"github.com/kvsim/kvsim/abi/wasmhost"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

// replayOne replays a small trace through one policy at a 16-token budget, so that
// the 32-token prompt is compressed by 16, and returns the row's failure.
func replayOne(t *testing.T, newPolicy policies.New, params map[string]any) string {
	t.Helper()
	tr, err := synth.New(synth.Options{Preset: "opt-125m", Layers: 1, Heads: 2, PromptLen: 32, GenLen: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	spec := sim.PolicySpec{Name: "bad", New: func() (policies.Policy, error) { return newPolicy(policies.NewParams(params)) }}
	res, err := sim.Replay(context.Background(), []sim.Source{tr}, []sim.PolicySpec{spec},
		sim.Options{Budgets: []host.Budget{{Tokens: 16}}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res.Cells[0].Failed
}

// TestBadModules: each golden bad module fails with exactly this error, at load or in
// its row of a replay, which finishes.
func TestBadModules(t *testing.T) {
	limits := wasmhost.Options{MemoryPages: 64, Fuel: 10_000_000}
	for _, tc := range []struct {
		module string
		load   string // the load error, or "" if it loads
		row    string // the replay row's failure
	}{
		{module: "ok"},
		{module: "missing_export", load: `wasm policy bad/missing_export.wasm: missing export "kvpolicy_evict" (func() i32): see abi/ABI.md`},
		{module: "wrong_version", load: `wasm policy bad/wrong_version.wasm: policy ABI version 3.0, but this kvsim speaks 2.x and 1.x: rebuild the policy against the kvpolicy.h or abi/guest of this kvsim (see abi/ABI.md, Versioning)`},
		{module: "command", load: `wasm policy bad/command.wasm: the module is a WASI command (it exports _start): build a reactor instead (Go: -buildmode=c-shared; C: -mexec-model=reactor or -Wl,--no-entry)`},
		{module: "bad_import", load: `wasm policy bad/bad_import.wasm: imports env.now, which the host does not provide: policies may import only kvpolicy.log and, if their runtime needs it, wasi_snapshot_preview1`},
		{module: "big_memory", load: `wasm policy bad/big_memory.wasm: section memory: min 5000 pages (312 Mi) over limit of 64 pages (4 Mi)`},
		{module: "trap", row: `policy "bad": observe prefill at layer 0, position 0: bad/trap.wasm: kvpolicy_observe: wasm error: unreachable (in $4() i32)`},
		{module: "reserved", load: `wasm policy bad/reserved.wasm: section 7: the module exports "__kvsim_stop": names starting with __kvsim are reserved for the host (abi/ABI.md §2)`},
		{module: "loop_start", load: `wasm policy bad/loop_start.wasm: instantiate: fuel exhausted: more than 10000000 units of work in one call (limits.fuel) (in $0())`},
		{module: "loop_initialize", load: `wasm policy bad/loop_initialize.wasm: _initialize: fuel exhausted: more than 10000000 units of work in one call (limits.fuel) (in $0())`},
		{module: "loop", row: `policy "bad": observe prefill at layer 0, position 0: bad/loop.wasm: kvpolicy_observe: fuel exhausted: more than 10000000 units of work in one call (limits.fuel) (in $4() i32)`},
		{module: "calltree", row: `policy "bad": observe prefill at layer 0, position 0: bad/calltree.wasm: kvpolicy_observe: fuel exhausted: more than 10000000 units of work in one call (limits.fuel) (in $0(i32) < $0(i32) < $0(i32))`},
		{module: "bomb", row: `policy "bad": observe prefill at layer 0, position 0: bad/bomb.wasm: kvpolicy_observe: wasm error: unreachable (in $4() i32); guest memory was 50 of at most 64 pages (limits.memory_pages)`},
		{module: "exit", row: `policy "bad": observe prefill at layer 0, position 0: bad/exit.wasm: kvpolicy_observe: exited with code 3`},
		{module: "status", row: `policy "bad": observe prefill at layer 0, position 0: bad/status.wasm: kvpolicy_observe: no attention wanted`},
		{module: "bad_err_ptr", row: `policy "bad": observe prefill at layer 0, position 0: bad/bad_err_ptr.wasm: kvpolicy_observe: failed with status 1; its error message at [4294967280, 4294967288) is outside guest memory (131072 bytes)`},
		{module: "bad_buffer", row: `policy "bad": bad/bad_buffer.wasm: kvpolicy_buffer(144) returned [65528, 65672), outside guest memory (65536 bytes)`},
		{module: "bad_flags", row: `policy "bad": init at layer 0, position 0: bad/bad_flags.wasm: kvpolicy_init: layout with slack 0 and flags 0x8: want slack ≥ 0 and flags within 0x7`},
		{module: "bad_pool", row: `policy "bad": init at layer 0, position 0: bad/bad_pool.wasm: kvpolicy_init: layout with pool 7: want 0 (head), 1 (layer) or 2 (model)`},
		{module: "no_fork", row: `policy "bad": bad/no_fork.wasm: kvpolicy_new: the guest offers FORK, but the module does not export kvpolicy_fork_save and kvpolicy_fork_load`},
		{module: "bad_caps", row: `policy "bad": bad/bad_caps.wasm: kvpolicy_new: capabilities 0x2: want within 0x1`},
		{module: "no_budgets", row: `policy "bad": init at layer 0, position 0: bad/no_budgets.wasm: kvpolicy_init: the layout asks for a model pool, but the module does not export kvpolicy_layer_budgets, which divides it among layers`},
		{module: "bad_count", row: `policy "bad": evict at layer 0, position 31: bad/bad_count.wasm: kvpolicy_evict: head 0: victim count 1048576 out of range [0, 32]`},
		// The engine checks the victims themselves.
		{module: "out_of_range", row: `policy "bad": evict at layer 0, position 31: head 0: victim slot 9999 out of range [0, 32)`},
		{module: "duplicate", row: `policy "bad": evict at layer 0, position 31: head 0: victim slot 0 named twice`},
		{module: "too_few", row: `policy "bad": evict at layer 0, position 31: head 0: 0 victims, need at least 16`},
	} {
		t.Run(tc.module, func(t *testing.T) {
			path := wat(t, filepath.Join("testdata", "bad", tc.module+".wat"))
			clean := func(err string) string { return strings.ReplaceAll(err, filepath.Dir(path), "bad") }
			m, err := wasmhost.Load(context.Background(), path, limits)
			if tc.load != "" || err != nil {
				if err == nil || clean(err.Error()) != tc.load {
					t.Fatalf("load error:\n got %v\nwant %s", err, tc.load)
				}
				return
			}
			defer m.Close()
			if got := clean(replayOne(t, m.New, nil)); got != tc.row {
				t.Errorf("row failure:\n got %s\nwant %s", got, tc.row)
			}
		})
	}
}

// TestBadFork: a guest whose kvpolicy_fork_save points outside its memory, or never
// returns (it is metered like every call), fails the row that forks from it, with
// the reason, and the replay finishes.
func TestBadFork(t *testing.T) {
	tr, err := synth.New(synth.Options{Preset: "opt-125m", Layers: 1, Heads: 2, PromptLen: 32, GenLen: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for module, want := range map[string]string{
		"bad_fork_ptr": `policy "bad": fork at layer 0, position 31: bad/bad_fork_ptr.wasm: kvpolicy_fork_save: the state at [2147483632, 2147483696) is outside guest memory (131072 bytes)`,
		"loop_fork":    `policy "bad": fork at layer 0, position 31: bad/loop_fork.wasm: kvpolicy_fork_save: fuel exhausted: more than 20000000 units of work in one call (limits.fuel)`,
	} {
		path := wat(t, "testdata/bad/"+module+".wat")
		m := load(t, path, wasmhost.Options{Fuel: 20_000_000})
		spec := sim.PolicySpec{Name: "bad", New: func() (policies.Policy, error) { return m.New(policies.NewParams(nil)) }}
		res, err := sim.Replay(context.Background(), []sim.Source{tr}, []sim.PolicySpec{spec},
			sim.Options{Budgets: []host.Budget{{Tokens: 40}, {Tokens: 16}}, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		// A trap's message ends with where the guest was; the rest is exact.
		got := strings.ReplaceAll(res.Cells[1].Failed, filepath.Dir(path), "bad")
		if trapped := strings.HasSuffix(want, "(limits.fuel)"); !trapped && got != want || trapped && !strings.HasPrefix(got, want) {
			t.Errorf("%s: forked row's failure:\n got %s\nwant %s…", module, got, want)
		}
	}
}

// TestGoGuestFailures: a Go policy's panic, error or exhausted memory fails its row
// with the reason, through the Go guest SDK.
func TestGoGuestFailures(t *testing.T) {
	m := load(t, goPolicy(t, "./testdata/gopolicy"), wasmhost.Options{MemoryPages: 512})
	for mode, want := range map[string]string{
		"none":  "",
		"panic": `policy "bad": observe prefill at layer 0, position 0: NAME: kvpolicy_observe: panic: runtime error: index out of range [2] with length 0`,
		"error": `policy "bad": evict at layer 0, position 31: NAME: kvpolicy_evict: gopolicy: asked to fail`,
		// Go's runtime prints why it aborts, then traps; the message carries sizes.
		"oom": `policy "bad": observe prefill at layer 0, position 0: NAME: kvpolicy_observe: wasm error: unreachable (in runtime.abort(i32) i32 < runtime.fatalthrow.func1(i32) i32 < runtime.systemstack(i32) i32); it printed: runtime: out of memory: cannot allocate …; fatal error: out of memory; guest memory was 512 of at most 512 pages (limits.memory_pages)`,
	} {
		got := strings.ReplaceAll(replayOne(t, m.New, map[string]any{"mode": mode}), m.Name(), "NAME")
		if before, after, ok := strings.Cut(want, "…"); ok {
			if !strings.HasPrefix(got, before) || !strings.Contains(got, after) {
				t.Errorf("mode=%s:\n got %s\nwant %s", mode, got, want)
			}
		} else if got != want {
			t.Errorf("mode=%s:\n got %s\nwant %s", mode, got, want)
		}
	}
}

// TestGuestEntropyIsDeterministic: a Go policy that draws on its runtime's random
// generator and on the clock still replays identically, since random_get and the
// clocks are deterministic.
func TestGuestEntropyIsDeterministic(t *testing.T) {
	m := load(t, goPolicy(t, "./testdata/gopolicy"), wasmhost.Options{})
	for _, r := range conformance.Check(context.Background(), m.New, conformance.Options{Params: map[string]any{"mode": "entropy"}}) {
		if (r.Name == "replay" || r.Name == "determinism") && r.Err != nil {
			t.Errorf("%s: %v", r.Name, r.Err)
		}
	}
}

// paramSets are the params each builtin is held to, besides its defaults if it has
// any.
var paramSets = map[string][]map[string]any{
	"auv":    {{"preset": "v1"}, {"preset": "v2"}, {"preset": "v3"}, {"preset": "v4"}},
	"tova":   {{"layerwise": true}},
	"window": {{"sink": 0}},
	// Contract 2.0's builtins: keys (knorm, keydiff), keys, values and queries
	// (expectedattention), a model pool (pyramidkv), layer pools (adakv, duo).
	"knorm":             {{"keep": "high"}},
	"expectedattention": {{"covariance": "none", "vnorm": false}, {"queries": 4, "scale": 0.5}},
	"pyramidkv":         {{"beta": 2}},
	"adakv":             {{"alpha": 0.5}},
	"duo":               {{"mask": "sfsf"}, {"mask": "ssff/ffss", "sink": 2, "recent": 6}},
}

// TestBuiltinsAsWASM: every builtin policy, built to WASM from the same source with
// the Go guest SDK, makes exactly the evictions of its native build, victim for
// victim, at every step of replays at nine budgets, and gives the same rows; and it
// answers every call as the native build does on the call-by-call host. This holds
// contract 2.0's builtins (keys, values, queries, compact rows, layer and model
// pools) to ABI 2.0.
func TestBuiltinsAsWASM(t *testing.T) {
	for _, name := range builtin.Names() {
		t.Run(name, func(t *testing.T) {
			native, _ := builtin.Lookup(name)
			pkg, err := gobuild.PackageOf(native)
			if err != nil {
				t.Fatal(err)
			}
			m := load(t, goPolicy(t, pkg), wasmhost.Options{})
			sets := paramSets[name]
			if _, err := native(policies.NewParams(nil)); err == nil {
				sets = append([]map[string]any{nil}, sets...)
			} else if len(sets) == 0 {
				t.Fatalf("%s cannot be built without params (%v): give it a set in paramSets", name, err)
			}
			// A builtin that forks natively and can save its state forks as WASM too
			// (ABI 2.1), so that the replays below fork both builds.
			if p, err := native(policies.NewParams(sets[0])); err == nil {
				_, codec := p.(policies.ForkCodec)
				if _, forks := newInstance(t, m, sets[0]).(policies.Forker); forks != codec {
					t.Errorf("the WASM build forks: %v, the native build saves its fork state: %v", forks, codec)
				}
			}
			for _, params := range sets {
				if err := conformance.Same(context.Background(), native, m.New, params); err != nil {
					t.Errorf("params %v: %v", params, err)
				}
			}
		})
	}
}

// TestCExample: the C TOVA example, built against ABI 2.1 and against 1.0, is the
// builtin tova, victim for victim, and passes the whole conformance battery.
func TestCExample(t *testing.T) {
	for _, major := range []int{2, 1} {
		m := load(t, cPolicy(t, "../examples/policies/c/tova.c", major), wasmhost.Options{})
		// kvpolicy.h speaks 2.1 and, asked for 1, 1.0.
		if info := m.Info(); info.ABIMajor != major || info.ABIMinor != major-1 {
			t.Errorf("built against %d.x: the module speaks %d.%d", major, info.ABIMajor, info.ABIMinor)
		}
		native, _ := builtin.Lookup("tova")
		for _, params := range []map[string]any{nil, {"layerwise": true}} {
			opts := conformance.Options{Params: params, SameAs: native, SameAsName: "tova"}
			checkAll(t, fmt.Sprintf("ABI %d.0, params %v", major, params), conformance.Check(context.Background(), m.New, opts))
		}
	}
	m := load(t, cPolicy(t, "../examples/policies/c/tova.c", 2), wasmhost.Options{})
	for params, want := range map[string]string{
		`{"layerwise": 1}`: `tova: param "layerwise": want true or false`,
		`{"window": 4}`:    `tova: param "window": unknown param`,
	} {
		p, err := policies.ParseParams([]byte(params))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.New(p); err == nil || !strings.HasSuffix(err.Error(), "kvpolicy_new: "+want) {
			t.Errorf("params %s: got %v, want …%s", params, err, want)
		}
	}
}

// TestCPolicies: the C h2o and auv, built against ABI 2.1, fork (so that every
// replay forks them), are the builtins of the same names, victim for victim
// (weights too), at their defaults and at the param sets below, and pass the whole
// conformance battery, as they do built against 1.0 (where they cannot fork, and h2o
// reads wide rows, so its layout differs from the builtin's); bad params fail with
// the key's name.
func TestCPolicies(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets []map[string]any
		bad  map[string]string
	}{
		{"h2o", []map[string]any{nil, {"recent_share": 0.25}, {"recent_share": 0}}, map[string]string{
			`{"recent_share": 1}`: `h2o: param "recent_share": must be in [0, 1)`,
			`{"heavy": 3}`:        `h2o: param "heavy": unknown param`,
		}},
		{"auv", append([]map[string]any{nil, {"local": 3, "top_k": 2}, {"aggregation": "sum", "alpha": 0.25},
			{"aggregation": "mean", "compensation": false, "local_ratio": 0.3}, {"eviction": "naive", "preset": "v1", "usage": true}},
			paramSets["auv"]...), map[string]string{
			`{"preset": "v5"}`:               `auv: param "preset": want auv, v1, v2, v3 or v4`,
			`{"top_k": 0}`:                   `auv: param "top_k": must be at least 1`,
			`{"local": 2, "local_ratio": 1}`: `auv: param "local": set local or local_ratio, not both`,
			`{"alpha": 1.5}`:                 `auv: param "alpha": must be in [0, 1]`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			native, _ := builtin.Lookup(tc.name)
			for _, major := range []int{2, 1} {
				m := load(t, cPolicy(t, "../examples/policies/c/"+tc.name+".c", major), wasmhost.Options{})
				if _, ok := newInstance(t, m, nil).(policies.Forker); ok != (major == 2) {
					t.Errorf("ABI %d.x: the instance forks: %v", major, ok)
				}
				for _, params := range tc.sets {
					opts := conformance.Options{Params: params}
					if major == 2 {
						opts.SameAs, opts.SameAsName = native, tc.name
					}
					checkAll(t, fmt.Sprintf("ABI %d.0, params %v", major, params), conformance.Check(context.Background(), m.New, opts))
				}
				for params, want := range tc.bad {
					p, err := policies.ParseParams([]byte(params))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := m.New(p); err == nil || !strings.HasSuffix(err.Error(), "kvpolicy_new: "+want) {
						t.Errorf("ABI %d.0, params %s: got %v, want …%s", major, params, err, want)
					}
				}
			}
		})
	}
}

// TestWATExample: the hand-written WAT window, an ABI 1.0 guest, is the builtin window
// with its default params, and passes the battery.
func TestWATExample(t *testing.T) {
	m := load(t, wat(t, "../examples/policies/wat/window.wat"), wasmhost.Options{})
	if info := m.Info(); info.ABIMajor != 1 {
		t.Errorf("window.wat speaks %d.%d, want 1.0", info.ABIMajor, info.ABIMinor)
	}
	native, _ := builtin.Lookup("window")
	checkAll(t, "window.wat", conformance.Check(context.Background(), m.New, conformance.Options{SameAs: native, SameAsName: "window"}))
}

// TestRustExample: the Rust window, a no_std cdylib, is the builtin window with its
// default and other params, and passes the battery.
func TestRustExample(t *testing.T) {
	m := load(t, rustPolicy(t, "../examples/policies/rust/window.rs"), wasmhost.Options{})
	native, _ := builtin.Lookup("window")
	for _, params := range []map[string]any{nil, {"sink": 0}, {"sink": 7}} {
		opts := conformance.Options{Params: params, SameAs: native, SameAsName: "window"}
		checkAll(t, fmt.Sprintf("window.rs, params %v", params), conformance.Check(context.Background(), m.New, opts))
	}
	p, err := policies.ParseParams([]byte(`{"sink": 2.5}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.New(p); err == nil || !strings.HasSuffix(err.Error(), `kvpolicy_new: window: param "sink": want an integer >= 0`) {
		t.Errorf("sink 2.5: %v", err)
	}
}

// TestAssemblyScriptExample: the AssemblyScript window is the builtin window with its
// default params, and passes the battery.
func TestAssemblyScriptExample(t *testing.T) {
	m := load(t, asPolicy(t, "../examples/policies/assemblyscript/window.ts"), wasmhost.Options{})
	native, _ := builtin.Lookup("window")
	checkAll(t, "window.ts", conformance.Check(context.Background(), m.New, conformance.Options{SameAs: native, SameAsName: "window"}))
}

// TestGoGuestOfABI1: a Go guest built with the ABI 1.0 SDK (testdata/v1) still runs
// unchanged: it is the builtin window, victim for victim, and passes the battery.
func TestGoGuestOfABI1(t *testing.T) {
	path := build(t, "window-go-abi1.wasm", func(out string) error {
		return gunzip("testdata/v1/window-go-abi1.wasm.gz", out)
	})
	m := load(t, path, wasmhost.Options{})
	if info := m.Info(); info.ABIMajor != 1 || info.ABIMinor != 0 || !info.WASI {
		t.Errorf("info %+v, want a WASI module of ABI 1.0", info)
	}
	if _, ok := newInstance(t, m, nil).(policies.LayerBudgeter); ok {
		t.Error("a 1.x module's policy offers layer budgets")
	}
	if _, ok := newInstance(t, m, nil).(policies.Forker); ok {
		t.Error("a 1.x module's policy offers to fork")
	}
	native, _ := builtin.Lookup("window")
	for _, params := range []map[string]any{nil, {"sink": 0}} {
		opts := conformance.Options{Params: params, SameAs: native, SameAsName: "window"}
		checkAll(t, fmt.Sprintf("window-go-abi1, params %v", params), conformance.Check(context.Background(), m.New, opts))
	}
}

// TestContract2AsWASM: a Go policy that asks for keys, values, queries and compact
// rows, one with a layer pool and one with a model pool and layer budgets, built to
// WASM with the Go guest SDK, evict as their native twins do, victim for victim, in
// replay and call by call, and pass the whole battery.
func TestContract2AsWASM(t *testing.T) {
	m := load(t, goPolicy(t, "./testdata/contract2"), wasmhost.Options{})
	if info := m.Info(); info.ABIMajor != 2 || info.ABIMinor != 1 {
		t.Errorf("info %+v, want ABI 2.1", info)
	}
	for _, kind := range []string{"inputs", "layer", "model"} {
		opts := conformance.Options{Params: map[string]any{"kind": kind}, SameAs: contract2.New, SameAsName: "contract2"}
		checkAll(t, "contract2, kind "+kind, conformance.Check(context.Background(), m.New, opts))
	}
	if _, ok := newInstance(t, m, map[string]any{"kind": "model"}).(policies.LayerBudgeter); !ok {
		t.Error("a Go guest's policy does not offer layer budgets")
	}
}

// TestContract2InC: the same policy written in C against kvpolicy.h's 2.0 header
// (testdata/contract2.c, one build per kind) evicts as the Go policy does natively,
// in replay and call by call: the header's 2.0 fields and arrays are where the Go guest SDK has
// them.
func TestContract2InC(t *testing.T) {
	for i, kind := range []string{"inputs", "layer", "model"} {
		m := load(t, cPolicy(t, "testdata/contract2.c", 2, fmt.Sprintf("KIND=%d", i)), wasmhost.Options{})
		if err := conformance.Same(context.Background(), contract2.New, m.New, map[string]any{"kind": kind}); err != nil {
			t.Errorf("kind %s: %v", kind, err)
		}
	}
}

// TestBadPoolOutputs: a guest that gives fewer victims than its layer pool needs, or
// layer budgets over the model pool, fails the call with the reason, naming the
// module and the export.
func TestBadPoolOutputs(t *testing.T) {
	m := load(t, goPolicy(t, "./testdata/contract2"), wasmhost.Options{})
	const H, P, T, B = 2, 8, 10, 2
	cfg := policies.Config{Layers: 3, Heads: H, HeadDim: 4, PromptLen: P, MaxLen: T, Budget: B}
	prefill := &policies.Attention{Phase: policies.Prefill, Rows: P, Heads: H, Stride: P, HeadDim: 4, Probs: make([]float32, H*P*P)}
	for h := range H {
		for r := range P {
			for s := 0; s <= r; s++ {
				prefill.Row(h, r)[s] = 1 / float32(r+1)
			}
		}
	}

	over := newInstance(t, m, map[string]any{"kind": "overdraw"})
	if layout, err := over.Init(cfg); err != nil || layout.Pool != policies.PoolLayer {
		t.Fatalf("layout %+v, %v", layout, err)
	}
	if err := over.Observe(prefill); err != nil {
		t.Fatal(err)
	}
	e := &policies.Eviction{Phase: policies.Prefill, Pos: P - 1, Heads: H, Need: make([]int32, H), PoolNeed: H*P - H*B,
		Stride: P, Count: make([]int32, H), Victims: make([]int32, H*P)}
	want := m.Name() + ": kvpolicy_evict: 11 victims in all, but the layer pool needs at least 12 (pool_need): the policy overdraws its pool"
	if err := over.Evict(e); err == nil || err.Error() != want {
		t.Errorf("overdraw:\n got %v\nwant %s", err, want)
	}

	greedy := newInstance(t, m, map[string]any{"kind": "greedy"})
	if _, err := greedy.Init(cfg); err != nil {
		t.Fatal(err)
	}
	whole := cfg
	whole.Layer = -1
	want = m.Name() + ": kvpolicy_layer_budgets: the layers get 13 tokens in all, over the model pool of 3 layers × 2 heads × budget 2 = 12"
	if err := greedy.(policies.LayerBudgeter).LayerBudgets(whole, make([]int, 3)); err == nil || err.Error() != want {
		t.Errorf("greedy layer budgets:\n got %v\nwant %s", err, want)
	}
	// The instance goes on with its sequence's config.
	if err := greedy.Observe(prefill); err != nil {
		t.Errorf("observe after layer budgets: %v", err)
	}

	neg := load(t, wat(t, filepath.Join("testdata", "bad", "negative_budgets.wat")), wasmhost.Options{})
	p := newInstance(t, neg, nil)
	if layout, err := p.Init(cfg); err != nil || layout.Pool != policies.PoolModel {
		t.Fatalf("layout %+v, %v", layout, err)
	}
	want = neg.Name() + ": kvpolicy_layer_budgets: layer 1 gets -1 tokens: want ≥ 0"
	if err := p.(policies.LayerBudgeter).LayerBudgets(whole, make([]int, 3)); err == nil || err.Error() != want {
		t.Errorf("negative layer budgets:\n got %v\nwant %s", err, want)
	}

	// The layer-budget call is metered like every other: a loop spends its fuel.
	loop := load(t, wat(t, filepath.Join("testdata", "bad", "loop_budgets.wat")), wasmhost.Options{Fuel: 20_000_000})
	p = newInstance(t, loop, nil)
	if _, err := p.Init(cfg); err != nil {
		t.Fatal(err)
	}
	want = loop.Name() + ": kvpolicy_layer_budgets: fuel exhausted: more than 20000000 units of work in one call (limits.fuel)"
	if err := p.(policies.LayerBudgeter).LayerBudgets(whole, make([]int, 3)); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("looping layer budgets:\n got %v\nwant %s…", err, want)
	}
}

func newInstance(t *testing.T, m *wasmhost.Module, params map[string]any) policies.Policy {
	t.Helper()
	p, err := m.New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func checkAll(t *testing.T, what string, results []conformance.Result) {
	t.Helper()
	var names []string
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s: %s (%s): %v", what, r.Name, r.Detail, r.Err)
		}
		names = append(names, r.Name)
	}
	// The battery ran in full.
	for _, want := range []string{"params", "build", "replay", "small", "determinism", "reuse", "prefill blocks", "budget", "reference host", "contract 2.0"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s: check %q did not run (ran %v)", what, want, names)
		}
	}
}
