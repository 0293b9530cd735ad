package validate

import (
	"context"
	"errors"
	"fmt"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
)

// Policy is one policy to validate: its row name, how to make instances, and what
// its budgets bound.
type Policy struct {
	Name       string
	New        func() (policies.Policy, error)
	Accounting host.Accounting
}

// RunOptions tune Run.
type RunOptions struct {
	// Cell is what every cell shares; Run sets its Budget, Accounting and Progress.
	Cell CellOptions
	// State is the resume file ("" for none): cells found there are not decoded
	// again, and each finished cell is appended to it.
	State string
	// Simulated, when set, gives replay's hit rate of (policy, budget), or nil.
	Simulated func(policy string, b host.Budget) *float64
	// Progress, when set, is called with the (sample, cell) pairs done so far.
	Progress func(done int)
}

// Run validates every policy at every budget, in that order, on samples, resuming
// from the state file, and returns the cells. The full-cache outputs are decoded
// once, when the first cell needs them.
func Run(ctx context.Context, e *gpu.Engine, pols []Policy, budgets []host.Budget, samples []Sample, o RunOptions) ([]ValidatedCell, error) {
	done, err := ReadState(o.State)
	if err != nil {
		return nil, err
	}
	progress := func(n int) {
		if o.Progress != nil {
			o.Progress(n)
		}
	}
	var cells []ValidatedCell
	var baselines []Baseline
	opts := o.Cell
	for i, p := range pols {
		for j, b := range budgets {
			first := (i*len(budgets) + j) * len(samples) // this cell's first sample
			progress(first)
			cell, ok := done[StateKey{Policy: p.Name, Budget: b}]
			if ok && AccountingOf(&cell) != p.Accounting.String() {
				return nil, fmt.Errorf("validate: state %s holds %s @ %s under %s accounting, the scenario asks for %s: give this run its own -state",
					o.State, p.Name, b, AccountingOf(&cell), p.Accounting)
			}
			if !ok {
				if baselines == nil {
					if baselines, err = FullCache(ctx, e, samples, opts); err != nil {
						return nil, err
					}
				}
				opts.Budget, opts.Accounting = b, p.Accounting
				opts.Progress = func(n int) { progress(first + n) }
				c, err := RunCell(ctx, e, p.Name, p.New, samples, baselines, opts)
				if err != nil {
					if errors.Is(err, context.Canceled) {
						return nil, errors.New("validate interrupted; run the same command again to resume from the finished cells")
					}
					return nil, err
				}
				if err := AppendState(o.State, c); err != nil {
					return nil, err
				}
				cell = *c
			}
			vc := ValidatedCell{Cell: cell}
			if o.Simulated != nil {
				vc.SimulatedHitRate = o.Simulated(p.Name, b)
			}
			cells = append(cells, vc)
		}
	}
	progress(len(pols) * len(budgets) * len(samples))
	return cells, nil
}

// RunPart validates every policy at every budget, like Run, on the samples whose
// index k has(k) (a shard's): every cell's run of each, for MergeParts to join with
// the other parts. compare is the scenario's reference policy, kept for the merge.
// It keeps no state file: a shard is rerun whole.
func RunPart(ctx context.Context, e *gpu.Engine, pols []Policy, budgets []host.Budget, samples []Sample, has func(k int) bool,
	compare string, o RunOptions) (*Part, error) {
	part := &Part{Samples: len(samples), Covered: []int{}, Compare: compare, Seed: o.Cell.Seed}
	var mine []Sample
	for k, s := range samples {
		if has(k) {
			part.Covered = append(part.Covered, k)
			mine = append(mine, s)
		}
	}
	opts := o.Cell
	var baselines []Baseline
	if len(mine) > 0 {
		var err error
		if baselines, err = FullCache(ctx, e, mine, opts); err != nil {
			return nil, err
		}
	}
	for _, p := range pols {
		for _, b := range budgets {
			opts.Budget, opts.Accounting = b, p.Accounting
			cell := PartCell{Policy: p.Name, Budget: b, Accounting: p.Accounting.String(), Runs: []SampleRun{}}
			if o.Simulated != nil {
				cell.SimulatedHitRate = o.Simulated(p.Name, b)
			}
			for i, k := range part.Covered {
				r, err := RunSample(ctx, e, p.Name, p.New, k, mine[i], baselines[i], opts)
				if err != nil {
					return nil, err
				}
				cell.Runs = append(cell.Runs, *r)
			}
			part.Cells = append(part.Cells, cell)
		}
	}
	return part, nil
}
