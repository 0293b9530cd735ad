// Random fp16 fill, for timing OPT-shaped models without a checkpoint.
#include "common.cuh"

// fill_uniform_f16 sets dst[i], i < n, to lo + (hi-lo)·u_i, with u_i in [0, 1) from a
// counter-based hash (splitmix64) of seed and i: the same values at any grid size.
extern "C" __global__ void fill_uniform_f16(__half* dst, unsigned long long n, unsigned long long seed, float lo,
                                            float hi) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        unsigned long long z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const float u = (float)(z >> 40) * (1.f / 16777216.f);
        dst[i] = __float2half_rn(lo + (hi - lo) * u);
    }
}
