//go:build cuda

package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/half"
)

// These tests need an NVIDIA GPU: gorgonia.org/cu's init exits the process without a
// driver. They compare each kernel with a plain float64 implementation.

func openDevice(t *testing.T) *Device {
	t.Helper()
	d, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// devF32 uploads values as fp32 and returns the pointer.
func devF32(t *testing.T, d *Device, v []float32) Ptr {
	t.Helper()
	b := make([]byte, 4*len(v))
	half.EncodeF32(b, v)
	return devBytes(t, d, b)
}

// devF16 uploads values as fp16.
func devF16(t *testing.T, d *Device, v []float32) Ptr {
	t.Helper()
	b := make([]byte, 2*len(v))
	half.EncodeF16(b, v)
	return devBytes(t, d, b)
}

func devI32(t *testing.T, d *Device, v []int32) Ptr {
	t.Helper()
	return devBytes(t, d, appendInt32s(nil, v))
}

func devBytes(t *testing.T, d *Device, b []byte) Ptr {
	t.Helper()
	p, err := d.Alloc(max(len(b), 4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Free(p) })
	if err := d.Upload(p, b); err != nil {
		t.Fatal(err)
	}
	return p
}

func devZeros(t *testing.T, d *Device, n int) Ptr {
	t.Helper()
	return devBytes(t, d, make([]byte, n))
}

func hostF32(t *testing.T, d *Device, p Ptr, n int) []float32 {
	t.Helper()
	b := make([]byte, 4*n)
	if err := d.Download(b, p); err != nil {
		t.Fatal(err)
	}
	v := make([]float32, n)
	half.DecodeF32(v, b)
	return v
}

func hostI32(t *testing.T, d *Device, p Ptr, n int) []int32 {
	t.Helper()
	b := make([]byte, 4*n)
	if err := d.Download(b, p); err != nil {
		t.Fatal(err)
	}
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// randomF16 draws n values in [-scale, scale) that are exact in fp16.
func randomF16(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = half.HalfToFloat32(half.Float32ToHalf(float32(scale * (2*rng.Float64() - 1))))
	}
	return v
}

func roundF16(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = half.HalfToFloat32(half.Float32ToHalf(x))
	}
	return out
}

// assertClose fails when |got-want| > tol·(1+|want|) anywhere.
func assertClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if diff := math.Abs(float64(got[i]) - want[i]); !(diff <= tol*(1+math.Abs(want[i]))) {
			t.Fatalf("%s[%d] = %g, want %g (tolerance %g)", what, i, got[i], want[i], tol)
		}
	}
}

func TestLinear(t *testing.T) {
	d := openDevice(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name    string
		m, n, k int
	}{
		{"gemv", 1, 70, 72},
		{"gemv ragged k", 1, 33, 36},
		{"gemm", 37, 70, 72},
		{"gemm ragged k", 130, 129, 36},
		{"gemm long k", 5, 200, 520},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := randomF16(rng, c.m*c.k, 1)
			for i := range x { // not exact in fp16 unless rounded: the GEMM rounds, the GEMV does not
				x[i] += float32(rng.Float64() * 1e-3)
			}
			w, b, res := randomF16(rng, c.n*c.k, 0.5), randomF16(rng, c.n, 0.5), randomF16(rng, c.m*c.n, 1)
			xs := x
			if c.m > 1 {
				xs = roundF16(x)
			}
			for _, relu := range []bool{false, true} {
				y := devZeros(t, d, 4*c.m*c.n)
				resid := devF32(t, d, res)
				if err := d.Linear(y, c.n, devF32(t, d, x), c.k, devF16(t, d, w), devF16(t, d, b), resid, relu, c.m, c.n, c.k); err != nil {
					t.Fatal(err)
				}
				want := make([]float64, c.m*c.n)
				for i := range c.m {
					for j := range c.n {
						s := float64(b[j])
						for kk := range c.k {
							s += float64(xs[i*c.k+kk]) * float64(w[j*c.k+kk])
						}
						if relu {
							s = math.Max(s, 0)
						}
						want[i*c.n+j] = s + float64(res[i*c.n+j])
					}
				}
				assertClose(t, "y", hostF32(t, d, y, c.m*c.n), want, 1e-5)
			}
		})
	}
}

// TestLinearSplit checks the fused q|k|v layout: output column c of block c/seg goes
// to matrix c/seg, [m][seg].
func TestLinearSplit(t *testing.T) {
	d := openDevice(t)
	rng := rand.New(rand.NewPCG(11, 12))
	const seg, n, k = 24, 72, 40
	for _, m := range []int{1, 37} {
		x, w, b := roundF16(randomF16(rng, m*k, 1)), randomF16(rng, n*k, 0.5), randomF16(rng, n, 0.5)
		y := devZeros(t, d, 4*m*n)
		if err := d.LinearSplit(y, seg, devF32(t, d, x), k, devF16(t, d, w), devF16(t, d, b), m, n, k); err != nil {
			t.Fatal(err)
		}
		want := make([]float64, m*n)
		for i := range m {
			for j := range n {
				s := float64(b[j])
				for kk := range k {
					s += float64(x[i*k+kk]) * float64(w[j*k+kk])
				}
				want[(j/seg*m+i)*seg+j%seg] = s
			}
		}
		assertClose(t, fmt.Sprintf("y (%d rows)", m), hostF32(t, d, y, m*n), want, 1e-5)
	}
}

func TestLayerNormAndEmbed(t *testing.T) {
	d := openDevice(t)
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, dim, vocab = 3, 300, 11
	table, gamma, beta := randomF16(rng, (vocab+2)*dim, 1), randomF16(rng, dim, 2), randomF16(rng, dim, 1)
	ids := []int32{4, 0, 10}
	y := devZeros(t, d, 4*rows*dim)
	if err := d.Embed(y, dim, devF16(t, d, table), devI32(t, d, ids), 0, rows, dim, false); err != nil {
		t.Fatal(err)
	}
	if err := d.Embed(y, dim, devF16(t, d, table), devI32(t, d, ids), 2, rows, dim, true); err != nil {
		t.Fatal(err)
	}
	x := make([]float64, rows*dim)
	for r, id := range ids {
		for j := range dim {
			x[r*dim+j] = float64(table[int(id)*dim+j]) + float64(table[(int(id)+2)*dim+j])
		}
	}
	assertClose(t, "embedding", hostF32(t, d, y, rows*dim), x, 1e-6)
	if err := d.LayerNorm(y, dim, y, dim, devF16(t, d, gamma), devF16(t, d, beta), rows, dim); err != nil {
		t.Fatal(err)
	}
	want := make([]float64, rows*dim)
	for r := range rows {
		row := x[r*dim : (r+1)*dim]
		var mean, variance float64
		for _, v := range row {
			mean += v / dim
		}
		for _, v := range row {
			variance += (v - mean) * (v - mean) / dim
		}
		for j, v := range row {
			want[r*dim+j] = (v-mean)/math.Sqrt(variance+1e-5)*float64(gamma[j]) + float64(beta[j])
		}
	}
	assertClose(t, "layernorm", hostF32(t, d, y, rows*dim), want, 1e-5)
}

// attentionCase is a slot table with free slots and a compensation slot, filled by
// Scatter, and queries at given positions.
type attentionCase struct {
	H, C, hd int
	pos      []int32   // [H][C] after scatter; -1 free
	k, v     []float32 // [H][C][hd], exact in fp16
	ck, cv   []float32 // [H][hd]
	cw       []float32 // [H]
}

