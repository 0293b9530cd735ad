package tests

import (
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestGPUCheckScript runs scripts/gpu-check.sh in its CPU self-test mode, so that
// the flags and scenario keys it hands kvsim are checked on every change, although
// the GPU steps can only run on a GPU machine.
func TestGPUCheckScript(t *testing.T) {
	for _, tool := range []string{"bash", "timeout", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the script needs %s: %v", tool, err)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command("bash", "../scripts/gpu-check.sh", "-d", "cpu", "-q", "-o", out, kvsim(t))
	text, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gpu-check.sh -d cpu: %v\n%s", err, text)
	}

	steps := readCSV(t, filepath.Join(out, "steps.tsv"), '\t')
	status := map[string]string{}
	var names []string
	for _, f := range steps {
		names = append(names, f[0])
		status[f[0]] = f[1]
	}
	ran := []string{"synth", "synth-post", "capture-cpu", "replay", "validate"}
	gpuOnly := []string{"machine", "device", "kernel-tests", "compare", "compare-post", "capture-cuda", "trace-attention",
		"bench-1.3b", "bench-1.3b-attn", "bench-1.3b-auv", "bench-13b", "bench-13b-attn", "bench-13b-auv", "hf-logits"}
	for _, name := range ran {
		if status[name] != "ok" {
			t.Errorf("step %s: %q, want ok", name, status[name])
		}
	}
	for _, name := range gpuOnly {
		if status[name] != "skipped: -d cpu" {
			t.Errorf("GPU step %s: %q, want skipped: -d cpu", name, status[name])
		}
	}
	if len(names) != len(ran)+len(gpuOnly) {
		t.Errorf("steps.tsv has %d steps %v, want %d", len(names), names, len(ran)+len(gpuOnly))
	}

	// validate runs the replay's top 2 by mean simulated hit rate, each at the
	// scenario's two budgets: full (100%), then the best of window, h2o and auv.
	meanHit := map[string]float64{}
	replay := readCSV(t, filepath.Join(out, "replay.csv"), ',')
	policyCol, hitCol := slices.Index(replay[0], "policy"), slices.Index(replay[0], "hit_rate")
	if policyCol < 0 || hitCol < 0 {
		t.Fatalf("replay.csv header %v lacks policy or hit_rate", replay[0])
	}
	for _, row := range replay[1:] {
		hit, err := strconv.ParseFloat(row[hitCol], 64)
		if err != nil {
			t.Fatalf("replay.csv row %v: %v", row, err)
		}
		meanHit[row[policyCol]] += hit / 2
	}
	best := ""
	for _, name := range []string{"window", "h2o", "auv"} {
		if best == "" || meanHit[name] > meanHit[best] {
			best = name
		}
	}
	rows := readCSV(t, filepath.Join(out, "validate.csv"), ',')
	if got := rows[0][:min(3, len(rows[0]))]; !slices.Equal(got, []string{"policy", "budget", "sim hit"}) {
		t.Errorf("validate.csv header starts %v, want policy, budget, sim hit", got)
	}
	var validated [][]string
	for _, row := range rows[1:] {
		validated = append(validated, row[:min(2, len(row))])
	}
	want := [][]string{{"full", "25%"}, {"full", "50%"}, {best, "25%"}, {best, "50%"}}
	if !slices.EqualFunc(validated, want, slices.Equal) {
		t.Errorf("validate.csv rows (policy, budget) %v, want %v (replay's mean hit rates %v)", validated, want, meanHit)
	}

	if _, err := os.Stat(filepath.Join(out, "validate.svg")); err != nil {
		t.Errorf("no plot: %v", err)
	}
	if summary, err := os.ReadFile(filepath.Join(out, "summary.md")); err != nil || !strings.Contains(string(summary), "failed steps: 0") {
		t.Errorf("summary: %v\n%s", err, summary)
	}
}

// readCSV reads a whole CSV (or, with '\t', TSV) file with a header or data row.
func readCSV(t *testing.T, path string, comma rune) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = comma
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return rows
}
