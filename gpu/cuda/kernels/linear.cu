// Linear layers: Y[m,n] = epilogue(Σ_k X[m,k]·W[n,k] + b[n]), with W in torch's
// [out_features, in_features] layout (fp16) and X, Y fp32 row-major.
//
// With seg > 0 the output columns are split into blocks of seg, stored one after the
// other as [n/seg][m][seg] (a fused q|k|v projection writes q, k and v as three
// [m][hidden] matrices); ldy is then ignored and residual must be null.
//
//   - gemm_f16w (prefill, m > 1): tensor cores through WMMA 16×16×16. X is rounded to
//     fp16 as it is staged into shared memory, products are exact and accumulate in
//     fp32. The rounding is the only numerical difference from an fp32 reference:
//     about 2^-11 relative per activation, as in transformers' fp16 inference.
//   - gemv_f16w (decode, m == 1): memory-bound; X stays fp32, each fp16 weight is
//     widened to fp32 and accumulated with fp32 FMAs, so no activation rounding.
#include <mma.h>

#include "common.cuh"

using namespace nvcuda;

// GEMM tiling: a 256-thread block computes a 128×128 tile of Y; its 8 warps form a
// 4×2 grid of 32×64 warp tiles (2×4 WMMA accumulators each). K advances 32 at a
// time; the next K slice is loaded into registers while the tensor cores work on the
// current one.
#define GEMM_BM 128
#define GEMM_BN 128
#define GEMM_BK 32
#define GEMM_LDS (GEMM_BK + 8)  // padded smem row in halves: 80 bytes keeps 16-byte
                                // alignment and spreads rows over the banks
#define GEMM_THREADS 256

// out_index is the offset of Y[r, c]: row-major with stride ldy, or split by seg.
__device__ __forceinline__ size_t out_index(int r, int c, int ldy, int seg, int m) {
    if (seg > 0) {
        const int block = c / seg;
        return ((size_t)block * m + r) * seg + (c - block * seg);
    }
    return (size_t)r * ldy + c;
}

// load_x_slice reads X[row0.., k0..k0+32) as 4 float4 per thread (zeros outside X).
__device__ __forceinline__ void load_x_slice(float4 (&r)[4], const float* x, int ldx, int m, int k,
                                             int row0, int k0, bool vec) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
        int i = threadIdx.x + j * GEMM_THREADS;  // 1024 float4 per slice
        int row = row0 + i / (GEMM_BK / 4), col = k0 + (i % (GEMM_BK / 4)) * 4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (row < m) {
            const float* p = x + (size_t)row * ldx + col;
            if (vec && col + 4 <= k) {
                v = __ldg((const float4*)p);
            } else {
                if (col + 0 < k) v.x = p[0];
                if (col + 1 < k) v.y = p[1];
                if (col + 2 < k) v.z = p[2];
                if (col + 3 < k) v.w = p[3];
            }
        }
        r[j] = v;
    }
}

// load_w_slice reads W[col0.., k0..k0+32) as 2 uint4 (8 halves) per thread.
__device__ __forceinline__ void load_w_slice(uint4 (&r)[2], const __half* w, int n, int k, int col0,
                                             int k0, bool vec) {
#pragma unroll
    for (int j = 0; j < 2; j++) {
        int i = threadIdx.x + j * GEMM_THREADS;  // 512 uint4 per slice
        int row = col0 + i / (GEMM_BK / 8), col = k0 + (i % (GEMM_BK / 8)) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (row < n) {
            const __half* p = w + (size_t)row * k + col;
            if (vec && col + 8 <= k) {
                v = __ldg((const uint4*)p);
            } else {
                uint32_t u[4] = {0, 0, 0, 0};  // the ragged end of a row: element by element
#pragma unroll
                for (int e = 0; e < 8; e++)
                    if (col + e < k) u[e >> 1] |= (uint32_t)__half_as_ushort(p[e]) << (16 * (e & 1));
                v = make_uint4(u[0], u[1], u[2], u[3]);
            }
        }
        r[j] = v;
    }
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
gemm_f16w(float* y, int ldy, int seg, const float* x, int ldx, const __half* w, const __half* bias,
          const float* residual, int relu, int m, int n, int k) {
    __shared__ __align__(32) __half xs[GEMM_BM * GEMM_LDS];
    __shared__ __align__(32) __half ws[GEMM_BN * GEMM_LDS];
    __shared__ __align__(32) float stage[GEMM_THREADS / 32][16 * 16];

    const int row0 = blockIdx.y * GEMM_BM, col0 = blockIdx.x * GEMM_BN;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 64;
    const bool xvec = (ldx & 3) == 0 && aligned16(x);
    const bool wvec = (k & 7) == 0 && aligned16(w);

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) wmma::fill_fragment(acc[i][j], 0.f);

    float4 xr[4];
    uint4 wr[2];
    load_x_slice(xr, x, ldx, m, k, row0, 0, xvec);
    load_w_slice(wr, w, n, k, col0, 0, wvec);

    for (int k0 = 0; k0 < k; k0 += GEMM_BK) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int i = threadIdx.x + j * GEMM_THREADS;
            __half2* dst = (__half2*)&xs[(i / (GEMM_BK / 4)) * GEMM_LDS + (i % (GEMM_BK / 4)) * 4];
            dst[0] = __floats2half2_rn(xr[j].x, xr[j].y);
            dst[1] = __floats2half2_rn(xr[j].z, xr[j].w);
        }
