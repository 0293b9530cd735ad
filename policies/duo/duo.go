// Package duo is a DuoAttention-like split of heads (Xiao et al. 2024, "DuoAttention:
// Efficient Long-Context LLM Inference with Retrieval and Streaming Heads") under a
// layer pool: streaming heads keep only attention sinks and a recent window, and the
// full (retrieval) heads share the rest of the layer's H×B entries.
//
// The paper learns which heads are which (a gate per head, thresholded) on synthetic
// data before deployment; kvsim takes the result as a given mask. Without one, kvsim
// picks the streaming heads itself at the end of the prompt (its extension, an online
// stand-in for the paper's offline step): in each layer, the `streaming` share of the
// heads whose prompt queries gave the sinks and their recent window the most
// attention, the lower head first on ties.
//
// A streaming head keeps its first `sink` tokens and its last `recent`, capped at B
// (then the sinks first, and the window gets what is left), so that a streaming head
// never takes more than a uniform head would. The full heads divide what the streaming
// heads leave, H·B − (streaming heads)·min(sink+recent, B), evenly, the remainder one
// token each to the lowest full heads.
//
// Choices where the paper is open, or where kvsim differs:
//   - The paper's full heads keep every token. Under a budget they cannot, so a full
//     head over its share evicts by accumulated attention (the H2O score: the sum of
//     the attention every observed query gave the token), among its tokens outside
//     the same sinks and recent window (each clamped to the head's share), the lowest
//     first, the older on ties. With a share as large as the sequence, nothing is
//     evicted and the head is the paper's full head.
//   - A streaming head evicts its oldest tokens after the sinks.
//   - The host asks for victims only when the layer's pool overflows. Until the full
//     heads have filled their shares (a prompt shorter than the budget), streaming
//     heads may hold more than sink+recent; every eviction trims them back, giving
//     more victims than the pool needs.
//
// Params: mask: one character per head, "s" for a streaming head and "f" for a full
// one, layers separated by "/", as in "ssff/sfsf/ffss/fsss"; a single group applies to
// every layer. Without a mask, streaming (number in [0, 1], default 0.5): the share of
// each layer's heads that stream, rounded half up. sink (integer ≥ 0, default 4),
// recent (integer ≥ 1, default 12).
package duo

import (
	"fmt"
	"strings"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/ranking"
)

type policy struct {
	mask         []string // per layer, or one for every layer; nil: chosen from the prompt
	share        float64  // without a mask: the share of heads that stream
	sink, recent int

	cfg       policies.Config
	layout    policies.Layout
	width     int // slot ids stay below width
	next      int // position of the next query row
	streaming []bool
	// keep[h] is head h's share of the pool; sinks[h] and window[h] are the tokens
	// it protects, clamped to that share.
	keep, sinks, window []int
	res                 policies.Residency
	score               [][]float64 // accumulated attention by slot (full heads evict by it)
	local               []float64   // without a mask: prompt attention on each head's sinks and window
	ids                 []int32     // scratch candidate list
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	k := &policy{sink: p.Int("sink", 4), recent: p.Int("recent", 12)}
	mask := p.String("mask", "")
	p.Check("mask", mask != "" || !p.Has("mask"), `is empty: want one "s" (streaming) or "f" (full) per head, layers separated by "/"`)
	k.share = p.Float("streaming", 0.5)
	p.Check("streaming", !p.Has("streaming") || !p.Has("mask"), "cannot go with a mask, which names the streaming heads")
	p.Check("streaming", k.share >= 0 && k.share <= 1, "must be in [0, 1], got %g", k.share)
	p.Check("sink", k.sink >= 0, "must be ≥ 0, got %d", k.sink)
	p.Check("recent", k.recent >= 1, "must be ≥ 1, got %d", k.recent)
	if mask != "" {
		k.mask = strings.Split(mask, "/")
		for l, group := range k.mask {
			bad := strings.Trim(group, "sf")
			p.Check("mask", group != "" && bad == "", `layer %d is %q: want one "s" or "f" per head`, l, group)
		}
	}
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("duo: %w", err)
	}
	return k, nil
}

