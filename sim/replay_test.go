package sim

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/h2o"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/policies/oracle"
	"github.com/kvsim/kvsim/policies/window"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// memSource is a one-layer, one-head trace held in memory.
type memSource struct {
	meta    kvtrace.Meta
	q, k, v []float32
}

func (m *memSource) Name() string       { return "mem:" + m.meta.SampleID }
func (m *memSource) Meta() kvtrace.Meta { return m.meta }
func (m *memSource) Read(kind kvtrace.Kind, layer int, dst []float32) ([]float32, error) {
	switch kind {
	case kvtrace.Q:
		return append(dst[:0], m.q...), nil
	case kvtrace.K:
		return append(dst[:0], m.k...), nil
	case kvtrace.V:
		return append(dst[:0], m.v...), nil
	}
	return nil, errors.New("bad kind")
}

// handTrace: 4 prompt + 2 generated tokens, head_dim 2. Every query is (1, 0) and key
// j is (ln w_j, 0), so the attention of query t on j is w_j / Σ_{i≤t} w_i with
// w = [4, 1, 2, 1, 2, 10]. Values are v_j = (j, 1).
func handTrace() *memSource {
	w := []float64{4, 1, 2, 1, 2, 10}
	m := &memSource{meta: kvtrace.Meta{Model: "hand", Layers: 1, Heads: 1, HeadDim: 2, PromptLen: 4, GenLen: 2,
		Source: kvtrace.SourceSynthetic, SampleID: "hand", HasV: true}}
	for j, x := range w {
		m.q = append(m.q, 1, 0)
		m.k = append(m.k, float32(math.Log(x)), 0)
		m.v = append(m.v, float32(j), 1)
	}
	return m
}

func spec(name string, n policies.New, params map[string]any) PolicySpec {
	return PolicySpec{Name: name, New: func() (policies.Policy, error) { return n(policies.NewParams(params)) }}
}

func relErr(o, ref [2]float64) float64 {
	return math.Hypot(o[0]-ref[0], o[1]-ref[1]) / math.Hypot(ref[0], ref[1])
}

// TestHandComputedWindow replays window(sink=1) at a budget of 2 tokens. By hand:
// compression evicts positions 1 and 2, leaving {0, 3}. Step 4 enters slot 1 and sees
// {0, 3, 4}: hit (4+1+2)/10; then 3 is evicted. Step 5 enters slot 2 and sees
// {0, 4, 5}: hit (4+2+10)/20.
func TestHandComputedWindow(t *testing.T) {
	res, err := Replay(context.Background(), []Source{handTrace()},
		[]PolicySpec{spec("window", window.New, map[string]any{"sink": 1.0})},
		Options{Budgets: []host.Budget{{Tokens: 2}}, TopK: 2, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Cell(0, 0)
	if c.Failed != "" {
		t.Fatal(c.Failed)
	}
	wantHit := (0.7 + 0.8) / 2
	// Top-2 under full cache: step 4 {0, 2} (2 beats 4 on the tie by age), one kept;
	// step 5 {5, 0}, both kept.
	wantTop := (0.5 + 1.0) / 2
	// Outputs: full (1.6, 1) vs kept (11/7, 1); full (3.3, 1) vs kept (58/16, 1).
	wantErr := (relErr([2]float64{11.0 / 7, 1}, [2]float64{1.6, 1}) + relErr([2]float64{58.0 / 16, 1}, [2]float64{3.3, 1})) / 2
	check := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.9f, want %.9f", name, got, want)
		}
	}
	check("hit rate", c.HitRate, wantHit, 1e-6)
	check("top-k hit rate", c.TopKHitRate, wantTop, 0)
	check("output error", c.OutputError, wantErr, 1e-6)
	check("evictions", c.Evictions, 4, 0)
	check("peak resident", c.PeakResident, 3, 0)
	check("mean resident", c.MeanResident, 3, 0)
	check("budget tokens", c.BudgetTokens, 2, 0)
	if len(c.Layers) != 1 || c.Layers[0].HitRate != c.HitRate {
		t.Errorf("per-layer figures %+v do not match the cell", c.Layers)
	}
}

// TestFullCacheScoresOne: keeping everything keeps all attention and the exact output
// (the full cache's own row, so an output error of exactly 0).
func TestFullCacheScoresOne(t *testing.T) {
	full := PolicySpec{Name: "full", New: func() (policies.Policy, error) { return unbounded{}, nil }}
	res, err := Replay(context.Background(), []Source{handTrace()}, []PolicySpec{full},
		Options{Budgets: []host.Budget{{Tokens: 2}, {Fraction: 0.5}}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for j := range res.Budgets {
		c := res.Cell(0, j)
		if math.Abs(c.HitRate-1) > 1e-6 || c.TopKHitRate != 1 || c.OutputError != 0 || c.Evictions != 0 || c.MeanResident != 5.5 {
			t.Errorf("budget %s: %+v", c.Budget, c)
		}
	}
}

type unbounded struct{}

func (unbounded) Init(policies.Config) (policies.Layout, error) {
	return policies.Layout{Unbounded: true}, nil
}
func (unbounded) Observe(*policies.Attention) error { return nil }
func (unbounded) Evict(*policies.Eviction) error    { return errors.New("never") }

// liar misbehaves in the way its mode says, at the first decode eviction.
type liar struct {
	mode string
	res  policies.Residency
}

func (l *liar) Init(cfg policies.Config) (policies.Layout, error) {
	l.res.Reset(cfg)
	return policies.Layout{}, nil
}
func (l *liar) Observe(a *policies.Attention) error { l.res.Enter(a); return nil }
func (l *liar) Evict(e *policies.Eviction) error {
	if e.Phase == policies.Prefill {
		// Honest compression: the oldest non-sink tokens.
		for s := int32(1); s <= e.Need[0]; s++ {
			e.Victim(0, s, 0)
		}
		return nil
	}
	switch l.mode {
	case "range":
		e.Victim(0, int32(e.Stride), 0)
	case "duplicate":
		e.Victim(0, 0, 0)
		e.Victim(0, 0, 0)
	case "empty":
		e.Victim(0, 2, 0)
	case "few":
	case "panic":
		var m map[string]int
		m["x"]++
	case "error":
		return errors.New("out of ideas")
	}
	return nil
}

func TestMisbehavingPolicies(t *testing.T) {
	cases := map[string]string{
		"range":     `policy "range": evict at layer 0, position 4: head 0: victim slot 4 out of range [0, 4)`,
		"duplicate": `policy "duplicate": evict at layer 0, position 4: head 0: victim slot 0 named twice`,
		"empty":     `policy "empty": evict at layer 0, position 4: head 0: victim slot 2 is empty`,
		"few":       `policy "few": evict at layer 0, position 4: head 0: 0 victims, need at least 1`,
		"panic":     `policy "panic": evict at layer 0, position 4: panic: assignment to entry in nil map`,
		"error":     `policy "error": evict at layer 0, position 4: out of ideas`,
	}
	var specs []PolicySpec
	for _, mode := range []string{"range", "duplicate", "empty", "few", "panic", "error"} {
		specs = append(specs, PolicySpec{Name: mode, New: func() (policies.Policy, error) { return &liar{mode: mode}, nil }})
	}
	specs = append(specs, spec("h2o", h2o.New, nil))
	res, err := Replay(context.Background(), []Source{handTrace()}, specs, Options{Budgets: []host.Budget{{Tokens: 2}}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range res.Policies {
		c := res.Cell(i, 0)
		if p == "h2o" {
			if c.Failed != "" || c.HitRate == 0 {
				t.Errorf("the honest policy should finish: %+v", c)
			}
			continue
		}
		if c.Failed != cases[p] {
			t.Errorf("%s:\n got  %q\n want %q", p, c.Failed, cases[p])
		}
	}
}

func TestReplayInputErrors(t *testing.T) {
	src := []Source{handTrace()}
	sp := []PolicySpec{spec("h2o", h2o.New, nil)}
	b := []host.Budget{{Tokens: 2}}
	for name, tc := range map[string]struct {
		src  []Source
		sp   []PolicySpec
		b    []host.Budget
		want string
	}{
		"no traces":   {nil, sp, b, "replay: no traces"},
		"no policies": {src, nil, b, "replay: no policies"},
		"no budgets":  {src, sp, nil, "replay: no budgets"},
	} {
		_, err := Replay(context.Background(), tc.src, tc.sp, Options{Budgets: tc.b})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	bad := handTrace()
	failing := &failingSource{bad}
	_, err := Replay(context.Background(), []Source{failing}, sp, Options{Budgets: b})
	if err == nil || !strings.Contains(err.Error(), "trace mem:hand: layer 0: disk on fire") {
		t.Errorf("trace read error: %v", err)
	}
}

type failingSource struct{ *memSource }

func (f *failingSource) Read(kvtrace.Kind, int, []float32) ([]float32, error) {
	return nil, errors.New("disk on fire")
}

func TestBudgetString(t *testing.T) {
	for b, want := range map[host.Budget]string{{Fraction: 0.02}: "2%", {Fraction: 0.105}: "10.5%", {Tokens: 64}: "64 tok"} {
		if got := b.String(); got != want {
			t.Errorf("%+v: %q, want %q", b, got, want)
		}
	}
	if got := (host.Budget{Fraction: 0.02}).TokensFor(10); got != 1 {
		t.Errorf("2%% of 10 tokens = %d, want the floor of 1", got)
	}
}

// TestOracleByHand: at a budget of 2 the future masses of prompt tokens 0..3 over the
// two decode rows are .6, .15, .3, .15, so compression drops 1 and 3 (ties to the
// older). Step 4 sees {0, 2, 4}: hit 8/10. Afterwards only row 5 is future: 0 .2,
// 2 .1, 4 .1, so 2 goes (older on the tie). Step 5 sees {0, 4, 5}: hit 16/20.
func TestOracleByHand(t *testing.T) {
	sp := spec("oracle", oracle.New, nil)
	sp.AllowClairvoyant = true
	res, err := Replay(context.Background(), []Source{handTrace()}, []PolicySpec{sp}, Options{Budgets: []host.Budget{{Tokens: 2}}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Cell(0, 0); c.Failed != "" || math.Abs(c.HitRate-0.8) > 1e-6 {
		t.Errorf("oracle: %+v", c)
	}
	sp.AllowClairvoyant = false
	res, _ = Replay(context.Background(), []Source{handTrace()}, []PolicySpec{sp}, Options{Budgets: []host.Budget{{Tokens: 2}}, Threads: 1})
	if want := `policy "oracle": init at layer 0, position 0: clairvoyant policies are not allowed here`; res.Cell(0, 0).Failed != want {
		t.Errorf("clairvoyant without the future: %q", res.Cell(0, 0).Failed)
	}
}

// compensator evicts like window(sink=1) but asks for compensation, with merge
// weight w_j = position j (so the weights are 1, 2, 3 for positions 1, 2, 3), and
// records the compensation probability it observes.
type compensator struct {
	res  policies.Residency
	comp []float32
}

func (c *compensator) Init(cfg policies.Config) (policies.Layout, error) {
	c.res.Reset(cfg)
	return policies.Layout{Compensation: true}, nil
}
func (c *compensator) Observe(a *policies.Attention) error {
	c.res.Enter(a)
	if a.Phase == policies.Decode {
		c.comp = append(c.comp, a.Comp[0])
	}
	return nil
}
func (c *compensator) Evict(e *policies.Eviction) error {
	for n := int32(0); n < e.Need[0]; n++ {
		victim, oldest := int32(-1), int32(0)
		for s, p := range c.res.Heads[0].Positions() {
			if p >= 1 && (victim < 0 || p < oldest) {
				victim, oldest = int32(s), p
			}
		}
		e.Victim(0, victim, float32(oldest))
		c.res.Free(0, victim)
	}
	return nil
}

// TestCompensationByHand follows Eq. 7–8 on the hand trace at a budget of 2.
// Compression merges positions 1 and 2 with weights 1 and 2: k' = (k1 + 2 k2)/3 =
// (2 ln 2 / 3, 0), v' = ((1 + 4)/3, 1). Step 4 attends over {0, 3, 4} and the slot:
// weights 4, 1, 2, 2^(2/3). Then 3 merges with weight 3: the slot becomes k = (2 ln 2 + 0)/6, v =
// ((5 + 9)/6, 1). Step 5 attends over {0, 4, 5} and the slot: 4, 2, 10, 2^(1/3).
func TestCompensationByHand(t *testing.T) {
	pol := &compensator{}
	sp := PolicySpec{Name: "comp", New: func() (policies.Policy, error) { return pol, nil }}
	res, err := Replay(context.Background(), []Source{handTrace()}, []PolicySpec{sp}, Options{Budgets: []host.Budget{{Tokens: 2}}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Cell(0, 0)
	if c.Failed != "" {
		t.Fatal(c.Failed)
	}
	// Independent float64 computation of each step.
	type term struct{ w, v float64 }
	step := func(terms []term, comp term) (compProb float64, out [2]float64) {
		sum := comp.w
		for _, x := range terms {
			sum += x.w
		}
		for _, x := range append(terms, comp) {
			out[0] += x.w * x.v / sum
			out[1] += x.w / sum
		}
		return comp.w / sum, out
	}
	p4, o4 := step([]term{{4, 0}, {1, 3}, {2, 4}}, term{math.Pow(2, 2.0/3), 5.0 / 3})
	p5, o5 := step([]term{{4, 0}, {2, 4}, {10, 5}}, term{math.Pow(2, 1.0/3), 14.0 / 6})
	if len(pol.comp) != 2 || math.Abs(float64(pol.comp[0])-p4) > 1e-6 || math.Abs(float64(pol.comp[1])-p5) > 1e-6 {
		t.Errorf("observed compensation probabilities %v, want [%.7f %.7f]", pol.comp, p4, p5)
	}
	wantErr := (relErr(o4, [2]float64{1.6, 1}) + relErr(o5, [2]float64{3.3, 1})) / 2
	if math.Abs(c.OutputError-wantErr) > 1e-6 {
		t.Errorf("output error %.7f, want %.7f", c.OutputError, wantErr)
	}
	// The slot is one more KV entry while attending; hits count tokens only.
	if c.PeakResident != 4 || c.MeanResident != 4 || math.Abs(c.HitRate-(0.7+0.8)/2) > 1e-6 {
		t.Errorf("accounting %+v", c)
	}
}

// TestSizesFromInput checks that a budget too large to hold is refused, and that a
// top-k beyond the trace's tokens allocates for the tokens only: with k at least
// every token, the window keeps exactly its share of the top set.
func TestSizesFromInput(t *testing.T) {
	w := []PolicySpec{spec("window", window.New, map[string]any{"sink": 1.0})}
	for _, b := range []host.Budget{{Tokens: math.MaxInt}, {Tokens: host.MaxBudgetTokens + 1}, {Tokens: -1}, {Fraction: 2}} {
		if _, err := Replay(context.Background(), []Source{handTrace()}, w, Options{Budgets: []host.Budget{b}, Threads: 1}); err == nil {
			t.Errorf("budget %+v accepted", b)
		}
	}
	huge, err := Replay(context.Background(), []Source{handTrace()}, w, Options{Budgets: []host.Budget{{Tokens: 2}}, TopK: 1 << 40, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	all, err := Replay(context.Background(), []Source{handTrace()}, w, Options{Budgets: []host.Budget{{Tokens: 2}}, TopK: 6, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := huge.Cell(0, 0).TopKHitRate, all.Cell(0, 0).TopKHitRate; got != want {
		t.Errorf("top-k hit rate with k = 2^40: %v, want %v as with k = all 6 tokens", got, want)
	}
}

// slowPolicy is a policy that sleeps in every Evict call.
type slowPolicy struct {
	policies.Policy
	nap time.Duration
}

func (s slowPolicy) Evict(e *policies.Eviction) error {
	time.Sleep(s.nap)
	return s.Policy.Evict(e)
}

// TestPolicyAndHostTime checks that a cell's time is split between the policy and
// the host: a policy that sleeps 20 ms in each of its 3 Evict calls (compression and
// 2 decode steps) shows at least that in policy ns, and none of it in host ns.
func TestPolicyAndHostTime(t *testing.T) {
	const nap = 20 * time.Millisecond
	slow := PolicySpec{Name: "slow", New: func() (policies.Policy, error) {
		p, err := window.New(policies.NewParams(map[string]any{"sink": 1}))
		return slowPolicy{p, nap}, err
	}}
	res, err := Replay(context.Background(), []Source{handTrace()}, []PolicySpec{slow}, Options{Budgets: []host.Budget{{Tokens: 2}}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Cell(0, 0)
	slept := float64(3*nap) / 2 // over 2 (head, decode step) pairs
	if c.Failed != "" || c.PolicyNs < slept || c.HostNs <= 0 || c.HostNs >= slept {
		t.Errorf("policy %.0f ns and host %.0f ns per (head · step), want policy ≥ %.0f and host in (0, %.0f)", c.PolicyNs, c.HostNs, slept, slept)
	}
}
