package sim

import (
	"testing"

	"github.com/kvsim/kvsim/sim/synth"
)

// BenchmarkKeyAccess is what serving keys costs a replay, per (head · token), on an
// OPT-13B-shaped layer (40 heads of 128): a decode step's keys (copied once per step
// for all the instances that ask), and a 64-row prefill block's. Policies that do not
// ask for keys pay neither.
func BenchmarkKeyAccess(b *testing.B) {
	tr, err := synth.New(synth.Options{Preset: "opt-13b", Layers: 1, PromptLen: 1024, GenLen: 64, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var l layerData
	if err := l.load(tr, 0, tr.Meta(), false); err != nil {
		b.Fatal(err)
	}
	l.wantK = true
	b.Run("decode", func(b *testing.B) {
		t := 0
		for b.Loop() {
			l.step = -1
			l.decodeVectors(l.prompt + t%l.gen)
			t++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*l.heads), "ns/(head·step)")
	})
	b.Run("prefill", func(b *testing.B) {
		const rows = 64
		a := l.prefillBlock(0, rows)
		r0 := 0
		for b.Loop() {
			a.Pos = r0
			l.blockVectors(a)
			r0 = (r0 + rows) % (l.prompt - rows)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*l.heads*rows), "ns/(head·row)")
	})
}
