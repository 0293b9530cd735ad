// Attention over a KV slot table, with explicit probabilities.
//
// Layouts, per layer (H heads, C slots per head, hd = head width, nq query rows):
//
//   kc, vc  [H][C][hd] fp16   the slot table's keys and values, zeroed at allocation
//                             so that a free slot always holds finite values
//   pos     [H][C]     int    the position of the token in each slot; -1 marks a free slot
//   ck, cv  [H][hd]    fp32   the compensation slot's key and value (AUV Eq. 7-8)
//   cw      [H]        fp32   its accumulated merge weight; the slot attends once cw > 0
//   p       [H][nq][C] fp32   attention probabilities by slot: policies.Attention's layout
//                             with Rows = nq and Stride = C
//   cp      [H][nq]    fp32   the probability on the compensation slot
//   q, o    row i, head h at q + i*ldq + h*hd (fp32); q is unscaled, kernels take scale
//
// Query row i at position qpos[i] sees slot s iff 0 <= pos[s] <= qpos[i]: that is the
// causal mask in prefill (token j in slot j) and the free-slot mask in decode. Logits
// and probabilities are fp32; a masked slot gets logit -inf and probability 0. The
// compensation slot and every pointer marked nullable may be 0.
#include "common.cuh"

#define MAX_HEAD_DIM 256  // the host rejects wider heads (OPT's widest is 128)
#define TILE 64           // query rows × slots (or × head columns) per tiled block
#define TILE_K 32         // inner dimension staged per step of a tiled block
#define PV_SPLIT 256      // slots per block of the split decode value sum

// kv_scatter writes token t = blockIdx.x's key and value for head h = blockIdx.y into
// slot slots[t*H + h] of that head, in place, and records its position. k and v are
// the fp32 projections (row t at k + t*ldk, head h at +h*hd); they are rounded to
// fp16.
extern "C" __global__ void kv_scatter(__half* kc, __half* vc, int* pos, const float* k, int ldk, const float* v,
                                      int ldv, const int* slots, const int* positions, int C, int hd) {
    const int t = blockIdx.x, h = blockIdx.y, H = gridDim.y;
    const int s = slots[t * H + h];
    const size_t dst = ((size_t)h * C + s) * hd;
    const float* kr = k + (size_t)t * ldk + h * hd;
    const float* vr = v + (size_t)t * ldv + h * hd;
    for (int j = threadIdx.x; j < hd; j += blockDim.x) {
        kc[dst + j] = __float2half_rn(kr[j]);
        vc[dst + j] = __float2half_rn(vr[j]);
    }
    if (threadIdx.x == 0) pos[(size_t)h * C + s] = positions[t];
}

// attn_scores_decode writes the logits scale·q·k of a few query rows (decode: one)
// over 64 slots per block: grid (ceil(C/64), H, nq), 256 threads. Each warp takes 8
// slots, four at a time so that four key rows are in flight; lanes split the head
// width in half2 pairs. Masked slots are skipped without reading their keys.
extern "C" __global__ void __launch_bounds__(256)
attn_scores_decode(float* p, const float* q, int ldq, const __half* kc, const int* pos, const int* qpos, int nq,
                   int C, int hd, float scale) {
    __shared__ float2 qs[MAX_HEAD_DIM / 2];
    const int h = blockIdx.y, i = blockIdx.z;
    const int half = hd >> 1;
    const float2* qr = (const float2*)(q + (size_t)i * ldq + h * hd);
    for (int j = threadIdx.x; j < half; j += blockDim.x) qs[j] = qr[j];
    __syncthreads();

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int qp = qpos[i];
    const int* hpos = pos + (size_t)h * C;
    const __half2* keys = (const __half2*)(kc + (size_t)h * C * hd);
    float* row = p + ((size_t)h * nq + i) * C;
    const int s0 = blockIdx.x * TILE + warp * 8;
#pragma unroll
    for (int g = 0; g < 8; g += 4) {
        float acc[4];
        bool visible[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int s = s0 + g + u;
            const int sp = s < C ? hpos[s] : -1;
            visible[u] = sp >= 0 && sp <= qp;
            acc[u] = 0.f;
        }
        for (int j = lane; j < half; j += 32) {
            const float2 qv = qs[j];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                if (visible[u]) {
                    const float2 kv = __half22float2(keys[(size_t)(s0 + g + u) * half + j]);
                    acc[u] = fmaf(qv.x, kv.x, fmaf(qv.y, kv.y, acc[u]));
                }
            }
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const float total = warp_sum(acc[u]);  // visible[u] is warp-uniform
            const int s = s0 + g + u;
            if (lane == 0 && s < C) row[s] = visible[u] ? total * scale : -INFINITY;
        }
    }
}