func (k *policy) Init(cfg policies.Config) (policies.Layout, error) {
	if err := policies.CheckConfig(cfg); err != nil {
		return policies.Layout{}, fmt.Errorf("duo: %w", err)
	}
	if cfg.Layer < 0 || cfg.Layer >= cfg.Layers {
		return policies.Layout{}, fmt.Errorf("duo: layer %d of a %d-layer model", cfg.Layer, cfg.Layers)
	}
	k.cfg, k.next = cfg, 0
	k.streaming = make([]bool, cfg.Heads)
	k.keep, k.sinks, k.window = make([]int, cfg.Heads), make([]int, cfg.Heads), make([]int, cfg.Heads)
	k.local = make([]float64, cfg.Heads)
	if k.mask != nil {
		group, err := k.layerMask(cfg)
		if err != nil {
			return policies.Layout{}, fmt.Errorf("duo: %w", err)
		}
		for h, c := range group {
			k.streaming[h] = c == 's'
		}
		k.divide()
	}
	k.res.Reset(cfg)
	if len(k.score) != cfg.Heads || (cfg.Heads > 0 && len(k.score[0]) < cfg.MaxLen) {
		k.score = make([][]float64, cfg.Heads)
		for h := range k.score {
			k.score[h] = make([]float64, cfg.MaxLen)
		}
	}
	for h := range k.score {
		clear(k.score[h])
	}
	k.layout = policies.Layout{Pool: policies.PoolLayer}
	k.width = policies.SlotWidth(cfg, k.layout)
	k.ids = make([]int32, 0, k.width)
	return k.layout, nil
}

// ForkTo hands dst the prompt's accumulated attention, local masses and streaming
// heads, none of which depends on the budget (policies.Forker); dst divides its own
// pool among the heads.
func (k *policy) ForkTo(dst policies.Policy) error {
	d, ok := dst.(*policy)
	if !ok {
		return fmt.Errorf("duo: fork: destination is not a duo instance")
	}
	a, b := k.cfg, d.cfg
	a.Budget, b.Budget = 0, 0
	switch {
	case a != b || d.share != k.share || d.sink != k.sink || d.recent != k.recent || strings.Join(d.mask, "/") != strings.Join(k.mask, "/"):
		return fmt.Errorf("duo: fork: destination is not a duo instance with the same params and sequence")
	case k.next != k.cfg.PromptLen || d.next != 0:
		return fmt.Errorf("duo: fork: source has seen %d and destination %d of %d prompt rows, want all and none",
			k.next, d.next, k.cfg.PromptLen)
	}
	for h := range k.score {
		copy(d.score[h], k.score[h])
	}
	copy(d.local, k.local)
	copy(d.streaming, k.streaming)
	d.next = k.next
	d.divide()
	return nil
}

// divide sets each head's share of the pool and what it protects (see the package
// doc), once the streaming heads are known.
func (k *policy) divide() {
	cfg := k.cfg
	streamKeep := min(k.sink+k.recent, cfg.Budget)
	full := 0
	for _, s := range k.streaming {
		if !s {
			full++
		}
	}
	rest := cfg.Heads*cfg.Budget - (cfg.Heads-full)*streamKeep
	nthFull := 0
	for h := range cfg.Heads {
		k.keep[h] = streamKeep
		if !k.streaming[h] {
			k.keep[h] = rest / full
			if nthFull < rest%full {
				k.keep[h]++
			}
			nthFull++
		}
		k.sinks[h] = min(k.sink, k.keep[h])
		k.window[h] = min(k.recent, k.keep[h]-k.sinks[h])
	}
}

// chooseStreaming marks as streaming the share of heads whose prompt attention went
// most to their sinks and window, the lower head first on ties.
func (k *policy) chooseStreaming() {
	heads := make([]int32, k.cfg.Heads)
	for h := range heads {
		heads[h] = int32(h)
	}
	n := int(k.share*float64(k.cfg.Heads) + 0.5)
	ranking.Smallest(heads, n, func(a, b int32) bool {
		if k.local[a] != k.local[b] {
			return k.local[a] > k.local[b]
		}
		return a < b
	})
	for _, h := range heads[:n] {
		k.streaming[h] = true
	}
	k.divide()
}