func TestAttention(t *testing.T) {
	d := openDevice(t)
	rng := rand.New(rand.NewPCG(5, 6))
	const H, C, hd = 3, 300, 64
	// Tokens 0..T-1 enter slots in a scrambled order, per head; some slots stay free.
	const T = 280
	ac := attentionCase{H: H, C: C, hd: hd, pos: make([]int32, H*C), k: make([]float32, H*C*hd), v: make([]float32, H*C*hd)}
	for i := range ac.pos {
		ac.pos[i] = -1
	}
	kNew, vNew := randomF16(rng, T*H*hd, 1), randomF16(rng, T*H*hd, 1)
	slots := make([]int32, T*H)
	for h := range H {
		perm := rng.Perm(C)
		for tok := range T {
			s := perm[tok]
			slots[tok*H+h] = int32(s)
			ac.pos[h*C+s] = int32(tok)
			copy(ac.k[(h*C+s)*hd:(h*C+s+1)*hd], kNew[(tok*H+h)*hd:])
			copy(ac.v[(h*C+s)*hd:(h*C+s+1)*hd], vNew[(tok*H+h)*hd:])
		}
	}
	positions := make([]int32, T)
	for i := range positions {
		positions[i] = int32(i)
	}
	cache, err := (&Model{d: d, Config: tinyConfig(H, hd)}).NewCache(C, true)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Free()
	st := &cache.Tables[0]
	if err := d.Scatter(st, devF32(t, d, kNew), H*hd, devF32(t, d, vNew), H*hd, devI32(t, d, slots), devI32(t, d, positions), T); err != nil {
		t.Fatal(err)
	}
	if got := hostI32(t, d, st.Pos, H*C); !slices.Equal(got, ac.pos) {
		t.Fatal("slot positions after scatter differ")
	}
	// A compensation slot on heads 0 and 2 only.
	ac.ck, ac.cv, ac.cw = randomF16(rng, H*hd, 1), randomF16(rng, H*hd, 1), []float32{0.5, 0, 2}
	for _, c := range []struct {
		p   Ptr
		src []float32
	}{{st.CompK, ac.ck}, {st.CompV, ac.cv}, {st.CompW, ac.cw}} {
		b := make([]byte, 4*len(c.src))
		half.EncodeF32(b, c.src)
		if err := d.Upload(c.p, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, rows := range []int{1, 3, 70} { // decode kernels, then tiled
		q := randomF16(rng, rows*H*hd, 1)
		qpos := make([]int32, rows)
		for i := range qpos {
			qpos[i] = int32(T - rows + i)
		}
		probs, comp, out := devZeros(t, d, 4*H*rows*C), devZeros(t, d, 4*H*rows), devZeros(t, d, 4*rows*H*hd)
		scratch := devZeros(t, d, max(AttentionScratch(st, rows), 4))
		scale := float32(1 / math.Sqrt(hd))
		err := d.Attention(st, &AttentionArgs{Q: devF32(t, d, q), LDQ: H * hd, QPos: devI32(t, d, qpos), Rows: rows,
			Scale: scale, Probs: probs, CompProbs: comp, Out: out, LDO: H * hd, Scratch: scratch})
		if err != nil {
			t.Fatal(err)
		}
		wantP, wantC, wantO := ac.reference(q, qpos, float64(scale))
		assertClose(t, "probs", hostF32(t, d, probs, H*rows*C), wantP, 1e-5)
		assertClose(t, "comp", hostF32(t, d, comp, H*rows), wantC, 1e-5)
		assertClose(t, "out", hostF32(t, d, out, rows*H*hd), wantO, 1e-5)
	}
}

// reference computes probabilities [H][rows][C], compensation shares [H][rows] and
// outputs [rows][H][hd] in float64.
func (ac *attentionCase) reference(q []float32, qpos []int32, scale float64) (probs, comp, out []float64) {
	H, C, hd, rows := ac.H, ac.C, ac.hd, len(qpos)
	probs, comp, out = make([]float64, H*rows*C), make([]float64, H*rows), make([]float64, rows*H*hd)
	dot := func(a []float32, b []float32) float64 {
		s := 0.0
		for i := range a {
			s += float64(a[i]) * float64(b[i])
		}
		return s
	}
	for h := range H {
		for i := range rows {
			qi := q[(i*H+h)*hd : (i*H+h+1)*hd]
			logits := make([]float64, C)
			m := math.Inf(-1)
			for s := range C {
				p := ac.pos[h*C+s]
				logits[s] = math.Inf(-1)
				if p >= 0 && p <= qpos[i] {
					logits[s] = scale * dot(qi, ac.k[(h*C+s)*hd:(h*C+s+1)*hd])
				}
				m = math.Max(m, logits[s])
			}
			cl := math.Inf(-1)
			if ac.cw[h] > 0 {
				cl = scale * dot(qi, ac.ck[h*hd:(h+1)*hd])
			}
			m = math.Max(m, cl)
			sum := math.Exp(cl - m)
			for _, l := range logits {
				sum += math.Exp(l - m)
			}
			row := probs[(h*rows+i)*C : (h*rows+i+1)*C]
			for s, l := range logits {
				row[s] = math.Exp(l-m) / sum
			}
			comp[h*rows+i] = math.Exp(cl-m) / sum
			for j := range hd {
				o := comp[h*rows+i] * float64(ac.cv[h*hd+j])
				for s := range C {
					o += row[s] * float64(ac.v[(h*C+s)*hd+j])
				}
				out[(i*H+h)*hd+j] = o
			}
		}
	}
	return probs, comp, out
}

func TestEvictMergesIntoCompensation(t *testing.T) {
	d := openDevice(t)
	rng := rand.New(rand.NewPCG(7, 8))
	const H, C, hd, T = 2, 8, 4, 6
	cache, err := (&Model{d: d, Config: tinyConfig(H, hd)}).NewCache(C, true)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Free()
	st := &cache.Tables[0]
	k, v := randomF16(rng, T*H*hd, 1), randomF16(rng, T*H*hd, 1)
	slots, positions := make([]int32, T*H), make([]int32, T)
	for tok := range T {
		positions[tok] = int32(tok)
		for h := range H {
			slots[tok*H+h] = int32(tok)
		}
	}
	if err := d.Scatter(st, devF32(t, d, k), H*hd, devF32(t, d, v), H*hd, devI32(t, d, slots), devI32(t, d, positions), T); err != nil {
		t.Fatal(err)
	}
	// Head 0 loses slots 1 (weight 2), 4 (weight 0: dropped) and 3 (weight 1); head 1
	// loses nothing.
	const stride = C
	counts := []int32{3, 0}
	victims := make([]int32, H*stride)
	weights := make([]float32, H*stride)
	copy(victims, []int32{1, 4, 3})
	copy(weights, []float32{2, 0, 1})
	if err := d.Evict(st, devI32(t, d, counts), devI32(t, d, victims), devF32(t, d, weights), stride); err != nil {
		t.Fatal(err)
	}
	wantPos := []int32{0, -1, 2, -1, -1, 5, -1, -1, 0, 1, 2, 3, 4, 5, -1, -1}
	if got := hostI32(t, d, st.Pos, H*C); !slices.Equal(got, wantPos) {
		t.Fatalf("positions after eviction = %v, want %v", got, wantPos)
	}
	// (2·k1 + 1·k3) / 3, token t of head 0 at k[t*H*hd : t*H*hd+hd].
	wantK, wantV := make([]float64, H*hd), make([]float64, H*hd)
	for j := range hd {
		wantK[j] = (2*float64(k[1*H*hd+j]) + float64(k[3*H*hd+j])) / 3
		wantV[j] = (2*float64(v[1*H*hd+j]) + float64(v[3*H*hd+j])) / 3
	}
	assertClose(t, "compensation key", hostF32(t, d, st.CompK, H*hd), wantK, 1e-6)
	assertClose(t, "compensation value", hostF32(t, d, st.CompV, H*hd), wantV, 1e-6)
	assertClose(t, "compensation weight", hostF32(t, d, st.CompW, H), []float64{3, 0}, 0)
}

// tinyConfig is a one-layer model shape for slot-table tests.
func tinyConfig(heads, headDim int) checkpoint.Config {
	return checkpoint.Config{NameOrPath: "test", NumHiddenLayers: 1, NumAttentionHeads: heads, HiddenSize: heads * headDim}
}
