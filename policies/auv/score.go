package auv

// RowWeight is the factor a row with n valid entries is scaled by before it is
// averaged in: N_i/N_max (Eq. 2) for Scaled, 1 otherwise.
func RowWeight(agg Aggregation, n, nmax int) float64 {
	if agg == Scaled {
		return float64(n) / float64(nmax)
	}
	return 1
}

// Aggregate scores the keys of an attention matrix the way the prefill stage does, from
// scratch: rows[i] holds query i's scores on keys 0..len(rows[i])-1 (a causal matrix
// has len(rows[i]) = i+1). Key j is scored over the rows long enough to reach it:
// Scaled scales each row by N_i/N_max, N_i its length and N_max the longest row, and
// averages (Eq. 2); Sum adds (H2O); Mean averages unscaled.
func Aggregate(agg Aggregation, rows [][]float64) []float64 {
	nmax := 0
	for _, r := range rows {
		nmax = max(nmax, len(r))
	}
	sum := make([]float64, nmax)
	count := make([]int, nmax)
	for _, r := range rows {
		w := RowWeight(agg, len(r), nmax)
		for j, x := range r {
			sum[j] += x * w
			count[j]++
		}
	}
	if agg != Sum {
		for j := range sum {
			sum[j] /= float64(count[j])
		}
	}
	return sum
}
