package sim

import (
	"time"

	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/internal/kernel"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// tensor is a layer tensor in [heads][tokens][headDim] order.
type tensor struct {
	data         []float32
	tokens, dim  int
	headStrideEl int
}

func (t *tensor) vec(h, pos int) []float32 {
	if t.data == nil {
		return nil
	}
	off := h*t.headStrideEl + pos*t.dim
	return t.data[off : off+t.dim]
}

func (t *tensor) head(h int) []float32 {
	return t.data[h*t.headStrideEl : (h+1)*t.headStrideEl]
}

// layerData is everything a job computes once per (sample, layer) and shares with
// every policy instance: the trace's tensors, the decode rows' full-cache logits and
// probabilities, their top-k sets and outputs, and the future attention mass.
type layerData struct {
	heads, headDim, prompt, total, gen int
	topKWant                           int
	outErr                             bool // compute the output-error metric (needs V)

	q, k, v tensor
	vBuf    []float32 // v's memory, kept while v is unread
	vt      []float32 // V transposed, [heads][headDim][tokens]
	dense   []float32 // scratch: one attention row by position, zero between uses
	marks   []uint64  // scratch: a bitmap of positions, zero between uses

	nonzeroPos []int32   // scratch: those with nonzero weights, in position order
	liveWeight []float32 // scratch: their weights
	rows       kernel.RowScratch

	logits []float32 // [heads][gen][total], decode rows, causal entries only
	probs  []float32 // same shape, full-cache softmax
	outs   []float32 // [heads][gen][headDim], full-cache attention outputs
	top    []int32   // [heads][gen][topK] positions
	topN   []int32   // [heads][gen] valid entries of top
	future []float32 // [heads][gen+1][total]: mass from decode rows after each step

	block []float32 // prefill block [heads][rows][prompt]
	// keys holds each head's prompt keys packed for the prefill blocks, once per
	// job: keysPacked is cleared by load.
	keys       []kernel.PackedNT
	keysPacked bool
	scratch    []float32
	inputs     // vectors for policies that ask for them

	perf Perf // score-kernel work of the current job
}

// matMulNT is kernel.MatMulNT, counted into the job's score-kernel figures.
func (l *layerData) matMulNT(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	start := time.Now()
	kernel.MatMulNT(m, n, k, a, lda, b, ldb, c, ldc)
	l.perf.ScoreSeconds += time.Since(start).Seconds()
	l.perf.ScoreFLOP += 2 * float64(m) * float64(n) * float64(k)
}

// prefillScores sets c to rows [r0, r0+m) of head h's prompt logits against keys
// 0..r0+m-1, from the keys packed once per job (MatMulNT would copy them again for
// every block), counted into the score-kernel figures.
func (l *layerData) prefillScores(h, r0, m int, c []float32) {
	start := time.Now()
	if !l.keysPacked {
		l.keys = buf.Grow(l.keys, l.heads)
		for i := range l.keys {
			l.keys[i].Pack(l.prompt, l.headDim, l.k.head(i), l.headDim)
		}
		l.keysPacked = true
	}
	d := l.headDim
	kernel.MatMulNTPacked(m, r0+m, d, l.q.head(h)[r0*d:], d, &l.keys[h], c, l.prompt)
	l.perf.ScoreSeconds += time.Since(start).Seconds()
	l.perf.ScoreFLOP += 2 * float64(m) * float64(r0+m) * float64(d)
}

func (l *layerData) decodeLogits(h, g int) []float32 {
	off := (h*l.gen + g) * l.total
	return l.logits[off : off+l.total]
}

func (l *layerData) decodeProbs(h, g int) []float32 {
	off := (h*l.gen + g) * l.total
	return l.probs[off : off+l.total]
}

func (l *layerData) fullOutput(h, g int) []float32 {
	off := (h*l.gen + g) * l.headDim
	return l.outs[off : off+l.headDim]
}

func (l *layerData) topK(h, g int) []int32 {
	off := (h*l.gen + g) * l.topKWant
	return l.top[off : off+int(l.topN[h*l.gen+g])]
}

// load reads the layer's tensors from src; V only with outErr, for the
// output-error metric (needValues reads it for policies that ask).
func (l *layerData) load(src Source, layer int, meta kvtrace.Meta, outErr bool) error {
	l.heads, l.headDim = meta.Heads, meta.HeadDim
	l.prompt, l.total = meta.PromptLen, meta.Tokens()
	l.gen = l.total - l.prompt
	l.keysPacked = false
	l.outErr = outErr
	l.v.data = nil // nil until read: no V
	if err := l.read(src, kvtrace.Q, layer, &l.q, &l.q.data); err != nil {
		return err
	}
	if err := l.read(src, kvtrace.K, layer, &l.k, &l.k.data); err != nil {
		return err
	}
	if outErr {
		return l.read(src, kvtrace.V, layer, &l.v, &l.vBuf)
	}
	return nil
}

// read reads one tensor of the layer into t, reusing the memory of *mem.
func (l *layerData) read(src Source, kind kvtrace.Kind, layer int, t *tensor, mem *[]float32) error {
	var err error
	*mem, err = src.Read(kind, layer, *mem)
	t.data, t.tokens, t.dim, t.headStrideEl = *mem, l.total, l.headDim, l.total*l.headDim
	return err
}

// computeDecode fills the decode rows' logits, probabilities, top-k sets and outputs.
func (l *layerData) computeDecode() {
	H, G, T, P, d := l.heads, l.gen, l.total, l.prompt, l.headDim
	l.logits = buf.Grow(l.logits, H*G*T)
	l.probs = buf.Grow(l.probs, H*G*T)
	l.topN = buf.Grow(l.topN, H*G)
	l.top = buf.Grow(l.top, H*G*l.topKWant)
	l.scratch = buf.Grow(l.scratch, max(d, T))
	if G == 0 {
		return
	}
	for h := 0; h < H; h++ {
		qh, kh := l.q.head(h), l.k.head(h)
		lg := l.logits[h*G*T : (h+1)*G*T]
		l.matMulNT(G, T, d, qh[P*d:], d, kh, d, lg, T)
		for g := 0; g < G; g++ {
			t := P + g
			row := lg[g*T : (g+1)*T]
			pr := l.probs[(h*G+g)*T : (h*G+g+1)*T]
			copy(pr, row[:t+1])
			kernel.Softmax(pr[:t+1])
			clear(pr[t+1:])
			clear(row[t+1:])
			l.selectTop(h, g, pr[:t+1])
		}
	}
	if l.outErr {
		l.outs = buf.Grow(l.outs, H*G*d)
		l.vt = buf.Grow(l.vt, H*d*T)
		l.dense = buf.Grow(l.dense, T)
		clear(l.dense)
		l.marks = buf.Grow(l.marks, (T+63)/64)
		clear(l.marks)
		l.nonzeroPos = buf.Grow(l.nonzeroPos, T)
		l.liveWeight = buf.Grow(l.liveWeight, T)
		for h := 0; h < H; h++ {
			vh, vt := l.v.head(h), l.vt[h*d*T:(h+1)*d*T]
			for j := 0; j < T; j++ {
				for i := 0; i < d; i++ {
					vt[i*T+j] = vh[j*d+i]
				}
			}
			l.matMulNT(G, d, T, l.probs[h*G*T:], T, vt, T, l.outs[h*G*d:], d)
		}
	}
}

// selectTop records the topKWant most attended positions of a row, best first, ties to
// the older. k is small, so an insertion-sorted list beats a sort of the row.
func (l *layerData) selectTop(h, g int, row []float32) {
	k := min(l.topKWant, len(row))
	off := (h*l.gen + g) * l.topKWant
	top := l.top[off : off+k]
	n := 0
	for j, m := range row {
		if n == k && m <= row[top[k-1]] {
			continue
		}
		i := min(n, k-1)
		for i > 0 && m > row[top[i-1]] {
			top[i] = top[i-1]
			i--
		}
		top[i] = int32(j)
		n = min(n+1, k)
	}
	l.topN[h*l.gen+g] = int32(k)
}

// computeFuture fills future[h][g'][j] = Σ over decode rows after g'-1 of their mass
// on j, so that row 0 is the whole decode phase and row G is zero.
func (l *layerData) computeFuture() {
	H, G, T := l.heads, l.gen, l.total
	l.future = buf.Grow(l.future, H*(G+1)*T)
	for h := 0; h < H; h++ {
		f := l.future[h*(G+1)*T : (h+1)*(G+1)*T]
		clear(f[G*T:])
		for g := G - 1; g >= 0; g-- {
			pr := l.probs[(h*G+g)*T : (h*G+g+1)*T]
			next, cur := f[(g+1)*T:(g+2)*T], f[g*T:(g+1)*T]
			for j := range cur {
				cur[j] = next[j] + pr[j]
			}
		}
	}
}

// fillFuture gives a clairvoyant instance the mass each resident slot will receive
// after decode row step (step -1: the whole decode phase). Free slots keep the 0
// that start and runEviction leave there.
func (l *layerData) fillFuture(in *instance, step int) {
	H, G, T, w := l.heads, l.gen, l.total, in.width
	for h := 0; h < H; h++ {
		f := l.future[(h*(G+1)+step+1)*T : (h*(G+1)+step+2)*T]
		out := in.evict.Future[h*w : (h+1)*w]
		table := &in.tables[h]
		for _, s := range table.Live() {
			out[s] = f[table.Pos(s)]
		}
	}
}

// prefillBlock computes full-attention rows [r0, r0+rows) of every head into a shared
// block with stride prompt.
func (l *layerData) prefillBlock(r0, rows int) *policies.Attention {
	H, P := l.heads, l.prompt
	l.block = buf.Grow(l.block, H*rows*P)
	for h := 0; h < H; h++ {
		out := l.block[h*rows*P : (h+1)*rows*P]
		l.prefillScores(h, r0, rows, out)
		for r := 0; r < rows; r++ {
			row := out[r*P : (r+1)*P]
			i := r0 + r
			kernel.Softmax(row[:i+1])
			clear(row[i+1:])
		}
	}
	return &policies.Attention{Phase: policies.Prefill, Pos: r0, Rows: rows, Heads: H, Stride: P, Probs: l.block[:H*rows*P]}
}
