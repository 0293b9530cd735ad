package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

// roundTrip sends a part through its JSON form, as a shard file does.
func roundTrip(t *testing.T, p *sim.Part) *sim.Part {
	t.Helper()
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var out sim.Part
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func partsOf(t *testing.T, sources []sim.Source, specs []sim.PolicySpec, opts sim.Options, n int) []*sim.Part {
	t.Helper()
	var parts []*sim.Part
	for i := 0; i < n; i++ {
		p, err := sim.ReplayPart(context.Background(), sources, specs, opts, func(s int) bool { return s%n == i })
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, roundTrip(t, p))
	}
	return parts
}

// TestMergedPartsEqualReplay: parts of 5 samples in 3 shards, merged in any order,
// give the JSON of one replay of all samples (per-sample figures, intervals and
// paired differences included), byte for byte; timings are the parts' sums.
func TestMergedPartsEqualReplay(t *testing.T) {
	sources := synthSources(t, synth.Options{Preset: "opt-125m", Layers: 2, Heads: 3, PromptLen: 40, GenLen: 12, Seed: 3, WithV: true}, 5)
	specs := builtinSpecs(t, "full", "window", "h2o", "random", "auv", "nacl")
	for i := range specs { // every accounting mode, and paired differences from h2o
		specs[i].Accounting = host.Accounting(i % 3)
	}
	opts := sim.Options{Budgets: budgets[:3], Seed: 11, Threads: 2, Accounting: host.Peak, Compare: "h2o"}
	whole, err := sim.Replay(context.Background(), sources, specs, opts)
	if err != nil {
		t.Fatal(err)
	}
	parts := partsOf(t, sources, specs, opts, 3)
	if got := parts[1].Samples; !reflect.DeepEqual(got, []int{1, 4}) {
		t.Fatalf("shard 1/3 replayed samples %v, want [1 4]", got)
	}
	merged, err := sim.MergeParts([]*sim.Part{parts[2], parts[0], parts[1]}, []string{"c", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(withoutTimings(whole))
	got, _ := json.Marshal(withoutTimings(merged))
	if string(got) != string(want) {
		t.Fatalf("merged parts differ from one replay:\n got  %s\n want %s", got, want)
	}
	var decodeSteps, policySeconds float64 // summed in job order, as merge does
	for s := 0; s < 5; s++ {
		for _, j := range parts[s%3].Jobs {
			if j.Sample == s {
				decodeSteps += j.Perf.DecodeSteps
				policySeconds += j.Perf.PolicySeconds
			}
		}
	}
	if merged.Perf.DecodeSteps != whole.Perf.DecodeSteps || merged.Perf.DecodeSteps != decodeSteps || decodeSteps != 5*2*3*12 {
		t.Errorf("decode steps: merged %g, one replay %g, parts %g; want %d", merged.Perf.DecodeSteps, whole.Perf.DecodeSteps, decodeSteps, 5*2*3*12)
	}
	if merged.Perf.PolicySeconds != policySeconds {
		t.Errorf("policy seconds %g, want the parts' sum %g", merged.Perf.PolicySeconds, policySeconds)
	}
}

func TestMergePartsRefuses(t *testing.T) {
	sources := synthSources(t, synth.Options{Preset: "opt-125m", Layers: 1, Heads: 2, PromptLen: 24, GenLen: 4, Seed: 1, WithV: true}, 4)
	specs := builtinSpecs(t, "window", "h2o")
	opts := sim.Options{Budgets: budgets[:2], Seed: 1, Threads: 1}
	parts := partsOf(t, sources, specs, opts, 2)

	other := opts
	other.Seed = 2 // a different scenario: its header differs
	otherParts := partsOf(t, sources, specs, other, 2)
	if _, err := sim.MergeParts([]*sim.Part{parts[0], otherParts[1]}, []string{"a.json", "b.json"}); err == nil ||
		!strings.Contains(err.Error(), "a.json and b.json replay different scenarios") {
		t.Errorf("different scenarios: %v", err)
	}

	if _, err := sim.MergeParts([]*sim.Part{parts[0], parts[1], parts[0]}, []string{"a.json", "b.json", "c.json"}); err == nil ||
		err.Error() != "merge: sample 0 is in both a.json and c.json" {
		t.Errorf("overlap: %v", err)
	}

	_, err := sim.MergeParts([]*sim.Part{parts[1]}, []string{"b.json"})
	var missing *sim.MissingError
	if !errors.As(err, &missing) || !reflect.DeepEqual(missing.Samples, []int{0, 2}) {
		t.Errorf("missing: %v, want samples [0 2]", err)
	}

	bad := roundTrip(t, parts[0])
	bad.Jobs[1].Cells = bad.Jobs[1].Cells[:3]
	if _, err := sim.MergeParts([]*sim.Part{bad, parts[1]}, []string{"a.json", "b.json"}); err == nil ||
		!strings.Contains(err.Error(), "a.json: job 1: 3 cells and 2 heads, want 4 cells (2 policies × 2 budgets)") {
		t.Errorf("short job: %v", err)
	}
	bad = roundTrip(t, parts[0])
	bad.Jobs = bad.Jobs[:1]
	if _, err := sim.MergeParts([]*sim.Part{bad, parts[1]}, []string{"a.json", "b.json"}); err == nil ||
		err.Error() != "merge: a.json: 1 jobs for 2 samples × 1 layers" {
		t.Errorf("lost job: %v", err)
	}
	bad = roundTrip(t, parts[0])
	bad.Jobs[1] = bad.Jobs[0]
	if _, err := sim.MergeParts([]*sim.Part{bad, parts[1]}, []string{"a.json", "b.json"}); err == nil ||
		err.Error() != "merge: a.json: (sample 0, layer 0) twice" {
		t.Errorf("a job twice: %v", err)
	}
	bad = roundTrip(t, parts[0])
	bad.Header.Samples = 1 << 40
	otherBad := roundTrip(t, parts[1])
	otherBad.Header.Samples = 1 << 40
	if _, err := sim.MergeParts([]*sim.Part{bad, otherBad}, []string{"a.json", "b.json"}); err == nil ||
		!strings.Contains(err.Error(), "merge: a.json: 1099511627776 samples × 1 layers, more than") {
		t.Errorf("a huge header: %v", err)
	}
	bad = roundTrip(t, parts[0])
	bad.Jobs[0].Sample = 1
	if _, err := sim.MergeParts([]*sim.Part{bad, parts[1]}, []string{"a.json", "b.json"}); err == nil ||
		!strings.Contains(err.Error(), "a.json: job 0: (sample 1, layer 0) is not one of its samples' layers") {
		t.Errorf("foreign job: %v", err)
	}
}
