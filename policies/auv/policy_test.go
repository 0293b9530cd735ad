package auv

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
)

// reference is AUV written plainly from the paper, with none of the package's data
// structures: it finds the local area by sorting resident tokens by position and sorts
// the candidates in full. Its arithmetic follows the same formulas in the same order,
// so its choices must match the policy's exactly.
type reference struct {
	set               Settings
	local, promptLen  int
	res               policies.Residency
	aas, count, usage [][]float64
	nmax              []int
}

func (r *reference) Init(cfg policies.Config) (policies.Layout, error) {
	r.local = r.set.Local
	if r.local == 0 {
		r.local = int(math.Round(r.set.LocalRatio * float64(cfg.Budget)))
	}
	r.local = min(max(r.local, 1), cfg.Budget)
	r.promptLen = cfg.PromptLen
	r.res.Reset(cfg)
	r.aas, r.count, r.usage = table(cfg), table(cfg), table(cfg)
	r.nmax = make([]int, cfg.Heads)
	for h := range r.nmax {
		r.nmax[h] = cfg.PromptLen
	}
	layout := policies.Layout{Compensation: r.set.Compensation}
	if r.set.Eviction == Multistep {
		layout.Slack = r.local - 1
	}
	return layout, nil
}

func table(cfg policies.Config) [][]float64 {
	t := make([][]float64, cfg.Heads)
	for h := range t {
		t[h] = make([]float64, cfg.MaxLen)
	}
	return t
}

func (r *reference) Observe(a *policies.Attention) error {
	if a.Phase == policies.Prefill {
		for h := range r.aas {
			for i := 0; i < a.Rows; i++ {
				n := a.Pos + i + 1
				w := 1.0
				if r.set.Aggregation == Scaled {
					w = float64(n) / float64(r.promptLen)
				}
				for j := 0; j < n; j++ {
					r.aas[h][j] += float64(a.Row(h, i)[j]) * w
				}
			}
		}
		if a.Pos+a.Rows == r.promptLen {
			for h := range r.aas {
				for j := 0; j < r.promptLen; j++ {
					r.count[h][j] = float64(r.promptLen - j)
					if r.set.Aggregation != Sum {
						r.aas[h][j] /= r.count[h][j]
					}
				}
			}
		}
		return nil
	}
	r.res.Enter(a)
	for h := range r.aas {
		s := a.Slot[h]
		r.aas[h][s], r.count[h][s], r.usage[h][s] = 0, 0, 0
		live := r.resident(h)
		r.nmax[h] = max(r.nmax[h], len(live))
		w := 1.0
		if r.set.Aggregation == Scaled {
			w = float64(len(live)) / float64(r.nmax[h])
		}
		row := a.Row(h, 0)
		for _, j := range live {
			x := float64(row[j])
			if r.set.Aggregation == Sum {
				r.aas[h][j] += x
			} else {
				r.aas[h][j] = (x*w + r.aas[h][j]*r.count[h][j]) / (r.count[h][j] + 1)
			}
			r.count[h][j]++
		}
		if r.set.Usage {
			slices.SortFunc(live, func(a, b int32) int {
				if row[a] != row[b] {
					if row[a] > row[b] {
						return -1
					}
					return 1
				}
				return int(a - b)
			})
			for _, j := range live[:min(r.set.TopK, len(live))] {
				r.usage[h][j]++
			}
		}
	}
	return nil
}

// resident lists head h's resident slots, newest first.
func (r *reference) resident(h int) []int32 {
	var live []int32
	for s, p := range r.res.Heads[h].Positions() {
		if p >= 0 {
			live = append(live, int32(s))
		}
	}
	slices.SortFunc(live, func(a, b int32) int { return int(r.res.Heads[h].Positions()[b] - r.res.Heads[h].Positions()[a]) })
	return live
}

