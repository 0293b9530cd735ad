package host

import (
	"fmt"
	"math"

	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/internal/kernel"
	"github.com/kvsim/kvsim/policies"
)

// CheckVictims checks the victims a policy returned for every head against the
// head's table (tables[h]), and changes nothing: each count within the victim list,
// at least Need[h] (when e.Need is set) and at most the tokens resident; all heads'
// counts together at least PoolNeed; every victim a resident slot, named once (a
// pooled policy may empty a head); with compensation, every merge weight finite and
// non-negative. Errors name the head and the slot, or the pool.
func CheckVictims(e *policies.Eviction, tables []policies.SlotTable, compensation bool) error {
	total := 0
	for h := range tables {
		if err := checkHead(e, h, &tables[h], compensation); err != nil {
			return err
		}
		total += int(e.Count[h])
	}
	if total < e.PoolNeed {
		return fmt.Errorf("pool: %d victims over %d heads, need at least %d", total, len(tables), e.PoolNeed)
	}
	return nil
}

func checkHead(e *policies.Eviction, h int, t *policies.SlotTable, compensation bool) error {
	n := int(e.Count[h])
	switch {
	case e.Need != nil && n < int(e.Need[h]):
		return fmt.Errorf("head %d: %d victims, need at least %d", h, n, e.Need[h])
	case n > t.Resident():
		return fmt.Errorf("head %d: %d victims, only %d tokens resident", h, n, t.Resident())
	case n < 0 || n > e.Stride:
		return fmt.Errorf("head %d: %d victims, want 0..%d", h, n, e.Stride)
	}
	victims := e.Victims[h*e.Stride : h*e.Stride+n]
	if err := t.CheckResident(victims); err != nil {
		return fmt.Errorf("head %d: victim %w", h, err)
	}
	if compensation {
		for i, s := range victims {
			if w := float64(e.Weights[h*e.Stride+i]); w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
				return fmt.Errorf("head %d: merge weight %g for slot %d", h, w, s)
			}
		}
	}
	return nil
}

// Comp is one head's compensation slot (AUV Eq. 7–8): the running weighted mean of
// its victims' keys and values, kept in float64.
type Comp struct {
	K, V   []float64
	Weight float64 // the victims' weights summed; 0 while the slot is empty
}

// Reset empties the slot for vectors of headDim.
func (c *Comp) Reset(headDim int) {
	c.K, c.V = buf.Grow(c.K, headDim), buf.Grow(c.V, headDim)
	clear(c.K)
	clear(c.V)
	c.Weight = 0
}

// Merge folds one victim's key and value (v may be nil) into the slot with weight
// w. Victims of one call folded one by one give the same weighted mean as folding
// them together; a zero weight drops the victim.
func (c *Comp) Merge(w float64, k, v []float32) {
	if w == 0 {
		return
	}
	total := c.Weight + w
	kernel.Blend(c.K, c.Weight, k[:len(c.K)], w, total)
	if v != nil {
		kernel.Blend(c.V, c.Weight, v[:len(c.V)], w, total)
	}
	c.Weight = total
}