// attn_scores_tiled writes the logits of many query rows (prefill): a 64×64 tile of
// (row, slot) per 256-thread block, grid (ceil(C/64), ceil(nq/64), H). Queries and
// keys are staged through shared memory 32 columns at a time; each thread owns a 4×4
// strided sub-tile, so shared reads are broadcasts or conflict-free.
extern "C" __global__ void __launch_bounds__(256)
attn_scores_tiled(float* p, const float* q, int ldq, const __half* kc, const int* pos, const int* qpos, int nq,
                  int C, int hd, float scale) {
    __shared__ float qs[TILE][TILE_K + 1];
    __shared__ float ks[TILE][TILE_K + 1];
    const int h = blockIdx.z, q0 = blockIdx.y * TILE, s0 = blockIdx.x * TILE;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    float acc[4][4] = {};
    for (int d0 = 0; d0 < hd; d0 += TILE_K) {
        for (int e = threadIdx.x; e < TILE * TILE_K; e += blockDim.x) {
            const int r = e / TILE_K, c = e % TILE_K;
            const bool inside = d0 + c < hd;
            qs[r][c] = inside && q0 + r < nq ? q[(size_t)(q0 + r) * ldq + h * hd + d0 + c] : 0.f;
            ks[r][c] = inside && s0 + r < C ? __half2float(kc[((size_t)h * C + s0 + r) * hd + d0 + c]) : 0.f;
        }
        __syncthreads();
#pragma unroll 8
        for (int c = 0; c < TILE_K; c++) {
            float a[4], b[4];
#pragma unroll
            for (int u = 0; u < 4; u++) a[u] = qs[ty + 16 * u][c];
#pragma unroll
            for (int v = 0; v < 4; v++) b[v] = ks[tx + 16 * v][c];
#pragma unroll
            for (int u = 0; u < 4; u++)
#pragma unroll
                for (int v = 0; v < 4; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int u = 0; u < 4; u++) {
        const int r = q0 + ty + 16 * u;
        if (r >= nq) continue;
        const int qp = qpos[r];
        float* row = p + ((size_t)h * nq + r) * C;
#pragma unroll
        for (int v = 0; v < 4; v++) {
            const int s = s0 + tx + 16 * v;
            if (s >= C) continue;
            const int sp = pos[(size_t)h * C + s];
            row[s] = sp >= 0 && sp <= qp ? acc[u][v] * scale : -INFINITY;
        }
    }
}

// attn_softmax turns row i = blockIdx.x of head h = blockIdx.y from logits into
// probabilities in place, together with the compensation slot when cp is set and
// cw[h] > 0 (its logit, scale·q·ck, is computed here). cp, ck and cw are nullable;
// cp[h*nq+i] receives the compensation slot's probability (0 while it is empty).
extern "C" __global__ void __launch_bounds__(256)
attn_softmax(float* p, float* cp, const float* q, int ldq, const float* ck, const float* cw, int nq, int C, int hd,
             float scale) {
    __shared__ float scratch[32];
    const int i = blockIdx.x, h = blockIdx.y;
    float* row = p + ((size_t)h * nq + i) * C;
    float comp = -INFINITY;
    if (cp && ck && cw && cw[h] > 0.f) {
        const float* qr = q + (size_t)i * ldq + h * hd;
        float s = 0.f;
        for (int j = threadIdx.x; j < hd; j += blockDim.x) s = fmaf(qr[j], ck[(size_t)h * hd + j], s);
        comp = block_sum(s, scratch) * scale;
    }
    float m = comp;
    for (int s = threadIdx.x; s < C; s += blockDim.x) m = fmaxf(m, row[s]);
    m = block_max(m, scratch);
    if (m == -INFINITY) {  // nothing visible: all zeros rather than NaN
        for (int s = threadIdx.x; s < C; s += blockDim.x) row[s] = 0.f;
        if (cp && threadIdx.x == 0) cp[(size_t)h * nq + i] = 0.f;
        return;
    }
    float sum = 0.f;
    for (int s = threadIdx.x; s < C; s += blockDim.x) sum += expf(row[s] - m);
    sum = block_sum(sum, scratch) + expf(comp - m);
    const float inv = 1.f / sum;
    for (int s = threadIdx.x; s < C; s += blockDim.x) row[s] = expf(row[s] - m) * inv;
    if (cp && threadIdx.x == 0) cp[(size_t)h * nq + i] = expf(comp - m) * inv;
}

// attn_pv_split sums p·V over PV_SPLIT slots per block for a few query rows (decode):
// grid (ceil(C/PV_SPLIT), H, nq), 256 threads, into part[((i*H + h)*nsplit + split)*hd
// + j]. Threads are (half2 column, slot group) pairs, so each slot's value row is
// read with coalesced 4-byte loads, and only for slots with a non-zero probability;
// groups are summed in a fixed order, keeping the result deterministic.
// attn_pv_reduce finishes the sum.
extern "C" __global__ void __launch_bounds__(256)
attn_pv_split(float* part, const float* p, const __half* vc, int nq, int C, int hd) {
    __shared__ float2 red[256];
    const int split = blockIdx.x, h = blockIdx.y, i = blockIdx.z;
    const int nsplit = gridDim.x, H = gridDim.y;
    const int cols = hd >> 1, groups = blockDim.x / cols;
    const int col = threadIdx.x % cols, g = threadIdx.x / cols;
    const float* row = p + ((size_t)h * nq + i) * C;
    const __half2* vals = (const __half2*)(vc + (size_t)h * C * hd);
    const int s1 = min(C, (split + 1) * PV_SPLIT);
    float2 acc = make_float2(0.f, 0.f);
    if (g < groups) {
#pragma unroll 4
        for (int s = split * PV_SPLIT + g; s < s1; s += groups) {
            const float pr = row[s];
            if (pr != 0.f) {  // masked and free slots: no value read
                const float2 v = __half22float2(vals[(size_t)s * cols + col]);
                acc.x = fmaf(pr, v.x, acc.x);
                acc.y = fmaf(pr, v.y, acc.y);
            }
        }
    }
    red[threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.x < cols) {
        float2 t = make_float2(0.f, 0.f);
        for (int gg = 0; gg < groups; gg++) {
            t.x += red[gg * cols + threadIdx.x].x;
            t.y += red[gg * cols + threadIdx.x].y;
        }
        float* dst = part + (((size_t)i * H + h) * nsplit + split) * hd;
        dst[2 * threadIdx.x] = t.x;
        dst[2 * threadIdx.x + 1] = t.y;
    }
}

// attn_pv_reduce adds up attn_pv_split's partial sums, in split order, plus the
// compensation slot's share (cp, cv nullable): grid (nq, H).
extern "C" __global__ void attn_pv_reduce(float* o, int ldo, const float* part, int nsplit, const float* cp,
                                          const float* cv, int nq, int hd) {
    const int i = blockIdx.x, h = blockIdx.y, H = gridDim.y;
    const float* src = part + ((size_t)i * H + h) * nsplit * hd;
    for (int j = threadIdx.x; j < hd; j += blockDim.x) {
        float s = 0.f;
        for (int sp = 0; sp < nsplit; sp++) s += src[(size_t)sp * hd + j];
        if (cp && cv) s = fmaf(cp[(size_t)h * nq + i], cv[(size_t)h * hd + j], s);
        o[(size_t)i * ldo + h * hd + j] = s;
    }
}

// attn_pv_tiled computes o = p·V (+ the compensation slot's share; cp, cv nullable)
// for many query rows (prefill): a 64-row × 64-column tile per 256-thread block,
// grid (ceil(hd/64), ceil(nq/64), H), slots staged 32 at a time.
extern "C" __global__ void __launch_bounds__(256)
attn_pv_tiled(float* o, int ldo, const float* p, const __half* vc, const float* cp, const float* cv, int nq, int C,
              int hd) {
    __shared__ float ps[TILE][TILE_K + 1];
    __shared__ float vs[TILE_K][TILE + 1];
    const int h = blockIdx.z, q0 = blockIdx.y * TILE, c0 = blockIdx.x * TILE;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    float acc[4][4] = {};
    for (int s0 = 0; s0 < C; s0 += TILE_K) {
        for (int e = threadIdx.x; e < TILE * TILE_K; e += blockDim.x) {
            const int r = e / TILE_K, c = e % TILE_K;
            ps[r][c] = q0 + r < nq && s0 + c < C ? p[((size_t)h * nq + q0 + r) * C + s0 + c] : 0.f;
        }
        for (int e = threadIdx.x; e < TILE_K * TILE; e += blockDim.x) {
            const int r = e / TILE, c = e % TILE;
            vs[r][c] = s0 + r < C && c0 + c < hd ? __half2float(vc[((size_t)h * C + s0 + r) * hd + c0 + c]) : 0.f;
        }
        __syncthreads();
#pragma unroll 8
        for (int s = 0; s < TILE_K; s++) {
            float a[4], b[4];
#pragma unroll
            for (int u = 0; u < 4; u++) a[u] = ps[ty + 16 * u][s];
#pragma unroll
            for (int v = 0; v < 4; v++) b[v] = vs[s][tx + 16 * v];
#pragma unroll
            for (int u = 0; u < 4; u++)
#pragma unroll
                for (int v = 0; v < 4; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int u = 0; u < 4; u++) {
        const int r = q0 + ty + 16 * u;
        if (r >= nq) continue;
        const float c = cp && cv ? cp[(size_t)h * nq + r] : 0.f;
#pragma unroll
        for (int v = 0; v < 4; v++) {
            const int j = c0 + tx + 16 * v;
            if (j >= hd) continue;
            float val = acc[u][v];
            if (c != 0.f) val = fmaf(c, cv[(size_t)h * hd + j], val);
            o[(size_t)r * ldo + h * hd + j] = val;
        }
    }
}

// kv_evict frees head h = blockIdx.x's victims, victims[h*stride + i] for i <
// counts[h], folding each one with a positive weight into the compensation slot in
// list order: ck' = (ck·W + w·k) / (W + w), the same for cv, then W' = W + w (AUV
// Eq. 7-8). ck, cv, cw and weights are nullable (no compensation: victims are just
// freed). The host has checked that every victim is a resident slot named once.
extern "C" __global__ void kv_evict(const __half* kc, const __half* vc, int* pos, float* ck, float* cv, float* cw,
                                    const int* counts, const int* victims, const float* weights, int stride, int C,
                                    int hd) {
    const int h = blockIdx.x;
    const bool merge = ck && cv && cw && weights;
    float total = merge ? cw[h] : 0.f;
    for (int i = 0; i < counts[h]; i++) {
        const int s = victims[(size_t)h * stride + i];
        if (merge) {
            const float w = weights[(size_t)h * stride + i];
            if (w > 0.f) {
                const float next = total + w;
                const size_t src = ((size_t)h * C + s) * hd;
                for (int j = threadIdx.x; j < hd; j += blockDim.x) {
                    float* kj = ck + (size_t)h * hd + j;
                    float* vj = cv + (size_t)h * hd + j;
                    *kj = (*kj * total + w * __half2float(kc[src + j])) / next;
                    *vj = (*vj * total + w * __half2float(vc[src + j])) / next;
                }
                total = next;
            }
        }
        if (threadIdx.x == 0) pos[(size_t)h * C + s] = -1;
    }
    if (merge && threadIdx.x == 0) cw[h] = total;
}
