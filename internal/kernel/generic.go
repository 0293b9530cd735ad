package kernel

import "math"

// genericImpl is the portable Go kernel set: the only one off amd64 or with the
// purego build tag, and the reference the assembly is tested against.
var genericImpl = impl{
	name:      "generic",
	dot:       dotGeneric,
	axpy:      axpyGeneric,
	scale:     scaleGeneric,
	max:       maxGeneric,
	expShift:  expShiftGeneric,
	matMulNT:  matMulNTGeneric,
	axpyRows:  axpyRowsGeneric,
	gemvLanes: genericLanes,
	blend:     blendGeneric,
}

var negInf = math.Inf(-1)

func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	// Four partial sums shorten the dependency chain, as the vector code does.
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpyGeneric(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

// blendGeneric rounds each product explicitly, which keeps compilers that fuse a
// multiply and an add (arm64's) from doing so.
func blendGeneric(dst []float64, wd float64, x []float32, wx, total float64) {
	x = x[:len(dst)]
	for i, v := range x {
		dst[i] = (float64(dst[i]*wd) + float64(float64(v)*wx)) / total
	}
}

func scaleGeneric(alpha float32, x []float32) {
	for i := range x {
		x[i] *= alpha
	}
}

func maxGeneric(x []float32) float32 {
	m := x[0]
	for _, v := range x {
		if v != v {
			return v
		}
		m = max(m, v)
	}
	return m
}

func expShiftGeneric(x []float32, shift float32) float32 {
	var sum float32
	for i, v := range x {
		e := exp32(v - shift)
		x[i] = e
		sum += e
	}
	return sum
}

func matMulNTGeneric(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	for i := range m {
		row := a[i*lda : i*lda+k]
		out := c[i*ldc : i*ldc+n]
		for j := range out {
			out[j] = dotGeneric(row, b[j*ldb:j*ldb+k])
		}
	}
}

// Constants of the exp approximation shared by every implementation.
//
// exp(x) = 2ⁿ·exp(r) with n = round(x/ln2) and r = x - n·ln2, |r| ≤ ln2/2. ln2 is
// split Cody–Waite style so that n·expLn2Hi is exact. exp(r) is its degree-7 Taylor
// polynomial: the truncation error (ln2/2)⁸/8! ≈ 5e-9 is far below float32's ulp.
// 2ⁿ is applied by adding n to the exponent bits, which is exact whenever the result
// is normal; expMin and expMax bound the inputs for which it is.
const (
	expLog2E = 1.442695040888963
	expLn2Hi = 0.693359375 // ln2 rounded to 9 significant bits
	expLn2Lo = -2.121944400546905827679e-4
	// expMin is -126·ln2 rounded up to float32: the smallest input with a normal
	// exponential. Smaller inputs give 0.
	expMin = -87.33654022216796875
	// expMax is 128·ln2 rounded down to float32: the largest input with a finite
	// exponential. Larger inputs give +Inf.
	expMax = 88.72283172607421875
)

// expPoly holds the Taylor coefficients 1/7!, 1/6!, ..., 1/1!, 1/0! in Horner order.
var expPoly = [8]float32{1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 1.0 / 2, 1, 1}

// exp32 is the scalar form of the vector exp in the assembly.
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < expMin:
		return 0
	case x > expMax:
		return float32(math.Inf(1))
	}
	n := float32(math.RoundToEven(float64(x * expLog2E)))
	r := x - n*expLn2Hi
	r -= n * expLn2Lo
	p := expPoly[0]
	for _, c := range expPoly[1:] {
		p = p*r + c
	}
	return math.Float32frombits(math.Float32bits(p) + uint32(int32(n))<<23)
}
