//go:build cuda

package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/kvsim/kvsim/gpu"
)

// workspace is the device scratch of one Forward, laid out in one allocation.
type workspace struct {
	x, a, qkv, o, f, proj, logits Ptr // fp32 activations; qkv holds q, k, v as three [n][hidden]
	probs, comp                   []Ptr
	scratch                       Ptr
	ints                          Ptr // queued victim lists, then tokens, positions, slots
}

// passShape is what sizes a Forward's buffers.
type passShape struct {
	n, logitRows, capacity int
	probsPerLayer          bool // decode with observed probabilities: copies overlap later layers
	uploadBytes            int
}

// layout returns the workspace offsets for s, from 256 on, and the size.
func (b *Backend) layout(s passShape) (workspace, int) {
	c := b.cfg
	h, e, H, L, n := c.HiddenSize, c.WordEmbedProjDim, c.NumAttentionHeads, c.NumHiddenLayers, s.n
	size := 256
	take := func(bytes int) Ptr {
		p := Ptr(size)
		size += roundUp(max(bytes, 4), 256)
		return p
	}
	var w workspace
	w.x = take(4 * n * h)
	w.a = take(4 * n * h)
	w.qkv = take(4 * 3 * n * h)
	w.o = take(4 * n * h)
	w.f = take(4 * n * c.FFNDim)
	w.proj = take(4 * n * e)
	w.logits = take(4 * s.logitRows * c.VocabSize)
	w.probs, w.comp = make([]Ptr, L), make([]Ptr, L)
	for l := range L {
		if l == 0 || s.probsPerLayer { // the compensation shares right after: one copy for both
			w.probs[l] = take(4*H*n*s.capacity + 4*H*n)
			w.comp[l] = w.probs[l].Add(4 * H * n * s.capacity)
		} else {
			w.probs[l], w.comp[l] = w.probs[0], w.comp[0]
		}
	}
	w.scratch = take(AttentionScratch(&SlotTable{Heads: H, Capacity: s.capacity, HeadDim: c.HeadDim()}, n))
	w.ints = take(s.uploadBytes)
	return w, size
}

// reserve grows the device workspace to fit s and rebases the offsets into b.ws.
func (b *Backend) reserve(s passShape) error {
	ws, size := b.layout(s)
	if size > b.wsSize {
		if err := b.d.Free(b.wsMem); err != nil {
			return err
		}
		b.wsMem, b.wsSize = 0, 0
		mem, err := b.d.Alloc(size)
		if err != nil {
			return fmt.Errorf("cuda backend: workspace for %d tokens: %w", s.n, err)
		}
		b.wsMem, b.wsSize = mem, size
	}
	for _, p := range []*Ptr{&ws.x, &ws.a, &ws.qkv, &ws.o, &ws.f, &ws.proj, &ws.logits, &ws.scratch, &ws.ints} {
		*p += b.wsMem
	}
	for l := range ws.probs {
		ws.probs[l] += b.wsMem
		ws.comp[l] += b.wsMem
	}
	b.ws = ws
	return nil
}

// hostArea is where one observed layer's tensors land in pinned memory (byte
// offsets; -1 when not copied).
type hostArea struct{ qkv, probs, comp int }

// hostLayout places the logits at 0, then areas for observed layers' tensors: one
// per layer in decode (copies overlap), one shared in prefill (each layer is
// delivered before the next is computed).
func (b *Backend) hostLayout(s passShape, want gpu.Want, areas int) ([]hostArea, int) {
	c := b.cfg
	n, H := s.n, c.NumAttentionHeads
	size := roundUp(4*s.logitRows*c.VocabSize, 256)
	out := make([]hostArea, areas)
	for i := range out {
		a := hostArea{-1, -1, -1}
		if want.QKV {
			a.qkv = size
			size += roundUp(4*3*n*c.HiddenSize, 256)
		}
		if want.Probs { // as on the device: the compensation shares follow the probabilities
			a.probs = size
			a.comp = size + 4*H*n*s.capacity
			size += roundUp(4*H*n*s.capacity+4*H*n, 256)
		}
		out[i] = a
	}
	return out, size
}

// reserveHost grows the pinned buffer to size bytes. A pass that copies nothing
// back (no logits, nothing observed) needs none.
func (b *Backend) reserveHost(size int) error {
	if size == 0 || b.host != nil && len(b.host.Bytes) >= size {
		return nil
	}
	if b.host != nil {
		if err := b.host.Free(); err != nil {
			return err
		}
		b.host = nil
	}
	host, err := b.d.AllocPinned(roundUp(size, 1<<20))
	if err != nil {
		return fmt.Errorf("cuda backend: %w", err)
	}
	b.host = host
	return nil
}

// check validates a batch against the model and the cache, as the CPU backend does.
func (b *Backend) check(c *kv, batch *gpu.Batch) error {
	cfg := &b.cfg
	n, H, L := len(batch.Tokens), cfg.NumAttentionHeads, cfg.NumHiddenLayers
	switch {
	case n == 0:
		return errors.New("cuda backend: Forward without tokens")
	case len(batch.Positions) != n:
		return fmt.Errorf("cuda backend: %d tokens but %d positions", n, len(batch.Positions))
	case len(batch.Slots) != L:
		return fmt.Errorf("cuda backend: slots for %d layers, the model has %d", len(batch.Slots), L)
	case len(batch.Logits)%cfg.VocabSize != 0 || len(batch.Logits)/cfg.VocabSize > n:
		return fmt.Errorf("cuda backend: %d logits for %d tokens: want a multiple of the vocabulary size %d, at most one row per token",
			len(batch.Logits), n, cfg.VocabSize)
	}
	for i, t := range batch.Tokens {
		if t < 0 || int(t) >= cfg.VocabSize {
			return fmt.Errorf("cuda backend: token %d (index %d) is outside the vocabulary of %d", t, i, cfg.VocabSize)
		}
		if p := batch.Positions[i]; p < 0 || int(p) >= cfg.MaxPositionEmbeddings {
			return fmt.Errorf("cuda backend: position %d (index %d) outside [0, %d)", p, i, cfg.MaxPositionEmbeddings)
		}
	}
	capacity := c.Capacity()
	for l, slots := range batch.Slots {
		if len(slots) != n*H {
			return fmt.Errorf("cuda backend: layer %d: %d slots, want %d tokens × %d heads", l, len(slots), n, H)
		}
		for i, s := range slots {
			if s < 0 || int(s) >= capacity {
				return fmt.Errorf("cuda backend: layer %d, token %d, head %d: slot %d outside [0, %d)", l, i/H, i%H, s, capacity)
			}
		}
	}
	return nil
}

