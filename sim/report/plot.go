package report

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/atomicfile"
)

// Figure is a grid of line plots, written by PlotFigure.
type Figure struct {
	Panels []Panel
	// Columns is the panels per row; 0 is 2 (1 for a single panel).
	Columns int
}

// Panel is one plot of a Figure.
type Panel struct {
	Title, XLabel, YLabel string
	// YMin and YMax fix the y range when YMax > YMin.
	YMin, YMax float64
	Series     []Series
}

// Series is one line: its points joined in order. A series keeps its color and
// marker in every panel of a figure, by name.
type Series struct {
	Name   string
	Points []Point
}

// Point is one (x, y) point of a Series.
type Point struct{ X, Y float64 }

// Plot draws hit rate against budget, one line per policy, like the AUV paper's
// Fig. 5/6, into a .png, .svg or .pdf file (atomically). Budgets are on the x axis as a
// percentage of the prompt when all of them are fractions, else as tokens. Failed
// cells leave gaps.
func Plot(path string, r *sim.Result) error {
	panel := Panel{Title: "Hit rate vs budget", YLabel: "hit rate (share of full-cache attention kept)", YMax: 1}
	if strings.Contains(r.Source, "synthetic") {
		panel.Title += " (synthetic traces, not OPT measurements)"
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
		s := Series{Name: name}
		for j := range r.Budgets {
			c := r.Cell(i, j)
			if c.Failed != "" {
				continue
			}
			x := c.BudgetTokens
			if fractions {
				x = 100 * r.BudgetSpecs[j].Fraction
			}
			s.Points = append(s.Points, Point{x, c.HitRate})
		}
		panel.Series = append(panel.Series, s)
	}
	return PlotFigure(path, Figure{Panels: []Panel{panel}})
}

// PlotFormat is the image format a plot path asks for, by its extension: png, svg
// or pdf. Commands check it before their work, not after.
func PlotFormat(path string) (string, error) {
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
	if ext != "png" && ext != "svg" && ext != "pdf" {
		return "", fmt.Errorf("plot %s: want a .png, .svg or .pdf file", path)
	}
	return ext, nil
}

// PlotFigure draws f into a .png, .svg or .pdf file (atomically). Series without
// points are left out.
func PlotFigure(path string, f Figure) error {
	ext, err := PlotFormat(path)
	if err != nil {
		return err
	}
	if len(f.Panels) == 0 {
		return fmt.Errorf("plot %s: nothing to draw", path)
	}
	cols := f.Columns
	if cols <= 0 {
		cols = min(2, len(f.Panels))
	}
	rows := (len(f.Panels) + cols - 1) / cols
	var names []string // series names in order of first appearance: their style index
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	for i, panel := range f.Panels {
		p := plot.New()
		p.Title.Text = panel.Title
		p.X.Label.Text, p.Y.Label.Text = panel.XLabel, panel.YLabel
		if panel.YMax > panel.YMin {
			p.Y.Min, p.Y.Max = panel.YMin, panel.YMax
		}
		p.Legend.Top, p.Legend.Left = false, false
		p.Add(plotter.NewGrid())
		for _, s := range panel.Series {
			if len(s.Points) == 0 {
				continue
			}
			style := slices.Index(names, s.Name)
			if style < 0 {
				style = len(names)
				names = append(names, s.Name)
			}
			xys := make(plotter.XYs, len(s.Points))
			for k, pt := range s.Points {
				xys[k] = plotter.XY{X: pt.X, Y: pt.Y}
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("plot %s: panel %q, series %q: %w", path, panel.Title, s.Name, err)
			}
			line.Color = plotutil.Color(style)
			line.Dashes = plotutil.Dashes(style / 7)
			points.Color = plotutil.Color(style)
			points.Shape = plotutil.Shape(style)
			p.Add(line, points)
			p.Legend.Add(s.Name, line, points)
		}
		grid[i/cols][i%cols] = p
	}
	canvas, err := draw.NewFormattedCanvas(vg.Length(cols)*7*vg.Inch, vg.Length(rows)*4.5*vg.Inch, ext)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Centimeter, PadY: vg.Centimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	canvases := plot.Align(grid, tiles, draw.New(canvas))
	for r, row := range grid {
		for c, p := range row {
			if p != nil {
				p.Draw(canvases[r][c])
			}
		}
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := canvas.WriteTo(w)
		return err
	})
}
