package conformance

import (
	"context"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/abi/testdata/contract2"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/oracle"
	"github.com/kvsim/kvsim/policies/tova"
	"github.com/kvsim/kvsim/policies/window"
)

// results indexes Check's results by name; "small" runs twice and keeps its first
// failure.
func results(t *testing.T, newPolicy policies.New, opts Options) map[string]Result {
	t.Helper()
	out := map[string]Result{}
	for _, r := range Check(context.Background(), newPolicy, opts) {
		if prev, ok := out[r.Name]; ok && prev.Err != nil {
			continue
		}
		out[r.Name] = r
	}
	return out
}

func TestBuiltinsPass(t *testing.T) {
	for name, newPolicy := range map[string]policies.New{"window": window.New, "tova": tova.New, "oracle": oracle.New} {
		for check, r := range results(t, newPolicy, Options{SameAs: newPolicy, SameAsName: name}) {
			if r.Err != nil {
				t.Errorf("%s: %s: %v", name, check, r.Err)
			}
		}
	}
	if r := results(t, oracle.New, Options{})["reference host"]; !r.Skipped {
		t.Errorf("oracle on the reference host: %+v, want skipped (clairvoyant)", r)
	}
}

// fifo evicts the oldest non-sink tokens, like window, with the bug its variant
// plants.
type fifo struct {
	bug   string
	sink  int
	inits int
	order [][]int32 // per head: resident slots, oldest first
}

// global leaks state between instances, for the "shared" bug.
var global int

func newFIFO(bug string) policies.New {
	return func(p *policies.Params) (policies.Policy, error) {
		if bug != "params" {
			if err := p.Err(); err != nil {
				return nil, err
			}
		}
		return &fifo{bug: bug, sink: 2}, nil
	}
}

func (f *fifo) Init(cfg policies.Config) (policies.Layout, error) {
	f.inits++
	switch f.bug {
	case "reuse": // state that outlives a sequence
		f.sink = 1 + f.inits%3
	case "shared": // state shared by every instance
		global++
		f.sink = 1 + global%3
	}
	f.order = make([][]int32, cfg.Heads)
	for h := range f.order {
		for s := range cfg.PromptLen {
			f.order[h] = append(f.order[h], int32(s))
		}
	}
	return policies.Layout{}, nil
}

func (f *fifo) Observe(a *policies.Attention) error {
	if a.Phase == policies.Decode {
		for h, s := range a.Slot {
			f.order[h] = append(f.order[h], s)
		}
		return nil
	}
	if f.bug == "blocks" && a.Rows > 1 {
		// Rotates the queue per block: a policy that depends on how rows are batched.
		for h := range f.order {
			f.order[h] = append(f.order[h][1:], f.order[h][0])
		}
	}
	return nil
}

// Evict takes the oldest tokens after the sinks, keeping as many sinks as it can.
func (f *fifo) Evict(e *policies.Eviction) error {
	for h := range e.Heads {
		q, n := f.order[h], int(e.Need[h])
		keep := min(f.sink, len(q)-n)
		for _, s := range q[keep : keep+n] {
			e.Victim(h, s, 0)
		}
		f.order[h] = append(q[:keep:keep], q[keep+n:]...)
	}
	return nil
}

// TestCheckCatchesBugs: each planted bug fails the check made for it, and only the
// checks it should.
func TestCheckCatchesBugs(t *testing.T) {
	for _, tc := range []struct {
		bug  string
		want []string // checks that fail
	}{
		{"none", nil},
		{"params", []string{"params"}},
		{"reuse", []string{"reuse"}},
		{"shared", []string{"contract 2.0", "determinism", "prefill blocks", "reuse"}}, // every comparison sees it
		{"blocks", []string{"prefill blocks"}},
	} {
		var failed []string
		for name, r := range results(t, newFIFO(tc.bug), Options{}) {
			if r.Err != nil {
				failed = append(failed, name)
			}
		}
		slices.Sort(failed)
		if !slices.Equal(failed, tc.want) {
			t.Errorf("bug %q: failed %v, want %v", tc.bug, failed, tc.want)
		}
	}
}

