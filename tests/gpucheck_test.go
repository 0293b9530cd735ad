package tests

import (
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
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

	steps, err := os.ReadFile(filepath.Join(out, "steps.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(steps)), "\n") {
		f := strings.Split(line, "\t")
		status[f[0]] = f[1]
	}
	for _, name := range []string{"synth", "synth-post", "capture-cpu", "replay", "validate"} {
		if status[name] != "ok" {
			t.Errorf("step %s: %q, want ok", name, status[name])
		}
	}
	for _, name := range []string{"machine", "device", "kernel-tests", "compare", "capture-cuda", "trace-attention",
		"bench-1.3b", "bench-1.3b-auv", "bench-13b", "hf-logits"} {
		if status[name] != "skipped: -d cpu" {
			t.Errorf("GPU step %s: %q, want skipped", name, status[name])
		}
	}

	// validate ran the top 2 of the replay (full, then the best policy) at both budgets.
	f, err := os.Open(filepath.Join(out, "validate.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || rows[0][0] != "policy" || rows[0][2] != "sim hit" || rows[1][0] != "full" || rows[3][0] == "full" {
		t.Errorf("validate.csv: %v", rows)
	}
	if _, err := os.Stat(filepath.Join(out, "validate.svg")); err != nil {
		t.Errorf("no plot: %v", err)
	}
	if summary, err := os.ReadFile(filepath.Join(out, "summary.md")); err != nil || !strings.Contains(string(summary), "failed steps: 0") {
		t.Errorf("summary: %v\n%s", err, summary)
	}
}
