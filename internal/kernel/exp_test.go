package kernel

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ulps is the distance between two finite float32 values of the same sign, in units
// in the last place.
func ulps(a, b float32) int64 {
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	if d < 0 {
		return -d
	}
	return d
}

// expInputs sweeps [-100, 90] densely and adds the boundaries and special values.
func expInputs() []float32 {
	var x []float32
	for v := -100.0; v <= 90; v += 1.0 / 1024 {
		x = append(x, float32(v))
	}
	inf := float32(math.Inf(1))
	for _, v := range []float32{expMin, expMax} {
		x = append(x, v, math.Nextafter32(v, inf), math.Nextafter32(v, -inf))
	}
	return append(x, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 0.34657359, -0.34657359,
		inf, -inf, float32(math.NaN()), math.MaxFloat32, -math.MaxFloat32)
}

const expMaxULPs = 1

func TestExp(t *testing.T) {
	in := expInputs()
	for _, im := range implementations {
		x := append([]float32(nil), in...)
		sum := im.expShift(x, 0)
		var wantSum float64
		worst := int64(0)
		for i, v := range in {
			got := x[i]
			switch {
			case v != v:
				if got == got {
					t.Errorf("%s: exp(NaN) = %g", im.name, got)
				}
				continue
			case v < expMin:
				if got != 0 {
					t.Errorf("%s: exp(%g) = %g, want 0 below expMin", im.name, v, got)
				}
				continue
			case v > expMax:
				if !math.IsInf(float64(got), 1) {
					t.Errorf("%s: exp(%g) = %g, want +Inf above expMax", im.name, v, got)
				}
				continue
			}
			want := float32(math.Exp(float64(v)))
			wantSum += float64(want)
			if d := ulps(got, want); d > worst {
				worst = d
				if d > expMaxULPs {
					t.Errorf("%s: exp(%g) = %g, want %g (%d ulps)", im.name, v, got, want, d)
				}
			}
		}
		// The inputs include NaN, so the sum must be NaN too.
		if sum == sum {
			t.Errorf("%s: sum of exps = %g, want NaN", im.name, sum)
		}
		t.Logf("%s: worst error %d ulps", im.name, worst)
	}
}

func TestExpShiftSum(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 7, 8, 15, 16, 17, 33, 100, 1000} {
		in := randomSlice(r, n)
		const shift = 1.5
		var want float64
		for _, v := range in {
			want += math.Exp(float64(v) - shift)
		}
		for _, im := range implementations {
			x := append([]float32(nil), in...)
			got := im.expShift(x, shift)
			if math.Abs(float64(got)-want) > 1e-6*want {
				t.Errorf("%s: n=%d: sum = %g, want %g", im.name, n, got, want)
			}
			for i, v := range in {
				if w := float32(math.Exp(float64(v - shift))); ulps(x[i], w) > expMaxULPs {
					t.Errorf("%s: n=%d: exp(%g-%g) = %g, want %g", im.name, n, v, shift, x[i], w)
				}
			}
		}
	}
}

func TestExpLongSlice(t *testing.T) {
	// Longer than one expChunk, so the exported loop runs several calls.
	x := make([]float32, 3*expChunk+5)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	Exp(x)
	for i, got := range x {
		if want := float32(math.Exp(float64(i%7 - 3))); ulps(got, want) > expMaxULPs {
			t.Fatalf("x[%d] = %g, want %g", i, got, want)
		}
	}
}

func TestSoftmax(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	negInf32 := float32(math.Inf(-1))
	for _, n := range []int{1, 2, 5, 8, 16, 17, 100, 1000} {
		x := randomSlice(r, n)
		for i := range x {
			x[i] *= 8
		}
		x[n/2] = negInf32
		if n == 1 {
			x[0] = 42
		}
		mx := negInf32
		for _, v := range x {
			mx = max(mx, v)
		}
		// x-max is rounded to float32 as Softmax does; that rounding alone can
		// change a small result by 2e-6 relative.
		want := make([]float64, n)
		var sum float64
		for i, v := range x {
			want[i] = math.Exp(float64(v - mx))
			sum += want[i]
		}
		for _, im := range implementations {
			got := append([]float32(nil), x...)
			withImpl(im, func() { Softmax(got) })
			for i := range got {
				w := want[i] / sum
				if math.Abs(float64(got[i])-w) > 1e-6*w {
					t.Errorf("%s: n=%d: softmax[%d] = %g, want %g", im.name, n, i, got[i], w)
				}
			}
		}
	}

	Softmax(nil)
	allMasked := []float32{negInf32, negInf32}
	Softmax(allMasked)
	if allMasked[0] == allMasked[0] {
		t.Errorf("softmax of all -Inf = %v, want NaN", allMasked)
	}
}

// withImpl runs f with im as the active kernel set.
func withImpl(im *impl, f func()) {
	saved := active
	active = im
	defer func() { active = saved }()
	f()
}
