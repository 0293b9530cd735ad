package validate

import (
	"fmt"

	"github.com/kvsim/kvsim/policies/host"
)

// Part is a validation of some of its samples: every cell's runs of those samples.
// MergeParts aggregates the parts that cover every sample once into the cells one
// validation of all samples computes. Its JSON form is kvsim's validate shard.
type Part struct {
	Samples int   `json:"samples"` // in the whole validation
	Covered []int `json:"covered"` // the samples run here, ascending
	// Compare and Seed are the scenario's, for the paired differences and τ's
	// bootstrap that follow the cells.
	Compare string     `json:"compare,omitempty"`
	Seed    uint64     `json:"seed"`
	Cells   []PartCell `json:"cells"`
}

// TotalSamples and CoveredSamples let a shard file (shard.Payload) carry a Part.
func (p *Part) TotalSamples() int     { return p.Samples }
func (p *Part) CoveredSamples() []int { return p.Covered }

// PartCell is one cell's runs of a part's samples.
type PartCell struct {
	Policy     string      `json:"policy"`
	Budget     host.Budget `json:"budget"`
	Accounting string      `json:"accounting"`
	// SimulatedHitRate is replay's hit rate for the cell; nil without one.
	SimulatedHitRate *float64    `json:"simulated_hit_rate"`
	Runs             []SampleRun `json:"runs"` // of Part.Covered, in order
}

// MergedCell is a cell aggregated over every sample, with replay's hit rate.
type MergedCell struct {
	Cell
	SimulatedHitRate *float64
}

// MergeParts aggregates parts that cover every sample exactly once into their
// cells, in the first part's cell order. names label the parts in errors.
func MergeParts(parts []*Part, names []string) ([]MergedCell, error) {
	first := parts[0]
	if first.Samples < 1 || first.Samples > host.MaxSamples {
		return nil, fmt.Errorf("merge: %s: %d samples", names[0], first.Samples)
	}
	owner := make([]int, first.Samples) // part index + 1
	for pi, p := range parts {
		if p.Samples != first.Samples || p.Compare != first.Compare || p.Seed != first.Seed || len(p.Cells) != len(first.Cells) {
			return nil, fmt.Errorf("merge: %s and %s validate differently (samples, compare, seed or cells)", names[0], names[pi])
		}
		for ci, c := range p.Cells {
			f := &first.Cells[ci]
			if c.Policy != f.Policy || c.Budget != f.Budget || c.Accounting != f.Accounting {
				return nil, fmt.Errorf("merge: %s and %s validate different cells: %s @ %s and %s @ %s", names[0], names[pi],
					f.Policy, f.Budget, c.Policy, c.Budget)
			}
			if len(c.Runs) != len(p.Covered) {
				return nil, fmt.Errorf("merge: %s: %s @ %s has %d runs for %d samples", names[pi], c.Policy, c.Budget, len(c.Runs), len(p.Covered))
			}
		}
		for _, k := range p.Covered {
			if k < 0 || k >= first.Samples {
				return nil, fmt.Errorf("merge: %s: sample %d out of range [0, %d)", names[pi], k, first.Samples)
			}
			if o := owner[k]; o != 0 {
				return nil, fmt.Errorf("merge: sample %d is in both %s and %s", k, names[o-1], names[pi])
			}
			owner[k] = pi + 1
		}
	}
	for k, o := range owner {
		if o == 0 {
			return nil, fmt.Errorf("merge: sample %d is in no part", k)
		}
	}
	out := make([]MergedCell, len(first.Cells))
	for ci, f := range first.Cells {
		runs := make([]SampleRun, first.Samples)
		for _, p := range parts {
			for i, k := range p.Covered {
				runs[k] = p.Cells[ci].Runs[i]
			}
		}
		acc, err := host.ParseAccounting(f.Accounting)
		if err != nil {
			return nil, fmt.Errorf("merge: %s: %s @ %s: %w", names[0], f.Policy, f.Budget, err)
		}
		out[ci] = MergedCell{Cell: *Aggregate(f.Policy, CellOptions{Budget: f.Budget, Accounting: acc}, runs), SimulatedHitRate: f.SimulatedHitRate}
	}
	return out, nil
}
