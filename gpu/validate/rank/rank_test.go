package rank

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

const tol = 1e-12

func TestHandComputed(t *testing.T) {
	cases := []struct {
		name          string
		x, y          []float64
		tau, spearman float64
	}{
		{
			// y in x order: 3 1 2 5 4. Of the 10 pairs, (3,1) (3,2) (5,4) are
			// discordant, 7 concordant: τ = (7−3)/10 = 0.4.
			// Rank differences d = (−2, 1, 1, −1, 1), Σd² = 8:
			// ρ = 1 − 6·8/(5·24) = 0.6.
			"no ties", []float64{1, 2, 3, 4, 5}, []float64{3, 1, 2, 5, 4}, 0.4, 0.6,
		},
		{
			// Pairs (0,1) (0,2) (0,3) concordant; (1,3) discordant; (1,2) tied in x
			// only; (2,3) tied in y only. C=3, D=1, N=6, Tx=Ty=1:
			// τb = (3−1)/√(5·5) = 0.4.
			// Ranks x (1, 2.5, 2.5, 4), y (1, 4, 2.5, 2.5), both of mean 2.5:
			// deviations x (−1.5, 0, 0, 1.5), y (−1.5, 1.5, 0, 0);
			// ρ = 2.25/√(4.5·4.5) = 0.5.
			"ties", []float64{1, 2, 2, 3}, []float64{1, 3, 2, 2}, 0.4, 0.5,
		},
		{
			// (0,1) tied in both; (2,3) discordant; the other four concordant. C=4,
			// D=1, Tx=Ty=1 (each counting the joint tie): τb = 3/√(5·5) = 0.6.
			// Ranks x (1.5, 1.5, 3, 4), y (1.5, 1.5, 4, 3); deviations from 2.5:
			// x (−1, −1, .5, 1.5), y (−1, −1, 1.5, .5). Σdxdy = 1+1+.75+.75 = 3.5,
			// Σdx² = Σdy² = 4.5: ρ = 7/9.
			"joint ties", []float64{1, 1, 2, 3}, []float64{1, 1, 3, 2}, 0.6, 7. / 9,
		},
		{"agreement", []float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}, 1, 1},
		{"reversal", []float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, -1, -1},
		// C=5 and one pair tied in both: τb = (6−1−1+1)/√(5·5) = 1.
		{"agreement with ties", []float64{1, 2, 2, 3}, []float64{10, 20, 20, 30}, 1, 1},
		{"reversal with ties", []float64{1, 2, 2, 3}, []float64{30, 20, 20, 10}, -1, -1},
		{"monotone, not linear", []float64{1, 2, 3}, []float64{1, 10, 1000}, 1, 1},
		{"two points", []float64{0, 1}, []float64{5, 4}, -1, -1},
	}
	for _, c := range cases {
		if got := KendallTau(c.x, c.y); math.Abs(got-c.tau) > tol {
			t.Errorf("%s: KendallTau = %v, want %v", c.name, got, c.tau)
		}
		if got := Spearman(c.x, c.y); math.Abs(got-c.spearman) > tol {
			t.Errorf("%s: Spearman = %v, want %v", c.name, got, c.spearman)
		}
	}
}

func TestUndefinedIsNaN(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name string
		x, y []float64
	}{
		{"empty", nil, nil},
		{"one point", []float64{1}, []float64{2}},
		{"constant x", []float64{3, 3, 3}, []float64{1, 2, 3}},
		{"constant y", []float64{1, 2, 3}, []float64{7, 7, 7}},
		{"NaN in x", []float64{1, nan, 3}, []float64{1, 2, 3}},
		{"NaN in y", []float64{1, 2, 3}, []float64{1, 2, nan}},
	}
	for _, c := range cases {
		if got := KendallTau(c.x, c.y); !math.IsNaN(got) {
			t.Errorf("%s: KendallTau = %v, want NaN", c.name, got)
		}
		if got := Spearman(c.x, c.y); !math.IsNaN(got) {
			t.Errorf("%s: Spearman = %v, want NaN", c.name, got)
		}
	}
}

func TestLengthMismatchPanics(t *testing.T) {
	for name, f := range map[string]func([]float64, []float64) float64{"KendallTau": KendallTau, "Spearman": Spearman} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with lengths 2 and 3 did not panic", name)
				}
			}()
			f([]float64{1, 2}, []float64{1, 2, 3})
		}()
	}
}

