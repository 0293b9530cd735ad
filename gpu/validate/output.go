package validate

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/kvsim/kvsim/internal/render"
	"github.com/kvsim/kvsim/internal/stats"
)

// Finish adds to res's cells the rank agreement of the simulated hit rate with
// each metric (τ's bootstrap seeded by seed) and the intervals and differences.
func Finish(res *Validation, seed uint64) {
	res.Agreement = RankAgreement(res.Cells, seed)
	AddIntervals(res)
}

// columns are the table's columns, after policy and budget.
var columns = []string{"sim hit", "R-1 ref", "R-2 ref", "R-L ref", "R-1 full", "R-2 full", "R-L full",
	"agree", "NLL", "tok/s", "policy µs/tok", "slots µs/tok", "evict %", "peak KV MiB"}

func cellRow(c *ValidatedCell) []string {
	f := func(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }
	hit := "-"
	if c.SimulatedHitRate != nil {
		hit = f(100**c.SimulatedHitRate, 2) + "%"
	}
	return []string{c.Policy, c.Budget, hit, f(c.Rouge1Ref, 4), f(c.Rouge2Ref, 4), f(c.RougeLRef, 4),
		f(c.Rouge1Full, 4), f(c.Rouge2Full, 4), f(c.RougeLFull, 4), f(c.Agreement, 4), f(c.NLL, 4),
		f(c.TokensPerSecond, 1), f(c.PolicyMicrosPerToken, 1), f(c.SlotMicrosPerToken, 1), f(100*c.EvictionShare, 2),
		f(float64(c.PeakKVBytes)/(1<<20), 3)}
}

// Write renders res as a table, CSV, JSON or Markdown.
func Write(w io.Writer, res *Validation, format string) error {
	header := append([]string{"policy", "budget"}, columns...)
	rows := make([][]string, len(res.Cells))
	for i := range res.Cells {
		rows[i] = cellRow(&res.Cells[i])
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(append(header, intervalColumns()...))
		for i := range rows {
			cw.Write(append(rows[i], intervalFields(&res.Cells[i])...))
		}
		cw.Flush()
		return cw.Error()
	}
	markdown := format == "markdown"
	if err := render.WriteTable(w, header, rows, markdown, 2); err != nil {
		return err
	}
	if err := writeIntervals(w, res, markdown); err != nil {
		return err
	}
	if len(res.Agreement) == 0 {
		return nil
	}
	render.Heading(w, markdown, fmt.Sprintf("Simulated hit rate against each validated metric, over %d cells (NLL: lower is better, so a good ranking shows negative; "+
		"τ's 95%% CI: percentile bootstrap over samples, %d replicates)", res.Agreement[0].Cells, TauBootstrapReps))
	rows = rows[:0]
	for _, a := range res.Agreement {
		ci := "-"
		if a.KendallTauCI != nil {
			ci = fmt.Sprintf("[%.3f, %.3f]", a.KendallTauCI.Lo, a.KendallTauCI.Hi)
		}
		rows = append(rows, []string{a.Metric, formatCorrelation(a.KendallTau), ci, formatCorrelation(a.Spearman)})
	}
	return render.WriteTable(w, []string{"metric", "Kendall τ", "τ 95% CI", "Spearman ρ"}, rows, markdown, 1)
}

// writeIntervals prints the quality metrics with their intervals and, with a
// reference policy, the paired differences.
func writeIntervals(w io.Writer, res *Validation, markdown bool) error {
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
		row := []string{c.Policy, c.Budget, AccountingOf(&c.Cell), strconv.FormatFloat(c.NominalTokens, 'f', 1, 64)}
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
		row := []string{c.Policy, c.Budget, AccountingOf(&c.Cell), strconv.FormatFloat(c.NominalTokens, 'f', 1, 64)}
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
	for _, m := range Metrics {
		cols = append(cols, m.Name+"_lo", m.Name+"_hi")
	}
	cols = append(cols, "reference")
	for _, m := range Metrics {
		cols = append(cols, "diff_"+m.Name, "diff_"+m.Name+"_lo", "diff_"+m.Name+"_hi")
	}
	return cols
}

// intervalFields are the cell's intervals and differences for CSV; empty where
// undefined.
func intervalFields(c *ValidatedCell) []string {
	f := func(x float64) string {
		if math.IsNaN(x) {
			return ""
		}
		return strconv.FormatFloat(x, 'f', 6, 64)
	}
	var out []string
	for _, m := range Metrics {
		iv, ok := c.CI[m.Name]
		if !ok {
			iv = stats.MeanCI(nil)
		}
		out = append(out, f(iv.Lo), f(iv.Hi))
	}
	if c.Diff == nil {
		out = append(out, "")
		for range Metrics {
			out = append(out, "", "", "")
		}
		return out
	}
	out = append(out, c.Diff.Reference)
	for _, m := range Metrics {
		d := c.Diff.Metrics[m.Name]
		out = append(out, f(d.Mean), f(d.Lo), f(d.Hi))
	}
	return out
}

// formatCorrelation prints a correlation, "-" when undefined.
func formatCorrelation(x *float64) string {
	if x == nil {
		return "-"
	}
	return strconv.FormatFloat(*x, 'f', 3, 64)
}

// Plot draws validated metrics into a .png, .svg or .pdf file (atomically), one
// panel each and one line per policy over its budgets, against the simulated hit
// rate when every cell has one (a simulator that ranks right makes rising lines,
// falling for NLL), else against the budget in tokens.
func Plot(path string, res *Validation) error {
	bySimulation := true
	for i := range res.Cells {
		bySimulation = bySimulation && res.Cells[i].SimulatedHitRate != nil
	}
	xLabel := "budget (tokens, mean over samples)"
	if bySimulation {
		xLabel = "simulated hit rate"
	}
	var f render.Figure
	for _, m := range []struct{ name, title string }{
		{"rougeL_full", "ROUGE-L F1 against the full-cache output"},
		{"agreement", "share of full-cache tokens before the first divergence"},
		{"nll", "teacher-forced NLL of the full-cache output (lower is better)"},
		{"rougeL_ref", "ROUGE-L F1 against the references"},
	} {
		get := Metrics[slices.IndexFunc(Metrics, func(x Metric) bool { return x.Name == m.name })].Get
		panel := render.Panel{Title: m.title, XLabel: xLabel, YLabel: m.name}
		for i := range res.Cells {
			c := &res.Cells[i]
			x := c.BudgetTokens
			if bySimulation {
				x = *c.SimulatedHitRate
			}
			k := slices.IndexFunc(panel.Series, func(s render.Series) bool { return s.Name == c.Policy })
			if k < 0 {
				k = len(panel.Series)
				panel.Series = append(panel.Series, render.Series{Name: c.Policy})
			}
			panel.Series[k].Points = append(panel.Series[k].Points, render.Point{X: x, Y: get(&c.Cell)})
		}
		for _, s := range panel.Series {
			slices.SortStableFunc(s.Points, func(a, b render.Point) int { return cmp.Compare(a.X, b.X) })
		}
		f.Panels = append(f.Panels, panel)
	}
	return render.PlotFigure(path, f)
}
