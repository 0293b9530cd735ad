package press_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press"
	"github.com/kvsim/kvsim/policies/press/presstest"
)

// table scores head h's token at position p with score[h][p].
type table struct {
	score [][]float64
	t     *press.Tokens
}

func (s *table) Start(_ policies.Config, t *press.Tokens) error { s.t = t; return nil }
func (s *table) Observe(*policies.Attention) error              { return nil }
func (s *table) Score(h int, slots []int32, scores []float64) {
	for i, slot := range slots {
		scores[i] = s.score[h][s.t.Pos(h, slot)]
	}
}

func run(t *testing.T, opt press.Options, cfg policies.Config, score [][]float64, maxLen int) presstest.Log {
	t.Helper()
	seq := presstest.Sequence{Heads: len(score), HeadDim: 2, PromptLen: cfg.PromptLen, MaxLen: maxLen}
	log, err := presstest.Run(press.New("test", &table{score: score}, opt), cfg, seq)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

func victims(log presstest.Log, event, head int) []int { return log.Events[event].Victims[head] }

func TestCompressionPerHead(t *testing.T) {
	score := [][]float64{{5, 1, 4, 1, 9, 2}, {0, 0, 0, 0, 0, 0}}
	cases := []struct {
		name         string
		opt          press.Options
		head0, head1 []int
	}{
		// Lowest first; the tie at 1 goes to the older token, 1 before 3.
		{"plain", press.Options{}, []int{1, 3, 5}, []int{0, 1, 2}},
		// Sinks keep position 0 of head 1, whose scores all tie.
		{"sinks", press.Options{Sinks: 1}, []int{1, 3, 5}, []int{1, 2, 3}},
		// Protect keeps positions 4 and 5: head 0 then loses its 4.
		{"protect", press.Options{Protect: 2}, []int{1, 3, 2}, []int{0, 1, 2}},
	}
	for _, c := range cases {
		log := run(t, c.opt, policies.Config{Budget: 3, PromptLen: 6}, score, 6)
		if len(log.Events) != 1 || !slices.Equal(victims(log, 0, 0), c.head0) || !slices.Equal(victims(log, 0, 1), c.head1) {
			t.Errorf("%s: events %+v, want head 0 %v, head 1 %v", c.name, log.Events, c.head0, c.head1)
		}
	}
}

func TestCompressionLayerPool(t *testing.T) {
	score := [][]float64{{1, 2, 3, 4}, {10, 20, 30, 40}}
	cfg := policies.Config{Budget: 2, PromptLen: 4}
	// The layer holds 2×2 = 4 entries: the four lowest are all head 0's.
	log := run(t, press.Options{Pool: policies.PoolLayer}, cfg, score, 4)
	if got := victims(log, 0, 0); !slices.Equal(got, []int{0, 1, 2, 3}) || len(victims(log, 0, 1)) != 0 {
		t.Errorf("no floor: victims %v", log.Events[0].Victims)
	}
	// Floor 0.5 of the even share (2) keeps one token per head: head 0's 4 stays and
	// head 1's lowest, 10, goes instead.
	log = run(t, press.Options{Pool: policies.PoolLayer, Floor: 0.5}, cfg, score, 4)
	if !slices.Equal(victims(log, 0, 0), []int{0, 1, 2}) || !slices.Equal(victims(log, 0, 1), []int{0}) {
		t.Errorf("floor: victims %v, want [[0 1 2] [0]]", log.Events[0].Victims)
	}
	// Equal scores across heads: the older position first, then the lower head.
	tied := [][]float64{{1, 1, 1}, {1, 1, 1}}
	log = run(t, press.Options{Pool: policies.PoolLayer}, policies.Config{Budget: 2, PromptLen: 3}, tied, 3)
	if !slices.Equal(victims(log, 0, 0), []int{0}) || !slices.Equal(victims(log, 0, 1), []int{0}) {
		t.Errorf("ties: victims %v, want [[0] [0]]", log.Events[0].Victims)
	}
}

func TestCompressionModelPool(t *testing.T) {
	// Two layers of two heads at budget 2: 8 entries, of which layer 1 gets 3.
	opt := press.Options{Pool: policies.PoolModel, LayerBudgets: func(cfg policies.Config, entries []int) error {
		entries[0], entries[1] = 5, 3
		return nil
	}}
	score := [][]float64{{4, 1, 6}, {3, 5, 2}}
	log := run(t, opt, policies.Config{Budget: 2, PromptLen: 3, Layer: 1, Layers: 2}, score, 3)
	// 6 resident, 3 allowed: the three lowest are head 0's 1 (pos 1), head 1's 2 (pos 2)
	// and head 1's 3 (pos 0).
	if !slices.Equal(victims(log, 0, 0), []int{1}) || !slices.Equal(victims(log, 0, 1), []int{2, 0}) {
		t.Errorf("victims %v, want [[1] [2 0]]", log.Events[0].Victims)
	}
}

func TestDecodeScore(t *testing.T) {
	score := [][]float64{{3, 1, 2, 0, 5, 0.5}}
	cfg := policies.Config{Budget: 3, PromptLen: 4}
	// Compression drops 3 (score 0); step 4 drops 1 (score 1); step 5 drops itself (0.5).
	log := run(t, press.Options{Decode: press.Score}, cfg, score, 6)
	want := [][]int{{3}, {1}, {5}}
	for i, w := range want {
		if !slices.Equal(victims(log, i, 0), w) {
			t.Errorf("event %d: victims %v, want %v", i, victims(log, i, 0), w)
		}
	}
	// Protecting the newest position keeps 5: 2 goes instead.
	log = run(t, press.Options{Decode: press.Score, Protect: 1}, cfg, score, 6)
	if got := victims(log, 2, 0); !slices.Equal(got, []int{2}) {
		t.Errorf("protect 1, step 5: victims %v, want [2]", got)
	}
	if !slices.Equal(log.Resident[0], []int{0, 4, 5}) {
		t.Errorf("resident %v, want [0 4 5]", log.Resident[0])
	}
}

func TestDecodeWindow(t *testing.T) {
	score := [][]float64{{3, 1, 2, 0, 9, 9, 9, 9}}
	log := run(t, press.Options{Decode: press.Window, Window: 2}, policies.Config{Budget: 3, PromptLen: 4}, score, 8)
	// Compression drops 3. Until a generated token leaves the window, the
	// lowest-scored prompt token goes (1, then 2); then generated tokens go oldest
	// first, whatever their scores.
	want := [][]int{{3}, {1}, {2}, {4}, {5}}
	for i, w := range want {
		if !slices.Equal(victims(log, i, 0), w) {
			t.Errorf("event %d: victims %v, want %v", i, victims(log, i, 0), w)
		}
	}
	if !slices.Equal(log.Resident[0], []int{0, 6, 7}) {
		t.Errorf("resident %v, want [0 6 7]", log.Resident[0])
	}
}

func TestDecodeAppendKeepsEverything(t *testing.T) {
	score := [][]float64{{3, 1, 2, 0, 5, 0.5}}
	log := run(t, press.Options{Decode: press.Append}, policies.Config{Budget: 3, PromptLen: 4}, score, 6)
	if len(log.Events) != 1 || !slices.Equal(log.Resident[0], []int{0, 1, 2, 4, 5}) {
		t.Errorf("events %+v, resident %v: want one compression, then every token kept", log.Events, log.Resident[0])
	}
}

func TestStoredKeysFollowSlots(t *testing.T) {
	// Key of position p is (10-p, p) on head 0 and (p, 0) on head 1: head 0 keeps the
	// oldest, head 1 the newest. Decode tokens enter freed slots, so this fails if a
	// key is stored under the wrong slot.
	seq := presstest.Sequence{Heads: 2, HeadDim: 2, PromptLen: 5, MaxLen: 8,
		Key: func(h, p int) []float32 {
			if h == 0 {
				return []float32{float32(10 - p), float32(p)}
			}
			return []float32{float32(p), 0}
		}}
	log, err := presstest.Run(press.New("keys", &firstKey{}, press.Options{StoreKeys: true, Decode: press.Score}),
		policies.Config{Budget: 3}, seq)
	if err != nil {
		t.Fatal(err)
	}
	if !log.Layout.Keys || log.Layout.Slack != 0 {
		t.Errorf("layout %+v: want keys and no slack", log.Layout)
	}
	if !slices.Equal(log.Resident[0], []int{0, 1, 2}) || !slices.Equal(log.Resident[1], []int{5, 6, 7}) {
		t.Errorf("resident %v, want [[0 1 2] [5 6 7]]", log.Resident)
	}
}

// nanScorer gives NaN.
type nanScorer struct{}

func (nanScorer) Start(policies.Config, *press.Tokens) error { return nil }
func (nanScorer) Observe(*policies.Attention) error          { return nil }
func (nanScorer) Score(_ int, _ []int32, scores []float64) {
	for i := range scores {
		scores[i] = math.NaN()
	}
}

func TestErrors(t *testing.T) {
	seq := presstest.Sequence{Heads: 1, HeadDim: 2, PromptLen: 4, MaxLen: 6}
	cases := []struct {
		name string
		p    policies.Policy
		cfg  policies.Config
		want string
	}{
		{"nan", press.New("nan", nanScorer{}, press.Options{}), policies.Config{Budget: 2}, "NaN for position"},
		{"floor", press.New("floor", &table{}, press.Options{Pool: policies.PoolLayer, Floor: 2}), policies.Config{Budget: 2}, "floor 2 is not in 0..1"},
		{"model", press.New("model", &table{}, press.Options{Pool: policies.PoolModel}), policies.Config{Budget: 2}, "needs LayerBudgets"},
		{"dim", press.New("dim", &table{}, press.Options{Keys: true}), policies.Config{Budget: 2, HeadDim: -1}, "head dimension"},
	}
	for _, c := range cases {
		s := seq
		if c.cfg.HeadDim < 0 {
			s.HeadDim = 0
		}
		_, err := presstest.Run(c.p, c.cfg, s)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), c.name+": ") {
			t.Errorf("%s: error %v, want one starting %q and containing %q", c.name, err, c.name+": ", c.want)
		}
	}
}

