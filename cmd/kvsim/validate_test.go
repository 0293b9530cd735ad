package main

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvsim/kvsim/gpu/validate"
)

func TestRankAgreement(t *testing.T) {
	hit := func(x float64) *float64 { return &x }
	cells := []validatedCell{
		{Cell: validate.Cell{Agreement: 0.1, NLL: 2}, SimulatedHitRate: hit(0.2)},
		{Cell: validate.Cell{Agreement: 0.3, NLL: 2}, SimulatedHitRate: hit(0.5)},
		{Cell: validate.Cell{Agreement: 0.9}}, // no simulated hit rate: left out
		{Cell: validate.Cell{Agreement: 0.2, NLL: 2}, SimulatedHitRate: hit(0.9)},
	}
	got := map[string]agreement{}
	for _, a := range rankAgreement(cells) {
		got[a.Metric] = a
	}
	// Pairs by hit rate: (0.2, 0.5) and (0.2, 0.9) concordant, (0.5, 0.9) discordant:
	// τ = (2−1)/3. Ranks of agreement 1, 3, 2: Σd² = 2, ρ = 1 − 6·2/(3·8) = 0.5.
	a := got["agreement"]
	if a.Cells != 3 || a.KendallTau == nil || math.Abs(*a.KendallTau-1.0/3) > 1e-12 || a.Spearman == nil || math.Abs(*a.Spearman-0.5) > 1e-12 {
		t.Errorf("agreement: %+v", a)
	}
	if n := got["nll"]; n.KendallTau != nil || n.Spearman != nil {
		t.Errorf("a constant metric correlates: %+v", n)
	}
	if rankAgreement(cells[:1]) != nil {
		t.Error("agreement over one cell")
	}
}

func TestReadCells(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.jsonl")
	for _, c := range []validate.Cell{{Policy: "h2o", Budget: "10%", NLL: 1.5}, {Policy: "auv", Budget: "10%", NLL: 1.25}} {
		if err := appendCell(path, &c); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"policy": "wi`) // an interrupted write
	f.Close()
	cells, err := readCells(path)
	if err != nil || len(cells) != 2 || cells[cellKey("auv", "10%")].NLL != 1.25 {
		t.Errorf("cells %v, %v", cells, err)
	}
	// The resumed run appends after the torn line is cut: the next resume reads all.
	if err := appendCell(path, &validate.Cell{Policy: "window", Budget: "10%", NLL: 2}); err != nil {
		t.Fatal(err)
	}
	cells, err = readCells(path)
	if err != nil || len(cells) != 3 || cells[cellKey("window", "10%")].NLL != 2 {
		t.Errorf("after a resume from a torn state: cells %v, %v", cells, err)
	}
	// A bad line before the last is not an interruption: an error naming the line.
	os.WriteFile(path, []byte("{bad\n{\"policy\": \"x\"}\n"), 0o644)
	if _, err := readCells(path); err == nil {
		t.Error("a corrupt state file was read")
	}
	if cells, err := readCells(filepath.Join(t.TempDir(), "missing")); err != nil || len(cells) != 0 {
		t.Errorf("missing state: %v, %v", cells, err)
	}
}