// Forward runs a batch through the model; see gpu.Backend. Queued evictions are
// applied first.
func (b *Backend) Forward(kvi gpu.KV, batch *gpu.Batch) error {
	c, ok := kvi.(*kv)
	if !ok || c.b != b {
		return errors.New("cuda backend: Forward with a KV cache from another backend")
	}
	if c.closed {
		return errors.New("cuda backend: Forward with a closed KV cache")
	}
	if err := b.check(c, batch); err != nil {
		return err
	}
	cfg := &b.cfg
	n, h, e, ffn := len(batch.Tokens), cfg.HiddenSize, cfg.WordEmbedProjDim, cfg.FFNDim
	H, L, capacity := cfg.NumAttentionHeads, cfg.NumHiddenLayers, c.Capacity()
	observed := func(l int) bool { return batch.Observe != nil && batch.Want.Observes(l) }
	anyObserved := false
	for l := range L {
		anyObserved = anyObserved || observed(l)
	}
	decode := n <= decodeRows
	shape := passShape{n: n, logitRows: len(batch.Logits) / cfg.VocabSize, capacity: capacity,
		probsPerLayer: decode && anyObserved && batch.Want.Probs,
		uploadBytes:   len(c.pending) + 4*(2*n+L*n*H)}
	if err := b.reserve(shape); err != nil {
		return err
	}
	areaCount := 1
	if decode {
		areaCount = L
	}
	areas, hostSize := b.hostLayout(shape, batch.Want, areaCount)
	if err := b.reserveHost(hostSize); err != nil {
		return err
	}
	w, d := b.ws, b.d

	// The one upload: queued victim lists, tokens, positions, every layer's slots.
	up := append(b.ints[:0], c.pending...)
	up = appendInt32s(up, batch.Tokens)
	up = appendInt32s(up, batch.Positions)
	for _, s := range batch.Slots {
		up = appendInt32s(up, s)
	}
	b.ints = up
	if err := d.Upload(w.ints, up); err != nil {
		return err
	}
	tokens := w.ints.Add(len(c.pending))
	positions := tokens.Add(4 * n)
	slots := func(l int) Ptr { return positions.Add(4 * (n + l*n*H)) }

	run := &passErrors{}
	run.do(c.applyEvictions(w.ints))
	if cfg.HasProjection() {
		run.do(d.Embed(w.proj, e, b.m.embedTokens, tokens, 0, n, e, false))
		run.do(d.Linear(w.x, h, w.proj, e, b.m.projectIn.W, 0, 0, false, n, h, e))
	} else {
		run.do(d.Embed(w.x, h, b.m.embedTokens, tokens, 0, n, h, false))
	}
	run.do(d.Embed(w.x, h, b.m.embedPositions, positions, 2, n, h, true))

	scale := float32(1 / math.Sqrt(float64(cfg.HeadDim())))
	preLN := cfg.DoLayerNormBefore
	q, k, v := w.qkv, w.qkv.Add(4*n*h), w.qkv.Add(8*n*h)
	for l := range L {
		lw, st := &b.m.layers[l], &c.cache.Tables[l]
		in := w.x
		if preLN {
			run.do(d.LayerNorm(w.a, h, w.x, h, lw.AttnNorm.Gamma, lw.AttnNorm.Beta, n, h))
			in = w.a
		}
		run.do(d.LinearSplit(w.qkv, h, in, h, lw.QKV.W, lw.QKV.B, n, 3*h, h))
		run.do(d.Scatter(st, k, h, v, h, slots(l), positions, n))
		comp := Ptr(0)
		if st.CompW != 0 {
			comp = w.comp[l]
		}
		run.do(d.Attention(st, &AttentionArgs{Q: q, LDQ: h, QPos: positions, Rows: n, Scale: scale,
			Probs: w.probs[l], CompProbs: comp, Out: w.o, LDO: h, Scratch: w.scratch}))
		if observed(l) && run.err == nil {
			area := areas[0]
			if decode {
				area = areas[l]
			}
			run.do(b.copyLayer(l, batch.Want, area, decode, comp != 0, shape))
			if !decode && run.err == nil { // prefill: deliver now, the host buffer is reused
				run.do(d.Sync())
				run.do(b.deliver(l, batch, area, comp != 0, shape, scale))
			}
		}
		run.do(d.Linear(w.x, h, w.o, h, lw.Out.W, lw.Out.B, w.x, false, n, h, h))
		if !preLN {
			run.do(d.LayerNorm(w.x, h, w.x, h, lw.AttnNorm.Gamma, lw.AttnNorm.Beta, n, h))
		}
		in = w.x
		if preLN {
			run.do(d.LayerNorm(w.a, h, w.x, h, lw.FFNNorm.Gamma, lw.FFNNorm.Beta, n, h))
			in = w.a
		}
		run.do(d.Linear(w.f, ffn, in, h, lw.FC1.W, lw.FC1.B, 0, true, n, ffn, h))
		run.do(d.Linear(w.x, h, w.f, ffn, lw.FC2.W, lw.FC2.B, w.x, false, n, h, ffn))
		if !preLN {
			run.do(d.LayerNorm(w.x, h, w.x, h, lw.FFNNorm.Gamma, lw.FFNNorm.Beta, n, h))
		}
		if run.err != nil {
			break
		}
	}
	if lr := shape.logitRows; lr > 0 && run.err == nil {
		last := w.x.Add(4 * (n - lr) * h) // only the rows whose logits are wanted
		head := last
		if cfg.HasFinalLayerNorm() {
			run.do(d.LayerNorm(w.a, h, last, h, b.m.finalNorm.Gamma, b.m.finalNorm.Beta, lr, h))
			head = w.a
		}
		if cfg.HasProjection() {
			run.do(d.Linear(w.proj, e, head, h, b.m.projectOut.W, 0, 0, false, lr, e, h))
			head = w.proj
		}
		run.do(d.Linear(w.logits, cfg.VocabSize, head, e, b.m.lmHead, 0, 0, false, lr, cfg.VocabSize, e))
		run.do(b.copyToHost(d.compute, 0, w.logits, 4*lr*cfg.VocabSize))
	}
	var layers []int // observed in decode, delivered below
	for l := range L {
		if decode && observed(l) {
			layers = append(layers, l)
		}
	}
	deliver := func(l int) error { return b.deliver(l, batch, areas[l], c.Compensation(), shape, scale) }
	if shape.probsPerLayer && run.err == nil {
		// Each layer as its copy lands, while the GPU computes the rest.
		run.do(pipeline(layers, batch.ObserveConcurrency, b.waitLanded, deliver))
		layers = nil
	}
	if err := d.Sync(); run.err == nil {
		run.err = err // the first error of the pass, else an asynchronous one
	}
	if run.err != nil {
		return run.err
	}
	for _, l := range layers { // q, k and v only: copied on the compute stream
		if err := deliver(l); err != nil {
			return err
		}
	}
	copy(batch.Logits, b.host.Float32s(0, len(batch.Logits)))
	return nil
}

