package validate_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/policies/host"
)

func TestAgreement(t *testing.T) {
	cases := []struct {
		full, got []int32
		want      float64
	}{
		{nil, nil, 1},
		{nil, []int32{1}, 0},
		{[]int32{1, 2, 3, 4}, []int32{1, 2, 3, 4}, 1},
		{[]int32{1, 2, 3, 4}, []int32{1, 2, 9, 4}, 0.5}, // the match after the divergence does not count
		{[]int32{1, 2, 3, 4}, []int32{1}, 0.25},
		{[]int32{1, 2}, []int32{1, 2, 3}, 1},
		{[]int32{1, 2}, []int32{5, 2}, 0},
	}
	for _, c := range cases {
		if got := validate.Agreement(c.full, c.got); got != c.want {
			t.Errorf("Agreement(%v, %v) = %g, want %g", c.full, c.got, got, c.want)
		}
	}
}

// words spells tokens as words, so that ROUGE compares token sequences.
func words(tokens []int32) (string, error) {
	var b strings.Builder
	for _, t := range tokens {
		fmt.Fprintf(&b, "w%d ", t)
	}
	return b.String(), nil
}

func TestRunCell(t *testing.T) {
	e := tinyEngine(t)
	ctx := context.Background()
	samples := []validate.Sample{
		{Prompt: prompt, Reference: "w1 w2 w3"},
		{Prompt: prompt[3:], Reference: ""},
	}
	o := validate.CellOptions{Budget: host.Budget{Tokens: 4}, MaxNew: gen, IgnoreEOS: true, Detokenize: words}
	baselines, err := validate.FullCache(ctx, e, samples, o)
	if err != nil {
		t.Fatal(err)
	}
	full, err := validate.RunCell(ctx, e, "full", newBuiltin(t, "full"), samples, baselines, o)
	if err != nil {
		t.Fatal(err)
	}
	if full.Agreement != 1 || full.Rouge1Full != 1 || full.Rouge2Full != 1 || full.RougeLFull != 1 || full.Evictions != 0 {
		t.Errorf("full cache against itself: %+v", full)
	}
	if full.Samples != 2 || full.Policy != "full" || full.Budget != "4 tok" || full.BudgetTokens != 4 || full.PeakKVBytes <= 0 {
		t.Errorf("full cache cell: %+v", full)
	}
	var progress []int
	o.Progress = func(n int) { progress = append(progress, n) }
	window, err := validate.RunCell(ctx, e, "window", newBuiltin(t, "window"), samples, baselines, o)
	if err != nil {
		t.Fatal(err)
	}
	// The window keeps budget+1 tokens per head of 2 layers × 4 heads × head_dim 16,
	// in float32 keys and values, while the full cache peaks at prompt+gen.
	if want := int64(2 * 4 * (4 + 1) * 16 * 2 * 4); window.PeakKVBytes != want {
		t.Errorf("window peak %d bytes, want %d", window.PeakKVBytes, want)
	}
	if want := int64(2 * 4 * (len(prompt) + gen) * 16 * 2 * 4); full.PeakKVBytes != want {
		t.Errorf("full peak %d bytes, want %d", full.PeakKVBytes, want)
	}
	if !slices.Equal(progress, []int{1, 2}) {
		t.Errorf("progress calls %v, want [1 2]", progress)
	}
	if window.EvictionShare <= 0 || window.EvictionShare >= 1 || window.PolicyMicrosPerToken <= 0 || window.SlotMicrosPerToken <= 0 {
		t.Errorf("window's eviction cost: %+v", window)
	}
	if window.NLL <= 0 || math.IsNaN(window.NLL) || window.Agreement > 1 || window.Agreement < 0 {
		t.Errorf("window cell: %+v", window)
	}
	if _, err := validate.RunCell(ctx, e, "full", newBuiltin(t, "full"), samples, baselines[:1], o); err == nil {
		t.Error("mismatched baselines accepted")
	}
}
