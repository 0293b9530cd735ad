package validate

import (
	"math"

	"github.com/kvsim/kvsim/gpu/validate/rank"
	"github.com/kvsim/kvsim/internal/stats"
	"github.com/kvsim/kvsim/policies/host"
)

// Validation is what `kvsim validate` prints: the cells, and how well the simulated
// hit rate ranks them on each metric.
type Validation struct {
	Cells     []ValidatedCell `json:"cells"`
	Agreement []Correlation   `json:"agreement,omitempty"`
	// Compare is the reference policy of the paired differences (ValidatedCell.Diff).
	Compare string `json:"compare,omitempty"`
}

// ValidatedCell is a validated cell with the hit rate replay simulated for it.
type ValidatedCell struct {
	Cell
	// SimulatedHitRate is replay's hit rate for the same policy and budget; absent
	// without a replay result.
	SimulatedHitRate *float64 `json:"simulated_hit_rate,omitempty"`
	// CI holds each metric's 95% interval over samples.
	CI   map[string]stats.Interval `json:"ci,omitempty"`
	Diff *Diff                     `json:"diff,omitempty"`
}

// Correlation is the rank agreement between simulated hit rate and one metric. A
// correlation is null when undefined: when either side is constant over the cells.
type Correlation struct {
	Metric     string   `json:"metric"`
	Cells      int      `json:"cells"`
	KendallTau *float64 `json:"kendall_tau"`
	// KendallTauCI is τ's 95% percentile-bootstrap interval over samples, seeded
	// with the scenario seed; absent when the cells lack per-sample values.
	KendallTauCI *stats.Interval `json:"kendall_tau_ci,omitempty"`
	Spearman     *float64        `json:"spearman_rho"`
}

// defined is x, or nil when x is NaN.
func defined(x float64) *float64 {
	if math.IsNaN(x) {
		return nil
	}
	return &x
}

// Metric is a validated metric, by the name the tables use.
type Metric struct {
	Name string
	Get  func(*Cell) float64
}

// Metrics are the validated Metrics, by the names the tables use; for NLL lower is
// better, which shows as a negative correlation.
var Metrics = []Metric{
	{"rouge1_ref", func(c *Cell) float64 { return c.Rouge1Ref }},
	{"rouge2_ref", func(c *Cell) float64 { return c.Rouge2Ref }},
	{"rougeL_ref", func(c *Cell) float64 { return c.RougeLRef }},
	{"rouge1_full", func(c *Cell) float64 { return c.Rouge1Full }},
	{"rouge2_full", func(c *Cell) float64 { return c.Rouge2Full }},
	{"rougeL_full", func(c *Cell) float64 { return c.RougeLFull }},
	{"agreement", func(c *Cell) float64 { return c.Agreement }},
	{"nll", func(c *Cell) float64 { return c.NLL }},
}

// RankAgreement correlates the simulated hit rate with each metric over the cells
// that have one; none with fewer than two such cells. seed seeds τ's bootstrap.
func RankAgreement(cells []ValidatedCell, seed uint64) []Correlation {
	var hit []float64
	var with []*Cell
	for i := range cells {
		if cells[i].SimulatedHitRate != nil {
			hit = append(hit, *cells[i].SimulatedHitRate)
			with = append(with, &cells[i].Cell)
		}
	}
	if len(with) < 2 {
		return nil
	}
	var out []Correlation
	for _, m := range Metrics {
		y := make([]float64, len(with))
		for i, c := range with {
			y[i] = m.Get(c)
		}
		out = append(out, Correlation{Metric: m.Name, Cells: len(with), KendallTau: defined(rank.KendallTau(hit, y)),
			KendallTauCI: tauInterval(hit, with, m.Name, seed), Spearman: defined(rank.Spearman(hit, y))})
	}
	return out
}

// TauBootstrapReps is the bootstrap replicates behind each Kendall τ interval.
const TauBootstrapReps = 2000

// Diff is a cell's paired difference from the reference policy's cell at
// the same budget, per metric: mean over samples of (this − reference), with its
// Student-t interval.
type Diff struct {
	Reference string                    `json:"reference"`
	Metrics   map[string]stats.Interval `json:"metrics"`
}

