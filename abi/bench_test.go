package abi_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvsim/kvsim/abi/gobuild"
	"github.com/kvsim/kvsim/abi/plugin"
	"github.com/kvsim/kvsim/abi/wasmhost"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/policies/tova"
	"github.com/kvsim/kvsim/policies/window"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

// keepAll is the native twin of testdata/bad/ok.wat: it does nothing.
type keepAll struct{}

func (keepAll) Init(policies.Config) (policies.Layout, error) {
	return policies.Layout{Unbounded: true}, nil
}
func (keepAll) Observe(*policies.Attention) error { return nil }
func (keepAll) Evict(*policies.Eviction) error    { return nil }

// BenchmarkCallOverhead times one decode step, Observe then Evict, of a policy that
// does nothing, on 12 heads (OPT-125M's) with 256 slots: what a policy call costs
// beyond the policy's own work. Native is a Go method call; WASM copies the
// attention into guest memory and calls through wazero, metered (the default) or
// not, into WAT or into Go's runtime. wasm is an ABI 1.0 guest; wasm-abi2 the same
// guest speaking 2.0 (what the 2.0 dialect costs a policy that asks for nothing
// new), and wasm-abi2-inputs one that asks for keys, values and queries (what
// crossing 3 × 12 vectors of 64 floats costs a step).
func BenchmarkCallOverhead(b *testing.B) {
	okWAT := func(b *testing.B) string { return wat(b, "testdata/bad/ok.wat") }
	noop2 := func(b *testing.B) string { return wat(b, "testdata/bench/noop2.wat") }
	inputs2 := func(b *testing.B) string { return wat(b, "testdata/bench/noop2_inputs.wat") }
	goGuest := func(b *testing.B) string { return goPolicy(b, "./testdata/gopolicy") }
	for _, v := range []struct {
		name   string
		module func(b *testing.B) string // nil: native
		fuel   int64
	}{
		{"native", nil, 0},
		{"wasm-unmetered", okWAT, wasmhost.Unmetered},
		{"wasm", okWAT, 0},
		{"wasm-abi2", noop2, 0},
		{"wasm-abi2-inputs", inputs2, 0},
		{"wasm-go-unmetered", goGuest, wasmhost.Unmetered},
		{"wasm-go", goGuest, 0},
	} {
		b.Run(v.name, func(b *testing.B) {
			var p policies.Policy = keepAll{}
			if v.module != nil {
				p = mustNew(b, load(b, v.module(b), wasmhost.Options{Fuel: v.fuel}).New)
			}
			step := noopStep(b, p)
			b.ReportAllocs()
			for b.Loop() {
				step()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2, "ns/call")
		})
	}
}

// noopStep starts p on 12 heads of dimension 64 (OPT-125M's) with 256 slots and
// returns a decode step, Observe then Evict, that asks for no victims. A policy that
// asks for vectors gets them.
func noopStep(b *testing.B, p policies.Policy) func() {
	const H, D, W = 12, 64, 256
	layout, err := p.Init(policies.Config{Heads: H, HeadDim: D, PromptLen: W, MaxLen: 2 * W, Budget: W})
	if err != nil {
		b.Fatal(err)
	}
	a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: H, Stride: W, HeadDim: D,
		Probs: make([]float32, H*W), Slot: make([]int32, H), Comp: make([]float32, H)}
	if layout.Keys {
		a.Keys, a.Values, a.Queries = make([]float32, H*D), make([]float32, H*D), make([]float32, H*D)
	}
	e := &policies.Eviction{Phase: policies.Decode, Heads: H, Stride: W,
		Need: make([]int32, H), Count: make([]int32, H), Victims: make([]int32, H*W)}
	return func() {
		if err := p.Observe(a); err != nil {
			b.Fatal(err)
		}
		if err := p.Evict(e); err != nil {
			b.Fatal(err)
		}
	}
}

