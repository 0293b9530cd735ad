//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/half"
)

// linearWeights is a Linear layer on the device: W [Out][In] fp16, B [Out] fp16 or 0.
type linearWeights struct {
	W, B    Ptr
	Out, In int
}

// normWeights is a LayerNorm's fp16 weight and bias, both 0 without affine.
type normWeights struct{ Gamma, Beta Ptr }

// layerWeights is one decoder layer. Q, K and V are one Linear of 3·hidden outputs
// (q_proj's rows, then k_proj's, then v_proj's), so that decode reads the input once
// and launches one GEMV.
type layerWeights struct {
	QKV, Out, FC1, FC2 linearWeights
	AttnNorm, FFNNorm  normWeights
}

// Model is an OPT's weights on the device, in fp16, in one allocation.
type Model struct {
	Config checkpoint.Config
	// WeightBytes is the size of the weights on the device: what a decode step reads.
	WeightBytes int64

	d              *Device
	arena          Ptr
	embedTokens    Ptr // [vocab][proj]
	embedPositions Ptr // [max_positions+2][hidden]
	projectIn      linearWeights
	projectOut     linearWeights
	finalNorm      normWeights
	lmHead         Ptr // [vocab][proj]; embedTokens when tied
	layers         []layerWeights
}

// arenaLayout hands out 256-byte-aligned offsets in the weight arena. It starts at
// 256 so that offset 0, like the null Ptr, means "absent".
type arenaLayout struct{ size int64 }

func (a *arenaLayout) take(elems int) Ptr {
	if a.size == 0 {
		a.size = 256
	}
	off := a.size
	a.size += int64(roundUp(2*elems, 256))
	return Ptr(off)
}

// plan lays out a model of config c; the returned Model's pointers are offsets until
// place adds the arena's base.
func plan(c checkpoint.Config, tiedHead bool) (*Model, int64) {
	h, f, e := c.HiddenSize, c.FFNDim, c.WordEmbedProjDim
	var a arenaLayout
	linear := func(out, in int, bias bool) linearWeights {
		l := linearWeights{W: a.take(out * in), Out: out, In: in}
		if bias {
			l.B = a.take(out)
		}
		return l
	}
	norm := func() normWeights {
		if !c.LayerNormElementwiseAffine {
			return normWeights{}
		}
		return normWeights{Gamma: a.take(h), Beta: a.take(h)}
	}
	m := &Model{Config: c}
	m.embedTokens = a.take(c.VocabSize * e)
	m.embedPositions = a.take((c.MaxPositionEmbeddings + checkpoint.PositionOffset) * h)
	if c.HasProjection() {
		m.projectIn = linear(h, e, false)
		m.projectOut = linear(e, h, false)
	}
	if c.HasFinalLayerNorm() {
		m.finalNorm = norm()
	}
	m.lmHead = m.embedTokens
	if !tiedHead {
		m.lmHead = a.take(c.VocabSize * e)
	}
	m.layers = make([]layerWeights, c.NumHiddenLayers)
	for i := range m.layers {
		m.layers[i] = layerWeights{
			QKV: linear(3*h, h, c.EnableBias), Out: linear(h, h, c.EnableBias),
			FC1: linear(f, h, c.EnableBias), FC2: linear(h, f, c.EnableBias),
			AttnNorm: norm(), FFNNorm: norm(),
		}
	}
	return m, a.size
}

// place allocates the arena and turns m's offsets into device pointers.
func (m *Model) place(d *Device, size int64) error {
	base, err := d.Alloc(int(size))
	if err != nil {
		return fmt.Errorf("cuda: weights of %s: %w", m.Config.NameOrPath, err)
	}
	m.d, m.arena, m.WeightBytes = d, base, size
	rebase := func(p *Ptr) {
		if *p != 0 {
			*p += base
		}
	}
	rebase(&m.embedTokens)
	rebase(&m.embedPositions)
	rebase(&m.lmHead)
	for _, l := range m.linears() {
		rebase(&l.W)
		rebase(&l.B)
	}
	for _, n := range m.norms() {
		rebase(&n.Gamma)
		rebase(&n.Beta)
	}
	return nil
}

