// Package report renders replay results as terminal tables, CSV, JSON or Markdown
// and plots them, writes result files atomically, and reads a JSON result back.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/kvsim/kvsim/internal/atomicfile"
	"github.com/kvsim/kvsim/internal/render"
	"github.com/kvsim/kvsim/internal/stats"
	"github.com/kvsim/kvsim/sim"
)

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
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(render.Formats, ", "))
}

// WriteFile renders r into path atomically.
func WriteFile(path string, r *sim.Result, format string) error {
	return atomicfile.Write(path, func(w io.Writer) error { return Write(w, r, format) })
}

// ReadResult reads a replay result written with -format json.
func ReadResult(path string) (*sim.Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("replay result: %w", err)
	}
	var r sim.Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("replay result %s: %w", path, err)
	}
	if len(r.Cells) != len(r.Policies)*len(r.Budgets) {
		return nil, fmt.Errorf("replay result %s: %d cells for %d policies × %d budgets", path, len(r.Cells), len(r.Policies), len(r.Budgets))
	}
	return &r, nil
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

// AccountingNote says what the budgets bound, naming the policies that override the
// scenario's mode.
func AccountingNote(r *sim.Result) string {
	var note string
	switch r.Accounting {
	case "nominal":
		note = "accounting nominal: a budget is the tokens a head keeps between steps; the incoming token, multi-step slack and the compensation slot come on top"
	case "peak":
		note = "accounting peak: a budget caps the KV entries a head holds while attending (the incoming token and the compensation slot count)"
	case "mean":
		note = "accounting mean: each policy's nominal budget is searched so that its mean resident KV entries match the budget within one"
	default:
		note = "accounting " + r.Accounting
	}
	var overrides []string
	for i, p := range r.Policies {
		if len(r.Budgets) > 0 {
			if a := r.Cell(i, 0).Accounting; a != "" && a != r.Accounting {
				overrides = append(overrides, p+": "+a)
			}
		}
	}
	if len(overrides) > 0 {
		note += " (overridden: " + strings.Join(overrides, ", ") + ")"
	}
	return note
}

func writeTables(w io.Writer, r *sim.Result, markdown bool) error {
	heading := func(s string) { render.Heading(w, markdown, s) }
	heading(fmt.Sprintf("Hit rate (%%, mean ±95%% CI over %d samples): share of full-cache attention on resident tokens — %s — %s",
		r.Samples, AccountingNote(r), Caption(r)))
	var rows [][]string
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
			row = append(row, withCI(c.HitRate, c.CI.HitRate))
		}
		rows = append(rows, row)
	}
	if err := render.WriteTable(w, append([]string{"policy"}, r.Budgets...), rows, markdown, 1); err != nil {
		return err
	}
	if len(failures) > 0 {
		fmt.Fprintln(w)
	}
	for _, f := range failures {
		fmt.Fprintf(w, "FAILED %s\n", f)
	}
	if r.Compare != "" {
		if err := writeDiffs(w, r, markdown, heading); err != nil {
			return err
		}
	}

	heading(fmt.Sprintf("Other metrics (top-%d hit rate and output error = relative L2 of the attention output, mean ±95%% CI; "+
		"B = the budget in tokens, nominal = the budget the policy was given; resident = KV entries per head while attending; "+
		"KV/seq = bytes of one sequence's cache, all layers and heads, fp16 keys and values plus declared policy state) — %s",
		r.TopK, AccountingNote(r)))
	header := []string{"policy", "budget", "B", "nominal", fmt.Sprintf("top-%d hit", r.TopK), "output err", "evicted/head",
		"peak resident", "mean resident", "peak KV/seq", "mean KV/seq", "policy ns/(head·step)", "host ns/(head·step)"}
	rows = rows[:0]
	for i, p := range r.Policies {
		for j := range r.Budgets {
			c := r.Cell(i, j)
			if c.Failed != "" {
				rows = append(rows, []string{p, c.Budget, num(c.BudgetTokens, 1), "", "FAILED", "", "", "", "", "", "", "", ""})
				continue
			}
			outErr := "n/a (no V)"
			if r.HasV {
				outErr = numCI(c.OutputError, c.CI.OutputError, 4)
			}
			row := []string{p, c.Budget, num(c.BudgetTokens, 1), num(c.NominalTokens, 1), withCI(c.TopKHitRate, c.CI.TopKHitRate), outErr,
				num(c.Evictions, 1), num(c.PeakResident, 0), num(c.MeanResident, 1), Bytes(c.PeakKVBytes), Bytes(c.MeanKVBytes), num(c.PolicyNs, 0), num(c.HostNs, 0)}
			rows = append(rows, row)
		}
	}
	return render.WriteTable(w, header, rows, markdown, 2)
}

