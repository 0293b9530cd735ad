package nacl

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/attnref"
	"github.com/kvsim/kvsim/policies/policytest"
)

// TestAgainstReferenceHost drives both decode rules through the policytest host and
// replays the log with a plain reference that keeps every row by position: victims
// must come from the unprotected tokens, never from the proxy part (the best scores
// under the latest proxy rows), and leave exactly the budget.
func TestAgainstReferenceHost(t *testing.T) {
	const heads, maxLen, budget, sink = 2, 50, 10, 2
	for _, tc := range []struct {
		prompt int
		decode string
		recent int // -1: the default, the proxy count
	}{
		{20, "append", -1}, {20, "reevict", -1}, {20, "reevict", 1}, {5, "append", -1}, {5, "reevict", -1},
	} {
		prompt := tc.prompt
		seq := policytest.RandomSequence(heads, prompt, maxLen, 9)
		name := fmt.Sprintf("prompt %d, decode=%s, recent=%d", prompt, tc.decode, tc.recent)
		params := map[string]any{"proxy_ratio": 0.2, "sink": sink, "decode": tc.decode}
		recent := prompt / 5 // the proxy count
		if tc.recent >= 0 {
			params["recent"], recent = tc.recent, tc.recent
		}
		log, err := policytest.Run(newPolicy(t, params), policies.Config{Budget: budget, Seed: 3}, seq)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// PeakResident counts decode steps only. A prompt within the budget is not
		// compressed, so it has no prefill event.
		compressions := 0
		if prompt > budget {
			compressions = 1
		}
		wantPeak, wantEvents := budget+1, compressions+maxLen-max(prompt, budget)
		if tc.decode == "append" {
			wantPeak, wantEvents = min(prompt, budget)+maxLen-prompt, compressions
		}
		if log.PeakResident != wantPeak || len(log.Events) != wantEvents {
			t.Errorf("%s: peak resident %d and %d evictions, want %d and %d",
				name, log.PeakResident, len(log.Events), wantPeak, wantEvents)
		}
		events := map[int]policytest.Event{}
		for _, ev := range log.Events {
			events[ev.Pos] = ev
		}
		proxies := prompt / 5
		for h := range heads {
			var resident []int
			var rows []map[int]float64 // by position, as the host rounds them
			for q := range maxLen {
				resident = append(resident, q)
				rows = append(rows, attnref.Sent(seq, h, q, resident))
				ev, ok := events[q]
				if !ok {
					continue
				}
				victims := ev.VictimPos[h]
				if len(resident)-len(victims) != budget {
					t.Fatalf("%s: step %d, head %d: %d victims leave %d tokens, want %d", name, q, h, len(victims), len(resident)-len(victims), budget)
				}
				keep := budget
				s := min(sink, keep)
				r := min(recent, keep-s)
				var unprotected []int
				for _, j := range resident {
					if j >= s && j <= q-r {
						unprotected = append(unprotected, j)
					}
				}
				score := map[int]float64{}
				for _, row := range rows[len(rows)-proxies:] {
					for _, j := range unprotected {
						score[j] += row[j]
					}
				}
				byScore := slices.Clone(unprotected)
				slices.SortStableFunc(byScore, func(a, b int) int {
					switch {
					case score[a] < score[b]:
						return -1
					case score[a] > score[b]:
						return 1
					}
					return 0
				})
				free := len(unprotected) - len(victims)
				proxyPart := byScore[len(byScore)-int(math.Round(float64(free)*12/19)):]
				for _, v := range victims {
					if !slices.Contains(unprotected, v) {
						t.Fatalf("%s: step %d, head %d: evicted protected position %d", name, q, h, v)
					}
					if slices.Contains(proxyPart, v) {
						t.Fatalf("%s: step %d, head %d: evicted position %d of the proxy part %v", name, q, h, v, proxyPart)
					}
				}
				resident = slices.DeleteFunc(resident, func(j int) bool { return slices.Contains(victims, j) })
			}
			if !slices.Equal(log.Resident[h], resident) {
				t.Errorf("%s: head %d ends with %v, reference %v", name, h, log.Resident[h], resident)
			}
		}
	}
}

func TestSeedsThroughReferenceHost(t *testing.T) {
	seq := policytest.RandomSequence(2, 40, 41, 4)
	run := func(seed uint64) [][]int {
		log, err := policytest.Run(newPolicy(t, nil), policies.Config{Budget: 20, Seed: seed, Layer: 1}, seq)
		if err != nil {
			t.Fatal(err)
		}
		return log.Events[0].VictimPos
	}
	same := func(a, b [][]int) bool { return slices.EqualFunc(a, b, slices.Equal) }
	if a, b := run(1), run(1); !same(a, b) {
		t.Errorf("seed 1 gave %v, then %v", a, b)
	}
	if a, b := run(1), run(2); same(a, b) {
		t.Errorf("seeds 1 and 2 both gave %v", a)
	}
}
