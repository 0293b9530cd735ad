package render

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gonum.org/v1/plot"
)

// Frontier by hand: (1, 0.5) and (2, 0.7) and (4, 0.9) are not beaten with as
// little memory; (2, 0.6) is beaten by (2, 0.7), (3, 0.7) by (2, 0.7).
func TestFrontier(t *testing.T) {
	points := []Point{{X: 2, Y: 0.6}, {X: 1, Y: 0.5}, {X: 3, Y: 0.7}, {X: 2, Y: 0.7}, {X: 4, Y: 0.9}, {X: 4, Y: 0.9}}
	got := Frontier(points, true)
	want := []Point{{X: 1, Y: 0.5}, {X: 2, Y: 0.7}, {X: 4, Y: 0.9}}
	if !slices.Equal(got, want) {
		t.Errorf("higher better: %v, want %v", got, want)
	}
	// Lower better (output error): only (1, 0.5) stands.
	if got := Frontier(points, false); !slices.Equal(got, []Point{{X: 1, Y: 0.5}}) {
		t.Errorf("lower better: %v", got)
	}
}

func TestPlotFigure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.svg")
	line := func(name string, ys ...float64) Series {
		s := Series{Name: name}
		for i, y := range ys {
			s.Points = append(s.Points, Point{X: float64(i), Y: y})
		}
		return s
	}
	f := Figure{Panels: []Panel{
		{Title: "first panel", XLabel: "x", YLabel: "y", Series: []Series{line("alpha", 1, 2), line("beta", 2, 1)}},
		{Title: "second panel", Series: []Series{line("beta", 0, 1), line("empty")}},
		{Title: "third panel", YMin: 0, YMax: 1, Series: []Series{line("gamma", 0.5)}},
	}}
	if err := PlotFigure(path, f); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(path)
	for _, want := range []string{"first panel", "second panel", "third panel", "alpha", "beta", "gamma"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("the figure lacks %q", want)
		}
	}
	if bytes.Contains(svg, []byte("empty")) {
		t.Error("a series without points is in the legend")
	}
	if err := PlotFigure(path, Figure{}); err == nil {
		t.Error("an empty figure was drawn")
	}
}

// TestFit breaks long lines at spaces so that each fits with the font margin, keeps
// the caller's line breaks, and leaves a word too long for any line on its own.
func TestFit(t *testing.T) {
	sty := plot.New().Title.TextStyle
	width := sty.Rectangle("aaaa bbbb cccc").Size().X * fontMargin
	got := fit("aaaa bbbb cccc dddd eeee\nshort\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx yy", sty, width)
	want := "aaaa bbbb cccc\ndddd eeee\nshort\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nyy"
	if got != want {
		t.Errorf("fit:\n%s\nwant\n%s", got, want)
	}
}