// writeDiffs prints each policy's paired difference from the reference policy.
func writeDiffs(w io.Writer, r *sim.Result, markdown bool, heading func(string)) error {
	heading(fmt.Sprintf("Hit rate minus %s's (percentage points, paired by sample, mean ±95%% CI; * = the interval excludes zero; policies that evicted nothing left out) — %s",
		r.Compare, AccountingNote(r)))
	var rows [][]string
	for i, p := range r.Policies {
		if p == r.Compare || keptEverything(r, i) {
			continue
		}
		row := []string{p}
		for j := range r.Budgets {
			row = append(row, diffCell(r.Cell(i, j).Diff))
		}
		rows = append(rows, row)
	}
	return render.WriteTable(w, append([]string{"policy"}, r.Budgets...), rows, markdown, 1)
}

// keptEverything reports whether policy i evicted nothing at any budget (the full
// cache): its difference only restates the reference's loss, so the table leaves
// it out (the JSON keeps it).
func keptEverything(r *sim.Result, i int) bool {
	for j := range r.Budgets {
		if c := r.Cell(i, j); c.Failed != "" || c.Evictions > 0 {
			return false
		}
	}
	return true
}

// diffCell renders a hit-rate difference in points: "+0.19 ±0.05 *".
func diffCell(d *sim.Diff) string {
	if d == nil {
		return "-"
	}
	iv := d.HitRate
	s := strconv.FormatFloat(100*iv.Mean, 'f', 2, 64)
	if iv.Mean >= 0 {
		s = "+" + s
	}
	if h := iv.HalfWidth(); !math.IsNaN(h) {
		s += " ±" + strconv.FormatFloat(100*h, 'f', 2, 64)
		if iv.ExcludesZero() {
			s += " *"
		}
	}
	return s
}

// withCI renders a share in percent with its interval's half-width: "43.82 ±0.61".
func withCI(x float64, iv stats.Interval) string {
	s := strconv.FormatFloat(100*x, 'f', 2, 64)
	if h := iv.HalfWidth(); !math.IsNaN(h) {
		s += " ±" + strconv.FormatFloat(100*h, 'f', 2, 64)
	}
	return s
}

// numCI renders a number with its interval's half-width.
func numCI(x float64, iv stats.Interval, prec int) string {
	s := num(x, prec)
	if h := iv.HalfWidth(); !math.IsNaN(h) {
		s += " ±" + num(h, prec)
	}
	return s
}

// Bytes renders a byte count in binary units: "1.5 MiB".
func Bytes(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	prec := 1
	if i == 0 {
		prec = 0
	}
	return strconv.FormatFloat(b, 'f', prec, 64) + " " + units[i]
}

func writeCSV(w io.Writer, r *sim.Result) error {
	cw := csv.NewWriter(w)
	header := []string{"source", "policy", "budget", "budget_tokens", "failed", "hit_rate", "topk_hit_rate", "output_error",
		"evictions_per_head", "peak_resident", "mean_resident", "policy_ns_per_head_step", "host_ns_per_head_step",
		"accounting", "nominal_tokens", "peak_kv_bytes", "mean_kv_bytes", "state_bytes_per_token", "samples"}
	for _, m := range []string{"hit_rate", "topk_hit_rate", "output_error"} {
		header = append(header, m+"_lo", m+"_hi")
	}
	header = append(header, "reference")
	for _, m := range []string{"hit_rate", "topk_hit_rate", "output_error"} {
		header = append(header, "diff_"+m, "diff_"+m+"_lo", "diff_"+m+"_hi")
	}
	cw.Write(header)
	for _, c := range r.Cells {
		outErr := ""
		if r.HasV && c.Failed == "" {
			outErr = num(c.OutputError, 6)
		}
		row := []string{r.Source, c.Policy, c.Budget, num(c.BudgetTokens, 2), c.Failed, num(c.HitRate, 6), num(c.TopKHitRate, 6),
			outErr, num(c.Evictions, 2), num(c.PeakResident, 0), num(c.MeanResident, 2), num(c.PolicyNs, 1), num(c.HostNs, 1),
			c.Accounting, num(c.NominalTokens, 2), num(c.PeakKVBytes, 0), num(c.MeanKVBytes, 0), strconv.Itoa(c.StateBytesPerToken),
			strconv.Itoa(len(c.Samples))}
		for _, iv := range []stats.Interval{c.CI.HitRate, c.CI.TopKHitRate, c.CI.OutputError} {
			row = append(row, bound(iv.Lo), bound(iv.Hi))
		}
		if c.Diff == nil {
			row = append(row, "", "", "", "", "", "", "", "", "", "")
		} else {
			row = append(row, c.Diff.Reference)
			for _, d := range []stats.Interval{c.Diff.HitRate, c.Diff.TopKHitRate, c.Diff.OutputError} {
				row = append(row, bound(d.Mean), bound(d.Lo), bound(d.Hi))
			}
		}
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

// bound renders an interval bound for CSV, empty when undefined.
func bound(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return num(x, 6)
}

func num(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }
