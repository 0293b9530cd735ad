package host

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Budget is a cache budget: a fraction of each sample's prompt length, or a fixed
// number of tokens.
type Budget struct {
	Fraction float64 `json:"fraction,omitempty"` // in (0, 1]; used when Tokens is 0
	Tokens   int     `json:"tokens,omitempty"`
}

// MaxBudgetTokens bounds a budget in tokens: 16 Mi tokens is beyond any model's
// context, and keeps Budget+Slack and the slot width far from overflow.
const MaxBudgetTokens = 1 << 24

// TokensFor resolves the budget for a prompt of p tokens (at least one token).
func (b Budget) TokensFor(p int) int {
	if b.Tokens > 0 {
		return b.Tokens
	}
	return max(1, int(math.Round(b.Fraction*float64(p))))
}

// String labels the budget in tables: "5%" or "64 tok".
func (b Budget) String() string {
	if b.Tokens > 0 {
		return fmt.Sprintf("%d tok", b.Tokens)
	}
	return strconv.FormatFloat(b.Fraction*100, 'f', -1, 64) + "%"
}

// MaxSamples bounds the samples of one run, replay or validate, so that a damaged
// shard or part file cannot make a merge allocate without bound.
const MaxSamples = 1 << 22

// Accounting says what a budget B bounds. The modes differ only in the nominal budget
// handed to the policy (Config.Budget); the replay protocol is the same.
type Accounting int

const (
	// Nominal hands B to the policy as is: a head keeps B tokens between steps, and
	// the incoming token, a multi-step policy's slack and the compensation slot come
	// on top. This is the accounting of the AUV paper and its baselines.
	Nominal Accounting = iota
	// Peak caps the KV entries a head holds while attending at B: the resident
	// tokens, the incoming one included, plus one for the compensation slot when the
	// layout keeps one (it is reserved memory, merged into or not). The nominal
	// budget is the largest that keeps the policy's layout within the cap (see
	// PeakEntries), so slack comes out of B; the host checks the cap at every step.
	Peak
	// Mean searches, per (sample, layer), the nominal budget whose mean resident
	// entries while attending come closest to B, within one entry.
	Mean
)

// Accountings lists the modes by name, in order.
var Accountings = []string{"nominal", "peak", "mean"}

func (a Accounting) String() string {
	if a >= 0 && int(a) < len(Accountings) {
		return Accountings[a]
	}
	return fmt.Sprintf("accounting(%d)", int(a))
}

// ParseAccounting reads a mode by name.
func ParseAccounting(s string) (Accounting, error) {
	for i, name := range Accountings {
		if s == name {
			return Accounting(i), nil
		}
	}
	return 0, fmt.Errorf("accounting %q: want one of %s", s, strings.Join(Accountings, ", "))
}