#pragma unroll
        for (int j = 0; j < 2; j++) {
            int i = threadIdx.x + j * GEMM_THREADS;
            *(uint4*)&ws[(i / (GEMM_BK / 8)) * GEMM_LDS + (i % (GEMM_BK / 8)) * 8] = wr[j];
        }
        __syncthreads();
        if (k0 + GEMM_BK < k) {  // the next slice's loads overlap the MMAs below
            load_x_slice(xr, x, ldx, m, k, row0, k0 + GEMM_BK, xvec);
            load_w_slice(wr, w, n, k, col0, k0 + GEMM_BK, wvec);
        }
#pragma unroll
        for (int kk = 0; kk < GEMM_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b[4];
#pragma unroll
            for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], &xs[(wm + i * 16) * GEMM_LDS + kk], GEMM_LDS);
#pragma unroll
            for (int j = 0; j < 4; j++) wmma::load_matrix_sync(b[j], &ws[(wn + j * 16) * GEMM_LDS + kk], GEMM_LDS);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }

    // Epilogue: each accumulator goes through the warp's 16×16 staging tile so that
    // bounds, bias, ReLU and the residual apply per element.
    float* st = stage[warp];
#pragma unroll
    for (int i = 0; i < 2; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            wmma::store_matrix_sync(st, acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                int r = row0 + wm + i * 16 + e / 16, c = col0 + wn + j * 16 + e % 16;
                if (r < m && c < n) {
                    const size_t idx = out_index(r, c, ldy, seg, m);
                    y[idx] = linear_epilogue(st[e], bias, residual, relu, idx, c);
                }
            }
            __syncwarp();
        }
    }
}

// dot8 is the fp32 dot product of 8 fp16 weights with 8 fp32 activations.
__device__ __forceinline__ float dot8(uint4 w, float4 xa, float4 xb) {
    float2 w0 = __half22float2(*(const __half2*)&w.x), w1 = __half22float2(*(const __half2*)&w.y);
    float2 w2 = __half22float2(*(const __half2*)&w.z), w3 = __half22float2(*(const __half2*)&w.w);
    float s = w0.x * xa.x;
    s = fmaf(w0.y, xa.y, s);
    s = fmaf(w1.x, xa.z, s);
    s = fmaf(w1.y, xa.w, s);
    s = fmaf(w2.x, xb.x, s);
    s = fmaf(w2.y, xb.y, s);
    s = fmaf(w3.x, xb.z, s);
    s = fmaf(w3.y, xb.w, s);
    return s;
}

#define GEMV_ROWS 8  // rows per 256-thread block: one warp per output

// gemv_f16w computes one row of X (m == 1): warp w of block b owns output
// b*GEMV_ROWS+w and streams its weight row once with 16-byte loads, four in flight per
// lane, reading x (small, L1/L2-resident) alongside.
extern "C" __global__ void __launch_bounds__(GEMV_ROWS * 32)
gemv_f16w(float* y, int seg, const float* x, const __half* w, const __half* bias, const float* residual,
          int relu, int n, int k) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * GEMV_ROWS + (threadIdx.x >> 5);
    if (row >= n) return;
    const __half* wrow = w + (size_t)row * k;
    float acc = 0.f;
    if ((k & 7) == 0 && aligned16(w) && aligned16(x)) {
        const uint4* w8 = (const uint4*)wrow;
        const float4* x4 = (const float4*)x;
        const int n8 = k >> 3;
        int c = lane;
        for (; c + 96 < n8; c += 128) {
            uint4 a0 = __ldg(w8 + c), a1 = __ldg(w8 + c + 32), a2 = __ldg(w8 + c + 64), a3 = __ldg(w8 + c + 96);
            acc += dot8(a0, __ldg(x4 + 2 * c), __ldg(x4 + 2 * c + 1));
            acc += dot8(a1, __ldg(x4 + 2 * c + 64), __ldg(x4 + 2 * c + 65));
            acc += dot8(a2, __ldg(x4 + 2 * c + 128), __ldg(x4 + 2 * c + 129));
            acc += dot8(a3, __ldg(x4 + 2 * c + 192), __ldg(x4 + 2 * c + 193));
        }
        for (; c < n8; c += 32) acc += dot8(__ldg(w8 + c), __ldg(x4 + 2 * c), __ldg(x4 + 2 * c + 1));
    } else {
        for (int i = lane; i < k; i += 32) acc = fmaf(__half2float(wrow[i]), x[i], acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) {
        const size_t idx = out_index(0, row, n, seg, 1);
        y[idx] = linear_epilogue(acc, bias, residual, relu, idx, row);
    }
}
