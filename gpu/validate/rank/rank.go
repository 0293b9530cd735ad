// Package rank measures how well two orderings agree, with Kendall's τ-b and
// Spearman's ρ. kvsim validate uses them to ask whether the simulator's ranking of
// policies (by hit rate) predicts their ranking by real output quality.
//
// Both match SciPy: KendallTau is scipy.stats.kendalltau (variant "b"), Spearman is
// scipy.stats.spearmanr. Both return NaN when there are fewer than two points, when
// either input is constant (the coefficient is undefined), or when any value is NaN.
// Inputs of different lengths are a programming error and panic.
package rank

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Ranks returns the 1-based rank of each value of x, tied values sharing the mean of
// the ranks they span (scipy.stats.rankdata's "average"): Ranks([10 30 20 20]) is
// [1 4 2.5 2.5]. If any value is NaN, every rank is NaN.
func Ranks(x []float64) []float64 {
	ranks := make([]float64, len(x))
	if slices.ContainsFunc(x, math.IsNaN) {
		for i := range ranks {
			ranks[i] = math.NaN()
		}
		return ranks
	}
	order := sortedIndex(len(x), func(a, b int) int { return cmp.Compare(x[a], x[b]) })
	for start := 0; start < len(order); {
		end := start + 1
		for end < len(order) && x[order[end]] == x[order[start]] {
			end++
		}
		// Positions start..end-1 hold ranks start+1..end; their mean:
		mean := float64(start+1+end) / 2
		for _, i := range order[start:end] {
			ranks[i] = mean
		}
		start = end
	}
	return ranks
}

// Spearman returns Spearman's rank correlation ρ of x and y: the Pearson correlation
// of their average ranks.
func Spearman(x, y []float64) float64 {
	checkLengths(x, y)
	if len(x) < 2 {
		return math.NaN()
	}
	return pearson(Ranks(x), Ranks(y))
}

// pearson is the Pearson correlation, NaN when either side has no variance (or holds
// a NaN), clamped to [-1, 1] against rounding.
func pearson(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if !(sxx > 0 && syy > 0) {
		return math.NaN()
	}
	return max(-1, min(1, sxy/math.Sqrt(sxx*syy)))
}

// KendallTau returns Kendall's τ-b of x and y, which corrects for ties:
//
//	τ_b = (C − D) / √((N − Tx)(N − Ty))
//
// where of the N = n(n−1)/2 pairs, C are concordant, D discordant, Tx tied in x and
// Ty tied in y (pairs tied in both count in each). It runs in O(n log n) (Knight's
// algorithm: sort by x, then count the discordant pairs as the inversions of y).
func KendallTau(x, y []float64) float64 {
	checkLengths(x, y)
	n := len(x)
	if n < 2 || slices.ContainsFunc(x, math.IsNaN) || slices.ContainsFunc(y, math.IsNaN) {
		return math.NaN()
	}
	// Order by x, breaking ties by y, so that no pair tied in x is an inversion of y.
	order := sortedIndex(n, func(a, b int) int {
		return cmp.Or(cmp.Compare(x[a], x[b]), cmp.Compare(y[a], y[b]))
	})
	tiedX := tiedPairs(order, func(a, b int) bool { return x[a] == x[b] })
	tiedXY := tiedPairs(order, func(a, b int) bool { return x[a] == x[b] && y[a] == y[b] })

	ys := make([]float64, n)
	for i, j := range order {
		ys[i] = y[j]
	}
	discordant := countInversions(ys, make([]float64, n))
	// Merge sort has left ys ascending, so ties in y are now adjacent.
	tiedY := 0
	for start := 0; start < n; {
		end := start + 1
		for end < n && ys[end] == ys[start] {
			end++
		}
		tiedY += pairs(end - start)
		start = end
	}

	total := pairs(n)
	if tiedX == total || tiedY == total {
		return math.NaN() // a constant input
	}
	// Every pair is concordant, discordant, or tied in x or y; pairs tied in both
	// are in Tx and in Ty, so they are added back once.
	concordantMinusDiscordant := total - tiedX - tiedY + tiedXY - 2*discordant
	// Two square roots, as SciPy takes them, so the results agree to the last bit.
	tau := float64(concordantMinusDiscordant) / math.Sqrt(float64(total-tiedX)) / math.Sqrt(float64(total-tiedY))
	return max(-1, min(1, tau))
}

// tiedPairs counts the pairs within each run of consecutive elements of order that
// are equal under same.
func tiedPairs(order []int, same func(a, b int) bool) int {
	ties := 0
	for start := 0; start < len(order); {
		end := start + 1
		for end < len(order) && same(order[start], order[end]) {
			end++
		}
		ties += pairs(end - start)
		start = end
	}
	return ties
}

func pairs(n int) int { return n * (n - 1) / 2 }

// countInversions sorts s ascending (a stable merge sort, using buf as scratch of the
// same length) and returns the number of pairs i < j with s[i] > s[j]. Equal values
// are not inversions.
func countInversions(s, buf []float64) int {
	if len(s) < 2 {
		return 0
	}
	mid := len(s) / 2
	inv := countInversions(s[:mid], buf[:mid]) + countInversions(s[mid:], buf[mid:])
	left, right := s[:mid], s[mid:]
	merged := buf[:0]
	i, j := 0, 0
	for i < len(left) && j < len(right) {
		if right[j] < left[i] {
			// right[j] jumps ahead of every element still in left.
			inv += len(left) - i
			merged = append(merged, right[j])
			j++
		} else {
			merged = append(merged, left[i])
			i++
		}
	}
	merged = append(merged, left[i:]...)
	merged = append(merged, right[j:]...)
	copy(s, merged)
	return inv
}

// sortedIndex returns 0..n-1 sorted by compare.
func sortedIndex(n int, compare func(a, b int) int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, compare)
	return order
}

func checkLengths(x, y []float64) {
	if len(x) != len(y) {
		panic(fmt.Sprintf("rank: inputs of different lengths %d and %d", len(x), len(y)))
	}
}
