package scissorhands

import (
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/attnref"
	"github.com/kvsim/kvsim/policies/policytest"
)

// TestAgainstReferenceHost replays the policytest log with a plain reference that
// keeps every row: a token's count is the rows among the last `history` that gave it
// at least 1/t, its sum all the attention it got since it entered.
func TestAgainstReferenceHost(t *testing.T) {
	const heads, history, recent, budget = 2, 6, 3, 8
	for _, prompt := range []int{20, 4} {
		const maxLen = 45
		seq := policytest.RandomSequence(heads, prompt, maxLen, 3)
		p := newPolicy(t, map[string]any{"history": history, "recent": recent})
		log, err := policytest.Run(p, policies.Config{Budget: budget}, seq)
		if err != nil {
			t.Fatalf("prompt %d: %v", prompt, err)
		}
		if log.PeakResident != budget+1 { // decode steps only
			t.Errorf("prompt %d: peak resident %d, want budget+1 = %d", prompt, log.PeakResident, budget+1)
		}

		type row struct {
			pos   int
			probs map[int]float64 // by position, as the host rounds them
		}
		events := map[int]policytest.Event{}
		for _, ev := range log.Events {
			events[ev.Pos] = ev
		}
		for h := range heads {
			var resident []int
			var rows []row
			entered := map[int]int{} // position -> index of the row it entered with
			for q := range maxLen {
				resident = append(resident, q)
				entered[q] = len(rows)
				rows = append(rows, row{q, attnref.Sent(seq, h, q, resident)})
				ev, ok := events[q]
				if !ok {
					continue
				}
				n := len(ev.VictimPos[h])
				if len(resident)-n != budget {
					t.Fatalf("prompt %d: step %d, head %d: %d victims leave %d tokens, want %d", prompt, q, h, n, len(resident)-n, budget)
				}
				type scored struct {
					pos, count int
					sum        float64
				}
				var cands []scored
				for _, j := range resident {
					if j > q-min(recent, budget) {
						continue
					}
					c := scored{pos: j}
					for ri := entered[j]; ri < len(rows); ri++ {
						v := rows[ri].probs[j]
						c.sum += v
						if ri >= len(rows)-history && v >= 1/float64(len(rows[ri].probs)) {
							c.count++
						}
					}
					cands = append(cands, c)
				}
				slices.SortFunc(cands, func(a, b scored) int {
					switch {
					case a.count != b.count:
						return a.count - b.count
					case a.sum < b.sum:
						return -1
					case a.sum > b.sum:
						return 1
					}
					return a.pos - b.pos
				})
				var want []int
				for _, c := range cands[:n] {
					want = append(want, c.pos)
				}
				slices.Sort(want)
				got := slices.Sorted(slices.Values(ev.VictimPos[h]))
				if !slices.Equal(got, want) {
					t.Fatalf("prompt %d: step %d, head %d: victims %v, reference %v", prompt, q, h, got, want)
				}
				resident = slices.DeleteFunc(resident, func(j int) bool { return slices.Contains(want, j) })
			}
			if !slices.Equal(log.Resident[h], resident) {
				t.Errorf("prompt %d: head %d ends with %v, reference %v", prompt, h, log.Resident[h], resident)
			}
		}
	}
}
