package wasmhost

import (
	"context"
	"testing"

	"github.com/kvsim/kvsim/abi/gobuild"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

// BenchmarkBuiltinFuel replays each builtin, built to WASM, on an OPT-13B-shaped
// layer (40 heads, a 2032-token prompt and 16 generated tokens) at 2%, 10% and 50% of
// the prompt, and reports the most fuel one call used: the figure DefaultFuel is
// sized against. Fuel does not depend on the machine; only the time does.
func BenchmarkBuiltinFuel(b *testing.B) {
	tr, err := synth.New(synth.Options{Preset: "opt-13b", Layers: 1, PromptLen: 2032, GenLen: 16, Seed: 1, WithV: true})
	if err != nil {
		b.Fatal(err)
	}
	budgets := []host.Budget{{Fraction: 0.02}, {Fraction: 0.1}, {Fraction: 0.5}}
	for _, name := range builtin.Names() {
		b.Run(name, func(b *testing.B) {
			native, _ := builtin.Lookup(name)
			pkg, err := gobuild.PackageOf(native)
			if err != nil {
				b.Fatal(err)
			}
			m, err := Load(context.Background(), goModuleB(b, pkg), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			var most int64
			spec := sim.PolicySpec{Name: name, AllowClairvoyant: true, New: func() (policies.Policy, error) {
				p, err := m.New(policies.NewParams(nil))
				if err != nil {
					return nil, err
				}
				return recorder{p, func(error) { most = max(most, instanceOf(p).gauge.lastUsed) }}, nil
			}}
			for b.Loop() {
				res, err := sim.Replay(context.Background(), []sim.Source{tr}, []sim.PolicySpec{spec}, sim.Options{Budgets: budgets, Threads: 1, Seed: 1})
				if err != nil {
					b.Fatal(err)
				}
				for _, c := range res.Cells {
					if c.Failed != "" {
						b.Fatal(c.Failed)
					}
				}
			}
			b.ReportMetric(float64(most), "max-fuel/call")
		})
	}
}
