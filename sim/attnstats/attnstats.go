// Package attnstats measures the structure of a trace's attention, head by head: the
// share of each query's attention on the first token (the attention sink), on the
// previous token and on itself, and how often each of the first two is the query's
// most attended token (a row whose largest probability is shared has none). It recomputes full causal attention from the trace's q and k,
// as replay's full cache sees it.
//
// Every query row t ≥ 2 counts, prompt and generated alike: from t = 2 on the sink
// (key 0), the previous token (key t−1) and the query itself (key t) are three
// different keys. A head is a sink head when the sink is the most attended key of more
// than half of its rows, a previous-token head likewise; a row has at most one most
// attended key, so no head is both.
package attnstats

import (
	"fmt"

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
}

// SinkHead reports whether the sink is the most attended key of most rows.
func (h Head) SinkHead() bool { return h.SinkTop > 0.5 }

// PreviousHead reports whether the previous token is the most attended key of most rows.
func (h Head) PreviousHead() bool { return h.PreviousTop > 0.5 }

// Stats accumulates head statistics over samples of one shape.
type Stats struct {
	Model   string `json:"model"`
	Source  string `json:"source"`
	Samples int    `json:"samples"`
	Layers  int    `json:"layers"`
	Heads   int    `json:"heads"`
	// PerHead is layer-major: PerHead[l*Heads+h].
	PerHead []Head `json:"per_head"`
}

// Add adds one sample's attention. Every sample must have the first one's layers
// and heads.
func (s *Stats) Add(src sim.Source) error {
	m := src.Meta()
	T, d := m.Tokens(), m.HeadDim
	if T < 3 {
		return fmt.Errorf("%s: %d tokens: the statistics need at least 3", src.Name(), T)
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
			var sink, prev, self, sinkTop, prevTop float64
			for t := 2; t < T; t++ {
				p := row[:t+1]
				kernel.MatMulNT(1, t+1, d, q[(h*T+t)*d:], d, k[h*T*d:], d, p, t+1)
				kernel.Softmax(p)
				sink += float64(p[0])
				prev += float64(p[t-1])
				self += float64(p[t])
				switch argmax(p) {
				case 0:
					sinkTop++
				case t - 1:
					prevTop++
				}
			}
			rows := float64(T - 2)
			total := n + rows
			acc.Sink = (acc.Sink*n + sink) / total
			acc.Previous = (acc.Previous*n + prev) / total
			acc.Self = (acc.Self*n + self) / total
			acc.SinkTop = (acc.SinkTop*n + sinkTop) / total
			acc.PreviousTop = (acc.PreviousTop*n + prevTop) / total
			acc.Rows += T - 2
		}
	}
	s.Samples++
	return nil
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
	Heads         int     `json:"heads"`
	Sink          float64 `json:"sink"`     // mean over heads of Head.Sink
	Previous      float64 `json:"previous"` // mean over heads of Head.Previous
	Self          float64 `json:"self"`     // mean over heads of Head.Self
	SinkHeads     int     `json:"sink_heads"`
	PreviousHeads int     `json:"previous_heads"`
}

// Summary averages the heads, each with the same weight.
func (s *Stats) Summary() Summary {
	sum := Summary{Heads: len(s.PerHead)}
	for _, h := range s.PerHead {
		sum.Sink += h.Sink
		sum.Previous += h.Previous
		sum.Self += h.Self
		if h.SinkHead() {
			sum.SinkHeads++
		}
		if h.PreviousHead() {
			sum.PreviousHeads++
		}
	}
	if n := float64(len(s.PerHead)); n > 0 {
		sum.Sink /= n
		sum.Previous /= n
		sum.Self /= n
	}
	return sum
}
