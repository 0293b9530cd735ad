package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	peerScript = "../scripts/peer/replay.py"
	// peerTimeout bounds the numpy replay; it takes a few seconds on 2 cores.
	peerTimeout = 5 * time.Minute
	// peerTolerance is how far the peer's hit rates may sit from kvsim's. Both compute
	// float32 attention, kvsim with its own exp (within one ulp, 6e-8 relative) and
	// summation order, numpy with libm's; a hit rate is a mean of sums of at most one
	// unit of such probabilities, so rounding alone moves it by a few 1e-8. One eviction
	// decision made differently moves the cell or the layer by far more on these traces
	// (the smallest victim mass over the rest of the run, over one layer's 768 rows).
	peerTolerance = 1e-6
)

// TestNumpyPeerHitRates replays synthetic traces through full, window and h2o with
// kvsim and with the vectorized numpy replay of scripts/peer, and holds every cell's
// hit rate, overall and per layer, to the peer's. It skips where Debian's python3
// lacks numpy.
func TestNumpyPeerHitRates(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the numpy peer runs python")
	}
	if out, err := exec.Command(python, "-c", "import numpy").CombinedOutput(); err != nil {
		t.Skipf("skipped: %s cannot import numpy (apt-get install -y python3-numpy): %v\n%s", python, err, out)
	}
	dir := t.TempDir()
	r := run(t, "trace", "synth", "-preset", "opt-125m", "-layers", "2", "-heads", "6", "-prompt", "300",
		"-gen", "64", "-samples", "2", "-seed", "5", "-no-v", "-out", dir)
	if r.code != 0 {
		t.Fatalf("trace synth: exit %d: %s", r.code, r.stderr)
	}
	files := strings.Fields(r.stdout)
	budgets := []string{"0.03", "0.1", "0.25", "40", "400"} // 400 holds the whole prompt
	quoted := make([]string, len(files))
	for i, f := range files {
		quoted[i] = fmt.Sprintf("%q", f)
	}
	scenario := filepath.Join(dir, "peer.toml")
	toml := fmt.Sprintf("title = \"numpy peer\"\ntraces = [%s]\nbudgets = [%s]\naccounting = \"nominal\"\n"+
		"[[policy]]\nname = \"full\"\n[[policy]]\nname = \"window\"\n[[policy]]\nname = \"h2o\"\n",
		strings.Join(quoted, ", "), strings.Join(budgets, ", "))
	if err := os.WriteFile(scenario, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, "replay", "-format", "json", "-progress", "off", scenario)
	if r.code != 0 {
		t.Fatalf("replay: exit %d: %s", r.code, r.stderr)
	}
	var got struct {
		Cells []struct {
			Policy  string  `json:"policy"`
			Budget  string  `json:"budget"`
			HitRate float64 `json:"hit_rate"`
			Layers  []struct {
				HitRate float64 `json:"hit_rate"`
			} `json:"layers"`
		} `json:"cells"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	want := runPeer(t, files, budgets)
	if len(got.Cells) != len(want.Cells) {
		t.Fatalf("kvsim has %d cells, the peer %d", len(got.Cells), len(want.Cells))
	}
	worst := 0.0
	for i, c := range got.Cells {
		p := want.Cells[i]
		if c.Policy != p.Policy {
			t.Fatalf("cell %d: kvsim's policy %s, the peer's %s", i, c.Policy, p.Policy)
		}
		check := func(what string, kv, np float64) {
			d := math.Abs(kv - np)
			worst = max(worst, d)
			if !(d <= peerTolerance) {
				t.Errorf("%s at %s (%s): kvsim %.9f, numpy peer %.9f (off by %.2g)", c.Policy, c.Budget, what, kv, np, d)
			}
		}
		check("all layers", c.HitRate, p.HitRate)
		if len(c.Layers) != len(p.Layers) {
			t.Fatalf("%s at %s: kvsim has %d layers, the peer %d", c.Policy, c.Budget, len(c.Layers), len(p.Layers))
		}
		for l := range c.Layers {
			check(fmt.Sprintf("layer %d", l), c.Layers[l].HitRate, p.Layers[l])
		}
	}
	t.Logf("largest hit-rate difference from the numpy peer: %.2g", worst)
}

type peerResult struct {
	Cells []struct {
		Policy  string    `json:"policy"`
		Budget  string    `json:"budget"`
		HitRate float64   `json:"hit_rate"`
		Layers  []float64 `json:"layers"`
	} `json:"cells"`
	Seconds float64 `json:"seconds"`
}

// runPeer runs scripts/peer/replay.py on files, bounded by peerTimeout.
func runPeer(t *testing.T, files, budgets []string) peerResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	args := append([]string{peerScript, "-budgets", strings.Join(budgets, ","), "-policies", "full,window,h2o"}, files...)
	out, err := exec.CommandContext(ctx, python, args...).Output()
	if ctx.Err() != nil {
		t.Fatalf("%s ran past %v", peerScript, peerTimeout)
	}
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s", peerScript, err, stderr)
	}
	var res peerResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s printed %q: %v", peerScript, out, err)
	}
	return res
}
