// Package report renders replay results as terminal tables, CSV, JSON or Markdown, and
// writes result files atomically.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/atomicfile"
)

// Formats lists the output formats.
var Formats = []string{"table", "csv", "json", "markdown"}

// Write renders r in format.
func Write(w io.Writer, r *sim.Result, format string) error {
	switch format {
	case "table", "":
		return writeTables(w, r, false)
	case "markdown":
		return writeTables(w, r, true)
	case "csv":
		return writeCSV(w, r)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

// WriteFile renders r into path atomically.
func WriteFile(path string, r *sim.Result, format string) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Write(w, r, format) })
}

// Caption describes where the numbers come from; synthetic traces say so loudly.
func Caption(r *sim.Result) string {
	src := "source=" + r.Source
	if strings.Contains(r.Source, "synthetic") {
		src += " (synthetic traces: not OPT measurements)"
	}
	return fmt.Sprintf("%s; models %s; %d samples × %d layers; mean prompt %.0f, generated %.0f tokens",
		src, strings.Join(r.Models, ","), r.Samples, r.Layers, r.Prompt, r.Gen)
}

// newTable makes a table whose first textColumns columns are labels, aligned left,
// and whose others are numbers, aligned right.
func newTable(w io.Writer, markdown bool, textColumns int) *tablewriter.Table {
	align := make([]tw.Align, textColumns)
	for i := range align {
		align[i] = tw.AlignLeft
	}
	opts := []tablewriter.Option{
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{Global: tw.AlignRight, PerColumn: align}),
		tablewriter.WithHeaderAlignment(tw.AlignCenter),
	}
	if markdown {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
	} else {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{Symbols: tw.NewSymbols(tw.StyleASCII)})))
	}
	return tablewriter.NewTable(w, opts...)
}

// WriteTable renders rows under header as an ASCII table, or a Markdown one, in
// the style of replay's tables: the first textColumns columns are labels, aligned
// left, and the others numbers, aligned right.
func WriteTable(w io.Writer, header []string, rows [][]string, markdown bool, textColumns int) error {
	t := newTable(w, markdown, textColumns)
	t.Header(header)
	for _, row := range rows {
		if err := t.Append(row); err != nil {
			return err
		}
	}
	return t.Render()
}

func writeTables(w io.Writer, r *sim.Result, markdown bool) error {
	heading := func(s string) {
		if markdown {
			fmt.Fprintf(w, "\n**%s**\n\n", s)
		} else {
			fmt.Fprintf(w, "\n%s\n", s)
		}
	}
	heading("Hit rate: share of full-cache attention on resident tokens — " + Caption(r))
	t := newTable(w, markdown, 1)
	t.Header(append([]string{"policy"}, r.Budgets...))
	var failures []string
	for i, p := range r.Policies {
		row := []string{p}
		for j := range r.Budgets {
			c := r.Cell(i, j)
			if c.Failed != "" {
				row = append(row, "FAILED")
				failures = append(failures, fmt.Sprintf("%s @ %s: %s", p, c.Budget, c.Failed))
				continue
			}
			row = append(row, pct(c.HitRate))
		}
		if err := t.Append(row); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if len(failures) > 0 {
		fmt.Fprintln(w)
	}
	for _, f := range failures {
		fmt.Fprintf(w, "FAILED %s\n", f)
	}

	heading(fmt.Sprintf("Other metrics (top-%d hit rate; output error = relative L2 of the attention output; resident = KV entries per head while attending)", r.TopK))
	t = newTable(w, markdown, 2)
	t.Header("policy", "budget", "tokens", fmt.Sprintf("top-%d hit", r.TopK), "output err", "evicted/head", "peak resident", "mean resident", "policy ns/(head·step)")
	for i, p := range r.Policies {
		for j := range r.Budgets {
			c := r.Cell(i, j)
			if c.Failed != "" {
				if err := t.Append([]string{p, c.Budget, num(c.BudgetTokens, 1), "FAILED", "", "", "", "", ""}); err != nil {
					return err
				}
				continue
			}
			outErr := "n/a (no V)"
			if r.HasV {
				outErr = num(c.OutputError, 4)
			}
			row := []string{p, c.Budget, num(c.BudgetTokens, 1), pct(c.TopKHitRate), outErr,
				num(c.Evictions, 1), num(c.PeakResident, 0), num(c.MeanResident, 1), num(c.PolicyNs, 0)}
			if err := t.Append(row); err != nil {
				return err
			}
		}
	}
	return t.Render()
}

func writeCSV(w io.Writer, r *sim.Result) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"source", "policy", "budget", "budget_tokens", "failed", "hit_rate", "topk_hit_rate", "output_error",
		"evictions_per_head", "peak_resident", "mean_resident", "policy_ns_per_head_step"})
	for _, c := range r.Cells {
		outErr := ""
		if r.HasV && c.Failed == "" {
			outErr = num(c.OutputError, 6)
		}
		cw.Write([]string{r.Source, c.Policy, c.Budget, num(c.BudgetTokens, 2), c.Failed, num(c.HitRate, 6), num(c.TopKHitRate, 6),
			outErr, num(c.Evictions, 2), num(c.PeakResident, 0), num(c.MeanResident, 2), num(c.PolicyNs, 1)})
	}
	cw.Flush()
	return cw.Error()
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 2, 64) + "%" }

func num(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }
