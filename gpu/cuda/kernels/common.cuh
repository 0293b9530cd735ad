// Shared helpers of kvsim's OPT kernels. Conventions for every kernel:
//
//   - Weights, the KV cache and its compensation slot's inputs are fp16 (__half); the
//     residual stream, activations, logits and attention probabilities are fp32, and
//     every sum accumulates in fp32.
//   - Integer parameters are int (32-bit) and pointers are device pointers; a nullable
//     pointer is documented as such at the kernel.
//   - Kernels check their own bounds: any grid that covers the problem is correct.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

#define FULL_MASK 0xffffffffu

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// block_sum returns the sum of v over the block to every thread. scratch holds 32
// floats; the trailing barrier lets the caller reuse scratch right away.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = 0.f;
    for (int w = 0; w < warps; w++) total += scratch[w];  // same order in every thread
    __syncthreads();
    return total;
}

// block_max is block_sum's counterpart for the maximum.
__device__ __forceinline__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int warps = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < warps; w++) m = fmaxf(m, scratch[w]);
    __syncthreads();
    return m;
}

// linear_epilogue finishes one output of Y = X·Wᵀ + b: adds the bias (nullable),
// applies ReLU when relu is set, then adds the residual (nullable, same layout as Y,
// may alias Y since each element is read and written by one thread).
__device__ __forceinline__ float linear_epilogue(float acc, const __half* bias, const float* residual,
                                                 int relu, size_t idx, int col) {
    if (bias) acc += __half2float(bias[col]);
    if (relu) acc = fmaxf(acc, 0.f);
    if (residual) acc += residual[idx];
    return acc;
}

__device__ __forceinline__ bool aligned16(const void* p) { return ((uintptr_t)p & 15) == 0; }
