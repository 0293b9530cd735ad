package cpu

import (
	"errors"
	"fmt"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
)

// cache is the CPU backend's KV cache. It implements gpu.KV.
type cache struct {
	backend                          *Backend
	layers, heads, headDim, capacity int
	// Per layer: keys [heads][capacity][head_dim]; values transposed,
	// [heads][head_dim][capacity], so that probabilities times values is a
	// kernel.MatMulNT; the position in each slot, [heads][capacity], -1 when free.
	k, vt [][]float32
	pos   [][]int32
	width []int // per layer: 1 + the highest slot ever written
	// The compensation slots, per layer and head, merged by the host's rule
	// (host.Comp), and their float32 copies that attention reads, [heads][head_dim]
	// keys and values per layer. Nil without compensation.
	comp         [][]host.Comp
	compK, compV [][]float32
	victimV      []float32 // a victim's value, gathered from vt for the merge
	closed       bool
}

// NewKV allocates a cache; see gpu.Backend.
func (b *Backend) NewKV(capacity int, compensation bool) (gpu.KV, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("cpu backend: KV capacity %d, want at least 1", capacity)
	}
	cfg := &b.cfg
	c := &cache{backend: b, layers: cfg.NumHiddenLayers, heads: cfg.NumAttentionHeads, headDim: cfg.HeadDim(),
		capacity: capacity}
	H, d := c.heads, c.headDim
	c.k, c.vt, c.pos, c.width = make([][]float32, c.layers), make([][]float32, c.layers), make([][]int32, c.layers), make([]int, c.layers)
	for l := range c.layers {
		c.k[l] = make([]float32, H*capacity*d)
		c.vt[l] = make([]float32, H*d*capacity)
		c.pos[l] = make([]int32, H*capacity)
		for i := range c.pos[l] {
			c.pos[l][i] = -1
		}
	}
	if compensation {
		c.comp, c.compK, c.compV = make([][]host.Comp, c.layers), make([][]float32, c.layers), make([][]float32, c.layers)
		for l := range c.layers {
			c.comp[l], c.compK[l], c.compV[l] = make([]host.Comp, H), make([]float32, H*d), make([]float32, H*d)
			for h := range H {
				c.comp[l][h].Reset(d)
			}
		}
		c.victimV = make([]float32, d)
	}
	return c, nil
}

func (c *cache) Capacity() int      { return c.capacity }
func (c *cache) Compensation() bool { return c.comp != nil }

// Bytes counts keys, values, positions and compensation slots.
func (c *cache) Bytes() int64 {
	perLayer := int64(c.heads) * (int64(c.capacity)*(2*int64(c.headDim)*4+4) + c.compBytes())
	return int64(c.layers) * perLayer
}

func (c *cache) compBytes() int64 {
	if c.comp == nil {
		return 0
	}
	return 2*int64(c.headDim)*4 + 8
}

func (c *cache) Close() error {
	c.closed = true
	c.k, c.vt, c.pos, c.comp, c.compK, c.compV = nil, nil, nil, nil, nil, nil
	return nil
}

// scatter writes the keys and values of the batch's tokens ([n][heads·head_dim])
// into their slots of layer l.
func (c *cache) scatter(l int, k, v []float32, slots, positions []int32) {
	H, d, C := c.heads, c.headDim, c.capacity
	kl, vl, pl := c.k[l], c.vt[l], c.pos[l]
	for i, p := range positions {
		for h := range H {
			s := int(slots[i*H+h])
			copy(kl[(h*C+s)*d:(h*C+s+1)*d], k[(i*H+h)*d:(i*H+h+1)*d])
			pl[h*C+s] = p
			c.width[l] = max(c.width[l], s+1)
		}
	}
	// Values go in transposed, a block of tokens at a time, so that the writes to
	// consecutive slots share cache lines.
	const block = 16
	for h := range H {
		for i0 := 0; i0 < len(positions); i0 += block {
			i1 := min(len(positions), i0+block)
			for j := range d {
				dst := vl[(h*d+j)*C:]
				for i := i0; i < i1; i++ {
					dst[slots[i*H+h]] = v[(i*H+h)*d+j]
				}
			}
		}
	}
}

// Evict frees victims, merging them into the compensation slots first; see gpu.KV.
func (c *cache) Evict(l int, e *policies.Eviction) error {
	if c.closed {
		return errors.New("cpu backend: Evict on a closed KV cache")
	}
	if l < 0 || l >= c.layers {
		return fmt.Errorf("cpu backend: Evict: layer %d out of range [0, %d)", l, c.layers)
	}
	H, C := c.heads, c.capacity
	merge := c.comp != nil && e.Weights != nil
	for h := range H {
		for i := range int(e.Count[h]) {
			s := int(e.Victims[h*e.Stride+i])
			if merge {
				if w := float64(e.Weights[h*e.Stride+i]); w > 0 {
					c.fold(l, h, s, w)
				}
			}
			c.pos[l][h*C+s] = -1
		}
	}
	return nil
}

// fold merges slot s of head h into the compensation slot with weight w
// (host.Comp.Merge, AUV Eq. 7–8) and refreshes the slot's float32 copy.
func (c *cache) fold(l, h, s int, w float64) {
	d, C := c.headDim, c.capacity
	k := c.k[l][(h*C+s)*d : (h*C+s+1)*d]
	for j := range c.victimV {
		c.victimV[j] = c.vt[l][(h*d+j)*C+s]
	}
	comp := &c.comp[l][h]
	comp.Merge(w, k, c.victimV)
	ck, cv := c.compK[l][h*d:(h+1)*d], c.compV[l][h*d:(h+1)*d]
	for j := range ck {
		ck[j], cv[j] = float32(comp.K[j]), float32(comp.V[j])
	}
}
