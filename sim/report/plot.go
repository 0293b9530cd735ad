package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/kvsim/kvsim/sim"
)

// Plot draws hit rate against budget, one line per policy, like the AUV paper's
// Fig. 5/6, into a .png, .svg or .pdf file (atomically). Budgets are on the x axis as a
// percentage of the prompt when all of them are fractions, else as tokens. Failed
// cells leave gaps.
func Plot(path string, r *sim.Result) error {
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
	if ext != "png" && ext != "svg" && ext != "pdf" {
		return fmt.Errorf("plot %s: want a .png, .svg or .pdf file", path)
	}
	p := plot.New()
	p.Title.Text = "Hit rate vs budget"
	if strings.Contains(r.Source, "synthetic") {
		p.Title.Text += " (synthetic traces, not OPT measurements)"
	}
	p.Y.Label.Text = "hit rate (share of full-cache attention kept)"
	p.Y.Min, p.Y.Max = 0, 1
	fractions := true
	for _, b := range r.BudgetSpecs {
		fractions = fractions && b.Tokens == 0
	}
	if fractions {
		p.X.Label.Text = "budget (% of prompt)"
	} else {
		p.X.Label.Text = "budget (tokens, mean over samples)"
	}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	for i, name := range r.Policies {
		var pts plotter.XYs
		for j := range r.Budgets {
			c := r.Cell(i, j)
			if c.Failed != "" {
				continue
			}
			x := c.BudgetTokens
			if fractions {
				x = 100 * r.BudgetSpecs[j].Fraction
			}
			pts = append(pts, plotter.XY{X: x, Y: c.HitRate})
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", path, err)
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i / 7)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(name, line, points)
	}
	writer, err := p.WriterTo(7*vg.Inch, 4.5*vg.Inch, ext)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return writeAtomic(path, func(f *os.File) error {
		_, err := writer.WriteTo(f)
		return err
	})
}
