package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kvsim/kvsim/policies/host"
)

// Part is the replay of some of a scenario's samples: the sums each (sample, layer)
// job contributes to each cell, before they are folded into cells. MergeParts folds
// the jobs of parts that cover every sample once, in the order one replay folds
// them, so the merged Result equals Replay's over all samples bit for bit (timings
// aside: they are measured, and add up). Its JSON form is kvsim's shard result.
type Part struct {
	// Header is the Result of the whole scenario without its cells: it counts every
	// sample, replayed here or not, so every part of a scenario has the same one.
	Header *Result `json:"header"`
	// Seed and BlockRows are the options that may change results but that the
	// header does not show, and Accountings each policy's accounting mode.
	Seed        uint64   `json:"seed"`
	BlockRows   int      `json:"block_rows"`
	Accountings []string `json:"accountings"`
	// Samples are the indices (in the scenario's order) of the samples replayed here.
	Samples []int     `json:"samples"`
	Jobs    []PartJob `json:"jobs"`
}

// PartJob is one (sample, layer) job's contribution.
type PartJob struct {
	Sample  int  `json:"sample"`
	Layer   int  `json:"layer"`
	Heads   int  `json:"heads"`
	HeadDim int  `json:"head_dim"`
	Perf    Perf `json:"perf"`
	// Cells are indexed [policy][budget], as Result.Cells.
	Cells []PartCell `json:"cells"`
}

// PartCell is one job's sums for one cell (see instanceStats).
type PartCell struct {
	Budget  int `json:"budget"`  // the resolved budget B in tokens
	Nominal int `json:"nominal"` // the budget the policy was given
	// StateBytes is the policy's declared state per head and resident token.
	StateBytes int `json:"state_bytes"`
	// Failed holds the policy's error; the sums are then zero.
	Failed      string  `json:"failed,omitempty"`
	Hit         float64 `json:"hit"`
	TopK        float64 `json:"topk"`
	OutErr      float64 `json:"out_err"`
	N           float64 `json:"n"`
	Evictions   float64 `json:"evictions"`
	Resident    float64 `json:"resident"`
	Peak        int     `json:"peak"`
	HeadPeakSum int     `json:"head_peak_sum"`
	PolicyNanos int64   `json:"policy_ns"`
	CellNanos   int64   `json:"cell_ns"`
}

// defaultBlockRows is the prefill block height when Options.BlockRows is 0.
const defaultBlockRows = 64

// MaxLayers, with host.MaxSamples, bounds what a part's header may claim, so that a
// damaged shard file cannot make a merge allocate without bound.
const MaxLayers = 1 << 12

// ReplayPart replays the samples keep accepts, as Replay would within a replay of
// all of them.
func ReplayPart(ctx context.Context, sources []Source, specs []PolicySpec, opts Options, keep func(sample int) bool) (*Part, error) {
	res, jobs, results, err := runJobs(ctx, sources, specs, opts, keep)
	if err != nil {
		return nil, err
	}
	blockRows := opts.BlockRows
	if blockRows <= 0 {
		blockRows = defaultBlockRows
	}
	p := &Part{Header: res, Seed: opts.Seed, BlockRows: blockRows, Samples: []int{}, Jobs: make([]PartJob, len(jobs))}
	for _, sp := range specs {
		p.Accountings = append(p.Accountings, sp.Accounting.String())
	}
	for i, j := range jobs {
		if !slices.Contains(p.Samples, j.sample) {
			p.Samples = append(p.Samples, j.sample)
		}
		r := &results[i]
		pj := PartJob{Sample: j.sample, Layer: j.layer, Heads: r.heads, HeadDim: r.headDim, Perf: r.perf, Cells: make([]PartCell, len(r.stats))}
		for c, st := range r.stats {
			pc := PartCell{Budget: r.budget[c], Nominal: r.nominal[c], StateBytes: r.stateBytes[c], HeadPeakSum: st.headPeakSum, Hit: st.hit, TopK: st.topk, OutErr: st.outErr, N: st.n,
				Evictions: st.evictions, Resident: st.residentSum, Peak: st.peak, PolicyNanos: st.policyTime.Nanoseconds(),
				CellNanos: st.cellTime.Nanoseconds()}
			if r.failed[c] != nil {
				pc.Failed = r.failed[c].Error()
			}
			pj.Cells[c] = pc
		}
		p.Jobs[i] = pj
	}
	return p, nil
}

// MissingError names the samples no part covered.
type MissingError struct{ Samples []int }

func (e *MissingError) Error() string {
	return fmt.Sprintf("%d samples replayed by no part: %v", len(e.Samples), e.Samples)
}

