package report

import (
	"cmp"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kvsim/kvsim/internal/render"
	"github.com/kvsim/kvsim/sim"
)

// Plot draws hit rate against budget, one line per policy with its 95% confidence
// band, like the AUV paper's Fig. 5/6, into a .png, .svg or .pdf file (atomically).
// Budgets are on the x axis as a percentage of the prompt when all of them are
// fractions, else as tokens. Failed cells leave gaps.
func Plot(path string, r *sim.Result) error {
	panel := render.Panel{Title: "Hit rate vs budget, " + r.Accounting + " accounting (bands: 95% CI over samples)",
		YLabel: "hit rate (share of full-cache attention kept)", YMax: 1}
	if strings.Contains(r.Source, "synthetic") {
		panel.Title += "\nsynthetic traces, not OPT measurements"
	}
	fractions := true
	for _, b := range r.BudgetSpecs {
		fractions = fractions && b.Tokens == 0
	}
	if fractions {
		panel.XLabel = "budget (% of prompt)"
	} else {
		panel.XLabel = "budget (tokens, mean over samples)"
	}
	for i, name := range r.Policies {
		s := render.Series{Name: name, Band: true}
		for j := range r.Budgets {
			c := r.Cell(i, j)
			if c.Failed != "" {
				continue
			}
			x := c.BudgetTokens
			if fractions {
				x = 100 * r.BudgetSpecs[j].Fraction
			}
			half := c.CI.HitRate.HalfWidth()
			s.Points = append(s.Points, render.Point{X: x, Y: c.HitRate, Lo: c.HitRate - half, Hi: c.HitRate + half})
		}
		panel.Series = append(panel.Series, s)
	}
	return render.PlotFigure(path, render.Figure{Panels: []render.Panel{panel}})
}

// FrontierPath is where Plot's companion figure goes: FILE.svg → FILE-frontier.svg.
func FrontierPath(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-frontier" + ext
}

// PlotFrontier draws quality against memory: hit rate (and output error, when the
// traces carry V) against the mean KV bytes a sequence held, one line per policy
// through its budgets, on a log axis. Points no other cell beats with less or
// equal memory are ringed: the memory–quality frontier. Cells that evicted nothing
// (the full cache) are left out: they would only stretch the memory axis.
func PlotFrontier(path string, r *sim.Result) error {
	unit, scale := "MiB", float64(1<<20)
	smallest := math.Inf(1)
	drawn := func(c *sim.Cell) bool { return c.Failed == "" && c.MeanKVBytes > 0 && c.Evictions > 0 }
	for i := range r.Cells {
		if drawn(&r.Cells[i]) {
			smallest = min(smallest, r.Cells[i].MeanKVBytes)
		}
	}
	if smallest < 1<<20 {
		unit, scale = "KiB", 1<<10
	}
	xLabel := fmt.Sprintf("mean KV memory per sequence (%s, log scale)", unit)
	note := "\n" + r.Accounting + " accounting; fp16 K and V of all layers and heads; ringed: no cell is better with as little memory" +
		"\nthe full cache (nothing evicted) is left out"
	if strings.Contains(r.Source, "synthetic") {
		note += "\nsynthetic traces, not OPT measurements"
	}
	metrics := []struct {
		title, label string
		get          func(*sim.Cell) float64
		higherBetter bool
	}{
		{"Hit rate vs memory", "hit rate (share of full-cache attention kept)", func(c *sim.Cell) float64 { return c.HitRate }, true},
	}
	if r.HasV {
		metrics = append(metrics, struct {
			title, label string
			get          func(*sim.Cell) float64
			higherBetter bool
		}{"Output error vs memory (lower is better)", "output error (relative L2 of the attention output)", func(c *sim.Cell) float64 { return c.OutputError }, false})
	}
	var f render.Figure
	f.Columns = 1
	for _, m := range metrics {
		panel := render.Panel{Title: m.title + note, XLabel: xLabel, YLabel: m.label, LogX: true, MarksName: "frontier"}
		var all []render.Point
		for i, name := range r.Policies {
			s := render.Series{Name: name}
			for j := range r.Budgets {
				c := r.Cell(i, j)
				if drawn(c) {
					s.Points = append(s.Points, render.Point{X: c.MeanKVBytes / scale, Y: m.get(c)})
				}
			}
			slices.SortStableFunc(s.Points, func(a, b render.Point) int { return cmp.Compare(a.X, b.X) })
			all = append(all, s.Points...)
			panel.Series = append(panel.Series, s)
		}
		panel.Marks = render.Frontier(all, m.higherBetter)
		f.Panels = append(f.Panels, panel)
	}
	return render.PlotFigure(path, f)
}