func TestMissingKeysAreRejected(t *testing.T) {
	p := press.New("knorm", &firstKey{}, press.Options{StoreKeys: true})
	if _, err := p.Init(policies.Config{Heads: 1, HeadDim: 2, PromptLen: 2, MaxLen: 3, Budget: 1}); err != nil {
		t.Fatal(err)
	}
	a := &policies.Attention{Phase: policies.Prefill, Rows: 2, Heads: 1, Stride: 2, Probs: []float32{1, 0, 0.5, 0.5}}
	err := p.Observe(a)
	if err == nil || !strings.Contains(err.Error(), "keys") {
		t.Fatalf("observe without keys: %v", err)
	}
}

func TestReadOptions(t *testing.T) {
	opt, err := press.ReadOptions(policies.NewParams(map[string]any{"decode": "window", "window": 4.0, "sinks": 1.0}),
		press.Options{Decode: press.Append, Protect: 2})
	if err != nil || opt.Decode != press.Window || opt.Window != 4 || opt.Sinks != 1 || opt.Protect != 2 {
		t.Errorf("options %+v, %v", opt, err)
	}
	for _, bad := range []map[string]any{
		{"decode": "slide"}, {"window": -1.0}, {"decode": "window"}, {"protect": -2.0}, {"colour": "red"},
	} {
		if _, err := press.ReadOptions(policies.NewParams(bad), press.Options{}); err == nil {
			t.Errorf("params %v: no error", bad)
		}
	}
}

