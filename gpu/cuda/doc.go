// Package cuda runs kvsim's OPT engine on an NVIDIA GPU through the CUDA driver API.
//
// Everything that talks to the GPU is behind the cuda build tag, because
// gorgonia.org/cu's init exits the process on a machine without a GPU driver: a
// default build has only CompareBackends, which compares any two backends of package
// gpu, and the test that the committed PTX matches its sources. Build with
// `-tags cuda` and cgo (see the README's GPU check section); the binary then needs
// only the driver's libcuda.so.1, no CUDA toolkit or library.
//
// With the tag, Backend implements gpu.Backend on a Device (the driver layer: the
// primary context, the embedded kernels, two streams, memory and copies), holding
// the weights as a Model and each sequence's KV slot tables as a Cache.
//
// The kernels are in kernels/*.cu. `go generate ./gpu/cuda/` compiles them to PTX for
// compute_80 with nvcc, which the driver JIT-compiles for the GPU at hand (sm_80 and
// newer), and records their SHA-256 sums in kernels/SHA256SUMS.
//
// # Numerics
//
// Weights live on the device in fp16, whatever their stored dtype (bf16 and fp32 are
// rounded to nearest even at upload), and so do the cached keys and values. The
// residual stream, LayerNorm, logits, softmax and attention probabilities are fp32,
// and every dot product accumulates in fp32. The matrix products of passes over
// several tokens (prefill) run on tensor cores and round their activations to fp16 on
// the way in; one token's matrix-vector products (decode) keep activations in fp32.
// Results match the CPU engine within fp16 tolerance, not bit for bit.
package cuda

//go:generate bash kernels/generate.sh
