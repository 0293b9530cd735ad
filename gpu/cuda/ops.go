//go:build cuda

package cuda

import "fmt"

// The methods in this file queue one operation each on the compute stream; see
// kernels/*.cu for the exact semantics and the numerics. Sizes are in elements,
// leading dimensions (ld*) in elements between consecutive rows.

// maxHeadDim is the widest attention head the kernels accept (MAX_HEAD_DIM).
const maxHeadDim = 256

// decodeRows is the most query rows attention handles with the decode kernels
// (which read each key once per row); more rows use the tiled kernels.
const decodeRows = 4

// valuesSplit is PV_SPLIT: slots per block of the split decode value sum.
const valuesSplit = 256

// Linear computes y = x·wᵀ + bias, then ReLU if relu, then + residual, for m rows:
// x is [m][k] fp32 (row stride ldx), w is [n][k] fp16, bias [n] fp16 and residual
// [m][n] fp32 (row stride ldy, may be y itself) are nullable. One row runs the
// memory-bound GEMV, more the tensor-core GEMM.
func (d *Device) Linear(y Ptr, ldy int, x Ptr, ldx int, w, bias, residual Ptr, relu bool, m, n, k int) error {
	return d.linear(y, ldy, 0, x, ldx, w, bias, residual, relu, m, n, k)
}

// LinearSplit is Linear without residual or ReLU whose n outputs are stored in blocks
// of seg columns, one [m][seg] matrix after the other: a fused q|k|v projection
// writes q, k and v as three matrices.
func (d *Device) LinearSplit(y Ptr, seg int, x Ptr, ldx int, w, bias Ptr, m, n, k int) error {
	return d.linear(y, seg, seg, x, ldx, w, bias, 0, false, m, n, k)
}

func (d *Device) linear(y Ptr, ldy, seg int, x Ptr, ldx int, w, bias, residual Ptr, relu bool, m, n, k int) error {
	if m == 1 {
		return d.launch(&d.k.gemv, dim3{ceilDiv(n, 8), 1, 1}, dim3{256, 1, 1}, argPtr(y), argInt(seg),
			argPtr(x), argPtr(w), argPtr(bias), argPtr(residual), argBool(relu), argInt(n), argInt(k))
	}
	return d.launch(&d.k.gemm, dim3{ceilDiv(n, 128), ceilDiv(m, 128), 1}, dim3{256, 1, 1},
		argPtr(y), argInt(ldy), argInt(seg), argPtr(x), argInt(ldx), argPtr(w), argPtr(bias), argPtr(residual),
		argBool(relu), argInt(m), argInt(n), argInt(k))
}

// LayerNorm normalizes rows of x ([rows][dim], stride ldx) into y (stride ldy; may be
// x) with OPT's eps of 1e-5; gamma and beta are fp16 and nullable.
func (d *Device) LayerNorm(y Ptr, ldy int, x Ptr, ldx int, gamma, beta Ptr, rows, dim int) error {
	return d.launch(&d.k.layerNorm, dim3{rows, 1, 1}, dim3{256, 1, 1},
		argPtr(y), argInt(ldy), argPtr(x), argInt(ldx), argPtr(gamma), argPtr(beta), argInt(dim), argFloat(1e-5))
}

// Embed writes (or, with accumulate, adds) row ids[t]+offset of the fp16 table
// ([*][dim]) into row t of y, for rows ids (int32, on the device).
func (d *Device) Embed(y Ptr, ldy int, table, ids Ptr, offset, rows, dim int, accumulate bool) error {
	return d.launch(&d.k.embed, dim3{rows, 1, 1}, dim3{min(256, roundUp(dim, 32)), 1, 1},
		argPtr(y), argInt(ldy), argPtr(table), argPtr(ids), argInt(offset), argInt(dim), argBool(accumulate))
}

// FillUniform sets n fp16 values at dst to uniform random numbers in [lo, hi),
// determined by seed and the index.
func (d *Device) FillUniform(dst Ptr, n int64, seed uint64, lo, hi float32) error {
	blocks := int(min((n+255)/256, int64(8*max(d.Multiprocessors, 1)*8)))
	return d.launch(&d.k.fillUniform, dim3{blocks, 1, 1}, dim3{256, 1, 1},
		argPtr(dst), argInt64(n), uint64(seed), argFloat(lo), argFloat(hi))
}

// SlotTable is one layer's KV slot table on the device; see kernels/attention.cu for
// the layouts. CompK, CompV and CompW are 0 when the table has no compensation slot.
type SlotTable struct {
	Heads, Capacity, HeadDim int
	K, V                     Ptr // [Heads][Capacity][HeadDim] fp16
	Pos                      Ptr // [Heads][Capacity] int32; -1 marks a free slot
	CompK, CompV             Ptr // [Heads][HeadDim] fp32
	CompW                    Ptr // [Heads] fp32
}