func TestDecodeLayerPool(t *testing.T) {
	score := [][]float64{{5, 1, 4, 0, 9}, {3, 2, 8, 7, 0.5}}
	log := run(t, press.Options{Pool: policies.PoolLayer, Decode: press.Score}, policies.Config{Budget: 2, PromptLen: 3}, score, 5)
	// The layer holds 4. Compression: 6 resident, the two lowest go (1 and 2, both at
	// position 1). Step 3: both heads gain a token, the lowest two of the layer go:
	// head 0's 3 (score 0) and head 1's 0 (score 3). Step 4: head 1's 4 (0.5) and
	// head 0's 2 (4).
	want := [][][]int{{{1}, {1}}, {{3}, {0}}, {{2}, {4}}}
	for i, w := range want {
		for h := range 2 {
			if got := victims(log, i, h); !slices.Equal(got, w[h]) {
				t.Errorf("event %d head %d: victims %v, want %v", i, h, got, w[h])
			}
		}
	}
	if !slices.Equal(log.Resident[0], []int{0, 4}) || !slices.Equal(log.Resident[1], []int{2, 3}) {
		t.Errorf("resident %v, want [[0 4] [2 3]]", log.Resident)
	}
}

func TestReuseResets(t *testing.T) {
	first := presstest.Sequence{Heads: 3, HeadDim: 2, PromptLen: 9, MaxLen: 14,
		Key: func(h, pos int) []float32 { return []float32{float32(pos%4 + h), 1} }}
	second := presstest.Sequence{Heads: 2, HeadDim: 2, PromptLen: 6, MaxLen: 8,
		Key: func(h, pos int) []float32 { return []float32{float32((pos * 5) % 7), float32(h)} }}
	for _, opt := range []press.Options{
		{StoreKeys: true, Decode: press.Score},
		{StoreKeys: true, Decode: press.Window, Window: 2},
		{StoreKeys: true, Decode: press.Score, Pool: policies.PoolLayer, Floor: 0.5},
	} {
		newPress := func(*policies.Params) (policies.Policy, error) { return press.New("reuse", &firstKey{}, opt), nil }
		err := presstest.SameAfterReuse(newPress, nil, policies.Config{Budget: 3}, first, second)
		if err != nil {
			t.Errorf("options %+v: %v", opt, err)
		}
	}
}
