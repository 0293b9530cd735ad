package guest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/kvsim/kvsim/abi/conformance"
	"github.com/kvsim/kvsim/abi/internal/region"
	"github.com/kvsim/kvsim/abi/testdata/contract2"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/auv"
	"github.com/kvsim/kvsim/policies/policytest"
	"github.com/kvsim/kvsim/policies/window"
)

// loopback is a host that talks to a server in the same process through the
// exchange region, the way the WASM host does through guest memory.
type loopback struct {
	s      *server
	cfg    policies.Config
	layout policies.Layout
	plan   region.Plan
}

func newLoopback(newPolicy policies.New, params string) (*loopback, error) {
	l := &loopback{s: &server{newPolicy: newPolicy}}
	plan := region.ParamsPlan(region.Major, len(params))
	b := l.s.buffer(int32(plan.Size))
	region.PutU32(b, region.ParamsOff, uint32(plan.Params))
	region.PutU32(b, region.ParamsLen, uint32(len(params)))
	copy(b[plan.Params:], params)
	return l, l.status(l.s.create())
}

func (l *loopback) status(st int32) error {
	if st == region.OK {
		return nil
	}
	return fmt.Errorf("status %d: %s", st, l.s.errMsg)
}

func (l *loopback) writeConfig(cfg policies.Config) {
	b := l.s.buf
	for _, f := range [...]struct{ at, v int }{
		{region.Layer, cfg.Layer}, {region.Layers, cfg.Layers}, {region.Heads, cfg.Heads}, {region.HeadDim, cfg.HeadDim},
		{region.PromptLen, cfg.PromptLen}, {region.MaxLen, cfg.MaxLen}, {region.Budget, cfg.Budget},
	} {
		region.PutI32(b, f.at, int32(f.v))
	}
	region.PutU64(b, region.Seed, cfg.Seed)
}

func (l *loopback) Init(cfg policies.Config) (policies.Layout, error) {
	l.cfg = cfg
	l.plan, _ = region.PlanFor(region.Major, region.Config{Heads: cfg.Heads, HeadDim: cfg.HeadDim, Layers: cfg.Layers, PromptLen: cfg.PromptLen, MaxLen: cfg.MaxLen})
	b := l.s.buffer(int32(l.plan.Size))
	l.plan.WriteOffsets(b)
	l.writeConfig(cfg)
	if err := l.status(l.s.init()); err != nil {
		return policies.Layout{}, err
	}
	flags := region.U32(b, region.Flags)
	l.layout = policies.Layout{Slack: int(region.I32(b, region.Slack)), Unbounded: flags&region.FlagUnbounded != 0,
		Compensation: flags&region.FlagCompensation != 0, Clairvoyant: flags&region.FlagClairvoyant != 0,
		Keys: flags&region.FlagKeys != 0, Values: flags&region.FlagValues != 0, Queries: flags&region.FlagQueries != 0,
		Compact: flags&region.FlagCompact != 0, Pool: policies.Pool(region.U32(b, region.Pool))}
	return l.layout, nil
}

func (l *loopback) Observe(a *policies.Attention) error {
	b, H, S := l.s.buf, l.cfg.Heads, a.Stride
	region.PutI32(b, region.Phase, int32(a.Phase))
	region.PutI32(b, region.Pos, int32(a.Pos))
	region.PutI32(b, region.Rows, int32(a.Rows))
	region.PutI32(b, region.Stride, int32(S))
	region.PutFloats(b, l.plan.Probs, a.Probs[:H*a.Rows*S])
	for _, v := range [...]struct {
		src []float32
		at  int
	}{{a.Keys, l.plan.Keys}, {a.Values, l.plan.Values}, {a.Queries, l.plan.Queries}} {
		region.PutFloats(b, v.at, v.src)
	}
	if a.Phase == policies.Decode {
		region.PutInts(b, l.plan.Slot, a.Slot)
		region.PutFloats(b, l.plan.Comp, a.Comp)
		region.PutInts(b, l.plan.Live, a.Live)
		region.PutInts(b, l.plan.Len, a.Len)
	}
	return l.status(l.s.observe())
}

