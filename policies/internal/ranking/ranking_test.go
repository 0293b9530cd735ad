package ranking

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSmallestMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := rng.IntN(40)
		// Few distinct scores so that ties are common; ties go to the lower id.
		score := make([]int, n)
		for i := range score {
			score[i] = rng.IntN(5)
		}
		less := func(a, b int32) bool {
			if score[a] != score[b] {
				return score[a] < score[b]
			}
			return a < b
		}
		ids := make([]int32, n)
		for i := range ids {
			ids[i] = int32(i)
		}
		rng.Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		k := rng.IntN(n + 2)

		want := slices.Clone(ids)
		slices.SortFunc(want, func(a, b int32) int {
			if less(a, b) {
				return -1
			}
			return 1
		})
		Smallest(ids, k, less)

		kk := min(k, n)
		got := slices.Clone(ids[:kk])
		slices.Sort(got)
		ref := slices.Clone(want[:kk])
		slices.Sort(ref)
		if !slices.Equal(got, ref) {
			t.Fatalf("trial %d (n=%d k=%d): smallest %v, want %v", trial, n, k, got, ref)
		}
		all := slices.Clone(ids)
		slices.Sort(all)
		for i, id := range all {
			if id != int32(i) {
				t.Fatalf("trial %d: ids are no longer a permutation: %v", trial, ids)
			}
		}
	}
}

func TestSmallestHandExample(t *testing.T) {
	score := []float64{0.4, 0.1, 0.1, 0.9, 0.0}
	less := func(a, b int32) bool {
		if score[a] != score[b] {
			return score[a] < score[b]
		}
		return a < b
	}
	ids := []int32{3, 2, 4, 0, 1}
	Smallest(ids, 2, less)
	got := slices.Clone(ids[:2])
	slices.Sort(got)
	// 4 (0.0), then the tie at 0.1 goes to the lower id, 1.
	if !slices.Equal(got, []int32{1, 4}) {
		t.Fatalf("got %v, want [1 4]", got)
	}
}

func TestSmallestDoesNotAllocate(t *testing.T) {
	score := make([]float64, 256)
	for i := range score {
		score[i] = float64((i * 37) % 101)
	}
	ids := make([]int32, len(score))
	allocs := testing.AllocsPerRun(10, func() {
		for i := range ids {
			ids[i] = int32(i)
		}
		Smallest(ids, 50, func(a, b int32) bool {
			if score[a] != score[b] {
				return score[a] < score[b]
			}
			return a < b
		})
	})
	if allocs != 0 {
		t.Fatalf("Smallest allocated %v times per call", allocs)
	}
}
