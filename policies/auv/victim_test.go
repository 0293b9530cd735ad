package auv

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func iota32(n int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i)
	}
	return ids
}

// A Fig. 3-like state: every count is above 1, so the naive traversal needs three full
// rounds to bring the lowest count (3) to 0 and evicts in the fourth.
func TestSecondChanceFig3(t *testing.T) {
	aas := []float64{0.3, 0.1, 0.5, 0.2, 0.4}
	usage := []float64{4, 5, 3, 3, 6}
	// AAS order: key 1 (5), key 3 (3), key 0 (4), key 4 (6), key 2 (3). In round four
	// key 1 is at 2, is decremented again and key 3, now at 0, is evicted.
	cands := iota32(5)
	if got := OptimizedVictim(cands, aas, usage); got != 3 {
		t.Errorf("optimized: victim %d, want 3", got)
	}
	if !slices.Equal(usage, []float64{4, 5, 3, 3, 6}) {
		t.Errorf("optimized changed the counts to %v", usage)
	}
	if got := NaiveVictim(cands, aas, usage, make([]int32, 5)); got != 3 {
		t.Errorf("naive: victim %d, want 3", got)
	}
	if want := []float64{1, 1, 0, 0, 3}; !slices.Equal(usage, want) {
		t.Errorf("naive left counts %v, want %v", usage, want)
	}
	if got := GreedyVictim(cands, aas); got != 1 {
		t.Errorf("greedy: victim %d, want 1", got)
	}
}

// On random states, with ties in both AAS and counts, the naive and optimized rules
// agree, and the naive rule leaves every count at usage − min, one lower for the keys
// ahead of the victim in AAS order (the last round passed them).
func TestSecondChanceProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + rng.IntN(12)
		aas := make([]float64, n+3)
		usage := make([]float64, n+3)
		for s := range aas {
			aas[s] = float64(rng.IntN(5)) / 4
			usage[s] = float64(rng.IntN(6))
		}
		// Candidates are a shuffled subset of the slots.
		cands := iota32(n + 3)
		rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		cands = cands[:n]

		want := OptimizedVictim(cands, aas, usage)
		before := slices.Clone(usage)
		got := NaiveVictim(cands, aas, usage, make([]int32, n))
		if got != want {
			t.Fatalf("trial %d: naive evicts index %d, optimized %d (aas %v usage %v cands %v)",
				trial, got, want, aas, before, cands)
		}
		least := before[cands[0]]
		for _, s := range cands {
			least = min(least, before[s])
		}
		v := cands[got]
		for s := range usage {
			expect := before[s]
			if slices.Contains(cands, int32(s)) {
				expect -= least
				if aas[s] < aas[v] || (aas[s] == aas[v] && int32(s) < v) {
					expect--
				}
			}
			if usage[s] != expect {
				t.Fatalf("trial %d: slot %d count %g after naive, want %g (victim %d, before %v)",
					trial, s, usage[s], expect, v, before)
			}
		}
	}
}

// With integer counts and 0 ≤ AAS ≤ max(AAS), ordering by the composite vector (ties
// broken by count, then slot) is ordering by (count, AAS, slot).
func TestCompositeOrderProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 500; trial++ {
		n := 2 + rng.IntN(10)
		aas := make([]float64, n)
		usage := make([]float64, n)
		for s := range aas {
			aas[s] = float64(rng.IntN(9)) / 8 // dyadic, so u·max+AAS is exact
			usage[s] = float64(rng.IntN(4))
		}
		cands := iota32(n)
		comp := make([]float64, n)
		Composite(comp, cands, aas, usage)
		for a := range cands {
			for b := range cands {
				byComposite := lowerComposite(comp, cands, usage, int32(a), int32(b))
				lex := usage[a] < usage[b] || (usage[a] == usage[b] && lowerScore(aas, int32(a), int32(b)))
				if byComposite != lex {
					t.Fatalf("trial %d: %d<%d is %v by composite, %v by (usage, AAS); usage %v aas %v",
						trial, a, b, byComposite, lex, usage, aas)
				}
			}
		}
	}
}

// The composite vector ties exactly when the lower-count token holds max(AAS) and the
// other, one count higher, has AAS 0; the count breaks the tie.
func TestCompositeTie(t *testing.T) {
	aas := []float64{0.5, 0, 0.25}
	usage := []float64{1, 2, 0}
	comp := make([]float64, 3)
	Composite(comp, iota32(3), aas, usage)
	if want := []float64{1, 1, 0.25}; !slices.Equal(comp, want) {
		t.Fatalf("composite %v, want %v", comp, want)
	}
	if !lowerComposite(comp, iota32(3), usage, 0, 1) || lowerComposite(comp, iota32(3), usage, 1, 0) {
		t.Error("the tie between counts 1 and 2 must go to count 1")
	}
}

func TestDecayUsage(t *testing.T) {
	usage := []float64{3, 5, 4, 9}
	DecayUsage(usage, []int32{0, 1, 2}, 0.5) // slot 3 is not resident
	if want := []float64{0, 1, 0.5, 9}; !slices.Equal(usage, want) {
		t.Errorf("Eq. 6 gave %v, want %v", usage, want)
	}
	DecayUsage(usage, []int32{1, 3}, 1)
	if want := []float64{0, 0, 0.5, 8}; !slices.Equal(usage, want) {
		t.Errorf("Eq. 6 with alpha 1 gave %v, want %v", usage, want)
	}
}

func TestSelectLowestMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for trial := 0; trial < 500; trial++ {
		n := rng.IntN(60)
		score := make([]int, n)
		for i := range score {
			score[i] = rng.IntN(6) // many ties, broken by id
		}
		less := func(a, b int32) bool { return score[a] < score[b] || (score[a] == score[b] && a < b) }
		ids := iota32(n)
		rng.Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := rng.IntN(n + 2)
		selectLowest(ids, k, less)
		got := slices.Clone(ids[:min(k, n)])
		slices.Sort(got)
		want := iota32(n)
		slices.SortFunc(want, func(a, b int32) int {
			if less(a, b) {
				return -1
			}
			return 1
		})
		want = want[:min(k, n)]
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: k=%d selected %v, want %v (scores %v)", trial, k, got, want, score)
		}
	}
}

func TestScatter(t *testing.T) {
	for _, tc := range []struct{ cand, fill, want []int32 }{
		{[]int32{5, -1, 7, -1}, []int32{9, 8}, []int32{5, 9, 7, 8}}, // into the victims' entries
		{[]int32{5, -1, 7, -1}, []int32{9}, []int32{5, 9, 7}},
		{[]int32{5, -1, 7, -1}, []int32{9, 8, 6}, []int32{5, 9, 7, 8, 6}},
		{[]int32{-1, -1}, nil, []int32{}},
	} {
		cand := make([]int32, len(tc.cand), 8)
		copy(cand, tc.cand)
		if got := scatter(cand, tc.fill); !slices.Equal(got, tc.want) {
			t.Errorf("scatter(%v, %v) = %v, want %v", tc.cand, tc.fill, got, tc.want)
		}
	}
}