func (l *loopback) Evict(e *policies.Eviction) error {
	b, H, S := l.s.buf, l.cfg.Heads, e.Stride
	region.PutI32(b, region.Phase, int32(e.Phase))
	region.PutI32(b, region.Pos, int32(e.Pos))
	region.PutI32(b, region.Stride, int32(S))
	region.PutInts(b, l.plan.Need, e.Need)
	region.PutI32(b, region.PoolNeed, int32(e.PoolNeed))
	region.Zero(b, l.plan.Count, 4*H)
	if err := l.status(l.s.evict()); err != nil {
		return err
	}
	region.Ints(e.Count[:H], b, l.plan.Count)
	for h := range H {
		n := int(e.Count[h])
		region.Ints(e.Victims[h*S:h*S+n], b, l.plan.Victims+4*h*S)
		if e.Weights != nil {
			region.Floats(e.Weights[h*S:h*S+n], b, l.plan.Weights+4*h*S)
		}
	}
	return nil
}

func (l *loopback) LayerBudgets(cfg policies.Config, entries []int) error {
	l.writeConfig(cfg)
	defer l.writeConfig(l.cfg)
	if err := l.status(l.s.layerBudgets()); err != nil {
		return err
	}
	out := make([]int32, len(entries))
	region.Ints(out, l.s.buf, l.plan.Budgets)
	for i, n := range out {
		entries[i] = int(n)
	}
	return nil
}

