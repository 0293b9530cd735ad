// Package policytest is a small, plain reference host for testing eviction policies
// outside replay. It drives one layer of one sequence through the policy protocol
// (see package policies), contract 2.0 included (key, value and query vectors,
// compact decode rows, layer and model budget pools), with attention computed in
// float64 from a logit function, checks every victim list the way real hosts do, and
// logs what the policy did.
//
// It is deliberately simple and slow; sim is the fast host. Tests use the two to check
// each other.
package policytest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/kvsim/kvsim/policies"
)

// Sequence is one layer of a synthetic sequence: Logit(h, t, j) is head h's attention
// logit of query t on token j ≤ t.
type Sequence struct {
	Heads, PromptLen, MaxLen int
	Logit                    func(h, t, j int) float64
	// HeadDim and Key, Value, Query give head h's vectors of the token at position
	// t, for policies whose layouts ask for them; nil when the sequence has none.
	HeadDim           int
	Key, Value, Query func(h, t int) []float32
}

// VectorSequence has seeded normal queries, keys and values of length headDim, and
// the logits they give: Logit(h, t, j) = q_t·k_j.
func VectorSequence(heads, promptLen, maxLen, headDim int, seed uint64) Sequence {
	r := rand.New(rand.NewPCG(seed, 0x2545f4914f6cdd1d))
	x := make([]float32, 3*heads*maxLen*headDim)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	vec := func(kind int) func(h, t int) []float32 {
		return func(h, t int) []float32 {
			off := ((kind*heads+h)*maxLen + t) * headDim
			return x[off : off+headDim]
		}
	}
	seq := Sequence{Heads: heads, PromptLen: promptLen, MaxLen: maxLen, HeadDim: headDim,
		Query: vec(0), Key: vec(1), Value: vec(2)}
	seq.Logit = func(h, t, j int) float64 {
		q, k := seq.Query(h, t), seq.Key(h, j)
		z := 0.0
		for i := range q {
			z += float64(q[i]) * float64(k[i])
		}
		return z
	}
	return seq
}

// RandomSequence has a sink at token 0, a recency bump and seeded noise, so that
// policies have something to rank.
func RandomSequence(heads, promptLen, maxLen int, seed uint64) Sequence {
	noise := make([]float64, heads*maxLen*maxLen)
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i := range noise {
		noise[i] = r.NormFloat64()
	}
	return Sequence{Heads: heads, PromptLen: promptLen, MaxLen: maxLen,
		Logit: func(h, t, j int) float64 {
			l := noise[(h*maxLen+t)*maxLen+j] * (1 + 0.5*float64(h%3))
			if j == 0 {
				l += 3
			}
			return l + 2*math.Exp(-float64(t-j)/4)
		}}
}

// Event is one Evict call.
type Event struct {
	Phase     policies.Phase
	Pos       int
	Victims   [][]int32 // per head, slot ids in the order given
	VictimPos [][]int   // per head, the victims' positions
	Weights   [][]float32
}

// Log is what a policy did over a sequence.
type Log struct {
	Layout       policies.Layout
	Events       []Event
	Resident     [][]int // per head: positions resident at the end, ascending
	PeakResident int     // most tokens any head held while attending in decode
	// PoolEntries is the layer's pool for pooled layouts: Heads×Budget, or the
	// layer's entry of the policy's LayerBudgets for a model pool.
	PoolEntries int
	// PeakPool is the most tokens the layer's heads held together while attending.
	PeakPool int
}

type head struct {
	pos     []int // slot -> position, -1 when free
	compW   float64
	hasComp bool
}

// Run drives p through the whole protocol on seq. cfg's Heads, PromptLen and MaxLen are
// taken from seq, and HeadDim too when seq has vectors.
func Run(p policies.Policy, cfg policies.Config, seq Sequence) (*Log, error) {
	cfg.Heads, cfg.PromptLen, cfg.MaxLen = seq.Heads, seq.PromptLen, seq.MaxLen
	if seq.HeadDim > 0 {
		cfg.HeadDim = seq.HeadDim
	}
	layout, err := p.Init(cfg)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	H, P, T, B := seq.Heads, seq.PromptLen, seq.MaxLen, cfg.Budget
	log := &Log{Layout: layout}
	pooled := layout.Pool != policies.PoolHead
	// The most a head may hold: its budget, or the pool it shares.
	most, slack := B, layout.Slack
	switch layout.Pool {
	case policies.PoolHead:
	case policies.PoolLayer:
		log.PoolEntries = H * B
		most, slack = H*B, H*layout.Slack
	case policies.PoolModel:
		if log.PoolEntries, err = share(p, cfg); err != nil {
			return nil, err
		}
		most, slack = cfg.Layers*H*B, H*layout.Slack
	default:
		return nil, fmt.Errorf("init: unknown pool %v", layout.Pool)
	}
	width := T
	if !layout.Unbounded {
		width = min(T, max(P, most+slack+1))
	}
	for _, v := range []struct {
		asked bool
		have  func(h, t int) []float32
		name  string
	}{{layout.Keys, seq.Key, "keys"}, {layout.Values, seq.Value, "values"}, {layout.Queries, seq.Query, "queries"}} {
		if v.asked && v.have == nil {
			return nil, fmt.Errorf("init: the layout asks for %s, which the sequence does not have", v.name)
		}
	}
	// vectors fills a's vectors for rows at positions a.Pos.., as the layout asks.
	vectors := func(a *policies.Attention) {
		d := seq.HeadDim
		a.HeadDim = d
		fill := func(asked bool, get func(h, t int) []float32) []float32 {
			if !asked {
				return nil
			}
			x := make([]float32, H*a.Rows*d)
			for h := 0; h < H; h++ {
				for r := 0; r < a.Rows; r++ {
					copy(x[(h*a.Rows+r)*d:], get(h, a.Pos+r))
				}
			}
			return x
		}
		a.Keys, a.Values, a.Queries = fill(layout.Keys, seq.Key), fill(layout.Values, seq.Value), fill(layout.Queries, seq.Query)
	}
	heads := make([]head, H)
	for h := range heads {
		heads[h].pos = make([]int, width)
		for s := range heads[h].pos {
			heads[h].pos[s] = -1
		}
		for i := 0; i < P; i++ {
			heads[h].pos[i] = i
		}
	}
	resident := func(h int) int {
		n := 0
		for _, pos := range heads[h].pos {
			if pos >= 0 {
				n++
			}
		}
		return n
	}

	// Prefill, in blocks of 3 rows so that policies see more than one block size.
	for r0 := 0; r0 < P; r0 += 3 {
		rows := min(3, P-r0)
		a := &policies.Attention{Phase: policies.Prefill, Pos: r0, Rows: rows, Heads: H, Stride: P,
			Probs: make([]float32, H*rows*P)}
		for h := 0; h < H; h++ {
			for r := 0; r < rows; r++ {
				t := r0 + r
				probs := softmax(seq, h, t, func(j int) bool { return j <= t }, nil)
				for j := 0; j <= t; j++ {
					a.Row(h, r)[j] = float32(probs[j])
				}
			}
		}
		vectors(a)
		if err := p.Observe(a); err != nil {
			return nil, fmt.Errorf("observe prefill row %d: %w", r0, err)
		}
	}

	// evict asks for victims: need[h] per head, or poolNeed over the layer's heads.
	evict := func(phase policies.Phase, pos int, need []int32, poolNeed int) error {
		e := &policies.Eviction{Phase: phase, Pos: pos, Heads: H, Need: need, PoolNeed: poolNeed, Stride: width,
			Count: make([]int32, H), Victims: make([]int32, H*width)}
		if layout.Compensation {
			e.Weights = make([]float32, H*width)
		}
		if layout.Clairvoyant {
			return fmt.Errorf("policytest cannot serve clairvoyant policies")
		}
		if err := p.Evict(e); err != nil {
			return fmt.Errorf("evict at %d: %w", pos, err)
		}
		ev := Event{Phase: phase, Pos: pos, Victims: make([][]int32, H), VictimPos: make([][]int, H), Weights: make([][]float32, H)}
		given := 0
		for h := 0; h < H; h++ {
			n := int(e.Count[h])
			if n < int(need[h]) || n > width || n > resident(h) {
				return fmt.Errorf("evict at %d: head %d gave %d victims, need %d, holds %d", pos, h, n, need[h], resident(h))
			}
			given += n
			for i := 0; i < n; i++ {
				s := e.Victims[h*width+i]
				if s < 0 || int(s) >= width || heads[h].pos[s] < 0 {
					return fmt.Errorf("evict at %d: head %d: victim slot %d is not resident", pos, h, s)
				}
				ev.Victims[h] = append(ev.Victims[h], s)
				ev.VictimPos[h] = append(ev.VictimPos[h], heads[h].pos[s])
				if layout.Compensation {
					w := e.Weights[h*width+i]
					ev.Weights[h] = append(ev.Weights[h], w)
					heads[h].compW += float64(w)
					heads[h].hasComp = heads[h].compW > 0
				}
				heads[h].pos[s] = -1
			}
		}
		if given < poolNeed {
			return fmt.Errorf("evict at %d: the %v pool got %d victims, needs %d", pos, layout.Pool, given, poolNeed)
		}
		log.Events = append(log.Events, ev)
		return nil
	}
	// needs returns what the layer owes over a threshold of budget plus extra per
	// head (the slack in decode).
	needs := func(extra int) ([]int32, int) {
		need := make([]int32, H)
		if layout.Unbounded {
			return need, 0
		}
		if pooled {
			total := 0
			for h := range H {
				total += resident(h)
			}
			return need, max(0, total-log.PoolEntries-H*extra)
		}
		for h := range H {
			need[h] = int32(max(0, resident(h)-B-extra))
		}
		return need, 0
	}
	owes := func(need []int32, poolNeed int) bool {
		return poolNeed > 0 || slices.ContainsFunc(need, func(n int32) bool { return n > 0 })
	}

	if need, poolNeed := needs(0); owes(need, poolNeed) {
		if err := evict(policies.Prefill, P-1, need, poolNeed); err != nil {
			return nil, err
		}
	}

	for t := P; t < T; t++ {
		a := &policies.Attention{Phase: policies.Decode, Pos: t, Rows: 1, Heads: H, Stride: width,
			Probs: make([]float32, H*width), Slot: make([]int32, H), Comp: make([]float32, H)}
		if layout.Compact {
			a.Live, a.Len = make([]int32, H*width), make([]int32, H)
		}
		pool := 0
		for h := 0; h < H; h++ {
			hd := &heads[h]
			free := slices.Index(hd.pos, -1)
			if free < 0 {
				return nil, fmt.Errorf("step %d: head %d has no free slot", t, h)
			}
			hd.pos[free] = t
			a.Slot[h] = int32(free)
			resident := map[int]bool{}
			for _, pos := range hd.pos {
				if pos >= 0 {
					resident[pos] = true
				}
			}
			log.PeakResident = max(log.PeakResident, len(resident))
			pool += len(resident)
			// The compensation slot's logit is not modelled here: policytest gives it
			// the mean logit of the row, enough to exercise the Comp field.
			var comp *float64
			if hd.hasComp {
				c := 0.0
				for j := 0; j <= t; j++ {
					c += seq.Logit(h, t, j)
				}
				c /= float64(t + 1)
				comp = &c
			}
			probs := softmax(seq, h, t, func(j int) bool { return resident[j] }, comp)
			// A compact row lists the resident slots in slot order.
			n := 0
			for s, pos := range hd.pos {
				switch {
				case pos < 0:
				case layout.Compact:
					a.Live[h*width+n] = int32(s)
					a.Probs[h*width+n] = float32(probs[pos])
					n++
				default:
					a.Row(h, 0)[s] = float32(probs[pos])
				}
			}
			if layout.Compact {
				a.Len[h] = int32(n)
			}
			if comp != nil {
				a.Comp[h] = float32(probs[t+1])
			}
		}
		log.PeakPool = max(log.PeakPool, pool)
		vectors(a)
		if err := p.Observe(a); err != nil {
			return nil, fmt.Errorf("observe step %d: %w", t, err)
		}
		if need, poolNeed := needs(layout.Slack); owes(need, poolNeed) {
			if err := evict(policies.Decode, t, need, poolNeed); err != nil {
				return nil, err
			}
		}
	}

	log.Resident = make([][]int, H)
	for h := range heads {
		for pos := 0; pos < T; pos++ {
			for _, p := range heads[h].pos {
				if p == pos {
					log.Resident[h] = append(log.Resident[h], pos)
				}
			}
		}
	}
	return log, nil
}

// share asks a model-pool policy for its division of the model's Layers×Heads×Budget
// entries and returns this layer's.
func share(p policies.Policy, cfg policies.Config) (int, error) {
	lb, ok := p.(policies.LayerBudgeter)
	if !ok {
		return 0, fmt.Errorf("init: a model pool without LayerBudgets")
	}
	if cfg.Layer < 0 || cfg.Layer >= cfg.Layers {
		return 0, fmt.Errorf("init: layer %d of %d", cfg.Layer, cfg.Layers)
	}
	entries := make([]int, cfg.Layers)
	model := cfg
	model.Layer = -1
	if err := lb.LayerBudgets(model, entries); err != nil {
		return 0, fmt.Errorf("layer budgets: %w", err)
	}
	sum := 0
	for l, n := range entries {
		if n < 0 {
			return 0, fmt.Errorf("layer budgets: layer %d gets %d", l, n)
		}
		sum += n
	}
	if sum > cfg.Layers*cfg.Heads*cfg.Budget {
		return 0, fmt.Errorf("layer budgets: %d entries in all, over %d", sum, cfg.Layers*cfg.Heads*cfg.Budget)
	}
	return entries[cfg.Layer], nil
}

// softmax returns probabilities indexed by position over the kept tokens of row t;
// with comp, index t+1 holds the compensation slot's probability.
func softmax(seq Sequence, h, t int, keep func(j int) bool, comp *float64) []float64 {
	out := make([]float64, t+2)
	m := math.Inf(-1)
	for j := 0; j <= t; j++ {
		if keep(j) {
			m = math.Max(m, seq.Logit(h, t, j))
		}
	}
	if comp != nil {
		m = math.Max(m, *comp)
	}
	sum := 0.0
	for j := 0; j <= t; j++ {
		if keep(j) {
			out[j] = math.Exp(seq.Logit(h, t, j) - m)
			sum += out[j]
		}
	}
	if comp != nil {
		out[t+1] = math.Exp(*comp - m)
		sum += out[t+1]
	}
	for j := range out {
		out[j] /= sum
	}
	return out
}
