package expectedattention

import "github.com/kvsim/kvsim/policies"

// Covariance models of the query distribution.
const (
	covFull     = "full"
	covDiagonal = "diagonal"
	covNone     = "none"
)

// queryStats keeps, per head, running sums of the counted queries and of their outer
// products (all d×d, or the diagonal only), in float64, over all counted queries or
// the newest `window` of them.
type queryStats struct {
	dim, window int
	cov         string
	count       []int       // queries counted, per head
	sum         [][]float64 // Σq, per head
	sq          [][]float64 // Σqqᵀ (d×d, row-major) or Σq², per head
	ring        [][]float32 // the newest `window` queries per head, window*dim
	next        []int       // ring write index per head
}

func (s *queryStats) reset(cfg policies.Config, window int, cov string) {
	s.dim, s.window, s.cov = cfg.HeadDim, window, cov
	sqLen := 0
	switch cov {
	case covFull:
		sqLen = s.dim * s.dim
	case covDiagonal:
		sqLen = s.dim
	}
	s.count, s.next = make([]int, cfg.Heads), make([]int, cfg.Heads)
	s.sum, s.sq, s.ring = make([][]float64, cfg.Heads), make([][]float64, cfg.Heads), make([][]float32, cfg.Heads)
	for h := range cfg.Heads {
		s.sum[h], s.sq[h] = make([]float64, s.dim), make([]float64, sqLen)
		if window > 0 {
			s.ring[h] = make([]float32, window*s.dim)
		}
	}
}

// add counts head h's query q, dropping the oldest once the window is full.
func (s *queryStats) add(h int, q []float32) {
	if s.window > 0 {
		slot := s.ring[h][s.next[h]*s.dim:][:s.dim]
		if s.count[h] == s.window {
			s.accumulate(h, slot, -1)
			s.count[h]--
		}
		copy(slot, q)
		s.next[h] = (s.next[h] + 1) % s.window
	}
	s.accumulate(h, q, 1)
	s.count[h]++
}

func (s *queryStats) accumulate(h int, q []float32, sign float64) {
	sum, sq := s.sum[h], s.sq[h]
	for i, x := range q {
		xi := sign * float64(x)
		sum[i] += xi
		switch s.cov {
		case covFull:
			row := sq[i*s.dim:][:s.dim]
			for j, y := range q {
				row[j] += xi * float64(y)
			}
		case covDiagonal:
			sq[i] += xi * float64(x)
		}
	}
}

// moments writes head h's mean to mu and its covariance (d×d or diagonal, as
// configured) to cov: zero before any query is counted. Variances below zero, which
// only rounding can give, are clamped to zero.
func (s *queryStats) moments(h int, mu, cov []float64) {
	n := float64(s.count[h])
	if n == 0 {
		clear(mu)
		clear(cov)
		return
	}
	for i := range mu {
		mu[i] = s.sum[h][i] / n
	}
	switch s.cov {
	case covFull:
		for i := range s.dim {
			for j := range s.dim {
				cov[i*s.dim+j] = s.sq[h][i*s.dim+j]/n - mu[i]*mu[j]
			}
			cov[i*s.dim+i] = max(cov[i*s.dim+i], 0)
		}
	case covDiagonal:
		for i := range s.dim {
			cov[i] = max(s.sq[h][i]/n-mu[i]*mu[i], 0)
		}
	}
}
