package tova

import (
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/attnref"
	"github.com/kvsim/kvsim/policies/policytest"
)

// TestAgainstReferenceHost runs the policytest host and replays the log with a plain
// reference: each victim must be the resident position of lowest attention from the
// newest query (averaged over heads when layer-wise), recomputed from the logits.
func TestAgainstReferenceHost(t *testing.T) {
	const heads, prompt, maxLen, budget = 3, 14, 30, 6
	seq := policytest.RandomSequence(heads, prompt, maxLen, 7)
	for _, layerwise := range []bool{false, true} {
		p := newPolicy(t, map[string]any{"layerwise": layerwise})
		log, err := policytest.Run(p, policies.Config{Budget: budget}, seq)
		if err != nil {
			t.Fatalf("layerwise=%v: %v", layerwise, err)
		}
		if log.PeakResident != budget+1 {
			t.Errorf("layerwise=%v: peak resident in decode %d, want budget+1 = %d", layerwise, log.PeakResident, budget+1)
		}
		if len(log.Events) != 1+maxLen-prompt {
			t.Fatalf("layerwise=%v: %d evictions, want one compression and one per decode step", layerwise, len(log.Events))
		}

		resident := make([][]int, heads)
		for h := range resident {
			for i := range prompt {
				resident[h] = append(resident[h], i)
			}
		}
		for _, ev := range log.Events {
			if ev.Phase == policies.Decode {
				for h := range resident {
					resident[h] = append(resident[h], ev.Pos)
				}
			}
			score := make([][]float64, heads)
			for h := range heads {
				score[h] = attnref.Probs(seq, h, ev.Pos, resident[h])
			}
			if layerwise {
				for h := 1; h < heads; h++ {
					for i, v := range score[h] {
						score[0][i] += v
					}
				}
				for h := 1; h < heads; h++ {
					score[h] = score[0]
				}
			}
			for h := range heads {
				if ev.Phase == policies.Decode && len(resident[h]) != budget+1 {
					t.Fatalf("layerwise=%v: step %d, head %d holds %d tokens, want budget+1", layerwise, ev.Pos, h, len(resident[h]))
				}
				n := len(resident[h]) - budget
				order := make([]int, len(resident[h]))
				for i := range order {
					order[i] = i
				}
				slices.SortStableFunc(order, func(a, b int) int {
					return cmpFloat(score[h][a], score[h][b])
				})
				var want []int
				for _, i := range order[:n] {
					want = append(want, resident[h][i])
				}
				slices.Sort(want)
				got := slices.Sorted(slices.Values(ev.VictimPos[h]))
				if !slices.Equal(got, want) {
					t.Fatalf("layerwise=%v: %v at %d, head %d: victims %v, want %v", layerwise, ev.Phase, ev.Pos, h, got, want)
				}
				resident[h] = slices.DeleteFunc(resident[h], func(q int) bool { return slices.Contains(want, q) })
			}
		}
		for h := range heads {
			if !slices.Equal(log.Resident[h], resident[h]) {
				t.Errorf("layerwise=%v: head %d ends with %v, reference %v", layerwise, h, log.Resident[h], resident[h])
			}
		}
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
