package main

import (
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/internal/render"
	"github.com/kvsim/kvsim/internal/stats"
)

// writeIntervals prints the quality metrics with their intervals and, with a
// reference policy, the paired differences.
func writeIntervals(w io.Writer, res *validate.Validation, markdown bool) error {
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
		row := []string{c.Policy, c.Budget, validate.AccountingOf(&c.Cell), strconv.FormatFloat(c.NominalTokens, 'f', 1, 64)}
		for _, m := range names {
			row = append(row, formatInterval(c.CI[m], false))
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil
	}
	render.Heading(w, markdown, fmt.Sprintf("Quality, mean ±95%% CI over %d samples (Student t; NLL: lower is better)", samples))
	if err := render.WriteTable(w, header, rows, markdown, 3); err != nil {
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
		row := []string{c.Policy, c.Budget, validate.AccountingOf(&c.Cell), strconv.FormatFloat(c.NominalTokens, 'f', 1, 64)}
		for _, m := range names {
			row = append(row, formatInterval(c.Diff.Metrics[m], true))
		}
		rows = append(rows, row)
	}
	render.Heading(w, markdown, fmt.Sprintf("Minus %s at the same budget, paired by sample (mean ±95%% CI; * = the interval excludes zero)", res.Compare))
	if len(rows) == 0 {
		fmt.Fprintf(w, "none: %s was not validated at these budgets\n", res.Compare)
		return nil
	}
	return render.WriteTable(w, header, rows, markdown, 3)
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

// intervalColumns name the CSV columns of intervalFields.
func intervalColumns() []string {
	var cols []string
	for _, m := range validate.Metrics {
		cols = append(cols, m.Name+"_lo", m.Name+"_hi")
	}
	cols = append(cols, "reference")
	for _, m := range validate.Metrics {
		cols = append(cols, "diff_"+m.Name, "diff_"+m.Name+"_lo", "diff_"+m.Name+"_hi")
	}
	return cols
}

// intervalFields are the cell's intervals and differences for CSV; empty where
// undefined.
func intervalFields(c *validate.ValidatedCell) []string {
	f := func(x float64) string {
		if math.IsNaN(x) {
			return ""
		}
		return strconv.FormatFloat(x, 'f', 6, 64)
	}
	var out []string
	for _, m := range validate.Metrics {
		iv, ok := c.CI[m.Name]
		if !ok {
			iv = stats.MeanCI(nil)
		}
		out = append(out, f(iv.Lo), f(iv.Hi))
	}
	if c.Diff == nil {
		out = append(out, "")
		for range validate.Metrics {
			out = append(out, "", "", "")
		}
		return out
	}
	out = append(out, c.Diff.Reference)
	for _, m := range validate.Metrics {
		d := c.Diff.Metrics[m.Name]
		out = append(out, f(d.Mean), f(d.Lo), f(d.Hi))
	}
	return out
}
