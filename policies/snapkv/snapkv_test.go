package snapkv

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
)

func newPolicy(t *testing.T, params map[string]any) policies.Policy {
	t.Helper()
	p, err := New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPool(t *testing.T) {
	tests := []struct {
		line   []float64
		kernel int
		max    bool
		want   []float64
	}{
		// The average divides by the kernel at the edges too (zero padding).
		{[]float64{1, 2, 3, 4, 5, 6}, 3, false, []float64{1, 2, 3, 4, 5, 11.0 / 3}},
		{[]float64{1, 2, 3, 4, 5, 6}, 5, false, []float64{1.2, 2, 3, 4, 3.6, 3}},
		{[]float64{2, 4}, 5, false, []float64{1.2, 1.2}},
		// The max ignores the padding.
		{[]float64{3, 1, 4, 1, 5, 9, 2}, 3, true, []float64{3, 4, 4, 5, 9, 9, 9}},
		{[]float64{2, 4}, 5, true, []float64{4, 4}},
		{[]float64{3, 1, 4}, 1, false, []float64{3, 1, 4}},
	}
	for _, tt := range tests {
		for i, want := range tt.want {
			if got := pool(tt.line, i, tt.kernel, tt.max); math.Abs(got-want) > 1e-12 {
				t.Errorf("pool(%v, %d, kernel %d, max %v) = %g, want %g", tt.line, i, tt.kernel, tt.max, got, want)
			}
		}
	}
}

func TestCompressionVictims(t *testing.T) {
	// Voters are rows 6 and 7; on tokens 0..5 their summed vote is
	// [0.50 0.06 0.12 0.06 0.30 0.16]. Budget 5 keeps the window (6, 7) and 3 others.
	rows := policytest.UniformPrompt(8,
		[]float32{0.30, 0.02, 0.10, 0.02, 0.20, 0.06, 0.30},
		[]float32{0.20, 0.04, 0.02, 0.04, 0.10, 0.10, 0.20, 0.30})
	tests := []struct {
		pooling string
		kernel  int
		want    []int32
	}{
		// Raw votes: the lowest three are 1, 3 (0.06) and 2 (0.12).
		{"avg", 1, []int32{1, 2, 3}},
		// Averaged with kernel 3: [0.187 0.227 0.080 0.160 0.173 0.153].
		{"avg", 3, []int32{2, 3, 5}},
		// Max with kernel 3: [0.5 0.5 0.12 0.3 0.3 0.3]; of the tied 0.3s the older go.
		{"max", 3, []int32{2, 3, 4}},
	}
	for _, tt := range tests {
		p := newPolicy(t, map[string]any{"window": 2, "kernel": tt.kernel, "pooling": tt.pooling})
		layout, err := p.Init(policies.Config{Heads: 1, PromptLen: 8, MaxLen: 12, Budget: 5})
		if err != nil {
			t.Fatal(err)
		}
		if layout.Slack != 12 {
			t.Errorf("append layout slack %d, want MaxLen 12", layout.Slack)
		}
		policytest.Prefill(t, p, 8, [][][]float32{rows})
		got, err := policytest.Evict(p, policies.Prefill, 7, 12, []int32{3})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[0], tt.want) {
			t.Errorf("%s kernel %d: victims %v, want %v", tt.pooling, tt.kernel, got[0], tt.want)
		}
	}
}

func TestWindowClampedToBudget(t *testing.T) {
	p := newPolicy(t, nil) // window 32 > budget 3
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 6, MaxLen: 6, Budget: 3}); err != nil {
		t.Fatal(err)
	}
	policytest.Prefill(t, p, 6, [][][]float32{policytest.UniformPrompt(6)})
	got, err := policytest.Evict(p, policies.Prefill, 5, 6, []int32{3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0], []int32{0, 1, 2}) {
		t.Errorf("victims %v, want the oldest three", got[0])
	}
}

// compressSmall runs the 6-token prompt shared by the decode tests: window 2, budget
// 4, raw votes [0.7 0.15 0.5 0.15] on tokens 0..3. Unpooled, tokens 1 and 3 go;
// pooled with kernel 3 ([0.283 0.45 0.267 0.217]), tokens 2 and 3.
func compressSmall(t *testing.T, params map[string]any, want []int32) policies.Policy {
	t.Helper()
	params["window"] = 2
	p := newPolicy(t, params)
	layout, err := p.Init(policies.Config{Heads: 1, PromptLen: 6, MaxLen: 10, Budget: 4})
	if err != nil {
		t.Fatal(err)
	}
	if layout.Slack != 0 {
		t.Fatalf("decode=%v: slack %d, want 0", params["decode"], layout.Slack)
	}
	policytest.Prefill(t, p, 6, [][][]float32{policytest.UniformPrompt(6,
		[]float32{0.3, 0.1, 0.2, 0.1, 0.3},
		[]float32{0.4, 0.05, 0.3, 0.05, 0.1, 0.1})})
	got, err := policytest.Evict(p, policies.Prefill, 5, 10, []int32{2})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0], want) {
		t.Fatalf("compression victims %v, want %v", got[0], want)
	}
	return p
}