// sampleValue is one sample's value of a validated metric; false when undefined
// (NLL of an empty full-cache output).
func sampleValue(name string, s *SampleMetrics) (float64, bool) {
	switch name {
	case "rouge1_ref":
		return s.Rouge1Ref, true
	case "rouge2_ref":
		return s.Rouge2Ref, true
	case "rougeL_ref":
		return s.RougeLRef, true
	case "rouge1_full":
		return s.Rouge1Full, true
	case "rouge2_full":
		return s.Rouge2Full, true
	case "rougeL_full":
		return s.RougeLFull, true
	case "agreement":
		return s.Agreement, true
	case "nll":
		if s.NLL != nil {
			return *s.NLL, true
		}
	}
	return 0, false
}

// cellIntervals are a cell's 95% intervals over samples, per metric; nil for a cell
// without per-sample values (from a state file older than them).
func cellIntervals(c *Cell) map[string]stats.Interval {
	if len(c.PerSample) == 0 {
		return nil
	}
	out := map[string]stats.Interval{}
	for _, m := range Metrics {
		var xs []float64
		for i := range c.PerSample {
			if x, ok := sampleValue(m.Name, &c.PerSample[i]); ok {
				xs = append(xs, x)
			}
		}
		out[m.Name] = stats.MeanCI(xs)
	}
	return out
}

// pairedDiff is c − ref per metric, paired by sample; nil unless both cells hold the
// same number of samples.
func pairedDiff(c, ref *Cell, name string) *Diff {
	if len(c.PerSample) == 0 || len(c.PerSample) != len(ref.PerSample) {
		return nil
	}
	d := &Diff{Reference: name, Metrics: map[string]stats.Interval{}}
	for _, m := range Metrics {
		var a, b []float64
		for i := range c.PerSample {
			x, ok1 := sampleValue(m.Name, &c.PerSample[i])
			y, ok2 := sampleValue(m.Name, &ref.PerSample[i])
			if ok1 && ok2 {
				a, b = append(a, x), append(b, y)
			}
		}
		d.Metrics[m.Name] = stats.PairedCI(a, b)
	}
	return d
}

// AddIntervals fills each cell's intervals and, with a reference policy, its paired
// differences from the reference's cell at the same budget.
func AddIntervals(res *Validation) {
	refs := map[host.Budget]*Cell{}
	for i := range res.Cells {
		c := &res.Cells[i]
		c.CI = cellIntervals(&c.Cell)
		if c.Policy == res.Compare {
			refs[c.BudgetSpec] = &c.Cell
		}
	}
	for i := range res.Cells {
		c := &res.Cells[i]
		if ref := refs[c.BudgetSpec]; ref != nil && c.Policy != res.Compare {
			c.Diff = pairedDiff(&c.Cell, ref, res.Compare)
		}
	}
}

// tauInterval is the percentile-bootstrap interval of Kendall τ between the
// simulated hit rates and a metric over the cells, resampling samples: each
// replicate draws samples with replacement, averages each cell's metric over them
// and correlates. nil unless every cell holds the same samples.
func tauInterval(hit []float64, cells []*Cell, name string, seed uint64) *stats.Interval {
	n := len(cells[0].PerSample)
	for _, c := range cells {
		if len(c.PerSample) != n || n < 2 {
			return nil
		}
	}
	y := make([]float64, len(cells))
	iv := stats.Bootstrap(n, TauBootstrapReps, seed, func(idx []int) float64 {
		for k, c := range cells {
			var sum float64
			var count int
			for _, i := range idx {
				if x, ok := sampleValue(name, &c.PerSample[i]); ok {
					sum += x
					count++
				}
			}
			if count == 0 {
				return math.NaN()
			}
			y[k] = sum / float64(count)
		}
		return rank.KendallTau(hit, y)
	})
	if math.IsNaN(iv.Lo) {
		return nil
	}
	return &iv
}

// AccountingOf names a cell's accounting; cells from older state files were nominal.
func AccountingOf(c *Cell) string {
	if c.Accounting == "" {
		return "nominal"
	}
	return c.Accounting
}