func mustNew(b *testing.B, newPolicy policies.New) policies.Policy {
	b.Helper()
	p, err := newPolicy(policies.NewParams(nil))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkReplay replays an OPT-13B-shaped synthetic sample (2 layers × 40 heads,
// 1024 + 64 tokens) through one policy at five budgets, the policy built each way:
// native, as a Go plugin, and as WASM from Go (the same source) and from C or WAT
// (the same algorithm), metered (the default) or not. It reports the replay time and
// the policy's time per (head · decode step); divide by the native row's for the
// ratios, and by the unmetered row's for what metering costs.
func BenchmarkReplay(b *testing.B) {
	tr, err := synth.New(synth.Options{Preset: "opt-13b", Layers: 2, PromptLen: 1024, GenLen: 64, Seed: 1, WithV: true})
	if err != nil {
		b.Fatal(err)
	}
	budgets := []host.Budget{{Fraction: 0.02}, {Fraction: 0.04}, {Fraction: 0.06}, {Fraction: 0.08}, {Fraction: 0.10}}
	wasm := func(path func(b *testing.B) string, fuel int64) func(b *testing.B) policies.New {
		return func(b *testing.B) policies.New {
			return load(b, path(b), wasmhost.Options{Fuel: fuel}).New
		}
	}
	goWASM := func(pkg string, fuel int64) func(b *testing.B) policies.New {
		return wasm(func(b *testing.B) string { return goPolicy(b, pkg) }, fuel)
	}
	cTOVA := func(b *testing.B) string { return cPolicy(b, "../examples/policies/c/tova.c", 2) }
	watWindow := func(b *testing.B) string { return wat(b, "../examples/policies/wat/window.wat") }
	asPlugin := func(pkg string) func(b *testing.B) policies.New {
		return func(b *testing.B) policies.New {
			so := build(b, filepath.Base(pkg)+".so", func(out string) error {
				ctx, cancel := context.WithTimeout(context.Background(), buildBound)
				defer cancel()
				return gobuild.Plugin(ctx, pkg, out)
			})
			newPolicy, err := plugin.Open(so)
			if err != nil {
				b.Skip(err)
			}
			return newPolicy
		}
	}
	const tovaPkg, windowPkg = "github.com/kvsim/kvsim/policies/tova", "github.com/kvsim/kvsim/policies/window"
	for _, v := range []struct {
		name string
		make func(b *testing.B) policies.New
	}{
		{"tova/native", func(*testing.B) policies.New { return tova.New }},
		{"tova/plugin", asPlugin(tovaPkg)},
		{"tova/wasm-c", wasm(cTOVA, 0)},
		{"tova/wasm-c-unmetered", wasm(cTOVA, wasmhost.Unmetered)},
		{"tova/wasm-go", goWASM(tovaPkg, 0)},
		{"tova/wasm-go-unmetered", goWASM(tovaPkg, wasmhost.Unmetered)},
		{"window/native", func(*testing.B) policies.New { return window.New }},
		{"window/plugin", asPlugin(windowPkg)},
		{"window/wasm-wat", wasm(watWindow, 0)},
		{"window/wasm-wat-unmetered", wasm(watWindow, wasmhost.Unmetered)},
		{"window/wasm-go", goWASM(windowPkg, 0)},
	} {
		b.Run(v.name, func(b *testing.B) {
			newPolicy := v.make(b)
			specs := []sim.PolicySpec{{Name: v.name, New: func() (policies.Policy, error) { return newPolicy(policies.NewParams(nil)) }}}
			var res *sim.Result
			for b.Loop() {
				if res, err = sim.Replay(context.Background(), []sim.Source{tr}, specs, sim.Options{Budgets: budgets, Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
			var policyNs float64
			for _, c := range res.Cells {
				if c.Failed != "" {
					b.Fatal(c.Failed)
				}
				policyNs += c.PolicyNs / float64(len(res.Cells))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/res.Perf.DecodeSteps, "ns/(head·step)")
			b.ReportMetric(policyNs, "policy-ns/(head·step)")
		})
	}
}

// decodeSteps drives one policy through decode steps (Observe, then a one-victim
// Evict) of OPT-13B's shape: 40 heads, a 1024-token prompt compressed to 51 tokens,
// so the slot table, and each attention row, is 1024 wide. It starts a new sequence
// when one ends.
type decodeSteps struct {
	b *testing.B
	p policies.Policy
	a *policies.Attention
	e *policies.Eviction
}

const stepHeads, stepPrompt, stepBudget, stepsPerSequence = 40, 1024, 51, 1 << 14

func newDecodeSteps(b *testing.B, p policies.Policy) *decodeSteps {
	const H, P = stepHeads, stepPrompt
	d := &decodeSteps{b: b, p: p,
		a: &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: H, Stride: P,
			Probs: make([]float32, H*P), Slot: make([]int32, H), Comp: make([]float32, H)},
		e: &policies.Eviction{Heads: H, Stride: P, Need: make([]int32, H), Count: make([]int32, H), Victims: make([]int32, H*P)},
	}
	d.start()
	return d
}

// start begins a sequence: the prompt, its compression, and the first decode row.
func (d *decodeSteps) start() {
	const H, P, B = stepHeads, stepPrompt, stepBudget
	b, p, a, e := d.b, d.p, d.a, d.e
	if _, err := p.Init(policies.Config{Heads: H, PromptLen: P, MaxLen: P + stepsPerSequence, Budget: B}); err != nil {
		b.Fatal(err)
	}
	pre := &policies.Attention{Phase: policies.Prefill, Rows: P, Heads: H, Stride: P, Probs: make([]float32, H*P*P)}
	for i := range pre.Probs {
		pre.Probs[i] = float32(i%97) / 97
	}
	if err := p.Observe(pre); err != nil {
		b.Fatal(err)
	}
	e.Phase, e.Pos = policies.Prefill, P-1
	for h := range H {
		e.Need[h] = P - B
	}
	clear(e.Count)
	if err := p.Evict(e); err != nil {
		b.Fatal(err)
	}
	e.Phase, a.Pos = policies.Decode, P-1
	for h := range H {
		a.Slot[h], e.Need[h] = e.Victims[h*P], 1
	}
	for i := range a.Probs {
		a.Probs[i] = float32(i%13) / 13
	}
}

// step runs one decode step; a new sequence, when one is due, is not timed.
func (d *decodeSteps) step() {
	b, p, a, e := d.b, d.p, d.a, d.e
	if a.Pos++; a.Pos == stepPrompt+stepsPerSequence {
		b.StopTimer()
		d.start()
		a.Pos++
		b.StartTimer()
	}
	e.Pos = a.Pos
	if err := p.Observe(a); err != nil {
		b.Fatal(err)
	}
	clear(e.Count)
	if err := p.Evict(e); err != nil {
		b.Fatal(err)
	}
	for h := range stepHeads {
		a.Slot[h] = e.Victims[h*stepPrompt]
	}
}

// BenchmarkDecodeStep times one decode step of OPT-13B's shape (see decodeSteps).
func BenchmarkDecodeStep(b *testing.B) {
	for _, v := range []struct {
		name string
		make func(b *testing.B) policies.New
	}{
		{"tova/native", func(*testing.B) policies.New { return tova.New }},
		{"tova/wasm-c", func(b *testing.B) policies.New {
			return load(b, cPolicy(b, "../examples/policies/c/tova.c", 2), wasmhost.Options{}).New
		}},
		{"tova/wasm-go", func(b *testing.B) policies.New {
			return load(b, goPolicy(b, "github.com/kvsim/kvsim/policies/tova"), wasmhost.Options{}).New
		}},
		{"window/native", func(*testing.B) policies.New { return window.New }},
		{"window/wasm-wat", func(b *testing.B) policies.New {
			return load(b, wat(b, "../examples/policies/wat/window.wat"), wasmhost.Options{}).New
		}},
	} {
		b.Run(v.name, func(b *testing.B) {
			d := newDecodeSteps(b, mustNew(b, v.make(b)))
			b.ReportAllocs()
			for b.Loop() {
				d.step()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/stepHeads, "ns/(head·step)")
		})
	}
}

// BenchmarkFuelOverhead measures what metering costs a call: each iteration runs the
// same step on a metered and on an unmetered instance of the same module, one after
// the other, so that both see the same load, and it reports both times and their
// ratio. Steps: a no-op policy's Observe and Evict (12 heads × 256 slots, as in
// BenchmarkCallOverhead), and a decode step of TOVA at OPT-13B's shape (see
// decodeSteps), for the C and the Go guests.
func BenchmarkFuelOverhead(b *testing.B) {
	noop := func(module func(b *testing.B) string) func(b *testing.B, fuel int64) func() {
		return func(b *testing.B, fuel int64) func() {
			return noopStep(b, mustNew(b, load(b, module(b), wasmhost.Options{Fuel: fuel}).New))
		}
	}
	decode := func(module func(b *testing.B) string) func(b *testing.B, fuel int64) func() {
		return func(b *testing.B, fuel int64) func() {
			return newDecodeSteps(b, mustNew(b, load(b, module(b), wasmhost.Options{Fuel: fuel}).New)).step
		}
	}
	cTOVA := func(b *testing.B) string { return cPolicy(b, "../examples/policies/c/tova.c", 2) }
	goTOVA := func(b *testing.B) string { return goPolicy(b, "github.com/kvsim/kvsim/policies/tova") }
	for _, v := range []struct {
		name string
		make func(b *testing.B, fuel int64) func()
	}{
		{"noop/wat", noop(func(b *testing.B) string { return wat(b, "testdata/bad/ok.wat") })},
		{"noop/go", noop(func(b *testing.B) string { return goPolicy(b, "./testdata/gopolicy") })},
		{"tova-decode/c", decode(cTOVA)},
		{"tova-decode/go", decode(goTOVA)},
	} {
		b.Run(v.name, func(b *testing.B) {
			metered, unmetered := v.make(b, 0), v.make(b, wasmhost.Unmetered)
			var on, off time.Duration
			for b.Loop() {
				t0 := time.Now()
				metered()
				t1 := time.Now()
				unmetered()
				on, off = on+t1.Sub(t0), off+time.Since(t1)
			}
			n := float64(b.N)
			b.ReportMetric(float64(on.Nanoseconds())/n, "ns-metered")
			b.ReportMetric(float64(off.Nanoseconds())/n, "ns-unmetered")
			b.ReportMetric(float64(on)/float64(off), "ratio")
		})
	}
}

// BenchmarkReplayVsNative replays BenchmarkReplay's sample (2 layers × 40 heads of
// OPT-13B's shape, 1024 + 64 tokens, five budgets) through h2o and auv (its default
// preset) built each way: native, as WASM from the same Go source with the Go guest
// SDK, and as WASM from C (examples/policies/c). Each iteration runs every build in
// turn, so that all see the same load, and it reports each build's fastest replay
// and its ratio to native's fastest, end to end: on a shared machine the fastest of
// several runs is the one least disturbed by others' load.
func BenchmarkReplayVsNative(b *testing.B) {
	tr, err := synth.New(synth.Options{Preset: "opt-13b", Layers: 2, PromptLen: 1024, GenLen: 64, Seed: 1, WithV: true})
	if err != nil {
		b.Fatal(err)
	}
	budgets := []host.Budget{{Fraction: 0.02}, {Fraction: 0.04}, {Fraction: 0.06}, {Fraction: 0.08}, {Fraction: 0.10}}
	for _, name := range []string{"h2o", "auv"} {
		b.Run(name, func(b *testing.B) {
			native, _ := builtin.Lookup(name)
			pkg, err := gobuild.PackageOf(native)
			if err != nil {
				b.Fatal(err)
			}
			builds := []struct {
				name string
				new  policies.New
			}{
				{"native", native},
				{"wasm-go", load(b, goPolicy(b, pkg), wasmhost.Options{}).New},
				{"wasm-c", load(b, cPolicy(b, "../examples/policies/c/"+name+".c", 2), wasmhost.Options{}).New},
			}
			fastest := make([]time.Duration, len(builds))
			for b.Loop() {
				for i, v := range builds {
					specs := []sim.PolicySpec{{Name: name, New: func() (policies.Policy, error) { return v.new(policies.NewParams(nil)) }}}
					start := time.Now()
					res, err := sim.Replay(context.Background(), []sim.Source{tr}, specs, sim.Options{Budgets: budgets, Seed: 1})
					if d := time.Since(start); fastest[i] == 0 || d < fastest[i] {
						fastest[i] = d
					}
					if err != nil {
						b.Fatal(err)
					}
					for _, c := range res.Cells {
						if c.Failed != "" {
							b.Fatalf("%s: %s", v.name, c.Failed)
						}
					}
				}
			}
			for i, v := range builds {
				b.ReportMetric(float64(fastest[i].Milliseconds()), v.name+"-ms")
				if i > 0 {
					b.ReportMetric(float64(fastest[i])/float64(fastest[0]), v.name+"/native")
				}
			}
		})
	}
}