func (r *reference) Evict(e *policies.Eviction) error {
	for h := range r.aas {
		need := int(e.Need[h])
		if need == 0 {
			continue
		}
		aas, usage := r.aas[h], r.usage[h]
		live := r.resident(h)
		// The local area: the L newest tokens, and in single-step decoding also the token
		// that is leaving it this step.
		protected := r.local
		if e.Phase == policies.Decode && r.set.Eviction != Multistep {
			protected++
		}
		cands := live[min(protected, len(live)):]
		byScore := func(a, b int32) int {
			if aas[a] != aas[b] {
				if aas[a] < aas[b] {
					return -1
				}
				return 1
			}
			return int(a - b)
		}
		var victims []int32
		switch {
		case e.Phase == policies.Decode && r.set.Eviction != Multistep:
			if len(cands) == 0 {
				victims = []int32{live[r.local]} // no candidate area: the leaving token
				break
			}
			slices.SortFunc(cands, byScore)
			switch r.set.Eviction {
			case Greedy:
				victims = cands[:1]
			case Optimized:
				least := math.Inf(1)
				for _, s := range cands {
					least = min(least, usage[s])
				}
				for _, s := range cands {
					if usage[s] == least {
						victims = []int32{s}
						break
					}
				}
			case Naive:
				for victims == nil {
					for _, s := range cands {
						if usage[s] == 0 {
							victims = []int32{s}
							break
						}
						usage[s]--
					}
				}
			}
		default: // compression, or multistep decoding
			k := need
			if e.Phase == policies.Decode {
				k = max(need, r.local)
			}
			top := 0.0
			for _, s := range cands {
				top = max(top, aas[s])
			}
			comp := func(s int32) float64 { return usage[s]*top + aas[s] }
			slices.SortFunc(cands, func(a, b int32) int {
				if comp(a) != comp(b) {
					if comp(a) < comp(b) {
						return -1
					}
					return 1
				}
				if usage[a] != usage[b] {
					if usage[a] < usage[b] {
						return -1
					}
					return 1
				}
				return int(a - b)
			})
			victims = cands[:k]
		}
		for _, s := range victims {
			e.Victim(h, s, float32(aas[s]))
			r.res.Free(h, s)
		}
		if r.set.Eviction == Multistep {
			least := math.Inf(1)
			for _, s := range r.resident(h) {
				least = min(least, usage[s])
			}
			for _, s := range r.resident(h) {
				usage[s] = (usage[s] - least) * r.set.Alpha
			}
		}
	}
	return nil
}

// runBoth replays seq through the policy and the reference and requires the same
// victims, weights and final residents.
func runBoth(t *testing.T, params map[string]any, budget int, seq policytest.Sequence) *policytest.Log {
	t.Helper()
	p := newPolicy(t, params)
	cfg := policies.Config{Budget: budget, Seed: 1}
	got, err := policytest.Run(p, cfg, seq)
	if err != nil {
		t.Fatalf("%v: %v", params, err)
	}
	want, err := policytest.Run(&reference{set: p.set}, cfg, seq)
	if err != nil {
		t.Fatalf("%v: reference: %v", params, err)
	}
	if got.Layout != want.Layout {
		t.Fatalf("%v: layout %+v, reference %+v", params, got.Layout, want.Layout)
	}
	if len(got.Events) != len(want.Events) {
		t.Fatalf("%v: %d evictions, reference %d", params, len(got.Events), len(want.Events))
	}
	for i, ev := range got.Events {
		for h := range ev.Victims {
			if g, w := victimWeights(ev, h), victimWeights(want.Events[i], h); !maps.Equal(g, w) {
				t.Fatalf("%v: %s eviction at %d, head %d: victims→weights %v, reference %v",
					params, ev.Phase, ev.Pos, h, g, w)
			}
		}
	}
	for h := range got.Resident {
		if !slices.Equal(got.Resident[h], want.Resident[h]) {
			t.Fatalf("%v: head %d ends with %v, reference %v", params, h, got.Resident[h], want.Resident[h])
		}
	}
	return got
}

func victimWeights(ev policytest.Event, h int) map[int]float32 {
	m := map[int]float32{}
	for i, pos := range ev.VictimPos[h] {
		m[pos] = 0
		if ev.Weights[h] != nil {
			m[pos] = ev.Weights[h][i]
		}
	}
	return m
}

