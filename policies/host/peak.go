package host

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
)

// PeakEntries bounds the entries a head of a bounded policy holds while attending,
// over a sequence of prompt and gen tokens at nominal budget b: after compression it
// keeps min(prompt, b) tokens; each decode step adds one before attending, and the
// host evicts once a head holds more than b+Slack, so at most b+Slack+1 are resident
// while a query attends. The compensation slot adds one when the layout keeps it. For
// a budget pool the same bound holds for the pool's entries divided by its heads
// (Heads×b entries kept, Heads new tokens, Heads×Slack slack), so peak accounting
// charges pools and heads alike.
func PeakEntries(b, prompt, gen int, layout policies.Layout) int {
	peak := min(prompt, b)
	if gen > 0 {
		peak = min(peak+gen, b+layout.Slack+1)
	}
	if layout.Compensation {
		peak++
	}
	return peak
}

// PeakBudget finds the largest nominal budget in [1, cap] whose layout keeps a head
// within cap entries while attending, calling layoutAt for the layout at a budget
// (a policy's slack may depend on it). It assumes PeakEntries grows with the budget,
// and checks its answer.
func PeakBudget(cap, prompt, gen int, layoutAt func(b int) (policies.Layout, error)) (int, error) {
	fits := func(b int) (bool, int, policies.Layout, error) {
		l, err := layoutAt(b)
		if err != nil {
			return false, 0, l, err
		}
		p := PeakEntries(b, prompt, gen, l)
		return p <= cap, p, l, nil
	}
	ok, peak, l, err := fits(1)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("peak accounting: cannot hold %d entries per head: even at nominal budget 1 it holds %d while attending (slack %d, compensation slot %t, %d decode steps)",
			cap, peak, l.Slack, l.Compensation, gen)
	}
	lo, hi := 1, cap+1 // fits(lo); hi does not fit or is past the cap
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		ok, _, _, err := fits(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}
