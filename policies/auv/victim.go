package auv

import "slices"

// The victim rules work on a candidate list of slot ids; aas and usage are indexed by
// slot. They return the victim's index in the list, or -1 for an empty list.

// lowerScore orders slots by AAS, the lower slot id first on ties.
func lowerScore(aas []float64, a, b int32) bool {
	if aas[a] != aas[b] {
		return aas[a] < aas[b]
	}
	return a < b
}

// GreedyVictim is V1's rule: the candidate with the lowest AAS.
func GreedyVictim(cands []int32, aas []float64) int {
	best := -1
	for i, s := range cands {
		if best < 0 || lowerScore(aas, s, cands[best]) {
			best = i
		}
	}
	return best
}

// NaiveVictim is V2's second chance rule (Fig. 3, naive version): it sorts the
// candidates by AAS ascending into order (scratch, at least len(cands) long, holding
// indices into cands) and traverses them in rounds; the first candidate found with a
// usage count of 0 is the victim, and every count passed on the way is decremented in
// place.
func NaiveVictim(cands []int32, aas, usage []float64, order []int32) int {
	if len(cands) == 0 {
		return -1
	}
	order = order[:len(cands)]
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if lowerScore(aas, cands[a], cands[b]) {
			return -1
		}
		return 1
	})
	for {
		for _, i := range order {
			s := cands[i]
			if !(usage[s] > 0) { // a count of 0 (or below, or NaN) ends the search
				return int(i)
			}
			usage[s]--
		}
	}
}

// OptimizedVictim is V3's rule (Fig. 3, optimized version): one pass finds the lowest
// usage count, a second the lowest AAS among the candidates that have it. It is the
// naive rule's victim without the rounds; the counts are left as they are.
func OptimizedVictim(cands []int32, aas, usage []float64) int {
	if len(cands) == 0 {
		return -1
	}
	least := usage[cands[0]]
	for _, s := range cands {
		least = min(least, usage[s])
	}
	best := -1
	for i, s := range cands {
		if usage[s] == least && (best < 0 || lowerScore(aas, s, cands[best])) {
			best = i
		}
	}
	return best
}

// Composite writes Eq. 5's composite vector usage·max(AAS) + AAS for the candidates
// into dst (dst[i] for cands[i]), the max taken over the candidates.
func Composite(dst []float64, cands []int32, aas, usage []float64) {
	top := 0.0
	for _, s := range cands {
		top = max(top, aas[s])
	}
	for i, s := range cands {
		dst[i] = usage[s]*top + aas[s]
	}
}

// DecayUsage applies Eq. 6 to the given slots: usage' = (usage − min(usage))·alpha,
// the min taken over those slots.
func DecayUsage(usage []float64, slots []int32, alpha float64) {
	if len(slots) == 0 {
		return
	}
	least := usage[slots[0]]
	for _, s := range slots {
		least = min(least, usage[s])
	}
	for _, s := range slots {
		usage[s] = (usage[s] - least) * alpha
	}
}

// lowerComposite orders candidates (indices into cands, composite values in comp) by
// composite value, then usage count, then slot id: a strict total order that equals
// (usage, AAS, slot) whenever the counts are integers.
func lowerComposite(comp []float64, cands []int32, usage []float64, a, b int32) bool {
	if comp[a] != comp[b] {
		return comp[a] < comp[b]
	}
	sa, sb := cands[a], cands[b]
	if usage[sa] != usage[sb] {
		return usage[sa] < usage[sb]
	}
	return sa < sb
}

// selectLowest reorders idx so that idx[:k] holds its k lowest entries under less (a
// strict total order), in no particular order. Quickselect with a median-of-three pivot:
// O(len(idx)) on average, where a sort would pay a log factor at every eviction.
func selectLowest(idx []int32, k int, less func(a, b int32) bool) {
	if k <= 0 || k >= len(idx) {
		return
	}
	target := k - 1 // idx[:k] is done once the rank-(k-1) entry is in place
	lo, hi := 0, len(idx)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if less(idx[mid], idx[lo]) {
			idx[mid], idx[lo] = idx[lo], idx[mid]
		}
		if less(idx[hi], idx[lo]) {
			idx[hi], idx[lo] = idx[lo], idx[hi]
		}
		if less(idx[hi], idx[mid]) {
			idx[hi], idx[mid] = idx[mid], idx[hi]
		}
		idx[mid], idx[hi] = idx[hi], idx[mid] // the median is the pivot, at hi
		pivot, store := idx[hi], lo
		for i := lo; i < hi; i++ {
			if less(idx[i], pivot) {
				idx[i], idx[store] = idx[store], idx[i]
				store++
			}
		}
		idx[store], idx[hi] = idx[hi], idx[store]
		switch {
		case store == target:
			return
		case store > target:
			hi = store - 1
		default:
			lo = store + 1
		}
	}
}