func TestRecencyDecode(t *testing.T) {
	p := compressSmall(t, map[string]any{"decode": "recency", "kernel": 1}, []int32{1, 3})
	// Resident: positions 0, 2, 4, 5 in slots 0, 2, 4, 5. Each step the token that
	// leaves the last two positions goes; the vote's picks 0 and 2 stay.
	row := []float32{0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0, 0, 0, 0}
	steps := []struct {
		slot, victim int32
	}{
		{1, 4}, // position 6 enters slot 1; position 4 (slot 4) leaves the window
		{3, 5}, // position 7 enters slot 3; position 5 (slot 5) goes
		{4, 1}, // position 8 enters slot 4; position 6 (slot 1) goes
	}
	for i, st := range steps {
		pos := 6 + i
		policytest.Decode(t, p, pos, 10, []int32{st.slot}, [][]float32{row})
		got, err := policytest.Evict(p, policies.Decode, pos, 10, []int32{1})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[0], []int32{st.victim}) {
			t.Fatalf("step %d: victims %v, want [%d]", pos, got[0], st.victim)
		}
	}
}

func TestRescoreDecode(t *testing.T) {
	// Position 6 enters the lowest free slot. The voters are then rows 5 and 6, and the
	// window is positions 5 and 6.
	tests := []struct {
		kernel      int
		compression []int32
		slot        int32
		row6        []float32 // by slot
		want        int32
	}{
		// Tokens 0, 2, 4 in slots 0, 2, 4 have votes 0.4+0.05, 0.3+0.05, 0.1+0.5: the
		// lowest is token 2.
		{1, []int32{1, 3}, 1, []float32{0.05, 0.2, 0.05, 0, 0.5, 0.2}, 2},
		// Tokens 0, 1, 4 in slots 0, 1, 4 have votes 0.45, 0.10, 0.6, pooled to
		// [0.183 0.383 0.233]: token 0 goes, where the raw votes would drop token 1.
		{3, []int32{2, 3}, 2, []float32{0.05, 0.05, 0.2, 0, 0.5, 0.2}, 0},
	}
	for _, tt := range tests {
		p := compressSmall(t, map[string]any{"decode": "rescore", "kernel": tt.kernel}, tt.compression)
		policytest.Decode(t, p, 6, 10, []int32{tt.slot}, [][]float32{tt.row6})
		got, err := policytest.Evict(p, policies.Decode, 6, 10, []int32{1})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[0], []int32{tt.want}) {
			t.Errorf("kernel %d: victims %v, want [%d]", tt.kernel, got[0], tt.want)
		}
	}
}

func TestAppendRefusesDecodeEviction(t *testing.T) {
	p := newPolicy(t, map[string]any{"window": 1})
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 2, MaxLen: 4, Budget: 2}); err != nil {
		t.Fatal(err)
	}
	policytest.Prefill(t, p, 2, [][][]float32{policytest.UniformPrompt(2)})
	policytest.Decode(t, p, 2, 4, []int32{2}, [][]float32{{0.3, 0.3, 0.4, 0}})
	if _, err := policytest.Evict(p, policies.Decode, 2, 4, []int32{1}); err == nil || !strings.Contains(err.Error(), "append") {
		t.Fatalf("err = %v, want a refusal naming decode=append", err)
	}
}

func TestNewRejectsBadParams(t *testing.T) {
	for _, params := range []map[string]any{
		{"windows": 8},
		{"window": 0},
		{"kernel": 4},
		{"pooling": "mean"},
		{"decode": "evict"},
	} {
		if _, err := New(policies.NewParams(params)); err == nil {
			t.Errorf("New(%v) succeeded, want an error", params)
		}
	}
}

func TestNoAllocationsPerCall(t *testing.T) {
	for _, mode := range []string{"recency", "rescore"} {
		p := newPolicy(t, map[string]any{"window": 3, "decode": mode})
		const prompt, budget, stride = 16, 8, 16
		if _, err := p.Init(policies.Config{Heads: 1, PromptLen: prompt, MaxLen: 1 << 20, Budget: budget}); err != nil {
			t.Fatal(err)
		}
		rows := make([][]float32, prompt)
		for i := range rows {
			rows[i] = make([]float32, i+1)
			for j := range rows[i] {
				rows[i][j] = float32((i*7+j*3)%11+1) / 100
			}
		}
		policytest.Prefill(t, p, stride, [][][]float32{rows})
		victims, err := policytest.Evict(p, policies.Prefill, prompt-1, stride, []int32{prompt - budget})
		if err != nil {
			t.Fatal(err)
		}
		a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: 1, Stride: stride,
			Probs: make([]float32, stride), Slot: []int32{0}}
		for s := range a.Probs {
			a.Probs[s] = float32(s%5+1) / 40
		}
		e := &policies.Eviction{Phase: policies.Decode, Heads: 1, Need: []int32{1}, Stride: stride,
			Count: make([]int32, 1), Victims: make([]int32, stride)}
		pos, free := prompt, victims[0][0] // the lowest free slot
		step := func() {
			a.Pos, e.Pos, a.Slot[0] = pos, pos, free
			if err := p.Observe(a); err != nil {
				t.Fatal(err)
			}
			if err := p.Evict(e); err != nil {
				t.Fatal(err)
			}
			free = e.Victims[0] // the only free slot now
			pos++
		}
		if allocs := testing.AllocsPerRun(50, step); allocs != 0 {
			t.Errorf("decode=%s: %v allocations per decode step", mode, allocs)
		}
	}
}
