package validate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/validate/rouge"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
)

// Sample is one validation input: a tokenized prompt and, when the dataset has
// one, its reference output.
type Sample struct {
	Prompt    []int32
	Reference string
}

// Baseline is a sample's full-cache greedy output, which every policy is compared to.
type Baseline struct {
	Tokens []int32
	Text   string
}

// CellOptions configure the runs of one policy × budget cell.
type CellOptions struct {
	// Budget is resolved against each sample's prompt length.
	Budget host.Budget
	// Accounting is what the budget bounds: nominal or peak (mean accounting
	// searches budgets by rerunning sequences, which only replay does).
	Accounting host.Accounting
	MaxNew     int
	IgnoreEOS  bool
	Seed       uint64
	// Stem applies Porter stemming before ROUGE.
	Stem bool
	// Detokenize turns generated tokens into text for ROUGE.
	Detokenize func([]int32) (string, error)
	// Progress, when set, is called with the number of samples done after each.
	Progress func(samples int)
}

// Cell is one policy × budget's metrics, averaged over samples.
type Cell struct {
	Policy string `json:"policy"`
	Budget string `json:"budget"` // the label replay's tables use, for display only
	// BudgetSpec is the budget itself: what cells are matched by (with replay's
	// Result.BudgetSpecs, and on resume), never the label.
	BudgetSpec host.Budget `json:"budget_spec"`
	// Accounting is what the budget bounds (host.Accounting).
	Accounting string `json:"accounting"`
	// BudgetTokens is the resolved budget, averaged over samples.
	BudgetTokens float64 `json:"budget_tokens"`
	// NominalTokens is the budget the policy was given, averaged over samples and
	// layers: BudgetTokens, or less under peak accounting.
	NominalTokens float64 `json:"nominal_tokens"`
	Samples       int     `json:"samples"`
	// ROUGE F1 of the policy's output against the references and against the
	// full-cache output.
	Rouge1Ref  float64 `json:"rouge1_ref"`
	Rouge2Ref  float64 `json:"rouge2_ref"`
	RougeLRef  float64 `json:"rougeL_ref"`
	Rouge1Full float64 `json:"rouge1_full"`
	Rouge2Full float64 `json:"rouge2_full"`
	RougeLFull float64 `json:"rougeL_full"`
	// Agreement is the share of full-cache tokens reproduced before the first
	// divergence.
	Agreement float64 `json:"agreement"`
	// NLL is the mean teacher-forced −log p of the full-cache continuation.
	NLL float64 `json:"nll"`
	// TokensPerSecond is the free-running decode throughput, eviction included.
	TokensPerSecond float64 `json:"tokens_per_second"`
	// PolicyMicrosPerToken is the time inside the policy per decoded token, and
	// SlotMicrosPerToken the slot bookkeeping's (see Decoding).
	PolicyMicrosPerToken float64 `json:"policy_us_per_token"`
	SlotMicrosPerToken   float64 `json:"slot_us_per_token"`
	// EvictionShare is the share of decode time that eviction costs: policy
	// plus slot bookkeeping.
	EvictionShare float64 `json:"eviction_share"`
	// PeakKVBytes is the largest peak over samples (see Decoding.PeakBytes).
	PeakKVBytes int64 `json:"peak_kv_bytes"`
	// Evictions is the mean victims per sample over all layers and heads.
	Evictions float64 `json:"evictions"`
	// PerSample holds each sample's quality metrics, in sample order: the cell's
	// means are their averages.
	PerSample []SampleMetrics `json:"per_sample"`
}

// SampleMetrics are one sample's quality metrics in a cell.
type SampleMetrics struct {
	Rouge1Ref  float64 `json:"rouge1_ref"`
	Rouge2Ref  float64 `json:"rouge2_ref"`
	RougeLRef  float64 `json:"rougeL_ref"`
	Rouge1Full float64 `json:"rouge1_full"`
	Rouge2Full float64 `json:"rouge2_full"`
	RougeLFull float64 `json:"rougeL_full"`
	Agreement  float64 `json:"agreement"`
	// NLL is nil when the full-cache output was empty (nothing to score).
	NLL *float64 `json:"nll"`
}

