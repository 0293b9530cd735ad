//go:build cuda

package cuda

import (
	"fmt"

	"gorgonia.org/cu"
)

// Cache is one sequence's KV slot tables, one per layer, all in one allocation. Its
// memory is fixed at creation: tokens enter free slots in place and eviction frees
// slots, so the cache never grows or compacts.
type Cache struct {
	Tables []SlotTable
	Bytes  int64 // device memory held

	d   *Device
	mem Ptr
}

// NewCache allocates slot tables of capacity slots per head for every layer of m,
// all slots free, with a compensation slot per head when compensation is set.
func (m *Model) NewCache(capacity int, compensation bool) (*Cache, error) {
	c := m.Config
	if capacity <= 0 {
		return nil, fmt.Errorf("cuda: cache capacity %d", capacity)
	}
	H, hd := c.NumAttentionHeads, c.HeadDim()
	kv := roundUp(2*H*capacity*hd, 256)
	pos := roundUp(4*H*capacity, 256)
	comp := 0
	if compensation {
		comp = 2*roundUp(4*H*hd, 256) + roundUp(4*H, 256)
	}
	perLayer := 2*kv + pos + comp
	total := perLayer * c.NumHiddenLayers
	mem, err := m.d.Alloc(total) // zeroed: free slots hold finite keys and values
	if err != nil {
		return nil, fmt.Errorf("cuda: KV cache of %d slots per head: %w", capacity, err)
	}
	cache := &Cache{d: m.d, mem: mem, Bytes: int64(total), Tables: make([]SlotTable, c.NumHiddenLayers)}
	for l := range cache.Tables {
		base := mem.Add(l * perLayer)
		t := SlotTable{Heads: H, Capacity: capacity, HeadDim: hd,
			K: base, V: base.Add(kv), Pos: base.Add(2 * kv)}
		if compensation {
			t.CompK = t.Pos.Add(pos)
			t.CompV = t.CompK.Add(roundUp(4*H*hd, 256))
			t.CompW = t.CompV.Add(roundUp(4*H*hd, 256))
		}
		cache.Tables[l] = t
	}
	if err := cache.Reset(); err != nil {
		cache.Free()
		return nil, err
	}
	return cache, nil
}

// Reset frees every slot and empties the compensation slots, for a new sequence.
func (c *Cache) Reset() error {
	defer c.d.bind()()
	for _, t := range c.Tables {
		if err := cu.MemsetD32Async(cu.DevicePtr(t.Pos), 0xffffffff, int64(t.Heads*t.Capacity), c.d.compute); err != nil {
			return fmt.Errorf("cuda: resetting a slot table: %w", err)
		}
		if t.CompW != 0 {
			n := int64(t.CompW-t.CompK) + 4*int64(t.Heads) // CompK, CompV, CompW
			if err := cu.MemsetD8Async(cu.DevicePtr(t.CompK), 0, n, c.d.compute); err != nil {
				return fmt.Errorf("cuda: resetting a compensation slot: %w", err)
			}
		}
	}
	return nil
}

// Free releases the cache's memory.
func (c *Cache) Free() error {
	err := c.d.Free(c.mem)
	c.mem = 0
	return err
}
