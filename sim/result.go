package sim

import (
	"github.com/kvsim/kvsim/policies/host"

	"github.com/kvsim/kvsim/internal/stats"
)

// KVBytesPerValue is the size of one key or value element in the KV bytes replay
// reports: fp16, the precision OPT models are served in, whatever the trace stores.
const KVBytesPerValue = 2

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
	// Accounting is what the budget bounds for this policy: nominal, peak or mean.
	Accounting string `json:"accounting"`
	// BudgetTokens is the resolved budget, averaged over samples.
	BudgetTokens float64 `json:"budget_tokens"`
	// NominalTokens is the budget the policy was given (Config.Budget), averaged over
	// samples and layers: BudgetTokens in nominal accounting, less under peak and
	// mean accounting when the policy holds more than its nominal budget.
	NominalTokens float64 `json:"nominal_tokens"`
	// Failed holds the reason when the policy failed; the metrics are then zero.
	Failed string `json:"failed,omitempty"`
	Metrics
	// Evictions is victims per head per sample.
	Evictions float64 `json:"evictions"`
	// PeakResident and MeanResident count KV entries per head while attending:
	// resident tokens plus the compensation slot. For a budget pool (policies.Pool)
	// a head's entries are the layer's divided by its heads, rounded up for the
	// peak; a model pool may give a layer more than its average, so only the
	// sequence's memory (PeakKVBytes) is bounded by the budget.
	PeakResident float64 `json:"peak_resident"`
	MeanResident float64 `json:"mean_resident"`
	// PeakKVBytes and MeanKVBytes are the KV memory of one sequence, all layers and
	// heads, averaged over samples: entries × (2 · head_dim · KVBytesPerValue +
	// StateBytesPerToken). The peak sums each head's peak: what a cache sized per
	// head must reserve; a pooled layer counts its pool's peak. The mean is over
	// decode steps.
	PeakKVBytes float64 `json:"peak_kv_bytes"`
	MeanKVBytes float64 `json:"mean_kv_bytes"`
	// StateBytesPerToken is the policy state per head and resident token that the
	// policy declares (policies.TokenState); 0 when it declares none.
	StateBytesPerToken int `json:"state_bytes_per_token"`
	// PolicyNs is the time inside the policy, every call but Init (prefill
	// observations, the compression eviction and every decode call), per
	// (head · decode step).
	PolicyNs float64 `json:"policy_ns_per_head_step"`
	// HostNs is the host's time on this cell alone, outside the policy, per
	// (head · decode step): laying out its attention, applying and checking its
	// victims, its metrics. The work every cell shares (reading the trace, the
	// full-cache scores) is in no cell's figure.
	HostNs float64   `json:"host_ns_per_head_step"`
	Layers []Metrics `json:"layers"`
	// CI holds the 95% Student-t intervals over samples (see SampleResult).
	CI MetricIntervals `json:"ci"`
	// Diff is this cell minus the reference policy's cell at the same budget,
	// paired by sample; nil without a reference, for the reference itself, or when
	// either cell failed.
	Diff *Diff `json:"diff,omitempty"`
	// Samples holds each sample's own figures, in Result.SampleNames order.
	Samples []SampleResult `json:"samples"`
}

// MetricIntervals are 95% intervals for the metrics, one per metric.
type MetricIntervals struct {
	HitRate     stats.Interval `json:"hit_rate"`
	TopKHitRate stats.Interval `json:"topk_hit_rate"`
	OutputError stats.Interval `json:"output_error"`
}

// Diff is a cell's paired difference from the reference policy: the mean over
// samples of (this − reference) with its Student-t interval.
type Diff struct {
	Reference string `json:"reference"`
	MetricIntervals
}

// SampleResult is one sample's figures in a cell. A cell's metrics are these weighted
// by Steps: Σ Steps·x / Σ Steps. Intervals treat samples as the independent unit.
type SampleResult struct {
	Metrics
	// Steps counts (layer, head, decode step) triples: the sample's weight.
	Steps         float64   `json:"steps"`
	NominalTokens float64   `json:"nominal_tokens"` // averaged over layers
	PeakResident  float64   `json:"peak_resident"`
	MeanResident  float64   `json:"mean_resident"`
	PeakKVBytes   float64   `json:"peak_kv_bytes"`
	MeanKVBytes   float64   `json:"mean_kv_bytes"`
	Layers        []Metrics `json:"layers"`
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
	BudgetSpecs []host.Budget `json:"budget_specs"`
	// Accounting is the scenario's accounting mode; a policy may override it
	// (Cell.Accounting).
	Accounting string `json:"accounting"`
	// Compare is the reference policy of the paired differences (Cell.Diff).
	Compare string `json:"compare,omitempty"`
	// SampleNames name the samples, in the order of every Cell.Samples.
	SampleNames     []string `json:"sample_names"`
	KVBytesPerValue int      `json:"kv_bytes_per_value"`
	Cells           []Cell   `json:"cells"`
	Perf            Perf     `json:"perf"`
}

// Perf is where replay spent its time, summed over workers (CPU seconds, not wall).
type Perf struct {
	// ScoreFLOP and ScoreSeconds count the attention-score matrix products.
	ScoreFLOP    float64 `json:"score_flop"`
	ScoreSeconds float64 `json:"score_seconds"`
	// ReadSeconds is time spent reading and converting trace tensors.
	ReadSeconds float64 `json:"read_seconds"`
	// PolicySeconds is time inside policy calls: prefill, compression and decode.
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
