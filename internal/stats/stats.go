// Package stats holds the interval estimates kvsim reports beside its means: Student-t
// intervals of a mean and of paired differences over samples, and a seeded percentile
// bootstrap for statistics without a closed form (Kendall τ).
package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
)

// Level is the coverage of every interval kvsim reports.
const Level = 0.95

// Interval is a mean with its two-sided 95% interval. Lo and Hi are NaN when the
// interval is undefined (fewer than two values).
type Interval struct {
	Mean float64 `json:"mean"`
	Lo   float64 `json:"lo"`
	Hi   float64 `json:"hi"`
	N    int     `json:"n"`
}

// HalfWidth is (Hi − Lo) / 2, NaN when undefined.
func (iv Interval) HalfWidth() float64 { return (iv.Hi - iv.Lo) / 2 }

// ExcludesZero reports whether the interval lies wholly above or below zero.
func (iv Interval) ExcludesZero() bool { return iv.Lo > 0 || iv.Hi < 0 }

// MeanCI is the Student-t interval of the mean of xs: x̄ ± t(0.975, n−1)·s/√n, with s
// the sample standard deviation (n−1 in the denominator).
func MeanCI(xs []float64) Interval {
	n := len(xs)
	iv := Interval{N: n, Mean: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	if n == 0 {
		return iv
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	iv.Mean = sum / float64(n)
	if n < 2 {
		return iv
	}
	var ss float64
	for _, x := range xs {
		ss += (x - iv.Mean) * (x - iv.Mean)
	}
	half := TQuantile(0.5+Level/2, n-1) * math.Sqrt(ss/float64(n-1)/float64(n))
	iv.Lo, iv.Hi = iv.Mean-half, iv.Mean+half
	return iv
}

// PairedCI is the Student-t interval of the mean of a[i] − b[i]: the paired t-test's
// interval. a and b must have the same length.
func PairedCI(a, b []float64) Interval {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return MeanCI(d)
}

// TQuantile is the p-quantile of Student's t distribution with df degrees of freedom
// (p in (0, 1), df ≥ 1), found by bisection on the distribution function.
func TQuantile(p float64, df int) float64 {
	if p == 0.5 {
		return 0
	}
	if p < 0.5 {
		return -TQuantile(1-p, df)
	}
	lo, hi := 0.0, 1.0
	for tCDF(hi, float64(df)) < p {
		hi *= 2
	}
	for i := 0; i < 200 && hi-lo > 1e-12*hi; i++ {
		mid := (lo + hi) / 2
		if tCDF(mid, float64(df)) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// tCDF is P(T ≤ t) for t ≥ 0: 1 − I_x(ν/2, 1/2)/2 with x = ν/(ν+t²).
func tCDF(t, nu float64) float64 {
	return 1 - incompleteBeta(nu/(nu+t*t), nu/2, 0.5)/2
}

// incompleteBeta is the regularized incomplete beta function I_x(a, b), by its
// continued fraction (modified Lentz), using the symmetry I_x(a,b) = 1 − I_{1−x}(b,a)
// where the fraction converges slowly.
func incompleteBeta(x, a, b float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	front := math.Exp(lab - la - lb + a*math.Log(x) + b*math.Log(1-x))
	if x > (a+1)/(a+b+2) {
		return 1 - front*betaFraction(1-x, b, a)/b
	}
	return front * betaFraction(x, a, b) / a
}

func betaFraction(x, a, b float64) float64 {
	const tiny = 1e-300
	c, d := 1.0, 1-(a+b)*x/(a+1)
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	f := d
	for m := 1; m <= 300; m++ {
		fm := float64(m)
		for _, num := range []float64{
			fm * (b - fm) * x / ((a + 2*fm - 1) * (a + 2*fm)),
			-(a + fm) * (a + b + fm) * x / ((a + 2*fm) * (a + 2*fm + 1)),
		} {
			d = 1 + num*d
			if math.Abs(d) < tiny {
				d = tiny
			}
			c = 1 + num/c
			if math.Abs(c) < tiny {
				c = tiny
			}
			d = 1 / d
			f *= c * d
		}
		if math.Abs(c*d-1) < 1e-15 {
			break
		}
	}
	return f
}

// Bootstrap is the percentile bootstrap interval of stat over n units: stat is
// computed on the full index set for Mean, then on reps resamples drawn with
// replacement from a PCG generator seeded with seed, and the 2.5% and 97.5%
// quantiles of the finite replicates bound the interval. stat may return NaN for a
// resample where it is undefined; such replicates are left out.
func Bootstrap(n, reps int, seed uint64, stat func(idx []int) float64) Interval {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	iv := Interval{N: n, Mean: stat(idx), Lo: math.NaN(), Hi: math.NaN()}
	if n < 2 {
		return iv
	}
	rng := rand.New(rand.NewPCG(seed, 0x6b7673696d))
	values := make([]float64, 0, reps)
	for r := 0; r < reps; r++ {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		if v := stat(idx); !math.IsNaN(v) {
			values = append(values, v)
		}
	}
	if len(values) == 0 {
		return iv
	}
	slices.Sort(values)
	iv.Lo, iv.Hi = quantile(values, (1-Level)/2), quantile(values, (1+Level)/2)
	return iv
}

// quantile is the linear-interpolation quantile (type 7) of sorted xs.
func quantile(xs []float64, p float64) float64 {
	h := p * float64(len(xs)-1)
	i := int(math.Floor(h))
	if i+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return xs[i] + (h-float64(i))*(xs[i+1]-xs[i])
}

// MarshalJSON writes an undefined bound as null (JSON has no NaN).
func (iv Interval) MarshalJSON() ([]byte, error) {
	f := func(x float64) string {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "null"
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return []byte(`{"mean":` + f(iv.Mean) + `,"lo":` + f(iv.Lo) + `,"hi":` + f(iv.Hi) + `,"n":` + strconv.Itoa(iv.N) + `}`), nil
}

// UnmarshalJSON reads null bounds back as NaN.
func (iv *Interval) UnmarshalJSON(data []byte) error {
	var v struct {
		Mean, Lo, Hi *float64
		N            int
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	get := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*iv = Interval{Mean: get(v.Mean), Lo: get(v.Lo), Hi: get(v.Hi), N: v.N}
	return nil
}
