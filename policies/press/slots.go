package press

import (
	"math"

	"github.com/kvsim/kvsim/policies"
)

// TokenSlot is the slot of head h's token of row r: position Pos+r in prefill, the
// entered slot in decode.
func TokenSlot(a *policies.Attention, h, r int) int32 {
	if a.Phase == policies.Decode {
		return a.Slot[h]
	}
	return int32(a.Pos + r)
}

// Vector is head h's vector of row r in one of a's flat Keys, Values or Queries.
func Vector(a *policies.Attention, v []float32, h, r int) []float32 {
	return v[(h*a.Rows+r)*a.HeadDim:][:a.HeadDim]
}

// PerSlot keeps one number per head and slot, for scorers that remember something
// of each token (a norm, a score) instead of storing its vectors.
type PerSlot struct {
	width int
	v     []float64
}

// Reset sizes the table for cfg (slot ids stay below MaxLen) and zeroes it.
func (p *PerSlot) Reset(cfg policies.Config) {
	p.width = cfg.MaxLen
	n := cfg.Heads * cfg.MaxLen
	if cap(p.v) < n {
		p.v = make([]float64, n)
	}
	p.v = p.v[:n]
	clear(p.v)
}

// At is head h's number for slot s.
func (p *PerSlot) At(h int, s int32) float64 { return p.v[h*p.width+int(s)] }

// CopyTo makes d, reset for the same config, a copy of p.
func (p *PerSlot) CopyTo(d *PerSlot) { copy(d.v, p.v) }

// Set records head h's number for slot s.
func (p *PerSlot) Set(h int, s int32, x float64) { p.v[h*p.width+int(s)] = x }

// Norms remembers the L2 norm of every token's key or value, by head and slot.
type Norms struct{ PerSlot }

// Record stores the norms of the vectors of a's rows; vectors is a.Keys or a.Values.
func (n *Norms) Record(a *policies.Attention, vectors []float32) {
	for h := range a.Heads {
		for r := range a.Rows {
			n.Set(h, TokenSlot(a, h, r), Norm(Vector(a, vectors, h, r)))
		}
	}
}

// Norm is the L2 norm of v, summed in float64.
func Norm(v []float32) float64 {
	sum := 0.0
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum)
}
