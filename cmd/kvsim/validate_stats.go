package main

import (
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim/rank"
	"github.com/kvsim/kvsim/sim/report"
	"github.com/kvsim/kvsim/sim/stats"
)

// tauBootstrapReps is the bootstrap replicates behind each Kendall τ interval.
const tauBootstrapReps = 2000

// validationDiff is a cell's paired difference from the reference policy's cell at
// the same budget, per metric: mean over samples of (this − reference), with its
// Student-t interval.
type validationDiff struct {
	Reference string                    `json:"reference"`
	Metrics   map[string]stats.Interval `json:"metrics"`
}

// sampleValue is one sample's value of a validated metric; false when undefined
// (NLL of an empty full-cache output).
func sampleValue(name string, s *validate.SampleMetrics) (float64, bool) {
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
func cellIntervals(c *validate.Cell) map[string]stats.Interval {
	if len(c.PerSample) == 0 {
		return nil
	}
	out := map[string]stats.Interval{}
	for _, m := range metrics {
		var xs []float64
		for i := range c.PerSample {
			if x, ok := sampleValue(m.name, &c.PerSample[i]); ok {
				xs = append(xs, x)
			}
		}
		out[m.name] = stats.MeanCI(xs)
	}
	return out
}

// pairedDiff is c − ref per metric, paired by sample; nil unless both cells hold the
// same number of samples.
func pairedDiff(c, ref *validate.Cell, name string) *validationDiff {
	if len(c.PerSample) == 0 || len(c.PerSample) != len(ref.PerSample) {
		return nil
	}
	d := &validationDiff{Reference: name, Metrics: map[string]stats.Interval{}}
	for _, m := range metrics {
		var a, b []float64
		for i := range c.PerSample {
			x, ok1 := sampleValue(m.name, &c.PerSample[i])
			y, ok2 := sampleValue(m.name, &ref.PerSample[i])
			if ok1 && ok2 {
				a, b = append(a, x), append(b, y)
			}
		}
		d.Metrics[m.name] = stats.PairedCI(a, b)
	}
	return d
}

// addIntervals fills each cell's intervals and, with a reference policy, its paired
// differences from the reference's cell at the same budget.
func addIntervals(res *validation) {
	refs := map[host.Budget]*validate.Cell{}
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
func tauInterval(hit []float64, cells []*validate.Cell, name string, seed uint64) *stats.Interval {
	n := len(cells[0].PerSample)
	for _, c := range cells {
		if len(c.PerSample) != n || n < 2 {
			return nil
		}
	}
	y := make([]float64, len(cells))
	iv := stats.Bootstrap(n, tauBootstrapReps, seed, func(idx []int) float64 {
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

// writeIntervals prints the quality metrics with their intervals and, with a
// reference policy, the paired differences.
func writeIntervals(w io.Writer, res *validation, markdown bool) error {
	names := []string{"rougeL_ref", "rougeL_full", "agreement", "nll"}
	header := []string{"policy", "budget", "accounting", "nominal"}
	header = append(header, names...)
	var rows [][]string
	samples := 0
	for i := range res.Cells {
		c := &res.Cells[i]
		if c.CI == nil {
			continue
		}
		samples = max(samples, c.Samples)
		row := []string{c.Policy, c.Budget, accountingOf(&c.Cell), strconv.FormatFloat(c.NominalTokens, 'f', 1, 64)}
		for _, m := range names {
			row = append(row, formatInterval(c.CI[m], false))
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil
	}
	heading(w, markdown, fmt.Sprintf("Quality, mean ±95%% CI over %d samples (Student t; NLL: lower is better)", samples))
	if err := report.WriteTable(w, header, rows, markdown, 3); err != nil {
		return err
	}
	if res.Compare == "" {
		return nil
	}
	rows = rows[:0]
	for i := range res.Cells {
		c := &res.Cells[i]
		if c.Diff == nil {
			continue
		}
		row := []string{c.Policy, c.Budget, accountingOf(&c.Cell), strconv.FormatFloat(c.NominalTokens, 'f', 1, 64)}
		for _, m := range names {
			row = append(row, formatInterval(c.Diff.Metrics[m], true))
		}
		rows = append(rows, row)
	}
	heading(w, markdown, fmt.Sprintf("Minus %s at the same budget, paired by sample (mean ±95%% CI; * = the interval excludes zero)", res.Compare))
	if len(rows) == 0 {
		fmt.Fprintf(w, "none: %s was not validated at these budgets\n", res.Compare)
		return nil
	}
	return report.WriteTable(w, header, rows, markdown, 3)
}

// accountingOf names a cell's accounting; cells from older state files were nominal.
func accountingOf(c *validate.Cell) string {
	if c.Accounting == "" {
		return "nominal"
	}
	return c.Accounting
}

// formatInterval renders "0.4123 ±0.0210", signed and starred when a difference.
func formatInterval(iv stats.Interval, diff bool) string {
	if math.IsNaN(iv.Mean) {
		return "-"
	}
	s := strconv.FormatFloat(iv.Mean, 'f', 4, 64)
	if diff && iv.Mean >= 0 {
		s = "+" + s
	}
	if h := iv.HalfWidth(); !math.IsNaN(h) {
		s += " ±" + strconv.FormatFloat(h, 'f', 4, 64)
		if diff && iv.ExcludesZero() {
			s += " *"
		}
	}
	return s
}

func heading(w io.Writer, markdown bool, title string) {
	if markdown {
		fmt.Fprintf(w, "\n**%s**\n\n", title)
	} else {
		fmt.Fprintf(w, "\n%s\n", title)
	}
}

// intervalColumns name the CSV columns of intervalFields.
func intervalColumns() []string {
	var cols []string
	for _, m := range metrics {
		cols = append(cols, m.name+"_lo", m.name+"_hi")
	}
	cols = append(cols, "reference")
	for _, m := range metrics {
		cols = append(cols, "diff_"+m.name, "diff_"+m.name+"_lo", "diff_"+m.name+"_hi")
	}
	return cols
}

// intervalFields are the cell's intervals and differences for CSV; empty where
// undefined.
func (c *validatedCell) intervalFields() []string {
	f := func(x float64) string {
		if math.IsNaN(x) {
			return ""
		}
		return strconv.FormatFloat(x, 'f', 6, 64)
	}
	var out []string
	for _, m := range metrics {
		iv, ok := c.CI[m.name]
		if !ok {
			iv = stats.MeanCI(nil)
		}
		out = append(out, f(iv.Lo), f(iv.Hi))
	}
	if c.Diff == nil {
		out = append(out, "")
		for range metrics {
			out = append(out, "", "", "")
		}
		return out
	}
	out = append(out, c.Diff.Reference)
	for _, m := range metrics {
		d := c.Diff.Metrics[m.name]
		out = append(out, f(d.Mean), f(d.Lo), f(d.Hi))
	}
	return out
}