func TestMatchesReference(t *testing.T) {
	long := policytest.RandomSequence(3, 40, 130, 21) // compression, then many evictions
	short := policytest.RandomSequence(2, 6, 60, 22)  // the cache grows past the prompt first
	cases := []map[string]any{}
	for _, preset := range []string{"v1", "v2", "v3", "v4", "auv"} {
		cases = append(cases, map[string]any{"preset": preset})
	}
	cases = append(cases,
		map[string]any{"preset": "v2", "top_k": 1.0},
		map[string]any{"preset": "v3", "aggregation": "sum"},
		map[string]any{"preset": "v4", "aggregation": "mean", "alpha": 0.0},
		map[string]any{"preset": "auv", "usage": false},
		map[string]any{"preset": "auv", "local": 3.0, "top_k": 7.0},
		map[string]any{"preset": "v1", "local_ratio": 1.0}, // no candidate area
		map[string]any{"preset": "v3", "local": 1.0},
		map[string]any{"preset": "auv", "local_ratio": 1.0},
	)
	for _, params := range cases {
		for _, budget := range []int{12, 25} {
			runBoth(t, params, budget, long)
			runBoth(t, params, budget, short)
		}
	}
}

// Multistep evicts L tokens every L steps, never from the L newest, and a head never
// holds more than Budget+L tokens; single-step evicts one per step, never from the
// L+1 newest, and peaks at Budget+1.
func TestEvictionCadence(t *testing.T) {
	const budget, local = 16, 8
	seq := policytest.RandomSequence(2, 50, 150, 31)
	for _, preset := range []string{"v1", "v2", "v3", "v4", "auv"} {
		log := runBoth(t, map[string]any{"preset": preset}, budget, seq)
		multistep := preset == "v4" || preset == "auv"
		perEvent, protected, peak := 1, local+1, budget+1
		if multistep {
			perEvent, protected, peak = local, local, budget+local
		}
		// The prompt counts toward the peak, so measure it on a prompt shorter than the budget.
		short := runBoth(t, map[string]any{"preset": preset}, budget, policytest.RandomSequence(2, 10, 80, 32))
		if short.PeakResident != peak {
			t.Errorf("%s: peak %d tokens, want %d", preset, short.PeakResident, peak)
		}
		decode := 0
		for _, ev := range log.Events {
			newest := ev.Pos + 1 - local // at compression the last L prompt tokens stay
			if ev.Phase == policies.Decode {
				decode++
				newest = ev.Pos + 1 - protected
			}
			for h, pos := range ev.VictimPos {
				if ev.Phase == policies.Decode && len(pos) != perEvent {
					t.Fatalf("%s: step %d head %d: %d victims, want %d", preset, ev.Pos, h, len(pos), perEvent)
				}
				for _, q := range pos {
					if q >= newest {
						t.Fatalf("%s: step %d head %d evicted position %d of the local area", preset, ev.Pos, h, q)
					}
				}
			}
		}
		if steps := 150 - 50; decode != steps/perEvent {
			t.Errorf("%s: %d decode evictions over %d steps, want %d", preset, decode, steps, steps/perEvent)
		}
	}
}

// With L = Budget there is no candidate area: single-step decoding becomes a sliding
// window that evicts the token leaving the ring.
func TestNoCandidateArea(t *testing.T) {
	const budget = 6
	log := runBoth(t, map[string]any{"preset": "v2", "local_ratio": 1.0}, budget, policytest.RandomSequence(1, 10, 30, 41))
	for _, ev := range log.Events[1:] {
		if want := ev.Pos - budget; !slices.Equal(ev.VictimPos[0], []int{want}) {
			t.Fatalf("step %d evicted %v, want [%d]", ev.Pos, ev.VictimPos[0], want)
		}
	}
}

// recorder wraps the policy to check, after every call, that the AAS of each resident
// token equals the scaled mean recomputed from scratch over all rows it has seen
// (Eq. 2–4), and that eviction weights are the victims' AAS.
type recorder struct {
	*policy
	res  policies.Residency
	rows [][]map[int32][2]float64 // per head, per position: slot → (attn, N/N_max) of each row
	nmax []int
	t    *testing.T
}

