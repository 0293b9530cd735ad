package host

import (
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
)

func TestMergeByHand(t *testing.T) {
	var c Comp
	c.Reset(2)
	c.Merge(1, []float32{0, 0}, []float32{1, 1})
	c.Merge(3, []float32{2, 4}, []float32{2, 1})
	c.Merge(0, []float32{100, 100}, []float32{100, 100}) // a zero weight drops the victim
	if c.Weight != 4 || c.K[0] != 1.5 || c.K[1] != 3 || c.V[0] != 1.75 || c.V[1] != 1 {
		t.Errorf("after merging: %+v", c)
	}
	c.Reset(2)
	if c.Weight != 0 || c.K[0] != 0 || c.V[1] != 0 {
		t.Errorf("after reset: %+v", c)
	}
}

func TestPeakEntries(t *testing.T) {
	for _, c := range []struct {
		b, prompt, gen int
		layout         policies.Layout
		want           int
	}{
		{9, 512, 64, policies.Layout{}, 10},                             // h2o at a cap of 10
		{6, 512, 64, policies.Layout{Slack: 2, Compensation: true}, 10}, // AUV at a cap of 10 (L = 3)
		{1, 512, 64, policies.Layout{Slack: 576}, 65},                   // NACL "append"
		{40, 20, 5, policies.Layout{}, 25},                              // a prompt shorter than the budget
		{4, 8, 0, policies.Layout{Slack: 3, Compensation: true}, 5},     // no decode steps
	} {
		if got := PeakEntries(c.b, c.prompt, c.gen, c.layout); got != c.want {
			t.Errorf("PeakEntries(%d, %d, %d, %+v) = %d, want %d", c.b, c.prompt, c.gen, c.layout, got, c.want)
		}
	}
}

func TestCheckVictims(t *testing.T) {
	tables := make([]policies.SlotTable, 2)
	for h := range tables {
		tables[h].Reset(4, 3) // slots 0..2 resident, 3 free
	}
	for _, c := range []struct {
		name    string
		victims [2][]int32
		weight  float32
		need    int32
		want    string
	}{
		{"ok", [2][]int32{{0, 2}, {1}}, 1, 1, ""},
		{"few", [2][]int32{{0}, {}}, 1, 1, "head 1: 0 victims, need at least 1"},
		{"range", [2][]int32{{4}, {0}}, 1, 1, "head 0: victim slot 4 out of range [0, 4)"},
		{"empty", [2][]int32{{3}, {0}}, 1, 1, "head 0: victim slot 3 is empty"},
		{"twice", [2][]int32{{1}, {2, 2}}, 1, 1, "head 1: victim slot 2 named twice"},
		{"twice at slot 0", [2][]int32{{0, 0}, {1}}, 1, 1, "head 0: victim slot 0 named twice"},
		{"too many", [2][]int32{{0, 1, 2, 2}, {0}}, 1, 1, "head 0: 4 victims, only 3 tokens resident"},
		{"weight", [2][]int32{{0}, {0}}, -1, 1, "head 0: merge weight -1 for slot 0"},
	} {
		e := policies.Eviction{Heads: 2, Stride: 4, Need: []int32{c.need, c.need}, Count: make([]int32, 2),
			Victims: make([]int32, 8), Weights: make([]float32, 8)}
		for h, vs := range c.victims {
			for _, s := range vs {
				e.Victim(h, s, c.weight)
			}
		}
		err := CheckVictims(&e, tables, true)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		for h := range tables { // a check changes nothing
			for s := range int32(4) {
				if want := map[bool]int32{true: s, false: -1}[s < 3]; tables[h].Pos(s) != want {
					t.Fatalf("%s: head %d slot %d holds %d after the check, want %d", c.name, h, s, tables[h].Pos(s), want)
				}
			}
		}
	}
}

func TestSeedSpreads(t *testing.T) {
	seen := map[uint64]bool{}
	for sample := range 8 {
		for layer := range 8 {
			seen[Seed(7, sample, layer)] = true
		}
	}
	if len(seen) != 64 || Seed(7, 0, 0) == Seed(8, 0, 0) {
		t.Errorf("%d distinct seeds of 64", len(seen))
	}
}

func TestCallRecovers(t *testing.T) {
	err := Call(func() error { panic("boom") })
	if err == nil || err.Error() != "panic: boom" {
		t.Errorf("Call: %v", err)
	}
}
