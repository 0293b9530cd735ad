package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/internal/stats"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
)

func result() *sim.Result {
	none := stats.MeanCI(nil)
	undefined := sim.MetricIntervals{HitRate: none, TopKHitRate: none, OutputError: none}
	return &sim.Result{Source: "synthetic", Models: []string{"synthetic/opt-125m"}, Samples: 2, Layers: 3, Prompt: 100, Gen: 10,
		TopK: 8, HasV: true, Policies: []string{"h2o", "bad"}, Budgets: []string{"2%", "64 tok"}, Accounting: "peak",
		Cells: []sim.Cell{
			{Policy: "h2o", Budget: "2%", Accounting: "peak", BudgetTokens: 2, NominalTokens: 1, Metrics: sim.Metrics{HitRate: 0.5, TopKHitRate: 0.25, OutputError: 0.125},
				Evictions: 97, PeakResident: 3, MeanResident: 3, PeakKVBytes: 3 << 20, MeanKVBytes: 1536,
				CI: sim.MetricIntervals{HitRate: stats.Interval{Mean: 0.5, Lo: 0.45, Hi: 0.55, N: 2}, TopKHitRate: none, OutputError: none}},
			{Policy: "h2o", Budget: "64 tok", Accounting: "peak", BudgetTokens: 64, Metrics: sim.Metrics{HitRate: 0.875}, CI: undefined},
			{Policy: "bad", Budget: "2%", Accounting: "nominal", Failed: "policy \"bad\": evict: boom", CI: undefined},
			{Policy: "bad", Budget: "64 tok", Accounting: "nominal", Failed: "policy \"bad\": evict: boom", CI: undefined},
		}}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, result(), "table"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"synthetic traces: not OPT measurements", "| h2o    | 50.00 ±5.00 |  87.50 |", "| bad    |      FAILED | FAILED |",
		`FAILED bad @ 2%: policy "bad": evict: boom`, "0.1250", "accounting peak: a budget caps", "(overridden: bad: nominal)",
		"3.0 MiB", "1.5 KiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "minus") {
		t.Errorf("differences printed without a reference:\n%s", out)
	}
}

// Differences print in points, signed, and * marks an interval that excludes zero.
func TestDiffTable(t *testing.T) {
	r := result()
	r.Compare = "bad"
	r.Cells[0].Diff = &sim.Diff{Reference: "bad", MetricIntervals: sim.MetricIntervals{HitRate: stats.Interval{Mean: 0.012, Lo: 0.002, Hi: 0.022, N: 2}}}
	r.Cells[1].Diff = &sim.Diff{Reference: "bad", MetricIntervals: sim.MetricIntervals{HitRate: stats.Interval{Mean: -0.01, Lo: -0.03, Hi: 0.01, N: 2}}}
	var b bytes.Buffer
	if err := Write(&b, r, "table"); err != nil {
		t.Fatal(err)
	}
	if want := "| h2o    | +1.20 ±1.00 * | -1.00 ±2.00 |"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, b.String())
	}
	// A policy that evicted nothing at any budget (the full cache) only restates the
	// reference's loss: its row is left out.
	r.Cells[0].Evictions = 0
	b.Reset()
	if err := Write(&b, r, "table"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "| h2o    | +1.20") {
		t.Errorf("a policy that evicted nothing has a difference row:\n%s", b.String())
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, result(), "markdown"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| h2o    | 50.00 ±5.00 |  87.50 |") || !strings.Contains(b.String(), "|:-------|") {
		t.Errorf("not a markdown table:\n%s", b.String())
	}
}

func TestCSVAndJSON(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, result(), "csv"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || recs[1][1] != "h2o" || recs[1][5] != "0.500000" || recs[1][7] != "0.125000" || recs[3][4] == "" {
		t.Errorf("csv %q", recs)
	}
	col := func(name string) int { return slices.Index(recs[0], name) }
	if lo, hi := col("hit_rate_lo"), col("hit_rate_hi"); lo < 0 || recs[1][lo] != "0.450000" || recs[1][hi] != "0.550000" || recs[2][lo] != "" {
		t.Errorf("csv intervals %q", recs)
	}
	if a := col("accounting"); a < 0 || recs[1][a] != "peak" || recs[3][a] != "nominal" {
		t.Errorf("csv accounting %q", recs)
	}
	b.Reset()
	if err := Write(&b, result(), "json"); err != nil {
		t.Fatal(err)
	}
	var back sim.Result
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.Cells[1].HitRate != 0.875 || back.Source != "synthetic" ||
		back.Cells[0].CI.HitRate.Lo != 0.45 || !math.IsNaN(back.Cells[1].CI.HitRate.Lo) || back.Accounting != "peak" {
		t.Errorf("json round trip: %v %+v", err, back)
	}
	if err := Write(&b, result(), "xml"); err == nil {
		t.Error("xml accepted")
	}
}

// TestReadResult: a JSON result reads back as written; a file whose cells do not
// fill its table is refused.
func TestReadResult(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.json")
	if err := WriteFile(path, result(), "json"); err != nil {
		t.Fatal(err)
	}
	r, err := ReadResult(path)
	if err != nil || len(r.Cells) != 4 || r.Cell(0, 1).HitRate != 0.875 || r.Cell(1, 0).Failed == "" {
		t.Fatalf("read back: %v %+v", err, r)
	}
	short := result()
	short.Cells = short.Cells[:3]
	if err := WriteFile(path, short, "json"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResult(path); err == nil || err.Error() != "replay result "+path+": 3 cells for 2 policies × 2 budgets" {
		t.Errorf("short result: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.json")
	os.WriteFile(path, []byte("old"), 0o644)
	if err := WriteFile(path, result(), "xml"); err == nil {
		t.Fatal("bad format accepted")
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Errorf("a failed write replaced the file: %q", data)
	}
	if err := WriteFile(path, result(), "json"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "r.json"), result(), "json"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestFrontierPath(t *testing.T) {
	if FrontierPath("out/paper.svg") != "out/paper-frontier.svg" {
		t.Error(FrontierPath("out/paper.svg"))
	}
}

func TestPlot(t *testing.T) {
	dir := t.TempDir()
	r := result()
	r.BudgetSpecs = []host.Budget{{Fraction: 0.02}, {Tokens: 64}}
	r.Cells[0].Evictions, r.Cells[1].Evictions, r.Cells[1].MeanKVBytes = 1, 1, 4096
	for _, name := range []string{"p.png", "p.svg"} {
		path := filepath.Join(dir, name)
		if err := Plot(path, r); err != nil {
			t.Fatal(err)
		}
		if err := PlotFrontier(FrontierPath(path), r); err != nil {
			t.Fatal(err)
		}
		if svg, _ := os.ReadFile(filepath.Join(dir, "p-frontier.svg")); name == "p.svg" &&
			(!bytes.Contains(svg, []byte("frontier")) || !bytes.Contains(svg, []byte("Output error vs memory"))) {
			t.Error("the frontier figure lacks its marks or its output-error panel")
		}
		data, _ := os.ReadFile(path)
		if name == "p.png" && !bytes.HasPrefix(data, []byte("\x89PNG")) || name == "p.svg" && !bytes.Contains(data, []byte("<svg")) {
			t.Errorf("%s is not an image: %.20q", name, data)
		}
		if name == "p.svg" && !bytes.Contains(data, []byte("h2o")) {
			t.Error("legend lacks h2o")
		}
	}
	if err := Plot(filepath.Join(dir, "p.gif"), r); err == nil || !strings.Contains(err.Error(), "want a .png, .svg or .pdf") {
		t.Errorf("gif: %v", err)
	}
}
