// LayerNorm and embedding lookups over fp32 rows.
#include "common.cuh"

// layernorm_f32 normalizes row blockIdx.x of x (d values, row stride ldx) into y (row
// stride ldy; y may alias x): two passes for the mean and the variance of the centred
// values, then y = (x - mean) / sqrt(var + eps) · gamma + beta. gamma and beta are
// fp16 and nullable (no elementwise affine). Any block size that is a multiple of 32
// works; the host uses 256.
extern "C" __global__ void layernorm_f32(float* y, int ldy, const float* x, int ldx, const __half* gamma,
                                         const __half* beta, int d, float eps) {
    __shared__ float scratch[32];
    const float* xr = x + (size_t)blockIdx.x * ldx;
    float* yr = y + (size_t)blockIdx.x * ldy;
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
    const float mean = block_sum(s, scratch) / d;
    float ss = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float c = xr[i] - mean;
        ss = fmaf(c, c, ss);
    }
    const float rstd = 1.f / sqrtf(block_sum(ss, scratch) / d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = (xr[i] - mean) * rstd;
        if (gamma) v *= __half2float(gamma[i]);
        if (beta) v += __half2float(beta[i]);
        yr[i] = v;
    }
}

// embed_rows writes (accumulate == 0) or adds (accumulate != 0) row ids[t]+offset of
// the fp16 table into row t = blockIdx.x of y (d values, row stride ldy). Token
// embeddings use offset 0; OPT's learned positions use offset 2 and accumulate.
extern "C" __global__ void embed_rows(float* y, int ldy, const __half* table, const int* ids, int offset, int d,
                                      int accumulate) {
    const __half* src = table + (size_t)(ids[blockIdx.x] + offset) * d;
    float* dst = y + (size_t)blockIdx.x * ldy;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = __half2float(src[i]);
        dst[i] = accumulate ? dst[i] + v : v;
    }
}
