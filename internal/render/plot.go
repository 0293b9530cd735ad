package render

import (
	"cmp"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/kvsim/kvsim/internal/atomicfile"
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
	// LogX puts the x axis on a log scale.
	LogX   bool
	Series []Series
	// Marks are points to ring in black (frontier points), named MarksName in the
	// legend.
	Marks     []Point
	MarksName string
}

// Series is one line: its points joined in order. A series keeps its color and
// marker in every panel of a figure, by name.
type Series struct {
	Name   string
	Points []Point
	// Band shades each point's [Lo, Hi] range (a confidence band) in the series'
	// color.
	Band bool
}

// Point is one (x, y) point of a Series; Lo and Hi bound y for a band.
type Point struct{ X, Y, Lo, Hi float64 }

// Frontier returns the points that no other point dominates: none holds less or
// equal x with better or equal y, one of them strictly. higherBetter says which y
// is better. Duplicates are kept once.
func Frontier(points []Point, higherBetter bool) []Point {
	better := func(a, b float64) bool { return a > b == higherBetter && a != b }
	var out []Point
	for _, p := range points {
		dominated := false
		for _, q := range points {
			if q.X <= p.X && !better(p.Y, q.Y) && (q.X < p.X || better(q.Y, p.Y)) {
				dominated = true
				break
			}
		}
		if !dominated && !slices.ContainsFunc(out, func(o Point) bool { return o.X == p.X && o.Y == p.Y }) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Point) int { return cmp.Compare(a.X, b.X) })
	return out
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

// PlotFigure draws f into a .png, .svg or .pdf file (atomically). A series' style
// (color, dashes, glyph) is its name's place in the order of first appearance.
// Series without points are left out but keep their place, so two figures drawn
// from the same list of names (replay's budget and frontier figures, the latter without the full cache)
// give each name the same style.
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
	legends := make([][]plot.Legend, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
		legends[r] = make([]plot.Legend, cols)
	}
	var legendWidth vg.Length
	for i, panel := range f.Panels {
		p := plot.New()
		p.Title.Text = fit(panel.Title, p.Title.TextStyle, plotWidth)
		p.X.Label.Text = fit(panel.XLabel, p.X.Label.TextStyle, plotWidth)
		p.Y.Label.Text = fit(panel.YLabel, p.Y.Label.TextStyle, plotHeight*2/3)
		if panel.YMax > panel.YMin {
			p.Y.Min, p.Y.Max = panel.YMin, panel.YMax
		}
		if panel.LogX {
			p.X.Scale = plot.LogScale{}
			p.X.Tick.Marker = logTicks{}
		}
		legend := plot.NewLegend()
		legend.Top, legend.Left = true, true
		p.Add(plotter.NewGrid())
		for _, s := range panel.Series {
			style := slices.Index(names, s.Name)
			if style < 0 {
				style = len(names)
				names = append(names, s.Name)
			}
			if len(s.Points) == 0 {
				continue
			}
			xys := make(plotter.XYs, len(s.Points))
			for k, pt := range s.Points {
				xys[k] = plotter.XY{X: pt.X, Y: pt.Y}
			}
			if s.Band {
				if band := bandPolygon(s.Points, plotutil.Color(style)); band != nil {
					p.Add(band)
				}
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
			legend.Add(s.Name, line, points)
		}
		if len(panel.Marks) > 0 {
			xys := make(plotter.XYs, len(panel.Marks))
			for k, pt := range panel.Marks {
				xys[k] = plotter.XY{X: pt.X, Y: pt.Y}
			}
			rings, err := plotter.NewScatter(xys)
			if err != nil {
				return fmt.Errorf("plot %s: panel %q, marks: %w", path, panel.Title, err)
			}
			rings.GlyphStyle = draw.GlyphStyle{Color: color.Black, Radius: vg.Points(6), Shape: draw.RingGlyph{}}
			p.Add(rings)
			legend.Add(panel.MarksName, rings)
		}
		grid[i/cols][i%cols] = p
		legends[i/cols][i%cols] = legend
		legendWidth = max(legendWidth, legendSize(legend)*fontMargin)
	}
	// Each legend sits right of its plot, outside the data.
	pad := vg.Centimeter / 2
	canvas, err := draw.NewFormattedCanvas(vg.Length(cols)*(plotWidth+legendWidth+pad), vg.Length(rows)*plotHeight, ext)
	if err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Centimeter, PadY: vg.Centimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	canvases := plot.Align(grid, tiles, draw.New(canvas))
	for r, row := range grid {
		for c, p := range row {
			if p == nil {
				continue
			}
			tile := canvases[r][c]
			p.Draw(draw.Crop(tile, 0, -(legendWidth + pad), 0, 0))
			strip := tile
			strip.Min.X = tile.Max.X - legendWidth
			strip.Max.Y -= p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
			legends[r][c].Draw(strip)
		}
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		_, err := canvas.WriteTo(w)
		return err
	})
}

// A panel's plot, without its legend, is plotWidth × plotHeight.
const (
	plotWidth  = 7 * vg.Inch
	plotHeight = 4.5 * vg.Inch
)

// fontMargin widens every text measured here: SVG viewers substitute their own
// fonts for the one named, often wider than its metrics; half again keeps text
// inside the figure.
const fontMargin = 1.5

// fit breaks each line of s at spaces where it would be wider than width in sty,
// with fontMargin to spare. A word wider than width stays on a line of its own.
func fit(s string, sty text.Style, width vg.Length) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		cur := ""
		for _, word := range strings.Fields(line) {
			next := strings.TrimSpace(cur + " " + word)
			if cur != "" && sty.Rectangle(next).Size().X*fontMargin > width {
				out = append(out, cur)
				next = word
			}
			cur = next
		}
		out = append(out, cur)
	}
	return strings.Join(out, "\n")
}

// logTicks labels a log axis at 1, 2 and 5 times the powers of ten in its range,
// which gives a few labels even where the range spans less than a decade.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for k := math.Floor(math.Log10(lo)); math.Pow(10, k) <= hi; k++ {
		for _, m := range []float64{1, 2, 5} {
			if v := m * math.Pow(10, k); v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return ticks
}

// legendSize is the width a legend needs: its longest entry, thumbnail included.
func legendSize(l plot.Legend) vg.Length {
	c := draw.New(vgimg.New(vg.Inch, vg.Inch))
	return l.Rectangle(c).Size().X
}

// bandPolygon shades the [Lo, Hi] range along the points, or is nil when a bound is
// undefined.
func bandPolygon(points []Point, c color.Color) *plotter.Polygon {
	var ring plotter.XYs
	for _, pt := range points {
		if math.IsNaN(pt.Lo) || math.IsNaN(pt.Hi) {
			return nil
		}
		ring = append(ring, plotter.XY{X: pt.X, Y: pt.Hi})
	}
	for k := len(points) - 1; k >= 0; k-- {
		ring = append(ring, plotter.XY{X: points[k].X, Y: points[k].Lo})
	}
	poly, err := plotter.NewPolygon(ring)
	if err != nil {
		return nil
	}
	r, g, b, _ := c.RGBA()
	poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 48}
	poly.LineStyle.Width = 0
	return poly
}
