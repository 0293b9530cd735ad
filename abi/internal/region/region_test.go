package region

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// fields are the header's fields by their C and ABI.md names.
var fields = map[string]int{
	"host_version": HostVersion, "region_size": Size, "params_off": ParamsOff, "params_len": ParamsLen,
	"layer": Layer, "layers": Layers, "heads": Heads, "head_dim": HeadDim, "prompt_len": PromptLen,
	"max_len": MaxLen, "budget": Budget, "reserved0": Reserved, "seed": Seed, "slack": Slack, "flags": Flags,
	"phase": Phase, "pos": Pos, "rows": Rows, "stride": Stride, "probs_off": ProbsOff, "slot_off": SlotOff,
	"comp_off": CompOff, "need_off": NeedOff, "count_off": CountOff, "victims_off": VictimsOff,
	"weights_off": WeightsOff, "future_off": FutureOff, "err_ptr": ErrPtr, "err_len": ErrLen,
	"probs_cap": ProbsCap, "list_cap": ListCap,
	"pool": Pool, "pool_need": PoolNeed, "keys_off": KeysOff, "values_off": ValuesOff, "queries_off": QueriesOff,
	"live_off": LiveOff, "len_off": LenOff, "budgets_off": BudgetsOff, "vec_cap": VecCap, "budgets_cap": BudgetsCap,
	"caps": GuestCaps, "fork_ptr": ForkPtr, "fork_len": ForkLen, "fork_off": ForkOff, "reserved1": ForkOff + 4,
}

// TestHeaderAgrees: kvpolicy.h's struct, laid out by C's rules, its offset comments,
// and ABI.md's table all match these constants.
func TestHeaderAgrees(t *testing.T) {
	h, err := os.ReadFile("../../kvpolicy.h")
	if err != nil {
		t.Fatal(err)
	}
	field := regexp.MustCompile(`(?m)^\s*(u?int(32|64)_t) (\w+)(\[(\d+)\])?;\s*/\*\s*(\d+)`)
	off, seen := 0, 0
	for _, m := range field.FindAllStringSubmatch(string(h), -1) {
		size := 4
		if m[2] == "64" {
			size = 8
		}
		off = (off + size - 1) / size * size // C aligns each field to its size
		name, comment := m[3], m[6]
		if m[5] != "" {
			n, _ := strconv.Atoi(m[5])
			size *= n
		}
		want, ok := fields[name]
		if !ok {
			t.Errorf("kvpolicy.h: unknown field %s", name)
			continue
		}
		if off != want || comment != strconv.Itoa(want) {
			t.Errorf("kvpolicy.h: %s at %d (comment %s), want %d", name, off, comment, want)
		}
		off += size
		seen++
	}
	if off != HeaderSize || seen != len(fields) {
		t.Errorf("kvpolicy.h: %d fields in %d bytes, want %d in %d", seen, off, len(fields), HeaderSize)
	}

	md, err := os.ReadFile("../../ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (\\d+) \\| (u32|i32|u64) \\| `(\\w+)` \\|")
	rows := row.FindAllStringSubmatch(string(md), -1)
	for _, m := range rows {
		if want, ok := fields[m[3]]; !ok || strconv.Itoa(want) != m[1] {
			t.Errorf("ABI.md: %s at %s, want %d", m[3], m[1], want)
		}
	}
	if len(rows) != len(fields)-2 { // the reserved fields have no name there
		t.Errorf("ABI.md: %d header rows, want %d", len(rows), len(fields)-2)
	}
}

// TestPlan: arrays are aligned, in order, without overlap, inside the region.
func TestPlan(t *testing.T) {
	cfg := Config{Heads: 40, HeadDim: 128, Layers: 40, PromptLen: 1024, MaxLen: 1088}
	v1, ok := PlanFor(1, cfg)
	if !ok {
		t.Fatal("OPT-13B's shape does not fit")
	}
	// 2^18 / (40 × 1024) = 6 prefill rows a chunk.
	if v1.ProbsCap != 40*6*1024 || v1.ListCap != 1088 || v1.Probs != HeaderSize1 || v1.VecCap != 0 || v1.Keys != 0 {
		t.Errorf("1.0 plan %+v", v1)
	}
	p, ok := PlanFor(2, cfg)
	// 2^16 / (40 × 128) = 12 rows of vectors, but a chunk of probabilities has 6.
	if !ok || p.VecCap != 40*6*128 || p.BudgetsCap != 40 || p.Probs != HeaderSize {
		t.Errorf("2.0 plan %+v", p)
	}
	arrays := []struct{ at, bytes int }{
		{p.Probs, 4 * p.ProbsCap}, {p.Slot, 4 * 40}, {p.Comp, 4 * 40}, {p.Need, 4 * 40}, {p.Count, 4 * 40},
		{p.Victims, 4 * 40 * 1088}, {p.Weights, 4 * 40 * 1088}, {p.Future, 4 * 40 * 1088},
		{p.Keys, 4 * p.VecCap}, {p.Values, 4 * p.VecCap}, {p.Queries, 4 * p.VecCap},
		{p.Live, 4 * 40 * 1088}, {p.Len, 4 * 40}, {p.Budgets, 4 * 40},
	}
	end := HeaderSize
	for i, a := range arrays {
		if a.at%Align != 0 || a.at < end {
			t.Errorf("array %d at %d: misaligned or overlapping the previous one (ends %d)", i, a.at, end)
		}
		end = a.at + a.bytes
	}
	if p.Size < end || p.Size%Align != 0 {
		t.Errorf("size %d for arrays ending at %d", p.Size, end)
	}
	// 2.1: a forked state goes after every other array, and only a plan that asks
	// for room gets any.
	c := p.Caps
	c.ForkCap = 1000
	if q, ok := NewPlan(c); !ok || q.Fork < p.Size || q.Fork%Align != 0 || q.Size < q.Fork+1000 || q.Probs != p.Probs {
		t.Errorf("2.1 plan with room for a forked state %+v after %+v", q, p)
	}
	if _, ok := NewPlan(Caps{Major: 2, Heads: 1 << 20, ProbsCap: 1 << 29, ListCap: 1 << 20}); ok {
		t.Error("a plan over 4 GiB was accepted")
	}
}