func TestRanks(t *testing.T) {
	cases := []struct{ x, want []float64 }{
		{nil, []float64{}},
		{[]float64{10, 30, 20, 20}, []float64{1, 4, 2.5, 2.5}},
		{[]float64{3, 3, 3}, []float64{2, 2, 2}},
		{[]float64{-1, math.Inf(1), math.Inf(-1), 0, 0, 0}, []float64{2, 6, 1, 4, 4, 4}},
	}
	for _, c := range cases {
		if got := Ranks(c.x); !slices.Equal(got, c.want) {
			t.Errorf("Ranks(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	for _, r := range Ranks([]float64{1, math.NaN(), 2}) {
		if !math.IsNaN(r) {
			t.Errorf("Ranks with a NaN: got rank %v, want NaN", r)
		}
	}
}

// TestAgainstPairwiseReference compares with the definitions computed pair by pair,
// on random inputs drawn from few values so that ties, joint ties and constant inputs
// all occur.
func TestAgainstPairwiseReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 2000 {
		n := 2 + rng.IntN(40)
		levels := 1 + rng.IntN(8)
		x, y := make([]float64, n), make([]float64, n)
		for i := range x {
			x[i] = float64(rng.IntN(levels))
			y[i] = float64(rng.IntN(levels)) * 0.5
		}
		checkClose(t, trial, "KendallTau", KendallTau(x, y), pairwiseTauB(x, y))
		checkClose(t, trial, "Spearman", Spearman(x, y), pairwiseSpearman(x, y))
	}
}

func checkClose(t *testing.T, trial int, name string, got, want float64) {
	t.Helper()
	if math.IsNaN(want) != math.IsNaN(got) || math.Abs(got-want) > tol {
		t.Fatalf("trial %d: %s = %v, reference %v", trial, name, got, want)
	}
}

// pairwiseTauB classifies every pair as concordant, discordant or tied, and returns
// (C − D)/√((N − Tx)(N − Ty)).
func pairwiseTauB(x, y []float64) float64 {
	var c, d, tx, ty, total int
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			total++
			dx, dy := x[i]-x[j], y[i]-y[j]
			switch {
			case dx == 0 || dy == 0:
				if dx == 0 {
					tx++
				}
				if dy == 0 {
					ty++
				}
			case dx*dy > 0:
				c++
			default:
				d++
			}
		}
	}
	denominator := math.Sqrt(float64(total-tx) * float64(total-ty))
	if denominator == 0 {
		return math.NaN()
	}
	return float64(c-d) / denominator
}

// pairwiseSpearman ranks each value by counting: 1 + (values below) + (other equal
// values)/2, then takes the Pearson correlation of the ranks.
func pairwiseSpearman(x, y []float64) float64 {
	rank := func(v []float64) []float64 {
		r := make([]float64, len(v))
		for i := range v {
			below, equal := 0, 0
			for j := range v {
				if v[j] < v[i] {
					below++
				} else if v[j] == v[i] && j != i {
					equal++
				}
			}
			r[i] = 1 + float64(below) + float64(equal)/2
		}
		return r
	}
	rx, ry := rank(x), rank(y)
	n := float64(len(x))
	var sx, sy, sxx, syy, sxy float64
	for i := range rx {
		sx += rx[i]
		sy += ry[i]
		sxx += rx[i] * rx[i]
		syy += ry[i] * ry[i]
		sxy += rx[i] * ry[i]
	}
	vx, vy := sxx-sx*sx/n, syy-sy*sy/n
	// Non-constant ranks have vx ≥ 1/2; the threshold only absorbs rounding.
	if vx <= 1e-9 || vy <= 1e-9 {
		return math.NaN()
	}
	return (sxy - sx*sy/n) / math.Sqrt(vx*vy)
}

// BenchmarkKendallTau1000 ranks 1000 points with ties.
func BenchmarkKendallTau1000(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	x, y := make([]float64, 1000), make([]float64, 1000)
	for i := range x {
		x[i], y[i] = float64(rng.IntN(50)), float64(rng.IntN(50))
	}
	for b.Loop() {
		KendallTau(x, y)
	}
}