// FullCache decodes each sample with the whole cache: the baselines of RunCell.
func FullCache(ctx context.Context, e *gpu.Engine, samples []Sample, o CellOptions) ([]Baseline, error) {
	out := make([]Baseline, len(samples))
	for i, s := range samples {
		g, err := e.Generate(ctx, s.Prompt, gpu.GenerateOptions{MaxNew: o.MaxNew, IgnoreEOS: o.IgnoreEOS})
		if err != nil {
			return nil, fmt.Errorf("full cache, sample %d: %w", i, err)
		}
		text, err := o.Detokenize(g.Tokens)
		if err != nil {
			return nil, fmt.Errorf("full cache, sample %d: %w", i, err)
		}
		out[i] = Baseline{Tokens: g.Tokens, Text: text}
	}
	return out, nil
}

// RunCell runs one policy at one budget over the samples twice each: free-running,
// for ROUGE, agreement, throughput and memory; and teacher-forced on the
// full-cache output, for NLL.
func RunCell(ctx context.Context, e *gpu.Engine, name string, newPolicy func() (policies.Policy, error),
	samples []Sample, baselines []Baseline, o CellOptions) (*Cell, error) {
	if len(samples) == 0 || len(samples) != len(baselines) {
		return nil, fmt.Errorf("policy %q: %d samples, %d baselines", name, len(samples), len(baselines))
	}
	runs := make([]SampleRun, len(samples))
	for i, s := range samples {
		r, err := RunSample(ctx, e, name, newPolicy, i, s, baselines[i], o)
		if err != nil {
			return nil, err
		}
		runs[i] = *r
		if o.Progress != nil {
			o.Progress(i + 1)
		}
	}
	return Aggregate(name, o, runs), nil
}

// SampleRun is one sample's share of a cell: what Aggregate sums over samples.
// Its JSON form travels in shard files, so that a cell split over shards
// aggregates to the cell one run computes.
type SampleRun struct {
	Budget        int           `json:"budget"` // the resolved budget
	NominalBudget float64       `json:"nominal_budget"`
	Metrics       SampleMetrics `json:"metrics"`
	PeakBytes     int64         `json:"peak_bytes"`
	Evictions     int           `json:"evictions"`
	Tokens        int           `json:"tokens"`
	// Decode, PolicyTime and SlotTime are measured, in nanoseconds.
	Decode     time.Duration `json:"decode_ns"`
	PolicyTime time.Duration `json:"policy_ns"`
	SlotTime   time.Duration `json:"slot_ns"`
}

// RunSample decodes sample s, number index in the validation's sample order (it
// seeds random policies), with the policy at o's budget: free-running, then
// teacher-forced on the full-cache output.
func RunSample(ctx context.Context, e *gpu.Engine, name string, newPolicy func() (policies.Policy, error),
	index int, s Sample, baseline Baseline, o CellOptions) (*SampleRun, error) {
	if o.Detokenize == nil {
		return nil, errors.New("validate: no detokenizer")
	}
	if o.Accounting != host.Nominal && o.Accounting != host.Peak {
		return nil, fmt.Errorf("policy %q: %s accounting is replay's only (its budget search reruns each sequence); validate with nominal or peak", name, o.Accounting)
	}
	budget := o.Budget.TokensFor(len(s.Prompt))
	opts := Options{Budget: budget, Peak: o.Accounting == host.Peak, MaxNew: o.MaxNew, IgnoreEOS: o.IgnoreEOS, Sample: index, Seed: o.Seed}
	d, err := Decode(ctx, e, s.Prompt, newPolicy, opts)
	if err != nil {
		return nil, fmt.Errorf("policy %q at budget %s, sample %d: %w", name, o.Budget, index, err)
	}
	text, err := o.Detokenize(d.Tokens)
	if err != nil {
		return nil, fmt.Errorf("policy %q at budget %s, sample %d: %w", name, o.Budget, index, err)
	}
	full := rouge.Compute(text, baseline.Text, o.Stem)
	ref := rouge.Compute(text, s.Reference, o.Stem)
	r := &SampleRun{Budget: budget, NominalBudget: d.NominalBudget, PeakBytes: d.PeakBytes, Evictions: d.Evictions,
		Tokens: len(d.Tokens), Decode: d.Decode, PolicyTime: d.PolicyTime, SlotTime: d.SlotTime,
		Metrics: SampleMetrics{Rouge1Full: full.R1.F1, Rouge2Full: full.R2.F1, RougeLFull: full.RL.F1,
			Rouge1Ref: ref.R1.F1, Rouge2Ref: ref.R2.F1, RougeLRef: ref.RL.F1, Agreement: Agreement(baseline.Tokens, d.Tokens)}}
	if force := baseline.Tokens; len(force) > 0 {
		opts.Force, opts.MaxNew = force, len(force)
		f, err := Decode(ctx, e, s.Prompt, newPolicy, opts)
		if err != nil {
			return nil, fmt.Errorf("policy %q at budget %s, sample %d, teacher-forced: %w", name, o.Budget, index, err)
		}
		nll := f.NLL
		r.Metrics.NLL = &nll
	}
	return r, nil
}

