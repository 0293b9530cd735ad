package expectedattention

import "github.com/kvsim/kvsim/policies"

// queryStats keeps, per head, the running sums of the counted queries, Σq, and of
// their outer products, Σqqᵀ (d×d, row-major, only when the covariance term is on), in
// float64, over every counted query or the newest `window` of them.
type queryStats struct {
	dim, window int
	outer       bool
	count       []int       // queries counted, per head
	sum         [][]float64 // Σq, per head
	sq          [][]float64 // Σqqᵀ, per head
	ring        [][]float32 // the newest `window` queries per head, window*dim
	next        []int       // ring write index per head
	dropped     []float32   // the query the last add dropped
}

func (s *queryStats) reset(cfg policies.Config, window int, outer bool) {
	s.dim, s.window, s.outer = cfg.HeadDim, window, outer
	s.count, s.next = make([]int, cfg.Heads), make([]int, cfg.Heads)
	s.dropped = make([]float32, s.dim)
	s.sum, s.sq, s.ring = make([][]float64, cfg.Heads), make([][]float64, cfg.Heads), make([][]float32, cfg.Heads)
	for h := range cfg.Heads {
		s.sum[h] = make([]float64, s.dim)
		if outer {
			s.sq[h] = make([]float64, s.dim*s.dim)
		}
		if window > 0 {
			s.ring[h] = make([]float32, window*s.dim)
		}
	}
}

// copyTo makes d, reset for the same config, window and covariance, a copy of s.
func (s *queryStats) copyTo(d *queryStats) {
	copy(d.count, s.count)
	copy(d.next, s.next)
	for h := range s.sum {
		copy(d.sum[h], s.sum[h])
		copy(d.sq[h], s.sq[h])
		copy(d.ring[h], s.ring[h])
	}
}

// add counts head h's query q. Once the window is full the oldest query leaves the
// sums; add returns it (valid until the next add), or nil.
func (s *queryStats) add(h int, q []float32) (dropped []float32) {
	if s.window > 0 {
		slot := s.ring[h][s.next[h]*s.dim:][:s.dim]
		if s.count[h] == s.window {
			s.accumulate(h, slot, -1)
			s.count[h]--
			dropped = s.dropped
			copy(dropped, slot)
		}
		copy(slot, q)
		s.next[h] = (s.next[h] + 1) % s.window
	}
	s.accumulate(h, q, 1)
	s.count[h]++
	return dropped
}

func (s *queryStats) accumulate(h int, q []float32, sign float64) {
	sum, sq := s.sum[h], s.sq[h]
	for i, x := range q {
		xi := sign * float64(x)
		sum[i] += xi
		if s.outer {
			row := sq[i*s.dim:][:s.dim]
			for j, y := range q {
				row[j] += xi * float64(y)
			}
		}
	}
}

// project is (Σq·k, Σ(q·k)²) over head h's counted queries: the second from Σqqᵀ as
// kᵀ(Σqqᵀ)k, and 0 when the covariance term is off.
func (s *queryStats) project(h int, k []float32) (lin, quad float64) {
	for i, x := range k {
		lin += s.sum[h][i] * float64(x)
		if s.outer {
			row, dot := s.sq[h][i*s.dim:][:s.dim], 0.0
			for j, y := range k {
				dot += row[j] * float64(y)
			}
			quad += float64(x) * dot
		}
	}
	return lin, quad
}
