package auv

import (
	"fmt"
	"math"

	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/policies"
)

// policy is AUV on one layer of one sequence: per-head scores and the candidate and
// local areas of §3.4.
type policy struct {
	set       Settings
	cfg       policies.Config
	local     int // L, the local area's length
	width     int // the host's slot table width: every slot id is below it
	multistep bool
	rowsSeen  int // prompt rows observed
	heads     []head

	// Scratch shared by the heads.
	resident []int32   // one head's resident slots
	top      []int32   // the query's top_k slots, capacity TopK
	order    []int32   // indices into a candidate list
	comp     []float64 // composite values by candidate index
}

// head is one head's cache as the policy sees it. Every resident slot is in exactly one
// of cand, area and pending.
type head struct {
	pos []int32 // by slot: the token's position, -1 when free
	// sum and count, by slot, are the weighted attention the token received and the
	// rows that make it up: its AAS is sum/count (sum for the Sum aggregation). The
	// division waits for an eviction, which sets aas for the resident slots.
	sum   []float64
	count []float64
	aas   []float64
	usage []float64 // by slot: usage count
	nmax  int       // N_max, the longest row seen so far

	cand []int32 // the candidate area, in no particular order
	area localArea
	// pending is the single-step oldest local token that left the ring when this
	// step's token arrived; it fills the victim's entry of cand after the eviction.
	pending int32
}

func (p *policy) Init(cfg policies.Config) (policies.Layout, error) {
	switch {
	case cfg.Heads < 1:
		return policies.Layout{}, fmt.Errorf("heads %d: need at least one", cfg.Heads)
	case cfg.PromptLen < 1 || cfg.MaxLen < cfg.PromptLen:
		return policies.Layout{}, fmt.Errorf("prompt %d of %d tokens: need 1 ≤ prompt ≤ length", cfg.PromptLen, cfg.MaxLen)
	case cfg.Budget < 1:
		return policies.Layout{}, fmt.Errorf("budget %d: need at least one token", cfg.Budget)
	}
	p.cfg = cfg
	p.multistep = p.set.Eviction == Multistep
	p.local = p.set.Local
	if p.local == 0 {
		p.local = int(math.Round(p.set.LocalRatio * float64(cfg.Budget)))
	}
	p.local = min(max(p.local, 1), cfg.Budget)
	layout := policies.Layout{Compensation: p.set.Compensation}
	if p.multistep {
		layout.Slack = p.local - 1
	}
	p.width = policies.SlotWidth(cfg, layout)
	p.rowsSeen = 0

	p.heads = buf.Grow(p.heads, cfg.Heads)
	for h := range p.heads {
		hd := &p.heads[h]
		hd.pos = buf.Grow(hd.pos, p.width)
		hd.sum = buf.Grow(hd.sum, p.width)
		hd.aas = buf.Grow(hd.aas, p.width)
		hd.count = buf.Grow(hd.count, p.width)
		hd.usage = buf.Grow(hd.usage, p.width)
		for s := range hd.pos {
			hd.pos[s] = -1
			if s < cfg.PromptLen {
				hd.pos[s] = int32(s)
			}
		}
		clear(hd.sum)
		clear(hd.aas)
		clear(hd.count)
		clear(hd.usage)
		hd.nmax = cfg.PromptLen
		hd.cand = buf.Grow(hd.cand, p.width)[:0]
		hd.area.slots = buf.Grow(hd.area.slots, p.local)
		hd.area.reset()
		hd.pending = -1
	}
	p.resident = buf.Grow(p.resident, p.width)
	p.top = buf.Grow(p.top, p.set.TopK)[:0:p.set.TopK]
	p.order = buf.Grow(p.order, p.width)
	p.comp = buf.Grow(p.comp, p.width)
	return layout, nil
}

func (p *policy) Observe(a *policies.Attention) error {
	if a.Heads != len(p.heads) {
		return fmt.Errorf("attention for %d heads, configured for %d", a.Heads, len(p.heads))
	}
	if a.Rows < 1 || a.Stride < 1 || len(a.Probs) < a.Heads*a.Rows*a.Stride {
		return fmt.Errorf("attention at %d: %d probabilities for %d heads × %d rows × stride %d",
			a.Pos, len(a.Probs), a.Heads, a.Rows, a.Stride)
	}
	switch a.Phase {
	case policies.Prefill:
		return p.observePrompt(a)
	case policies.Decode:
		return p.observeStep(a)
	}
	return fmt.Errorf("attention at %d: unknown phase %v", a.Pos, a.Phase)
}

// observePrompt adds a block of prompt rows, each scaled by N_i/N_max with N_i = i+1
// and N_max = P, to the column sums.
func (p *policy) observePrompt(a *policies.Attention) error {
	P := p.cfg.PromptLen
	switch {
	case a.Pos != p.rowsSeen:
		return fmt.Errorf("prompt rows out of order: got row %d, expected %d", a.Pos, p.rowsSeen)
	case a.Pos+a.Rows > P:
		return fmt.Errorf("prompt rows %d..%d beyond the prompt of %d", a.Pos, a.Pos+a.Rows-1, P)
	case a.Stride < a.Pos+a.Rows:
		return fmt.Errorf("prompt rows %d..%d: stride %d is too short", a.Pos, a.Pos+a.Rows-1, a.Stride)
	}
	for h := range p.heads {
		sum := p.heads[h].sum
		for r := 0; r < a.Rows; r++ {
			n := a.Pos + r + 1
			w := RowWeight(p.set.Aggregation, n, P)
			policies.AddRowScaled(sum, a.Row(h, r)[:n], w)
		}
	}
	p.rowsSeen += a.Rows
	if p.rowsSeen == P {
		p.endPrompt()
	}
	return nil
}

// ForkTo hands dst the prompt's weighted column sums, the only state the prompt
// leaves that does not depend on the budget (rows are weighted by N_i/P); dst then
// lays the prompt out into its own local area of its own length L.
func (p *policy) ForkTo(dst policies.Policy) error {
	q, ok := dst.(*policy)
	switch {
	case !ok || q.set != p.set || len(q.heads) != len(p.heads) || q.cfg.PromptLen != p.cfg.PromptLen:
		return fmt.Errorf("fork: destination is not an auv instance with the same settings and sequence")
	case p.rowsSeen != p.cfg.PromptLen || q.rowsSeen != 0:
		return fmt.Errorf("fork: source has seen %d and destination %d of %d prompt rows, want all and none",
			p.rowsSeen, q.rowsSeen, p.cfg.PromptLen)
	}
	P := p.cfg.PromptLen
	for h := range p.heads {
		copy(q.heads[h].sum[:P], p.heads[h].sum[:P])
	}
	q.rowsSeen = P
	q.endPrompt()
	return nil
}

// AppendForkState appends the prompt's weighted column sums, head by head.
func (p *policy) AppendForkState(b []byte) []byte {
	for h := range p.heads {
		b = policies.AppendFloat64s(b, p.heads[h].sum[:p.cfg.PromptLen])
	}
	return b
}

// LoadForkState takes the sums AppendForkState saved from an instance that observed
// the whole prompt, and lays the prompt out as ForkTo does.
func (p *policy) LoadForkState(b []byte) error {
	P := p.cfg.PromptLen
	if want := 8 * len(p.heads) * P; len(b) != want || p.rowsSeen != 0 {
		return fmt.Errorf("fork state of %d bytes after %d prompt rows, want %d bytes (%d heads × a prompt of %d) and none",
			len(b), p.rowsSeen, want, len(p.heads), P)
	}
	for h := range p.heads {
		b, _ = policies.ReadFloat64s(p.heads[h].sum[:P], b)
	}
	p.rowsSeen = P
	p.endPrompt()
	return nil
}

// endPrompt counts the rows each prompt token's sum holds and lays the prompt out: the
// last L tokens form the local area, the rest are candidates.
func (p *policy) endPrompt() {
	P := p.cfg.PromptLen
	for h := range p.heads {
		hd := &p.heads[h]
		for j := 0; j < P; j++ {
			hd.count[j] = float64(P - j)
			if left := hd.area.push(int32(j)); left >= 0 {
				hd.cand = append(hd.cand, left)
			}
		}
	}
}

// observeStep folds a decode row into every resident token's sum and count (Eq. 3–4:
// the running mean of weighted scores is their ratio) and counts usage for the row's
// top_k tokens.
func (p *policy) observeStep(a *policies.Attention) error {
	if p.rowsSeen < p.cfg.PromptLen {
		return fmt.Errorf("decode step %d after %d of %d prompt rows", a.Pos, p.rowsSeen, p.cfg.PromptLen)
	}
	if a.Rows != 1 || len(a.Slot) < a.Heads || a.Stride < p.width {
		return fmt.Errorf("decode step %d: want 1 row, %d slots and stride ≥ %d; got %d, %d and %d",
			a.Pos, a.Heads, p.width, a.Rows, len(a.Slot), a.Stride)
	}
	for h := range p.heads {
		hd := &p.heads[h]
		s := a.Slot[h]
		if s < 0 || int(s) >= p.width {
			return fmt.Errorf("decode step %d: head %d: slot %d outside the table of %d", a.Pos, h, s, p.width)
		}
		if hd.pos[s] >= 0 {
			return fmt.Errorf("decode step %d: head %d: slot %d still holds position %d", a.Pos, h, s, hd.pos[s])
		}
		p.enter(hd, s, a.Pos)
		res := hd.residents(p.resident)
		hd.nmax = max(hd.nmax, len(res))
		w := RowWeight(p.set.Aggregation, len(res), hd.nmax)
		row := a.Row(h, 0)
		for _, j := range res {
			hd.sum[j] += float64(row[j]) * w
			hd.count[j]++
		}
		if p.set.Usage {
			for _, j := range topK(p.top, res, row) {
				hd.usage[j]++
			}
		}
	}
	return nil
}

// enter places a decode token in the local area. The token pushed out of a full area
// becomes a candidate: at once in multistep mode; in single-step mode after this
// step's eviction, in the victim's place.
func (p *policy) enter(hd *head, slot int32, pos int) {
	if hd.pending >= 0 { // the last step evicted nothing: the cache is still growing
		hd.cand = append(hd.cand, hd.pending)
		hd.pending = -1
	}
	hd.pos[slot] = int32(pos)
	hd.sum[slot], hd.count[slot], hd.usage[slot] = 0, 0, 0
	if left := hd.area.push(slot); left >= 0 {
		if p.multistep {
			hd.cand = append(hd.cand, left)
		} else {
			hd.pending = left
		}
	}
}

// residents lists the head's resident slots into buf.
func (hd *head) residents(buf []int32) []int32 {
	buf = append(append(buf[:0], hd.cand...), hd.area.held()...)
	if hd.pending >= 0 {
		buf = append(buf, hd.pending)
	}
	return buf
}

// topK returns the cap(top) slots of res with the highest probabilities in row,
// ties to the lower slot id, using top's storage.
func topK(top, res []int32, row []float32) []int32 {
	k := cap(top)
	top = top[:0]
	better := func(a, b int32) bool {
		if row[a] != row[b] {
			return row[a] > row[b]
		}
		return a < b
	}
	floor := float32(math.Inf(-1)) // the k-th best probability once top is full
	for _, s := range res {
		if row[s] < floor {
			continue // the common case, kept cheap
		}
		if len(top) == k {
			if !better(s, top[k-1]) {
				continue
			}
			top = top[:k-1]
		}
		i := len(top)
		top = append(top, s)
		for ; i > 0 && better(s, top[i-1]); i-- {
			top[i] = top[i-1]
		}
		top[i] = s
		if len(top) == k {
			floor = row[top[k-1]]
		}
	}
	return top
}

// Evict compresses the prompt or evicts during decoding, per head, by the mode's rule.
func (p *policy) Evict(e *policies.Eviction) error {
	if e.Heads != len(p.heads) || len(e.Need) < e.Heads || len(e.Count) < e.Heads ||
		e.Stride < 1 || len(e.Victims) < e.Heads*e.Stride || (e.Weights != nil && len(e.Weights) < e.Heads*e.Stride) {
		return fmt.Errorf("eviction at %d: request for %d heads (stride %d) does not fit %d heads",
			e.Pos, e.Heads, e.Stride, len(p.heads))
	}
	if p.rowsSeen < p.cfg.PromptLen {
		return fmt.Errorf("eviction at %d after %d of %d prompt rows", e.Pos, p.rowsSeen, p.cfg.PromptLen)
	}
	if e.Phase != policies.Prefill && e.Phase != policies.Decode {
		return fmt.Errorf("eviction at %d: unknown phase %v", e.Pos, e.Phase)
	}
	for h := range p.heads {
		e.Count[h] = 0
		need := int(e.Need[h])
		if need <= 0 {
			continue
		}
		p.score(&p.heads[h])
		var err error
		switch {
		case e.Phase == policies.Prefill:
			err = p.evictLowest(e, h, need)
		case p.multistep:
			// L at once, as the paper does; more only if the host asks for more.
			err = p.evictLowest(e, h, max(need, p.local))
		default:
			err = p.evictSingle(e, h, need)
		}
		if err != nil {
			return fmt.Errorf("eviction at %d: head %d: %w", e.Pos, h, err)
		}
	}
	return nil
}

// score sets the AAS of the head's resident slots from their sums and counts.
func (p *policy) score(hd *head) {
	for _, s := range hd.residents(p.resident) {
		switch {
		case p.set.Aggregation == Sum:
			hd.aas[s] = hd.sum[s]
		case hd.count[s] > 0:
			hd.aas[s] = hd.sum[s] / hd.count[s]
		default: // not yet observed
			hd.aas[s] = 0
		}
	}
}

// evictLowest evicts the k candidates lowest in the composite order (at compression,
// where all counts are 0, simply the lowest AAS). In multistep mode the positioning
// region is then scattered into the victims' entries and the counts decay (Eq. 6).
func (p *policy) evictLowest(e *policies.Eviction, h, k int) error {
	hd := &p.heads[h]
	n := len(hd.cand)
	if k > n {
		return fmt.Errorf("%d victims needed, %d tokens outside the local area of %d", k, n, p.local)
	}
	comp, idx := p.comp[:n], p.order[:n]
	Composite(comp, hd.cand, hd.aas, hd.usage)
	for i := range idx {
		idx[i] = int32(i)
	}
	selectLowest(idx, k, func(a, b int32) bool { return lowerComposite(comp, hd.cand, hd.usage, a, b) })
	for _, i := range idx[:k] {
		if err := p.victim(e, h, hd.cand[i]); err != nil {
			return err
		}
		hd.cand[i] = -1
	}
	if !p.multistep {
		hd.cand = scatter(hd.cand, nil)
		return nil
	}
	hd.cand = scatter(hd.cand, hd.area.held())
	hd.area.reset()
	DecayUsage(hd.usage, hd.cand, p.set.Alpha) // every resident token is a candidate now
	return nil
}

// evictSingle applies the single-step rule need times (once per step in practice).
func (p *policy) evictSingle(e *policies.Eviction, h, need int) error {
	hd := &p.heads[h]
	for ; need > 0; need-- {
		if len(hd.cand) == 0 {
			// No candidate area (L = Budget): the token leaving the ring goes.
			if hd.pending < 0 {
				return fmt.Errorf("no token outside the local area of %d", p.local)
			}
			if err := p.victim(e, h, hd.pending); err != nil {
				return err
			}
			hd.pending = -1
			continue
		}
		var i int
		switch p.set.Eviction {
		case Greedy:
			i = GreedyVictim(hd.cand, hd.aas)
		case Naive:
			i = NaiveVictim(hd.cand, hd.aas, hd.usage, p.order)
		default:
			i = OptimizedVictim(hd.cand, hd.aas, hd.usage)
		}
		if err := p.victim(e, h, hd.cand[i]); err != nil {
			return err
		}
		if hd.pending >= 0 { // the oldest local token takes the victim's place
			hd.cand[i] = hd.pending
			hd.pending = -1
		} else {
			last := len(hd.cand) - 1
			hd.cand[i] = hd.cand[last]
			hd.cand = hd.cand[:last]
		}
	}
	return nil
}

// victim names slot as one of head h's victims, weighted by its AAS for compensation.
func (p *policy) victim(e *policies.Eviction, h int, slot int32) error {
	if int(e.Count[h]) >= e.Stride {
		return fmt.Errorf("more victims than the list's %d entries", e.Stride)
	}
	hd := &p.heads[h]
	e.Victim(h, slot, float32(hd.aas[slot]))
	hd.pos[slot] = -1
	return nil
}

// TokenStateBytes declares the weighted attention sum, row count, aggregated score and usage count (four float64) per head and resident token.
func (*policy) TokenStateBytes() int { return 32 }
