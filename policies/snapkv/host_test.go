package snapkv

import (
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/attnref"
	"github.com/kvsim/kvsim/policies/policytest"
)

// TestBudgetThroughReferenceHost drives every decode rule through the policytest host
// and checks how many tokens stay resident, and which tokens each rule may drop.
func TestBudgetThroughReferenceHost(t *testing.T) {
	const heads, maxLen, budget, window = 2, 40, 8, 3
	for _, prompt := range []int{20, 5} {
		seq := policytest.RandomSequence(heads, prompt, maxLen, 11)
		for _, mode := range []string{"append", "recency", "rescore"} {
			p := newPolicy(t, map[string]any{"window": window, "decode": mode})
			log, err := policytest.Run(p, policies.Config{Budget: budget, Seed: 1}, seq)
			if err != nil {
				t.Fatalf("prompt %d, decode=%s: %v", prompt, mode, err)
			}
			compressed := min(prompt, budget)     // tokens resident once the prompt is in
			wantPeak, wantEnd := budget+1, budget // PeakResident counts decode steps only
			if mode == "append" {
				wantPeak = compressed + maxLen - prompt
				wantEnd = wantPeak
			}
			if log.PeakResident != wantPeak {
				t.Errorf("prompt %d, decode=%s: peak resident %d, want %d", prompt, mode, log.PeakResident, wantPeak)
			}
			for h := range heads {
				if len(log.Resident[h]) != wantEnd {
					t.Errorf("prompt %d, decode=%s: head %d ends with %d tokens, want %d", prompt, mode, h, len(log.Resident[h]), wantEnd)
				}
			}
			for _, ev := range log.Events {
				if ev.Phase == policies.Prefill {
					continue
				}
				if mode == "append" {
					t.Fatalf("prompt %d: decode=append evicted at %d", prompt, ev.Pos)
				}
				for h, victims := range ev.VictimPos {
					for _, q := range victims {
						if q > ev.Pos-window {
							t.Errorf("prompt %d, decode=%s: step %d, head %d evicted position %d inside the window", prompt, mode, ev.Pos, h, q)
						}
						if mode == "recency" && q < prompt-window {
							t.Errorf("prompt %d: recency evicted position %d that the vote kept", prompt, q)
						}
					}
				}
			}
		}
	}
}

// TestCompressionMatchesReference recomputes the vote from the logits: the summed
// softmax of the last window rows, averaged over 5 neighbours with zero padding.
func TestCompressionMatchesReference(t *testing.T) {
	const heads, prompt, budget, window, kernel = 3, 30, 12, 4, 5
	seq := policytest.RandomSequence(heads, prompt, prompt+1, 5)
	p := newPolicy(t, map[string]any{"window": window})
	log, err := policytest.Run(p, policies.Config{Budget: budget}, seq)
	if err != nil {
		t.Fatal(err)
	}
	for h := range heads {
		others := prompt - window
		vote := make([]float64, others)
		for q := prompt - window; q < prompt; q++ {
			probs := attnref.Probs(seq, h, q, attnref.Prefix(q+1))
			for j := range others {
				vote[j] += probs[j]
			}
		}
		type scored struct {
			pos   int
			score float64
		}
		var all []scored
		for j := range others {
			total := 0.0
			for d := -kernel / 2; d <= kernel/2; d++ {
				if k := j + d; k >= 0 && k < others {
					total += vote[k]
				}
			}
			all = append(all, scored{j, total / kernel})
		}
		slices.SortStableFunc(all, func(a, b scored) int {
			switch {
			case a.score < b.score:
				return -1
			case a.score > b.score:
				return 1
			}
			return 0
		})
		var want []int
		for _, s := range all[:prompt-budget] {
			want = append(want, s.pos)
		}
		slices.Sort(want)
		got := slices.Sorted(slices.Values(log.Events[0].VictimPos[h]))
		if !slices.Equal(got, want) {
			t.Errorf("head %d: victims %v, reference %v", h, got, want)
		}
	}
}