// Scatter writes the keys and values of tokens new tokens into their slots, in place:
// token t's row of k (stride ldk) and v (stride ldv) holds all heads, head h goes to
// slot slots[t*Heads+h], and that slot's position becomes positions[t]. slots and
// positions are int32 on the device.
func (d *Device) Scatter(st *SlotTable, k Ptr, ldk int, v Ptr, ldv int, slots, positions Ptr, tokens int) error {
	return d.launch(&d.k.scatter, dim3{tokens, st.Heads, 1}, dim3{min(256, roundUp(st.HeadDim, 32)), 1, 1},
		argPtr(st.K), argPtr(st.V), argPtr(st.Pos), argPtr(k), argInt(ldk), argPtr(v), argInt(ldv),
		argPtr(slots), argPtr(positions), argInt(st.Capacity), argInt(st.HeadDim))
}

// AttentionArgs are the operands of one layer's attention over its slot table.
type AttentionArgs struct {
	Q         Ptr // [Rows] rows of all heads' queries, fp32, unscaled
	LDQ       int
	QPos      Ptr // [Rows] int32: each query's position, for the causal and free-slot mask
	Rows      int
	Scale     float32 // head_dim^-0.5
	Probs     Ptr     // out: [Heads][Rows][Capacity] fp32
	CompProbs Ptr     // out, nullable: [Heads][Rows] fp32, the compensation slot's share
	Out       Ptr     // out: [Rows] rows of all heads' outputs, fp32
	LDO       int
	Scratch   Ptr // decode rows only: AttentionScratch(st, Rows) bytes
}

// AttentionScratch is the scratch space Attention needs for rows query rows.
func AttentionScratch(st *SlotTable, rows int) int {
	if rows > decodeRows {
		return 0
	}
	return 4 * rows * st.Heads * ceilDiv(st.Capacity, valuesSplit) * st.HeadDim
}

// Attention computes the attention of a.Rows queries over st: logits, explicit
// probabilities (with the compensation slot's when st has one and a.CompProbs is
// set) and the weighted sum of values.
func (d *Device) Attention(st *SlotTable, a *AttentionArgs) error {
	if st.HeadDim%2 != 0 || st.HeadDim > maxHeadDim {
		return fmt.Errorf("cuda: head width %d: the kernels need an even width of at most %d", st.HeadDim, maxHeadDim)
	}
	H, C, hd, n := st.Heads, st.Capacity, st.HeadDim, a.Rows
	compK, compV, compW := st.CompK, st.CompV, st.CompW
	if a.CompProbs == 0 {
		compK, compV, compW = 0, 0, 0
	}
	scores := &d.k.scoresTiled
	scoreGrid := dim3{ceilDiv(C, 64), ceilDiv(n, 64), H}
	if n <= decodeRows {
		scores, scoreGrid = &d.k.scoresDecode, dim3{ceilDiv(C, 64), H, n}
	}
	if err := d.launch(scores, scoreGrid, dim3{256, 1, 1}, argPtr(a.Probs), argPtr(a.Q), argInt(a.LDQ),
		argPtr(st.K), argPtr(st.Pos), argPtr(a.QPos), argInt(n), argInt(C), argInt(hd), argFloat(a.Scale)); err != nil {
		return err
	}
	if err := d.launch(&d.k.softmax, dim3{n, H, 1}, dim3{256, 1, 1}, argPtr(a.Probs), argPtr(a.CompProbs),
		argPtr(a.Q), argInt(a.LDQ), argPtr(compK), argPtr(compW), argInt(n), argInt(C), argInt(hd),
		argFloat(a.Scale)); err != nil {
		return err
	}
	if n > decodeRows {
		return d.launch(&d.k.valuesTiled, dim3{ceilDiv(hd, 64), ceilDiv(n, 64), H}, dim3{256, 1, 1},
			argPtr(a.Out), argInt(a.LDO), argPtr(a.Probs), argPtr(st.V), argPtr(a.CompProbs), argPtr(compV),
			argInt(n), argInt(C), argInt(hd))
	}
	splits := ceilDiv(C, valuesSplit)
	if err := d.launch(&d.k.valuesSplit, dim3{splits, H, n}, dim3{256, 1, 1}, argPtr(a.Scratch),
		argPtr(a.Probs), argPtr(st.V), argInt(n), argInt(C), argInt(hd)); err != nil {
		return err
	}
	return d.launch(&d.k.valuesReduce, dim3{n, H, 1}, dim3{min(256, roundUp(hd, 32)), 1, 1}, argPtr(a.Out),
		argInt(a.LDO), argPtr(a.Scratch), argInt(splits), argPtr(a.CompProbs), argPtr(compV), argInt(n), argInt(hd))
}

// Evict frees victims in st, folding those with a positive weight into the
// compensation slot when st has one and weights is set: for head h, victims[h*stride
// + i], i < counts[h], with weights alongside (int32 and fp32, on the device). The
// caller has checked that each victim is resident and named once.
func (d *Device) Evict(st *SlotTable, counts, victims, weights Ptr, stride int) error {
	compK, compV, compW := st.CompK, st.CompV, st.CompW
	if weights == 0 {
		compK, compV, compW = 0, 0, 0
	}
	return d.launch(&d.k.evict, dim3{st.Heads, 1, 1}, dim3{min(256, roundUp(st.HeadDim, 32)), 1, 1},
		argPtr(st.K), argPtr(st.V), argPtr(st.Pos), argPtr(compK), argPtr(compV), argPtr(compW),
		argPtr(counts), argPtr(victims), argPtr(weights), argInt(stride), argInt(st.Capacity), argInt(st.HeadDim))
}

func argBool(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }
