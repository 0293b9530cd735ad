// Package policytest is a small, plain reference host for testing eviction policies
// outside replay. It drives one layer of one sequence through the policy protocol
// (see package policies) with attention computed in float64 from a logit function,
// checks every victim list the way real hosts do, and logs what the policy did.
//
// It is deliberately simple and slow; sim is the fast host. Tests use the two to check
// each other.
package policytest

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/kvsim/kvsim/policies"
)

// Sequence is one layer of a synthetic sequence: Logit(h, t, j) is head h's attention
// logit of query t on token j ≤ t.
type Sequence struct {
	Heads, PromptLen, MaxLen int
	Logit                    func(h, t, j int) float64
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
}

type head struct {
	pos     []int // slot -> position, -1 when free
	compW   float64
	hasComp bool
}

// Run drives p through the whole protocol on seq. cfg's Heads, PromptLen and MaxLen are
// taken from seq.
func Run(p policies.Policy, cfg policies.Config, seq Sequence) (*Log, error) {
	cfg.Heads, cfg.PromptLen, cfg.MaxLen = seq.Heads, seq.PromptLen, seq.MaxLen
	layout, err := p.Init(cfg)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	H, P, T, B := seq.Heads, seq.PromptLen, seq.MaxLen, cfg.Budget
	width := T
	if !layout.Unbounded {
		width = min(T, max(P, B+layout.Slack+1))
	}
	log := &Log{Layout: layout}
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
		if err := p.Observe(a); err != nil {
			return nil, fmt.Errorf("observe prefill row %d: %w", r0, err)
		}
	}

	evict := func(phase policies.Phase, pos int, need []int32) error {
		e := &policies.Eviction{Phase: phase, Pos: pos, Heads: H, Need: need, Stride: width,
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
		for h := 0; h < H; h++ {
			n := int(e.Count[h])
			if n < int(need[h]) || n > width {
				return fmt.Errorf("evict at %d: head %d gave %d victims, need %d", pos, h, n, need[h])
			}
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
		log.Events = append(log.Events, ev)
		return nil
	}

	if !layout.Unbounded && P > B {
		need := make([]int32, H)
		for h := range need {
			need[h] = int32(P - B)
		}
		if err := evict(policies.Prefill, P-1, need); err != nil {
			return nil, err
		}
	}

	for t := P; t < T; t++ {
		a := &policies.Attention{Phase: policies.Decode, Pos: t, Rows: 1, Heads: H, Stride: width,
			Probs: make([]float32, H*width), Slot: make([]int32, H), Comp: make([]float32, H)}
		need := make([]int32, H)
		anyNeed := false
		for h := 0; h < H; h++ {
			hd := &heads[h]
			free := -1
			for s, pos := range hd.pos {
				if pos < 0 {
					free = s
					break
				}
			}
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
			for s, pos := range hd.pos {
				if pos >= 0 {
					a.Row(h, 0)[s] = float32(probs[pos])
				}
			}
			if comp != nil {
				a.Comp[h] = float32(probs[t+1])
			}
			if extra := len(resident) - B - layout.Slack; !layout.Unbounded && extra > 0 {
				need[h] = int32(extra)
				anyNeed = true
			}
		}
		if err := p.Observe(a); err != nil {
			return nil, fmt.Errorf("observe step %d: %w", t, err)
		}
		if anyNeed {
			if err := evict(policies.Decode, t, need); err != nil {
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