// linears lists every Linear of m, the optional ones only when present.
func (m *Model) linears() []*linearWeights {
	var ls []*linearWeights
	if m.projectIn.Out > 0 {
		ls = append(ls, &m.projectIn, &m.projectOut)
	}
	for i := range m.layers {
		l := &m.layers[i]
		ls = append(ls, &l.QKV, &l.Out, &l.FC1, &l.FC2)
	}
	return ls
}

// norms lists every LayerNorm of m.
func (m *Model) norms() []*normWeights {
	ns := []*normWeights{&m.finalNorm}
	for i := range m.layers {
		ns = append(ns, &m.layers[i].AttnNorm, &m.layers[i].FFNNorm)
	}
	return ns
}

// Upload copies a checkpoint's weights to the device in fp16.
func Upload(d *Device, ckpt *checkpoint.Model) (*Model, error) {
	c, w := ckpt.Config, &ckpt.Weights
	if err := checkShape(c); err != nil {
		return nil, err
	}
	m, size := plan(c, w.LMHead == w.EmbedTokens)
	if err := m.place(d, size); err != nil {
		return nil, err
	}
	h := c.HiddenSize
	up := uploader{d: d}
	up.tensor(m.embedTokens, w.EmbedTokens, c.VocabSize*c.WordEmbedProjDim)
	up.tensor(m.embedPositions, w.EmbedPositions, (c.MaxPositionEmbeddings+checkpoint.PositionOffset)*h)
	if m.lmHead != m.embedTokens {
		up.tensor(m.lmHead, w.LMHead, c.VocabSize*c.WordEmbedProjDim)
	}
	if c.HasProjection() {
		up.linear(m.projectIn, checkpoint.Linear{Weight: w.ProjectIn})
		up.linear(m.projectOut, checkpoint.Linear{Weight: w.ProjectOut})
	}
	up.norm(m.finalNorm, w.FinalLayerNorm, h)
	for i, src := range w.Layers {
		dst := &m.layers[i]
		for j, l := range []checkpoint.Linear{src.QProj, src.KProj, src.VProj} {
			up.tensor(dst.QKV.W.Add(2*j*h*h), l.Weight, h*h)
			if dst.QKV.B != 0 {
				up.tensor(dst.QKV.B.Add(2*j*h), l.Bias, h)
			}
		}
		up.linear(dst.Out, src.OutProj)
		up.linear(dst.FC1, src.FC1)
		up.linear(dst.FC2, src.FC2)
		up.norm(dst.AttnNorm, src.SelfAttnLayerNorm, h)
		up.norm(dst.FFNNorm, src.FinalLayerNorm, h)
	}
	if up.err == nil {
		up.err = d.Sync()
	}
	if up.err != nil {
		m.Free()
		return nil, fmt.Errorf("cuda: uploading %s: %w", c.NameOrPath, up.err)
	}
	return m, nil
}

// RandomModel allocates a model of config c with uniform random weights drawn on the
// device, with roughly the scales of checkpoint.WriteSynth's, for timing shapes too
// large to synthesize on disk.
func RandomModel(d *Device, c checkpoint.Config, seed uint64) (*Model, error) {
	if err := checkShape(c); err != nil {
		return nil, err
	}
	m, size := plan(c, true)
	if err := m.place(d, size); err != nil {
		return nil, err
	}
	var err error
	fill := func(p Ptr, n int, mean, std float64) {
		if err != nil || p == 0 {
			return
		}
		seed++
		w := std * math.Sqrt(3) // a uniform distribution of this half-width has this std
		err = d.FillUniform(p, int64(n), seed, float32(mean-w), float32(mean+w))
	}
	h, e, f := float64(c.HiddenSize), float64(c.WordEmbedProjDim), float64(c.FFNDim)
	residual := 1 / math.Sqrt(2*float64(c.NumHiddenLayers))
	fill(m.embedTokens, c.VocabSize*c.WordEmbedProjDim, 0, 2/math.Sqrt(e))
	fill(m.embedPositions, (c.MaxPositionEmbeddings+checkpoint.PositionOffset)*c.HiddenSize, 0, 2/math.Sqrt(h))
	fill(m.projectIn.W, m.projectIn.Out*m.projectIn.In, 0, 1/math.Sqrt(e))
	fill(m.projectOut.W, m.projectOut.Out*m.projectOut.In, 0, 1/math.Sqrt(h))
	for _, n := range m.norms() {
		fill(n.Gamma, c.HiddenSize, 1, 0.05)
		fill(n.Beta, c.HiddenSize, 0, 0.02)
	}
	for _, l := range m.layers {
		fill(l.QKV.W, l.QKV.Out*l.QKV.In, 0, math.Sqrt(2/h))
		fill(l.Out.W, l.Out.Out*l.Out.In, 0, residual/math.Sqrt(h))
		fill(l.FC1.W, l.FC1.Out*l.FC1.In, 0, math.Sqrt(2/h))
		fill(l.FC2.W, l.FC2.Out*l.FC2.In, 0, residual*math.Sqrt(2/f))
		for _, b := range []linearWeights{l.QKV, l.Out, l.FC1, l.FC2} {
			fill(b.B, b.Out, 0, 0.02)
		}
	}
	if err == nil {
		err = d.Sync()
	}
	if err != nil {
		m.Free()
		return nil, fmt.Errorf("cuda: random weights for %s: %w", c.NameOrPath, err)
	}
	return m, nil
}