// MergeParts folds parts into the Result one replay of all their samples gives.
// The parts must share a header and cover every sample exactly once; a gap is a
// *MissingError. names label the parts in errors.
func MergeParts(parts []*Part, names []string) (*Result, error) {
	if len(parts) == 0 {
		return nil, errors.New("merge: no parts")
	}
	h := parts[0].Header
	if h == nil || h.Samples < 1 || h.Layers < 1 || len(h.Policies) == 0 || len(h.Budgets) == 0 || len(h.BudgetSpecs) != len(h.Budgets) ||
		len(parts[0].Accountings) != len(h.Policies) {
		return nil, fmt.Errorf("merge: %s: no valid header", names[0])
	}
	if h.Samples > host.MaxSamples || h.Layers > MaxLayers {
		return nil, fmt.Errorf("merge: %s: %d samples × %d layers, more than %d × %d", names[0], h.Samples, h.Layers, host.MaxSamples, MaxLayers)
	}
	owner := make([]int, h.Samples) // part index + 1 of each sample's replay
	for pi, p := range parts {
		if pi > 0 {
			if diff := partDiff(parts[0], p); diff != "" {
				return nil, fmt.Errorf("merge: %s and %s replay different scenarios (their %s differ)", names[0], names[pi], diff)
			}
		}
		for _, s := range p.Samples {
			if s < 0 || s >= h.Samples {
				return nil, fmt.Errorf("merge: %s: sample %d out of range [0, %d)", names[pi], s, h.Samples)
			}
			if o := owner[s]; o != 0 {
				return nil, fmt.Errorf("merge: sample %d is in both %s and %s", s, names[o-1], names[pi])
			}
			owner[s] = pi + 1
		}
		if len(p.Jobs) != len(p.Samples)*h.Layers {
			return nil, fmt.Errorf("merge: %s: %d jobs for %d samples × %d layers", names[pi], len(p.Jobs), len(p.Samples), h.Layers)
		}
	}
	var missing []int
	for s, o := range owner {
		if o == 0 {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return nil, &MissingError{Samples: missing}
	}
	// Every sample is covered and every part holds its samples' count of jobs, so
	// these are as long as the parts' jobs together.
	nCells := len(h.Policies) * len(h.Budgets)
	results := make([]jobResult, h.Samples*h.Layers)
	seen := make([]bool, len(results))
	for pi, p := range parts {
		for ji, pj := range p.Jobs {
			if pj.Sample < 0 || pj.Sample >= h.Samples || owner[pj.Sample] != pi+1 || pj.Layer < 0 || pj.Layer >= h.Layers {
				return nil, fmt.Errorf("merge: %s: job %d: (sample %d, layer %d) is not one of its samples' layers", names[pi], ji, pj.Sample, pj.Layer)
			}
			if len(pj.Cells) != nCells || pj.Heads < 1 || pj.HeadDim < 1 {
				return nil, fmt.Errorf("merge: %s: job %d: %d cells and %d heads, want %d cells (%d policies × %d budgets)",
					names[pi], ji, len(pj.Cells), pj.Heads, nCells, len(h.Policies), len(h.Budgets))
			}
			k := pj.Sample*h.Layers + pj.Layer
			if seen[k] {
				return nil, fmt.Errorf("merge: %s: (sample %d, layer %d) twice", names[pi], pj.Sample, pj.Layer)
			}
			seen[k] = true
			results[k] = pj.jobResult()
		}
	}
	jobs := make([]job, len(results))
	for k := range jobs {
		jobs[k] = job{k / h.Layers, k % h.Layers}
	}
	res := *h
	specs := make([]PolicySpec, len(h.Policies))
	for i, name := range h.Policies {
		specs[i].Name = name
		var err error
		if specs[i].Accounting, err = host.ParseAccounting(parts[0].Accountings[i]); err != nil {
			return nil, fmt.Errorf("merge: %s: policy %q: %w", names[0], name, err)
		}
	}
	fold(&res, specs, Options{Budgets: h.BudgetSpecs}, jobs, results)
	return &res, nil
}

// partDiff names what differs between the settings of two parts, "" when nothing.
func partDiff(a, b *Part) string {
	switch {
	case a.Seed != b.Seed:
		return "seeds"
	case a.BlockRows != b.BlockRows:
		return "block rows"
	case !slices.Equal(a.Accountings, b.Accountings):
		return "accountings"
	}
	ja, _ := json.Marshal(a.Header)
	jb, _ := json.Marshal(b.Header)
	var ma, mb map[string]json.RawMessage
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	for _, k := range slices.Sorted(maps.Keys(ma)) {
		if !bytes.Equal(ma[k], mb[k]) {
			return "headers' " + k
		}
	}
	return ""
}

// jobResult is the job's result as the worker returned it.
func (pj *PartJob) jobResult() jobResult {
	r := jobResult{stats: make([]instanceStats, len(pj.Cells)), failed: make([]error, len(pj.Cells)),
		budget: make([]int, len(pj.Cells)), nominal: make([]int, len(pj.Cells)), stateBytes: make([]int, len(pj.Cells)),
		heads: pj.Heads, headDim: pj.HeadDim, perf: pj.Perf}
	for c, pc := range pj.Cells {
		r.budget[c], r.nominal[c], r.stateBytes[c] = pc.Budget, pc.Nominal, pc.StateBytes
		if pc.Failed != "" {
			r.failed[c] = errors.New(pc.Failed)
		}
		r.stats[c] = instanceStats{hit: pc.Hit, topk: pc.TopK, outErr: pc.OutErr, n: pc.N, evictions: pc.Evictions,
			residentSum: pc.Resident, peak: pc.Peak, headPeakSum: pc.HeadPeakSum, policyTime: time.Duration(pc.PolicyNanos),
			cellTime: time.Duration(pc.CellNanos)}
	}
	return r
}