// Aggregate makes the cell of the policy at o's budget from its samples' runs, in
// sample order.
func Aggregate(name string, o CellOptions, runs []SampleRun) *Cell {
	c := &Cell{Policy: name, Budget: o.Budget.String(), BudgetSpec: o.Budget, Accounting: o.Accounting.String(), Samples: len(runs)}
	var tokens int
	var decodeSeconds, policySeconds, slotSeconds float64
	var nllSamples int
	for _, r := range runs {
		sm := r.Metrics
		c.BudgetTokens += float64(r.Budget)
		c.Rouge1Full += sm.Rouge1Full
		c.Rouge2Full += sm.Rouge2Full
		c.RougeLFull += sm.RougeLFull
		c.Rouge1Ref += sm.Rouge1Ref
		c.Rouge2Ref += sm.Rouge2Ref
		c.RougeLRef += sm.RougeLRef
		c.Agreement += sm.Agreement
		c.NominalTokens += r.NominalBudget
		c.PeakKVBytes = max(c.PeakKVBytes, r.PeakBytes)
		c.Evictions += float64(r.Evictions)
		tokens += r.Tokens
		decodeSeconds += r.Decode.Seconds()
		policySeconds += r.PolicyTime.Seconds()
		slotSeconds += r.SlotTime.Seconds()
		if sm.NLL != nil {
			c.NLL += *sm.NLL
			nllSamples++
		}
		c.PerSample = append(c.PerSample, sm)
	}
	n := float64(len(runs))
	for _, x := range []*float64{&c.Rouge1Ref, &c.Rouge2Ref, &c.RougeLRef, &c.Rouge1Full, &c.Rouge2Full,
		&c.RougeLFull, &c.Agreement, &c.Evictions, &c.BudgetTokens, &c.NominalTokens} {
		*x /= n
	}
	if nllSamples > 0 {
		c.NLL /= float64(nllSamples)
	}
	if decodeSeconds > 0 {
		c.TokensPerSecond = float64(tokens) / decodeSeconds
		c.EvictionShare = (policySeconds + slotSeconds) / decodeSeconds
	}
	if tokens > 0 {
		c.PolicyMicrosPerToken = policySeconds * 1e6 / float64(tokens)
		c.SlotMicrosPerToken = slotSeconds * 1e6 / float64(tokens)
	}
	return c
}

// Agreement is the share of the full-cache tokens that got repeats before the
// first divergence; 1 when both are empty.
func Agreement(full, got []int32) float64 {
	if len(full) == 0 {
		if len(got) == 0 {
			return 1
		}
		return 0
	}
	n := 0
	for n < len(full) && n < len(got) && full[n] == got[n] {
		n++
	}
	return float64(n) / float64(len(full))
}
