package auv

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kvsim/kvsim/policies"
)

// fig2 is the paper's Fig. 2: four tokens whose pairwise q·k are all equal, so row i
// spreads 1 evenly over keys 0..i.
func fig2() [][]float64 {
	rows := make([][]float64, 4)
	for i := range rows {
		rows[i] = make([]float64, i+1)
		for j := range rows[i] {
			rows[i][j] = 1 / float64(i+1)
		}
	}
	return rows
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*max(1, math.Abs(b)) }

func TestAggregateFig2(t *testing.T) {
	for _, tc := range []struct {
		agg  Aggregation
		want []float64
	}{
		// H2O: column sums.
		{Sum, []float64{25.0 / 12, 13.0 / 12, 7.0 / 12, 3.0 / 12}},
		// Average: each column sum over the 4-j rows that see key j.
		{Mean, []float64{25.0 / 48, 13.0 / 36, 7.0 / 24, 3.0 / 12}},
		// AUV: row i scaled by (i+1)/4 is all 1/4, so every column averages to 1/4.
		{Scaled, []float64{0.25, 0.25, 0.25, 0.25}},
	} {
		got := Aggregate(tc.agg, fig2())
		for j := range tc.want {
			if !near(got[j], tc.want[j]) {
				t.Errorf("%s: key %d scored %g, want %g", tc.agg, j, got[j], tc.want[j])
			}
		}
	}
}

// The policy's streamed prefill must equal Aggregate over the same matrix: Fig. 2 and
// a random causal matrix, in blocks of uneven size.
func TestPrefillMatchesAggregate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 1))
	random := make([][]float64, 13)
	for i := range random {
		random[i] = make([]float64, i+1)
		sum := 0.0
		for j := range random[i] {
			random[i][j] = float64(float32(rng.ExpFloat64()))
			sum += random[i][j]
		}
		for j := range random[i] {
			random[i][j] = float64(float32(random[i][j] / sum))
		}
	}
	fig := fig2()
	for _, r := range fig { // the host hands over float32
		for j := range r {
			r[j] = float64(float32(r[j]))
		}
	}
	for _, rows := range [][][]float64{fig, random} {
		P := len(rows)
		for _, agg := range []Aggregation{Scaled, Sum, Mean} {
			p := &policy{set: Settings{Aggregation: agg, TopK: 1, Eviction: Greedy, LocalRatio: 0.5}}
			if _, err := p.Init(policies.Config{Heads: 1, PromptLen: P, MaxLen: P + 1, Budget: P}); err != nil {
				t.Fatal(err)
			}
			for r0 := 0; r0 < P; r0 += 5 {
				n := min(5, P-r0)
				a := &policies.Attention{Phase: policies.Prefill, Pos: r0, Rows: n, Heads: 1, Stride: P,
					Probs: make([]float32, n*P)}
				for r := 0; r < n; r++ {
					for j, x := range rows[r0+r] {
						a.Row(0, r)[j] = float32(x)
					}
				}
				if err := p.Observe(a); err != nil {
					t.Fatal(err)
				}
			}
			want := Aggregate(agg, rows)
			p.score(&p.heads[0])
			for j := range want {
				if got := p.heads[0].aas[j]; !near(got, want[j]) {
					t.Errorf("P=%d %s: key %d scored %g, want %g", P, agg, j, got, want[j])
				}
			}
		}
	}
}