// TestServerDecodesLikeANativeHost: through the region, window and AUV (which keeps
// a compensation slot and gives merge weights) evict exactly as when called directly.
func TestServerDecodesLikeANativeHost(t *testing.T) {
	seq := policytest.RandomSequence(3, 20, 36, 5)
	for _, tc := range []struct {
		name      string
		newPolicy policies.New
		params    string
		native    map[string]any
	}{
		{"window", window.New, `{"sink": 2}`, map[string]any{"sink": 2.0}},
		{"auv", auv.New, `{}`, nil},
	} {
		for _, budget := range []int{1, 6, 19, 40} {
			want, err := tc.newPolicy(policies.NewParams(tc.native))
			if err != nil {
				t.Fatal(err)
			}
			got, err := newLoopback(tc.newPolicy, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			cfg := policies.Config{Layers: 1, HeadDim: 8, Budget: budget, Seed: 9}
			wantLog, err := policytest.Run(want, cfg, seq)
			if err != nil {
				t.Fatal(err)
			}
			gotLog, err := policytest.Run(got, cfg, seq)
			if err != nil {
				t.Fatalf("%s at budget %d: %v", tc.name, budget, err)
			}
			if !reflect.DeepEqual(gotLog, wantLog) {
				t.Errorf("%s at budget %d: the served policy evicted differently", tc.name, budget)
			}
		}
	}
}

// TestServerServesContract2: keys, values, queries, compact rows, a layer pool and a
// model pool's layer budgets reach the policy through the region exactly as a native
// host passes them: the served policy evicts as the policy called directly.
func TestServerServesContract2(t *testing.T) {
	for _, kind := range []string{"inputs", "layer", "model"} {
		served := func(p *policies.Params) (policies.Policy, error) {
			return newLoopback(contract2.New, fmt.Sprintf(`{"kind": %q}`, kind))
		}
		if err := conformance.SameCalls(contract2.New, served, map[string]any{"kind": kind}); err != nil {
			t.Errorf("kind %s: %v", kind, err)
		}
	}
}

// panicky panics or fails where the test says.
type panicky struct{ err error }

func (p *panicky) Init(policies.Config) (policies.Layout, error) { return policies.Layout{}, p.err }
func (p *panicky) Observe(a *policies.Attention) error           { return nil }
func (p *panicky) Evict(e *policies.Eviction) error {
	var m map[string]int
	m["boom"]++ // assignment to entry in nil map
	return nil
}

// TestFailures: errors and panics become a failed status with a message; so do a
// missing Register and a region the host laid out wrong.
func TestFailures(t *testing.T) {
	if _, err := newLoopback(nil, "{}"); err == nil || !strings.Contains(err.Error(), "no policy registered: call guest.Register(New)") {
		t.Errorf("no policy: %v", err)
	}
	if _, err := newLoopback(window.New, `{"sink": -1}`); err == nil || err.Error() != `status 1: param "sink": must be ≥ 0, got -1` {
		t.Errorf("bad param: %v", err)
	}
	if _, err := newLoopback(window.New, `[1]`); err == nil || !strings.HasPrefix(err.Error(), "status 1: params: json: ") {
		t.Errorf("params not an object: %v", err)
	}

	p := &panicky{err: errors.New("no thanks")}
	l, err := newLoopback(func(*policies.Params) (policies.Policy, error) { return p, nil }, "{}")
	if err != nil {
		t.Fatal(err)
	}
	cfg := policies.Config{Heads: 1, PromptLen: 4, MaxLen: 6, Budget: 2}
	if _, err := l.Init(cfg); err == nil || err.Error() != "status 1: no thanks" {
		t.Errorf("init error: %v", err)
	}
	p.err = nil
	if _, err := l.Init(cfg); err != nil {
		t.Fatal(err)
	}
	e := &policies.Eviction{Heads: 1, Stride: 4, Need: []int32{2}, Count: []int32{0}, Victims: make([]int32, 4)}
	if err := l.Evict(e); err == nil || err.Error() != "status 1: panic: assignment to entry in nil map" {
		t.Errorf("panic: %v", err)
	}

	region.PutU32(l.s.buf, region.ProbsOff, uint32(len(l.s.buf)))
	a := &policies.Attention{Phase: policies.Prefill, Rows: 4, Heads: 1, Stride: 4, Probs: make([]float32, 16)}
	if err := l.Observe(a); err == nil || !strings.HasPrefix(err.Error(), "status 1: host error: observe: array of 16 words at offset") {
		t.Errorf("probs outside the region: %v", err)
	}
}

// spy is a policy that asks for every array and checks that each slice the server
// hands it lies inside the region.
type spy struct {
	t   *testing.T
	buf []byte
}

func (p *spy) Init(policies.Config) (policies.Layout, error) {
	return policies.Layout{Compensation: true, Clairvoyant: true, Keys: true, Values: true, Queries: true,
		Compact: true, Pool: policies.PoolModel}, nil
}

func (p *spy) LayerBudgets(cfg policies.Config, entries []int) error { return nil }

func (p *spy) Observe(a *policies.Attention) error {
	p.inside("probs", a.Probs, a.Heads*a.Rows*a.Stride)
	p.inside("keys", a.Keys, a.Heads*a.Rows*a.HeadDim)
	p.inside("values", a.Values, a.Heads*a.Rows*a.HeadDim)
	p.inside("queries", a.Queries, a.Heads*a.Rows*a.HeadDim)
	p.inside("comp", a.Comp, a.Heads)
	p.insideInts("slot", a.Slot, a.Heads)
	p.insideInts("live", a.Live, a.Heads*a.Stride)
	p.insideInts("len", a.Len, a.Heads)
	return nil
}

func (p *spy) Evict(e *policies.Eviction) error {
	p.insideInts("need", e.Need, e.Heads)
	p.insideInts("count", e.Count, e.Heads)
	p.insideInts("victims", e.Victims, e.Heads*e.Stride)
	p.inside("weights", e.Weights, e.Heads*e.Stride)
	p.inside("future", e.Future, e.Heads*e.Stride)
	return nil
}

func (p *spy) inside(name string, s []float32, n int) {
	p.check(name, unsafe.Pointer(unsafe.SliceData(s)), len(s), n)
}

func (p *spy) insideInts(name string, s []int32, n int) {
	p.check(name, unsafe.Pointer(unsafe.SliceData(s)), len(s), n)
}

// check: a slice of words is nil (and nothing was asked for) or n words long and
// inside the region.
func (p *spy) check(name string, at unsafe.Pointer, words, n int) {
	if at == nil {
		return
	}
	start := uintptr(at) - uintptr(unsafe.Pointer(unsafe.SliceData(p.buf)))
	if words != n || start > uintptr(len(p.buf)) || uintptr(4*words) > uintptr(len(p.buf))-start {
		p.t.Errorf("%s: %d words at offset %d, %d asked for, in a %d-byte region", name, words, int(start), n, len(p.buf))
	}
}

// FuzzServerStaysInRegion: whatever a (broken) host writes into the header's call
// fields, array offsets and capacities, every slice the server hands the policy lies
// inside the region, or the call fails with a host error.
func FuzzServerStaysInRegion(f *testing.F) {
	f.Add(make([]byte, region.HeaderSize-region.Phase), uint8(0))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 8, 0, 0, 0, 255, 255, 255, 255}, uint8(1))
	f.Fuzz(func(t *testing.T, header []byte, call uint8) {
		p := &spy{t: t}
		l, err := newLoopback(func(*policies.Params) (policies.Policy, error) { return p, nil }, "{}")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Init(policies.Config{Layers: 2, Heads: 2, HeadDim: 4, PromptLen: 8, MaxLen: 12, Budget: 4}); err != nil {
			t.Fatal(err)
		}
		p.buf = l.s.buf
		copy(l.s.buf[region.Phase:region.HeaderSize], header)
		// The config fields stay the host's; the fuzz writes what calls carry.
		switch call % 3 {
		case 0:
			l.s.observe()
		case 1:
			l.s.evict()
		case 2:
			l.s.layerBudgets()
		}
	})
}
