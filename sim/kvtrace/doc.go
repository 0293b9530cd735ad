// Package kvtrace reads and writes kvtrace files: the per-sample traces of queries,
// keys and (optionally) values that replay runs eviction policies on.
//
// A kvtrace v1 file is a safetensors file, so Python reads one with
// safetensors.numpy.load_file(path). Its layout:
//
//   - 8 bytes: N, the length of the JSON header, a little-endian uint64 (at most
//     100 MiB);
//   - N bytes: the JSON header, padded with trailing spaces so the data starts at a
//     multiple of 8;
//   - the data buffer: every tensor's little-endian elements, back to back with no
//     gaps, in the order tokens, layer.0.q, layer.0.k, layer.0.v, layer.1.q, ...
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin,
// end]}, offsets counted from the start of the data buffer. The tensors are:
//
//	tokens       I32             [tokens]                     prompt then generated token ids
//	layer.<l>.q  F16, BF16, F32  [heads, tokens, head_dim]    for l in 0..layers-1
//	layer.<l>.k  same
//	layer.<l>.v  same, present for every layer or for none
//
// where tokens = prompt_len + gen_len and all layer tensors share one dtype. The
// header's "__metadata__" object maps string keys to string values: format
// ("kvtrace"), version ("1"), model, layers, heads, head_dim, prompt_len, gen_len,
// source (gpu, cpu or synthetic), sample_id, and the optional prompt, reference and
// generated text. Meta is this block, typed.
//
// Open checks all of the above and reports the first violation as an error that
// names the file and the problem. Writer produces such files for every producer, the
// synthetic generator and real capture alike, converting float32 to the stored dtype
// with round-to-nearest-even.
package kvtrace
