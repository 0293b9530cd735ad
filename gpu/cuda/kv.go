//go:build cuda

package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/policies"
)

// kv is the backend's gpu.KV: the slot tables on the device, and the evictions
// queued for the next Forward, which uploads their victim lists together with its
// own inputs and applies them first.
type kv struct {
	b      *Backend
	cache  *Cache
	closed bool

	pending []byte        // victim lists, as uploaded
	queued  []queuedEvict // where each queued eviction's lists sit in pending
}

// queuedEvict is one Evict call waiting for the next Forward; offsets are in bytes
// into kv.pending, weights -1 when the victims are only freed. The lists are stored
// with stride = the largest count, not the policy's stride (the table width), so that
// a decode step's one or two victims per head do not upload a table's width each.
type queuedEvict struct {
	layer, stride            int
	counts, victims, weights int
}

var _ gpu.KV = (*kv)(nil)

// NewKV allocates a cache of capacity slots per (layer, head) on the device.
func (b *Backend) NewKV(capacity int, compensation bool) (gpu.KV, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("cuda backend: KV capacity %d, want at least 1", capacity)
	}
	c, err := b.m.NewCache(capacity, compensation)
	if err != nil {
		return nil, err
	}
	return &kv{b: b, cache: c}, nil
}

func (c *kv) Capacity() int      { return c.cache.Tables[0].Capacity }
func (c *kv) Compensation() bool { return c.cache.Tables[0].CompW != 0 }
func (c *kv) Bytes() int64       { return c.cache.Bytes }

// Close frees the device memory; queued evictions are dropped with it.
func (c *kv) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	c.pending, c.queued = nil, nil
	return c.cache.Free()
}

// Evict queues layer l's victims (see gpu.KV). They take effect on the device before
// the next Forward computes anything, which is the first time they can matter.
func (c *kv) Evict(l int, e *policies.Eviction) error {
	if c.closed {
		return errors.New("cuda backend: Evict on a closed KV cache")
	}
	if l < 0 || l >= len(c.cache.Tables) {
		return fmt.Errorf("cuda backend: Evict: layer %d out of range [0, %d)", l, len(c.cache.Tables))
	}
	t := &c.cache.Tables[l]
	H := t.Heads
	if len(e.Count) < H || len(e.Victims) < H*e.Stride {
		return fmt.Errorf("cuda backend: Evict: layer %d: victim lists for fewer than %d heads", l, H)
	}
	stride := 0 // the largest count
	for h := range H {
		n := int(e.Count[h])
		if n < 0 || n > e.Stride {
			return fmt.Errorf("cuda backend: Evict: layer %d head %d: %d victims, want 0..%d", l, h, n, e.Stride)
		}
		for _, s := range e.Victims[h*e.Stride : h*e.Stride+n] {
			if s < 0 || int(s) >= t.Capacity {
				return fmt.Errorf("cuda backend: Evict: layer %d head %d: slot %d out of range [0, %d)", l, h, s, t.Capacity)
			}
		}
		stride = max(stride, n)
	}
	if stride == 0 {
		return nil
	}
	merge := e.Weights != nil && t.CompW != 0
	if merge && len(e.Weights) < H*e.Stride {
		return fmt.Errorf("cuda backend: Evict: layer %d: merge weights for fewer than %d heads", l, H)
	}
	q := queuedEvict{layer: l, stride: stride, counts: len(c.pending), weights: -1}
	c.pending = appendInt32s(c.pending, e.Count[:H])
	q.victims = len(c.pending)
	for h := range H {
		c.pending = appendInt32s(c.pending, e.Victims[h*e.Stride:h*e.Stride+stride])
	}
	if merge {
		q.weights = len(c.pending)
		for h := range H {
			for _, w := range e.Weights[h*e.Stride : h*e.Stride+stride] {
				c.pending = binary.LittleEndian.AppendUint32(c.pending, math.Float32bits(w))
			}
		}
	}
	c.queued = append(c.queued, q)
	return nil
}

// applyEvictions launches the queued evictions, whose lists were uploaded to base,
// in the order they were queued, and empties the queue.
func (c *kv) applyEvictions(base Ptr) error {
	for _, q := range c.queued {
		weights := Ptr(0)
		if q.weights >= 0 {
			weights = base.Add(q.weights)
		}
		if err := c.b.d.Evict(&c.cache.Tables[q.layer], base.Add(q.counts), base.Add(q.victims), weights, q.stride); err != nil {
			return err
		}
	}
	c.pending, c.queued = c.pending[:0], c.queued[:0]
	return nil
}