func TestDiff(t *testing.T) {
	cfg := policies.Config{Layer: 1, Budget: 8, PromptLen: 16, MaxLen: 20}
	log := func(victims ...int32) *recording {
		return &recording{sequences: []*sequence{{config: cfg, evictions: []eviction{{phase: policies.Decode, pos: 17, victims: [][]int32{victims}}}}}}
	}
	for _, tc := range []struct {
		got  *recording
		want string
	}{
		{log(3, 5), ""},
		{log(5, 3), "sequence 0 (layer 1, budget 8, prompt 16, max length 20): eviction 0 (decode at position 17): head 0: the same 2 victims in another order, from victim 0: slot 5, want 3"},
		{log(3, 6), "sequence 0 (layer 1, budget 8, prompt 16, max length 20): eviction 0 (decode at position 17): head 0: 2 victims, want 2; evicts slot [6], which the reference keeps; keeps slot [5], which the reference evicts"},
		{log(3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23), "sequence 0 (layer 1, budget 8, prompt 16, max length 20): eviction 0 (decode at position 17): head 0: 11 victims, want 2; evicts 9 slots [7 9 11 13 15 17 19 21] and 1 more, which the reference keeps"},
		{log(3, 5, 5), "sequence 0 (layer 1, budget 8, prompt 16, max length 20): eviction 0 (decode at position 17): head 0: 3 victims, want 2; the first 2 are the same"},
		{&recording{}, "0 sequences, want 1"},
	} {
		err := diff(log(3, 5), tc.got, 0)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("no difference found, want %q", tc.want)
		}
	}
}

// TestContract2Checks: the call-by-call host serves contract 2.0 to a policy that
// asks for inputs, compact rows or pools, and catches one that overdraws its layer
// pool or gives layer budgets over the model pool; SameCalls tells such policies
// apart.
func TestContract2Checks(t *testing.T) {
	kind := func(k string) policies.New {
		return func(p *policies.Params) (policies.Policy, error) {
			return contract2.New(policies.NewParams(map[string]any{"kind": k}))
		}
	}
	for _, tc := range []struct {
		kind, want string
	}{
		{"inputs", "the layout uses keys, values, queries, compact rows"},
		{"layer", "the layout uses a layer pool"},
		{"model", "the layout uses a model pool"},
		// 4 heads × 24 prompt tokens − 4 × budget 1 = 92 victims needed.
		{"overdraw", "budget 1, layer 0: evict prefill at position 23: 91 victims in all, but the layer pool needs 92: the policy overdraws its pool"},
		// 2 layers × 4 heads × budget 1 = 8 tokens in the pool.
		{"greedy", "budget 1, layer 0: layer budgets: 9 tokens in all, over the model pool of 8"},
	} {
		detail, err := checkCalls(func() (policies.Policy, error) { return kind(tc.kind)(nil) })
		got := detail
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("kind %s:\n got %s\nwant %s", tc.kind, got, tc.want)
		}
	}
	// The whole battery passes, on the replay host and the call-by-call one.
	for _, k := range []string{"inputs", "layer", "model"} {
		opts := Options{Params: map[string]any{"kind": k}, SameAs: contract2.New, SameAsName: "contract2"}
		for check, r := range results(t, contract2.New, opts) {
			if r.Err != nil || (check == "contract 2.0" && r.Skipped) {
				t.Errorf("kind %s: %s: %v", k, check, r.Err)
			}
		}
	}
	want := "budget 1, layer 0: layout {Slack:2 Unbounded:false Compensation:false Clairvoyant:false Keys:false Values:false Queries:false Compact:false Pool:layer}, want {Slack:0 Unbounded:false Compensation:false Clairvoyant:false Keys:false Values:false Queries:false Compact:false Pool:model}"
	if err := SameCalls(kind("model"), kind("layer"), nil); err == nil || err.Error() != want {
		t.Errorf("model against layer:\n got %v\nwant %s", err, want)
	}
	if err := SameCalls(kind("model"), kind("model"), nil); err != nil {
		t.Errorf("model against itself: %v", err)
	}
}