func (r *recorder) Init(cfg policies.Config) (policies.Layout, error) {
	r.res.Reset(cfg)
	r.rows = make([][]map[int32][2]float64, cfg.Heads)
	r.nmax = make([]int, cfg.Heads)
	for h := range r.nmax {
		r.nmax[h] = cfg.PromptLen
	}
	return r.policy.Init(cfg)
}

func (r *recorder) Observe(a *policies.Attention) error {
	r.res.Enter(a)
	for h := range r.rows {
		for i := 0; i < a.Rows; i++ {
			row := map[int32][2]float64{}
			if a.Phase == policies.Prefill {
				n := a.Pos + i + 1
				for j := 0; j < n; j++ {
					row[int32(j)] = [2]float64{float64(a.Row(h, i)[j]), float64(n) / float64(r.nmax[h])}
				}
			} else {
				n := r.res.Heads[h].Resident()
				r.nmax[h] = max(r.nmax[h], n)
				for s, p := range r.res.Heads[h].Positions() {
					if p >= 0 {
						row[int32(s)] = [2]float64{float64(a.Row(h, 0)[s]), float64(n) / float64(r.nmax[h])}
					}
				}
			}
			r.rows[h] = append(r.rows[h], row)
		}
	}
	if err := r.policy.Observe(a); err != nil {
		return err
	}
	if a.Phase == policies.Decode || a.Pos+a.Rows == r.cfg.PromptLen {
		r.check(a.Pos + a.Rows - 1)
	}
	return nil
}

func (r *recorder) check(now int) {
	for h := range r.rows {
		r.score(&r.heads[h])
		for s, p := range r.res.Heads[h].Positions() {
			if p < 0 {
				continue
			}
			sum, n := 0.0, 0
			for _, row := range r.rows[h][p : now+1] {
				x := row[int32(s)]
				sum += x[0] * x[1]
				n++
			}
			if want, got := sum/float64(n), r.heads[h].aas[s]; !near(got, want) {
				r.t.Fatalf("after position %d, head %d: position %d has AAS %.17g, from scratch %.17g", now, h, p, got, want)
			}
		}
	}
}

func (r *recorder) Evict(e *policies.Eviction) error {
	if e.Weights == nil {
		return fmt.Errorf("no weights requested: the recorder needs compensation on")
	}
	before := make([][]float64, e.Heads)
	for h := range before {
		before[h] = slices.Clone(r.heads[h].aas)
	}
	if err := r.policy.Evict(e); err != nil {
		return err
	}
	for h := range before {
		for i := 0; i < int(e.Count[h]); i++ {
			s := e.Victims[h*e.Stride+i]
			if w := e.Weights[h*e.Stride+i]; w != float32(before[h][s]) {
				return fmt.Errorf("head %d: victim slot %d weighs %g, its AAS is %g", h, s, w, before[h][s])
			}
			r.res.Free(h, s)
		}
	}
	return nil
}

func TestDecodeAggregationFromScratch(t *testing.T) {
	for _, tc := range []struct {
		budget int
		seq    policytest.Sequence
	}{
		{10, policytest.RandomSequence(2, 30, 90, 51)}, // N_max stays P
		{30, policytest.RandomSequence(2, 8, 90, 52)},  // rows outgrow the prompt, so N_max grows
	} {
		r := &recorder{policy: newPolicy(t, nil), t: t}
		if _, err := policytest.Run(r, policies.Config{Budget: tc.budget}, tc.seq); err != nil {
			t.Fatal(err)
		}
	}
}

// After Init, a decode step allocates nothing.
func TestNoAllocations(t *testing.T) {
	for _, preset := range []string{"v1", "v2", "v3", "v4", "auv"} {
		m, err := newHost(newPolicy(t, map[string]any{"preset": preset}),
			policies.Config{Heads: 4, PromptLen: 64, MaxLen: 400, Budget: 16}, 1)
		if err != nil {
			t.Fatal(err)
		}
		var stepErr error
		allocs := testing.AllocsPerRun(200, func() {
			if err := m.step(); err != nil && stepErr == nil {
				stepErr = err
			}
		})
		if stepErr != nil {
			t.Fatalf("%s: %v", preset, stepErr)
		}
		if allocs != 0 {
			t.Errorf("%s: %g allocations per decode step", preset, allocs)
		}
	}
}

