package sim

import (
	"fmt"
	"math"

	"github.com/kvsim/kvsim/policies"
)

// meanSearch finds, for one instance on one (sample, layer), the nominal budget whose
// mean resident entries come closest to target. Mean entries grow with the nominal
// budget; the search brackets the target and narrows the bracket by secant steps, so
// every probe is a budget not tried before and the search ends.
type meanSearch struct {
	target, max int // the entries to match; the largest useful budget (the sequence length)
	lo, hi      int // probed budgets: lo's mean ≤ target < hi's; 0 when not yet probed
	loMean      float64
	hiMean      float64
	loStats     instanceStats
	hiStats     instanceStats
	probes      int
	// saturated is set when a larger budget held no more: the policy keeps all it
	// can, short of the target.
	saturated bool
	exact     bool // a probe matched the target exactly
}

// meanGuess is the first budget to probe for a mean of target entries: a layout
// with slack S over gen decode steps holds on average about the budget, the incoming
// token, half its usable slack and the compensation slot.
func meanGuess(target, gen int, layout policies.Layout) int {
	over := 1 + min(layout.Slack, max(gen-1, 0))/2
	if layout.Compensation {
		over++
	}
	return max(1, target-over)
}

// maxMeanProbes bounds the probes of one search (a bisection over 2³² budgets needs 32).
const maxMeanProbes = 64

// record takes the result of a probe at nominal budget b and returns the next budget
// to probe, or 0 when the search is over.
func (m *meanSearch) record(b int, st instanceStats) int {
	m.probes++
	mean := st.residentSum / st.n
	if st.n == 0 {
		mean = 0
	}
	switch {
	case mean == float64(m.target):
		m.lo, m.loMean, m.loStats, m.exact = b, mean, st, true
		return 0
	case m.lo != 0 && b > m.lo && mean <= m.loMean:
		m.saturated = true // keep the smaller budget that holds as much
	case mean <= float64(m.target):
		m.lo, m.loMean, m.loStats = b, mean, st
	default:
		m.hi, m.hiMean, m.hiStats = b, mean, st
	}
	if m.probes >= maxMeanProbes {
		return 0
	}
	switch {
	case m.hi == 0: // every probe so far holds too little
		if m.lo >= m.max || m.saturated {
			return 0
		}
		return min(m.max, m.lo+max(1, int(math.Floor(float64(m.target)-m.loMean))))
	case m.lo == 0: // every probe so far holds too much
		if m.hi == 1 {
			return 0
		}
		return max(1, m.hi-max(1, int(math.Ceil(m.hiMean-float64(m.target)))))
	case m.hi-m.lo <= 1:
		return 0
	}
	step := (float64(m.target) - m.loMean) * float64(m.hi-m.lo) / (m.hiMean - m.loMean)
	return min(m.hi-1, max(m.lo+1, m.lo+int(math.Round(step))))
}

// result picks the closer of the bracketing budgets (the lower on a tie) and its
// stats, or says why no budget matches the target within one entry.
func (m *meanSearch) result() (int, instanceStats, error) {
	switch {
	case m.exact:
		return m.lo, m.loStats, nil
	case m.lo == 0 && m.hi == 1:
		return 0, instanceStats{}, fmt.Errorf("mean accounting: even nominal budget 1 holds %.2f entries per head on average, more than %d", m.hiMean, m.target)
	case m.lo == 0 || (m.hi == 0 && m.lo < m.max && !m.saturated) || (m.hi != 0 && m.hi-m.lo > 1):
		return 0, instanceStats{}, fmt.Errorf("mean accounting: no nominal budget found for %d mean entries per head in %d probes", m.target, m.probes)
	case m.hi == 0: // the policy cannot hold as much as the target
		return m.lo, m.loStats, nil
	}
	if m.hiMean-float64(m.target) < float64(m.target)-m.loMean {
		if m.hiMean-float64(m.target) > 1 {
			return 0, instanceStats{}, m.gapError()
		}
		return m.hi, m.hiStats, nil
	}
	if float64(m.target)-m.loMean > 1 {
		return 0, instanceStats{}, m.gapError()
	}
	return m.lo, m.loStats, nil
}

func (m *meanSearch) gapError() error {
	return fmt.Errorf("mean accounting: no nominal budget holds %d mean entries per head within one: budget %d holds %.2f, budget %d holds %.2f",
		m.target, m.lo, m.loMean, m.hi, m.hiMean)
}