// checkShape rejects configs the kernels cannot run.
func checkShape(c checkpoint.Config) error {
	if hd := c.HeadDim(); hd%2 != 0 || hd > maxHeadDim {
		return fmt.Errorf("cuda: %s has head width %d; the CUDA kernels need an even width of at most %d",
			c.NameOrPath, hd, maxHeadDim)
	}
	return nil
}

// Free releases the weights.
func (m *Model) Free() error {
	err := m.d.Free(m.arena)
	m.arena = 0
	return err
}

// uploader converts tensors to fp16 and copies them, keeping the first error.
type uploader struct {
	d   *Device
	err error
	f32 []float32
	f16 []byte
}

// uploadChunk bounds the host memory a dtype conversion needs.
const uploadChunk = 1 << 22 // elements

// tensor uploads t, which must hold elems elements, to dst.
func (u *uploader) tensor(dst Ptr, t *checkpoint.Tensor, elems int) {
	if u.err != nil {
		return
	}
	if t == nil {
		u.err = fmt.Errorf("a tensor of %d elements is missing", elems)
		return
	}
	if t.Numel() != elems || len(t.Data) != elems*t.DType.Size() {
		u.err = fmt.Errorf("tensor %s: shape %v (%d bytes), want %d elements", t.Name, t.Shape, len(t.Data), elems)
		return
	}
	if t.DType == half.F16 {
		if err := u.d.Upload(dst, t.Data); err != nil {
			u.err = fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		return
	}
	n, size := t.Numel(), t.DType.Size()
	for start := 0; start < n; start += uploadChunk {
		count := min(uploadChunk, n-start)
		u.f32 = buf.Grow(u.f32, count)
		src := t.Data[start*size : (start+count)*size]
		switch t.DType {
		case half.BF16:
			half.DecodeBF16(u.f32, src)
		case half.F32:
			half.DecodeF32(u.f32, src)
		default:
			u.err = fmt.Errorf("tensor %s: dtype %v", t.Name, t.DType)
			return
		}
		if cap(u.f16) < 2*count {
			u.f16 = make([]byte, 2*count)
		}
		half.EncodeF16(u.f16[:2*count], u.f32)
		if err := u.d.Upload(dst.Add(2*start), u.f16[:2*count]); err != nil {
			u.err = fmt.Errorf("tensor %s: %w", t.Name, err)
			return
		}
	}
}

func (u *uploader) linear(dst linearWeights, src checkpoint.Linear) {
	u.tensor(dst.W, src.Weight, dst.Out*dst.In)
	if dst.B != 0 {
		u.tensor(dst.B, src.Bias, dst.Out)
	}
}

func (u *uploader) norm(dst normWeights, src checkpoint.LayerNorm, width int) {
	if dst.Gamma != 0 {
		u.tensor(dst.Gamma, src.Weight, width)
		u.tensor(dst.Beta, src.Bias, width)
	}
}
