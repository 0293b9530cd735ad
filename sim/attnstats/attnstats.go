// Package attnstats measures the structure of a trace's attention, head by head: the
// share of each query's attention on the first token (the attention sink), on the
// previous token and on itself, and how often each of the first two is the query's
// most attended token (a row whose largest probability is shared has none); how
// peaked the rows are (the largest probability, and the effective number of keys,
// exp of the row's entropy); and, where the trace has token ids, which tokens are
// most often the most attended and how often that is a delimiter (punctuation or a
// line break, as the caller's vocabulary says): trained models grow heads that
// attend to the last delimiter. It recomputes full causal attention from the trace's
// q and k, as replay's full cache sees it.
//
// Every query row t ≥ 2 counts, prompt and generated alike: from t = 2 on the sink
// (key 0), the previous token (key t−1) and the query itself (key t) are three
// different keys. A head is a sink head when the sink is the most attended key of more
// than half of its rows, a previous-token head likewise, and a delimiter head when
// some other key holding a delimiter is; a row has at most one most attended key, so
// no head is two of them.
package attnstats

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/kvsim/kvsim/internal/kernel"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// Head is one (layer, head)'s statistics, over every row of every sample added.
type Head struct {
	Layer int `json:"layer"`
	Head  int `json:"head"`
	Rows  int `json:"rows"`
	// Sink, Previous and Self are mean attention probabilities on key 0, key t−1
	// and key t.
	Sink     float64 `json:"sink"`
	Previous float64 `json:"previous"`
	Self     float64 `json:"self"`
	// SinkTop and PreviousTop are the shares of rows whose most attended key is key 0,
	// and key t−1.
	SinkTop     float64 `json:"sink_top"`
	PreviousTop float64 `json:"previous_top"`
	// DelimiterTop is the share of rows whose most attended key is a delimiter
	// other than the sink and the previous token.
	DelimiterTop float64 `json:"delimiter_top"`
	// Peak is the mean of each row's largest probability; Keys the mean of each
	// row's effective number of keys, exp(−Σ p ln p): t+1 for attention spread
	// evenly over the t+1 keys of row t, 1 for attention on one key.
	Peak float64 `json:"peak"`
	Keys float64 `json:"effective_keys"`
	// TopKeys are the tokens most often the most attended key of a row, at most
	// three, most frequent first (ties to the smaller id); nil without token ids.
	TopKeys []TokenShare `json:"top_keys,omitempty"`
	counts  map[int32]int
}

// TokenShare is a token id and the share of a head's rows whose most attended key
// holds it.
type TokenShare struct {
	Token int32   `json:"token"`
	Share float64 `json:"share"`
}

// SinkHead reports whether the sink is the most attended key of most rows.
func (h Head) SinkHead() bool { return h.SinkTop > 0.5 }

// PreviousHead reports whether the previous token is the most attended key of most rows.
func (h Head) PreviousHead() bool { return h.PreviousTop > 0.5 }

// DelimiterHead reports whether a delimiter other than those two is the most
// attended key of most rows.
func (h Head) DelimiterHead() bool { return h.DelimiterTop > 0.5 }

// Stats accumulates head statistics over samples of one shape.
type Stats struct {
	Model   string `json:"model"`
	Source  string `json:"source"`
	Samples int    `json:"samples"`
	Layers  int    `json:"layers"`
	Heads   int    `json:"heads"`
	// Delimiter tells which token ids are delimiters; nil counts none.
	Delimiter func(token int32) bool `json:"-"`
	// PerHead is layer-major: PerHead[l*Heads+h].
	PerHead []Head `json:"per_head"`
	// widthSum is the keys of every row of every sample, summed: a head's rows.
	widthSum float64
}