func TestTopK(t *testing.T) {
	row := []float32{0.1, 0.3, 0.3, 0.2, 0.3, 0}
	res := []int32{4, 2, 0, 5, 1, 3}
	for _, tc := range []struct {
		k    int
		want []int32
	}{
		{1, []int32{1}},
		{2, []int32{1, 2}}, // ties at 0.3 go to the lower slots
		{4, []int32{1, 2, 4, 3}},
		{9, []int32{1, 2, 4, 3, 0, 5}},
	} {
		if got := topK(make([]int32, 0, tc.k), res, row); !slices.Equal(got, tc.want) {
			t.Errorf("top %d = %v, want %v", tc.k, got, tc.want)
		}
	}
}

// A host may reuse an instance for another sequence: Init must reset everything.
func TestReuse(t *testing.T) {
	big := policytest.RandomSequence(3, 40, 100, 61)
	small := policytest.RandomSequence(2, 12, 50, 62)
	for _, preset := range []string{"v2", "auv"} {
		params := map[string]any{"preset": preset}
		reused := newPolicy(t, params)
		for _, seq := range []policytest.Sequence{big, small, big} {
			cfg := policies.Config{Budget: 10}
			got, err := policytest.Run(reused, cfg, seq)
			if err != nil {
				t.Fatal(err)
			}
			want, err := policytest.Run(newPolicy(t, params), cfg, seq)
			if err != nil {
				t.Fatal(err)
			}
			for h := range want.Resident {
				if !slices.Equal(got.Resident[h], want.Resident[h]) {
					t.Fatalf("%s: reused instance keeps %v on head %d, a fresh one %v", preset, got.Resident[h], h, want.Resident[h])
				}
			}
		}
	}
}

// Calls out of protocol are errors, not panics.
func TestProtocolErrors(t *testing.T) {
	cfg := policies.Config{Heads: 1, PromptLen: 4, MaxLen: 10, Budget: 2}
	prompt := func(pos, rows int) *policies.Attention {
		return &policies.Attention{Phase: policies.Prefill, Pos: pos, Rows: rows, Heads: 1, Stride: 4, Probs: make([]float32, rows*4)}
	}
	evict := func(phase policies.Phase, need int32) *policies.Eviction {
		return &policies.Eviction{Phase: phase, Heads: 1, Need: []int32{need}, Stride: 4,
			Count: make([]int32, 1), Victims: make([]int32, 4), Weights: make([]float32, 4)}
	}
	step := func(slot int32) *policies.Attention {
		return &policies.Attention{Phase: policies.Decode, Pos: 4, Rows: 1, Heads: 1, Stride: 4,
			Probs: make([]float32, 4), Slot: []int32{slot}, Comp: make([]float32, 1)}
	}
	for _, tc := range []struct {
		name   string
		prompt int // rows observed before the call
		call   func(p *policy) error
	}{
		{"rows out of order", 0, func(p *policy) error { return p.Observe(prompt(2, 2)) }},
		{"rows past the prompt", 0, func(p *policy) error { return p.Observe(prompt(0, 5)) }},
		{"evict mid-prompt", 2, func(p *policy) error { return p.Evict(evict(policies.Prefill, 2)) }},
		{"decode mid-prompt", 2, func(p *policy) error { return p.Observe(step(2)) }},
		{"victims from the local area", 4, func(p *policy) error { return p.Evict(evict(policies.Prefill, 3)) }},
		{"occupied slot", 4, func(p *policy) error { return p.Observe(step(1)) }},
		{"unknown phase", 4, func(p *policy) error { return p.Evict(evict(0, 1)) }},
		{"wrong heads", 0, func(p *policy) error {
			a := prompt(0, 4)
			a.Heads = 2
			return p.Observe(a)
		}},
	} {
		p := newPolicy(t, map[string]any{"preset": "v3", "local": 2.0})
		if _, err := p.Init(cfg); err != nil {
			t.Fatal(err)
		}
		if tc.prompt > 0 {
			if err := p.Observe(prompt(0, tc.prompt)); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		if err := tc.call(p); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