// waitLanded waits until layer l's decode copies are on the host.
func (b *Backend) waitLanded(l int) error {
	defer b.d.bind()()
	b.d.Counters.Syncs++
	if err := b.landed[l].Synchronize(); err != nil {
		return fmt.Errorf("cuda backend: waiting for layer %d's attention: %w", l, err)
	}
	return nil
}

// copyLayer queues the copies of layer l's observed tensors into area. In decode the
// probabilities go on the copy stream once the layer's attention is done, so that the
// transfer overlaps the layers after it, and the landed event marks their arrival;
// q, k and v go in order on the compute stream, before the next layer overwrites
// them.
func (b *Backend) copyLayer(l int, want gpu.Want, area hostArea, decode, comp bool, s passShape) error {
	d, w := b.d, b.ws
	H, h := b.cfg.NumAttentionHeads, b.cfg.HiddenSize
	if want.QKV {
		if err := b.copyToHost(d.compute, area.qkv, w.qkv, 4*3*s.n*h); err != nil {
			return err
		}
	}
	if !want.Probs {
		return nil
	}
	stream := d.compute
	if decode {
		unbind := d.bind()
		err := b.events[l].Record(d.compute)
		if err == nil {
			err = d.copies.Wait(b.events[l], 0)
		}
		unbind()
		if err != nil {
			return fmt.Errorf("cuda backend: ordering layer %d's copy: %w", l, err)
		}
		stream = d.copies
	}
	bytes := 4 * H * s.n * s.capacity
	if comp {
		bytes += 4 * H * s.n
	}
	if err := b.copyToHost(stream, area.probs, w.probs[l], bytes); err != nil || !decode {
		return err
	}
	defer d.bind()()
	if err := b.landed[l].Record(d.copies); err != nil { // after q, k, v too: the copy waited for them
		return fmt.Errorf("cuda backend: marking layer %d's copy: %w", l, err)
	}
	return nil
}

// deliver calls the batch's observer with layer l's view of the host copies.
func (b *Backend) deliver(l int, batch *gpu.Batch, area hostArea, comp bool, s passShape, scale float32) error {
	cfg := &b.cfg
	n, h := s.n, cfg.HiddenSize
	v := &gpu.LayerView{Layer: l, Rows: n, Heads: cfg.NumAttentionHeads, HeadDim: cfg.HeadDim(), Capacity: s.capacity,
		Positions: batch.Positions, Slots: batch.Slots[l]}
	if batch.Want.QKV {
		qkv := b.host.Float32s(area.qkv, 3*n*h)
		v.Q, v.K, v.V = qkv[:n*h], qkv[n*h:2*n*h], qkv[2*n*h:]
		for i := range v.Q { // the kernels scale logits; the view's q is scaled, as the CPU's
			v.Q[i] *= scale
		}
	}
	if batch.Want.Probs {
		v.Probs = b.host.Float32s(area.probs, v.Heads*n*s.capacity)
		if comp {
			v.Comp = b.host.Float32s(area.comp, v.Heads*n)
		}
	}
	return batch.Observe(v)
}

// copyToHost queues a copy of n bytes from src to the pinned buffer at off.
func (b *Backend) copyToHost(stream cu.Stream, off int, src Ptr, n int) error {
	defer b.d.bind()()
	b.d.Counters.Downloads++
	if err := cu.MemcpyDtoHAsync(unsafe.Pointer(&b.host.Bytes[off]), cu.DevicePtr(src), int64(n), stream); err != nil {
		return fmt.Errorf("cuda backend: copying %d bytes to the host: %w", n, err)
	}
	return nil
}

// passErrors keeps the first error of a sequence of queued operations.
type passErrors struct{ err error }

func (p *passErrors) do(err error) {
	if p.err == nil {
		p.err = err
	}
}

func appendInt32s(dst []byte, src []int32) []byte {
	for _, v := range src {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(v))
	}
	return dst
}