// layerMask returns the mask group of cfg's layer, checked against its head count.
func (k *policy) layerMask(cfg policies.Config) (string, error) {
	group := k.mask[0]
	switch len(k.mask) {
	case 1:
	case cfg.Layers:
		group = k.mask[cfg.Layer]
	default:
		return "", fmt.Errorf("param \"mask\" has %d layers, the model has %d", len(k.mask), cfg.Layers)
	}
	if len(group) != cfg.Heads {
		return "", fmt.Errorf("param \"mask\": layer %d is %q, %d heads, but the model has %d heads", cfg.Layer, group, len(group), cfg.Heads)
	}
	return group, nil
}

// Observe adds the rows to the full heads' accumulated attention and, without a mask,
// measures the prompt's attention on each head's sinks and window, choosing the
// streaming heads once the prompt is in.
func (k *policy) Observe(a *policies.Attention) error {
	if err := policies.CheckAttention(k.cfg, k.layout, &k.res, k.next, a); err != nil {
		return fmt.Errorf("duo: %w", err)
	}
	k.res.Enter(a)
	k.next += a.Rows
	choosing := k.mask == nil && a.Phase == policies.Prefill
	for h := range a.Heads {
		if k.streaming[h] {
			continue
		}
		score := k.score[h]
		for r := range a.Rows {
			row := a.Row(h, r)
			n := min(len(row), k.width)
			if a.Phase == policies.Prefill {
				n = min(n, a.Pos+r+1)
			}
			for s, v := range row[:n] {
				score[s] += float64(v)
			}
			if choosing {
				k.local[h] += localMass(row[:n], k.sink, k.recent)
			}
		}
	}
	if choosing && k.next == k.cfg.PromptLen {
		k.chooseStreaming()
	}
	return nil
}

// localMass is the attention a prompt row (the query at position len(row)−1) gives
// the first sink tokens and the last recent ones.
func localMass(row []float32, sink, recent int) float64 {
	sinks := min(sink, len(row))
	from := max(sinks, len(row)-recent) // the window, past the sinks
	m := 0.0
	for _, v := range row[:sinks] {
		m += float64(v)
	}
	for _, v := range row[from:] {
		m += float64(v)
	}
	return m
}

// Evict brings every head back to its share: the oldest tokens after the sinks in a
// streaming head, the lowest accumulated attention between the sinks and the window
// in a full head.
func (k *policy) Evict(e *policies.Eviction) error {
	if e.Heads != k.cfg.Heads || len(e.Count) < e.Heads || len(e.Victims) < e.Heads*e.Stride {
		return fmt.Errorf("duo: eviction of %d heads with stride %d, config has %d heads", e.Heads, e.Stride, k.cfg.Heads)
	}
	total := 0
	for h := range e.Heads {
		total += max(0, k.res.Heads[h].Resident()-k.keep[h])
	}
	if e.PoolNeed > total {
		return fmt.Errorf("duo: position %d: the pool needs %d victims but the heads hold only %d over their shares", e.Pos, e.PoolNeed, total)
	}
	newest := int32(k.next - 1)
	for h := range e.Heads {
		e.Count[h] = 0
		need := k.res.Heads[h].Resident() - k.keep[h]
		if need <= 0 {
			continue
		}
		if need > e.Stride {
			return fmt.Errorf("duo: head %d: %d victims do not fit a stride of %d", h, need, e.Stride)
		}
		table, score := &k.res.Heads[h], k.score[h]
		pos := table.Positions()
		firstAfterSinks, lastBeforeWindow := int32(k.sinks[h]), newest-int32(k.window[h])
		ids := k.ids[:0]
		for _, s := range table.Live() {
			if q := pos[s]; q >= firstAfterSinks && (k.streaming[h] || q <= lastBeforeWindow) {
				ids = append(ids, s)
			}
		}
		if need > len(ids) {
			return fmt.Errorf("duo: head %d: need %d victims but only %d tokens lie outside its sinks and window", h, need, len(ids))
		}
		less := func(a, b int32) bool { return pos[a] < pos[b] } // streaming: oldest first
		if !k.streaming[h] {
			less = func(a, b int32) bool {
				if score[a] != score[b] {
					return score[a] < score[b]
				}
				return pos[a] < pos[b]
			}
		}
		ranking.Smallest(ids, need, less)
		for _, s := range ids[:need] {
			e.Victim(h, s, 0)
			k.res.Free(h, s)
			score[s] = 0
		}
	}
	return nil
}

// TokenStateBytes declares the full heads' accumulated attention (a float64) per
// resident token.
func (*policy) TokenStateBytes() int { return 8 }
