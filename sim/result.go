package sim

import (
	"fmt"
	"math"
	"strconv"
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

// Metrics are one cell's averages. JSON names are part of the result file format.
type Metrics struct {
	HitRate     float64 `json:"hit_rate"`
	TopKHitRate float64 `json:"topk_hit_rate"`
	// OutputError is 0 when the traces carry no V (Result.HasV is false).
	OutputError float64 `json:"output_error"`
}

// Cell is one (policy, budget) result, averaged over samples.
type Cell struct {
	Policy string `json:"policy"`
	Budget string `json:"budget"`
	// BudgetTokens is the resolved budget, averaged over samples.
	BudgetTokens float64 `json:"budget_tokens"`
	// Failed holds the reason when the policy failed; the metrics are then zero.
	Failed string `json:"failed,omitempty"`
	Metrics
	// Evictions is victims per head per sample.
	Evictions float64 `json:"evictions"`
	// PeakResident and MeanResident count KV entries per head while attending:
	// resident tokens plus the compensation slot.
	PeakResident float64 `json:"peak_resident"`
	MeanResident float64 `json:"mean_resident"`
	// PolicyNs is the time inside the policy per (head · decode step).
	PolicyNs float64   `json:"policy_ns_per_head_step"`
	Layers   []Metrics `json:"layers"`
}

// Result is a whole replay: one cell per (policy, budget), policies in scenario order.
type Result struct {
	// Source is the traces' source ("synthetic", "cpu", "gpu"), or a comma list when
	// they are mixed. Synthetic results are not OPT measurements.
	Source   string   `json:"source"`
	Models   []string `json:"models"`
	Samples  int      `json:"samples"`
	Layers   int      `json:"layers"`
	Prompt   float64  `json:"mean_prompt_len"`
	Gen      float64  `json:"mean_gen_len"`
	TopK     int      `json:"top_k"`
	HasV     bool     `json:"has_v"`
	Policies []string `json:"policies"`
	Budgets  []string `json:"budgets"` // labels, as in the tables
	// BudgetSpecs are the budgets as given, parallel to Budgets.
	BudgetSpecs []Budget `json:"budget_specs"`
	Cells       []Cell   `json:"cells"`
	Perf        Perf     `json:"perf"`
}

// Perf is where replay spent its time, summed over workers (CPU seconds, not wall).
type Perf struct {
	// ScoreFLOP and ScoreSeconds count the attention-score matrix products.
	ScoreFLOP    float64 `json:"score_flop"`
	ScoreSeconds float64 `json:"score_seconds"`
	// ReadSeconds is time spent reading and converting trace tensors.
	ReadSeconds float64 `json:"read_seconds"`
	// PolicySeconds is time inside policy calls during decoding.
	PolicySeconds float64 `json:"policy_seconds"`
	// DecodeSteps counts (sample, layer, head, decode step) tuples replayed.
	DecodeSteps float64 `json:"decode_steps"`
}

// ScoreGFLOPS is the score kernel's rate per busy core.
func (p Perf) ScoreGFLOPS() float64 {
	if p.ScoreSeconds == 0 {
		return 0
	}
	return p.ScoreFLOP / p.ScoreSeconds / 1e9
}

// Cell returns the cell for policy i and budget j.
func (r *Result) Cell(i, j int) *Cell { return &r.Cells[i*len(r.Budgets)+j] }
