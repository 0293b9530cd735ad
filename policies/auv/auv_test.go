package auv

import (
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
)

func newPolicy(t *testing.T, params map[string]any) *policy {
	t.Helper()
	p, err := New(policies.NewParams(params))
	if err != nil {
		t.Fatalf("New(%v): %v", params, err)
	}
	return p.(*policy)
}

func TestPresets(t *testing.T) {
	for _, tc := range []struct {
		params map[string]any
		want   Settings
	}{
		{nil, Settings{Aggregation: Scaled, Usage: true, TopK: 4, Eviction: Multistep, LocalRatio: 0.5, Alpha: 0.5, Compensation: true}},
		{map[string]any{"preset": "v1"}, Settings{Aggregation: Scaled, TopK: 4, Eviction: Greedy, LocalRatio: 0.5, Alpha: 1}},
		{map[string]any{"preset": "v2"}, Settings{Aggregation: Scaled, Usage: true, TopK: 4, Eviction: Naive, LocalRatio: 0.5, Alpha: 1}},
		{map[string]any{"preset": "v3"}, Settings{Aggregation: Scaled, Usage: true, TopK: 4, Eviction: Optimized, LocalRatio: 0.5, Alpha: 1}},
		{map[string]any{"preset": "v4"}, Settings{Aggregation: Scaled, Usage: true, TopK: 4, Eviction: Multistep, LocalRatio: 0.5, Alpha: 1}},
		// Overrides change one field each.
		{map[string]any{"preset": "v1", "aggregation": "sum", "local": 7.0},
			Settings{Aggregation: Sum, TopK: 4, Eviction: Greedy, Local: 7, LocalRatio: 0.5, Alpha: 1}},
		{map[string]any{"preset": "v4", "alpha": 0.25, "top_k": 2.0, "compensation": true, "local_ratio": 0.3},
			Settings{Aggregation: Scaled, Usage: true, TopK: 2, Eviction: Multistep, LocalRatio: 0.3, Alpha: 0.25, Compensation: true}},
		{map[string]any{"usage": false, "eviction": "optimized", "aggregation": "mean"},
			Settings{Aggregation: Mean, TopK: 4, Eviction: Optimized, LocalRatio: 0.5, Alpha: 0.5, Compensation: true}},
	} {
		if got := newPolicy(t, tc.params).set; got != tc.want {
			t.Errorf("%v: settings %+v, want %+v", tc.params, got, tc.want)
		}
	}
}

func TestBadParams(t *testing.T) {
	for _, tc := range []struct {
		params map[string]any
		key    string
	}{
		{map[string]any{"preset": "v5"}, "preset"},
		{map[string]any{"aggregation": "max"}, "aggregation"},
		{map[string]any{"usage": "yes"}, "usage"},
		{map[string]any{"top_k": 0.0}, "top_k"},
		{map[string]any{"top_k": 2.5}, "top_k"},
		{map[string]any{"eviction": "lru"}, "eviction"},
		{map[string]any{"local": 0.0}, "local"},
		{map[string]any{"local": 4.0, "local_ratio": 0.5}, "local"},
		{map[string]any{"local_ratio": 0.0}, "local_ratio"},
		{map[string]any{"local_ratio": 1.5}, "local_ratio"},
		{map[string]any{"alpha": -0.1}, "alpha"},
		{map[string]any{"alpha": 2.0}, "alpha"},
		{map[string]any{"compensation": 1.0}, "compensation"},
		{map[string]any{"decay": 0.5}, "decay"},
	} {
		_, err := New(policies.NewParams(tc.params))
		if err == nil || !strings.Contains(err.Error(), `"`+tc.key+`"`) {
			t.Errorf("%v: error %v, want one naming %q", tc.params, err, tc.key)
		}
	}
}

func TestLayout(t *testing.T) {
	cfg := policies.Config{Heads: 2, PromptLen: 50, MaxLen: 80, Budget: 20}
	for _, tc := range []struct {
		params map[string]any
		local  int
		layout policies.Layout
	}{
		{nil, 10, policies.Layout{Slack: 9, Compensation: true}},
		{map[string]any{"preset": "v4"}, 10, policies.Layout{Slack: 9}},
		{map[string]any{"preset": "v2"}, 10, policies.Layout{}},
		{map[string]any{"preset": "v1", "local": 3.0}, 3, policies.Layout{}},
		{map[string]any{"preset": "v4", "local": 500.0}, 20, policies.Layout{Slack: 19}}, // clamped to Budget
		{map[string]any{"preset": "v4", "local_ratio": 0.01}, 1, policies.Layout{}},      // clamped to 1
		{map[string]any{"local_ratio": 0.26}, 5, policies.Layout{Slack: 4, Compensation: true}},
	} {
		p := newPolicy(t, tc.params)
		layout, err := p.Init(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if layout != tc.layout || p.local != tc.local {
			t.Errorf("%v: layout %+v with L=%d, want %+v with L=%d", tc.params, layout, p.local, tc.layout, tc.local)
		}
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []policies.Config{
		{Heads: 0, PromptLen: 10, MaxLen: 20, Budget: 5},
		{Heads: 1, PromptLen: 10, MaxLen: 9, Budget: 5},
		{Heads: 1, PromptLen: 10, MaxLen: 20, Budget: 0},
	} {
		if _, err := newPolicy(t, nil).Init(cfg); err == nil {
			t.Errorf("Init(%+v) accepted", cfg)
		}
	}
}
