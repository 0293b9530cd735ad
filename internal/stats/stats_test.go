package stats

import (
	"math"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.8g, want %.8g (±%g)", what, got, want, tol)
	}
}

// The quantiles are the published two-sided 95% critical values of Student's t.
func TestTQuantile(t *testing.T) {
	for _, c := range []struct {
		df   int
		want float64
	}{{1, 12.7062047}, {2, 4.30265273}, {3, 3.18244631}, {4, 2.77644511}, {10, 2.22813885}, {30, 2.04227246}, {100, 1.98397152}} {
		near(t, "t(0.975)", TQuantile(0.975, c.df), c.want, 1e-6)
	}
	near(t, "t(0.025, 4)", TQuantile(0.025, 4), -2.77644511, 1e-6)
}

// By hand: mean 3, s² = 10/4 = 2.5, s/√n = √0.5 = 0.70711, t(0.975, 4) = 2.776445:
// half-width 1.963243.
func TestMeanCIByHand(t *testing.T) {
	iv := MeanCI([]float64{1, 2, 3, 4, 5})
	near(t, "mean", iv.Mean, 3, 1e-12)
	near(t, "lo", iv.Lo, 3-1.963243, 1e-6)
	near(t, "hi", iv.Hi, 3+1.963243, 1e-6)
	if iv.N != 5 || !iv.ExcludesZero() {
		t.Errorf("n %d, excludes zero %v", iv.N, iv.ExcludesZero())
	}
	one := MeanCI([]float64{0.4})
	if one.Mean != 0.4 || !math.IsNaN(one.Lo) || !math.IsNaN(one.HalfWidth()) || one.ExcludesZero() {
		t.Errorf("one value: %+v, want mean 0.4 and no interval", one)
	}
}

// By hand: d = (1, 2, 0, 2), mean 1.25, Σ(d−d̄)² = 2.75, s/√n = √(2.75/3/4) = 0.478714,
// t(0.975, 3) = 3.182446: half-width 1.523480, so the interval holds zero.
func TestPairedCIByHand(t *testing.T) {
	iv := PairedCI([]float64{3, 5, 4, 6}, []float64{2, 3, 4, 4})
	near(t, "mean", iv.Mean, 1.25, 1e-12)
	near(t, "half-width", iv.HalfWidth(), 1.523480, 1e-6)
	if iv.ExcludesZero() {
		t.Errorf("%+v excludes zero", iv)
	}
	shifted := PairedCI([]float64{13, 15, 14, 16}, []float64{2, 3, 4, 4})
	if !shifted.ExcludesZero() {
		t.Errorf("%+v holds zero", shifted)
	}
}

// On many values the bootstrap interval of a mean approaches the t-interval, and a
// seed replays the same interval.
func TestBootstrapMean(t *testing.T) {
	xs := make([]float64, 400)
	for i := range xs {
		xs[i] = math.Sin(float64(i)*1.7) + float64(i%7)/7
	}
	mean := func(idx []int) float64 {
		s := 0.0
		for _, i := range idx {
			s += xs[i]
		}
		return s / float64(len(idx))
	}
	b := Bootstrap(len(xs), 2000, 1, mean)
	tv := MeanCI(xs)
	near(t, "bootstrap mean", b.Mean, tv.Mean, 1e-12)
	if r := b.HalfWidth() / tv.HalfWidth(); r < 0.9 || r > 1.1 {
		t.Errorf("bootstrap half-width %g, t-interval %g", b.HalfWidth(), tv.HalfWidth())
	}
	again := Bootstrap(len(xs), 2000, 1, mean)
	if again != b {
		t.Errorf("same seed: %+v then %+v", b, again)
	}
	if other := Bootstrap(len(xs), 2000, 2, mean); other == b {
		t.Errorf("seeds 1 and 2 gave the same interval %+v", b)
	}
	undefined := Bootstrap(3, 100, 1, func([]int) float64 { return math.NaN() })
	if !math.IsNaN(undefined.Lo) {
		t.Errorf("all replicates undefined: %+v", undefined)
	}
}