// Add adds one sample's attention, with its token ids (nil when it has none). Every
// sample must have the first one's layers and heads.
func (s *Stats) Add(src sim.Source, tokens []int32) error {
	m := src.Meta()
	T, d := m.Tokens(), m.HeadDim
	if T < 3 {
		return fmt.Errorf("%s: %d tokens: the statistics need at least 3", src.Name(), T)
	}
	if tokens != nil && len(tokens) != T {
		return fmt.Errorf("%s: %d token ids for %d positions", src.Name(), len(tokens), T)
	}
	if s.Samples == 0 {
		s.Model, s.Source, s.Layers, s.Heads = m.Model, m.Source, m.Layers, m.Heads
		s.PerHead = make([]Head, m.Layers*m.Heads)
		for i := range s.PerHead {
			s.PerHead[i].Layer, s.PerHead[i].Head = i/m.Heads, i%m.Heads
		}
	} else if m.Layers != s.Layers || m.Heads != s.Heads {
		return fmt.Errorf("%s: %d layers × %d heads, but the first trace has %d × %d", src.Name(), m.Layers, m.Heads, s.Layers, s.Heads)
	}
	if m.Model != s.Model {
		s.Model = "mixed"
	}
	if m.Source != s.Source {
		s.Source = "mixed"
	}
	var q, k []float32
	row := make([]float32, T)
	var err error
	for l := range m.Layers {
		if q, err = src.Read(kvtrace.Q, l, q); err != nil {
			return err
		}
		if k, err = src.Read(kvtrace.K, l, k); err != nil {
			return err
		}
		for h := range m.Heads {
			acc := &s.PerHead[l*m.Heads+h]
			n := float64(acc.Rows)
			var sink, prev, self, sinkTop, prevTop, delimTop, peak, keys float64
			for t := 2; t < T; t++ {
				p := row[:t+1]
				kernel.MatMulNT(1, t+1, d, q[(h*T+t)*d:], d, k[h*T*d:], d, p, t+1)
				kernel.Softmax(p)
				sink += float64(p[0])
				prev += float64(p[t-1])
				self += float64(p[t])
				var top, entropy float64
				for _, x := range p {
					top = max(top, float64(x))
					if x > 0 {
						entropy -= float64(x) * math.Log(float64(x))
					}
				}
				peak += top
				keys += math.Exp(entropy)
				best := argmax(p)
				switch {
				case best == 0:
					sinkTop++
				case best == t-1:
					prevTop++
				case best > 0 && tokens != nil && s.Delimiter != nil && s.Delimiter(tokens[best]):
					delimTop++
				}
				if best >= 0 && tokens != nil {
					if acc.counts == nil {
						acc.counts = map[int32]int{}
					}
					acc.counts[tokens[best]]++
				}
			}
			rows := float64(T - 2)
			total := n + rows
			acc.Sink = (acc.Sink*n + sink) / total
			acc.Previous = (acc.Previous*n + prev) / total
			acc.Self = (acc.Self*n + self) / total
			acc.SinkTop = (acc.SinkTop*n + sinkTop) / total
			acc.PreviousTop = (acc.PreviousTop*n + prevTop) / total
			acc.DelimiterTop = (acc.DelimiterTop*n + delimTop) / total
			acc.Peak = (acc.Peak*n + peak) / total
			acc.Keys = (acc.Keys*n + keys) / total
			acc.Rows += T - 2
			acc.TopKeys = topKeys(acc.counts, acc.Rows)
		}
	}
	s.Samples++
	s.widthSum += float64(T-2) * float64(T+3) / 2 // row t has t+1 keys, t = 2..T−1
	return nil
}

// topKeys returns the three most counted tokens with their shares of rows.
func topKeys(counts map[int32]int, rows int) []TokenShare {
	if len(counts) == 0 {
		return nil
	}
	ids := make([]int32, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b int32) int { return cmp.Or(counts[b]-counts[a], cmp.Compare(a, b)) })
	top := make([]TokenShare, min(3, len(ids)))
	for i := range top {
		top[i] = TokenShare{ids[i], float64(counts[ids[i]]) / float64(rows)}
	}
	return top
}

// argmax is the index of the largest entry, or -1 when several share it: a row
// that attends evenly has no most attended key.
func argmax(p []float32) int {
	best, tied := 0, false
	for i := 1; i < len(p); i++ {
		switch {
		case p[i] > p[best]:
			best, tied = i, false
		case p[i] == p[best]:
			tied = true
		}
	}
	if tied {
		return -1
	}
	return best
}

// Summary is the statistics over all heads.
type Summary struct {
	Heads          int     `json:"heads"`
	Sink           float64 `json:"sink"`     // mean over heads of Head.Sink
	Previous       float64 `json:"previous"` // mean over heads of Head.Previous
	Self           float64 `json:"self"`     // mean over heads of Head.Self
	SinkHeads      int     `json:"sink_heads"`
	PreviousHeads  int     `json:"previous_heads"`
	DelimiterHeads int     `json:"delimiter_heads"`
	Peak           float64 `json:"peak"`           // mean over heads of Head.Peak
	Keys           float64 `json:"effective_keys"` // mean over heads of Head.Keys
	// Width is the mean number of keys a row has: what Keys would be if every
	// head spread its attention evenly.
	Width float64 `json:"width"`
}

// Summary averages the heads, each with the same weight.
func (s *Stats) Summary() Summary {
	sum := Summary{Heads: len(s.PerHead)}
	for _, h := range s.PerHead {
		sum.Sink += h.Sink
		sum.Previous += h.Previous
		sum.Self += h.Self
		sum.Peak += h.Peak
		sum.Keys += h.Keys
		if h.SinkHead() {
			sum.SinkHeads++
		}
		if h.PreviousHead() {
			sum.PreviousHeads++
		}
		if h.DelimiterHead() {
			sum.DelimiterHeads++
		}
	}
	if n := float64(len(s.PerHead)); n > 0 {
		sum.Sink /= n
		sum.Previous /= n
		sum.Self /= n
		sum.Peak /= n
		sum.Keys /= n
		sum.Width = s.widthSum / float64(s.PerHead[0].Rows)
	}
	return sum
}
