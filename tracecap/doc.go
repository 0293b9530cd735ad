// Package tracecap captures kvtrace files from real decoding: it reads a
// summarization dataset, builds each sample's prompt, decodes greedily with kvsim's
// OPT engine (package gpu, on any backend), and writes the queries, keys and values
// of every token, prompt and generated, to one trace per sample for trace replay.
//
// The dataset and the prompt (the record format, the default template and how a
// prompt is cut to fit) are package internal/dataset's, which validate shares.
//
// # Traces
//
// Decoding is greedy, up to the generated-token limit, and stops when the model
// predicts end-of-sequence (which is not kept) unless told to ignore it. Every kept
// token was fed through the model, so a trace with P prompt and G generated tokens
// holds P+G queries, keys and values per layer and head, the queries scaled so that
// q·k is the attention logit. Optionally only some layers or heads are kept (their
// model indices are recorded), V is left out, and tensors are stored as f16, bf16
// or f32.
//
// Each sample's trace is written atomically to <out>/sample-<index>.kvtrace.safetensors,
// index being the sample's record number in the dataset (from 0). A capture that is
// interrupted and rerun skips the samples whose trace exists, after checking that it
// was captured with the same options (the capture_options metadata key); otherwise
// it stops rather than mix two captures in one directory.
//
// The metadata holds the prompt text, the reference summary and the generated text
// (leaving out ids the tokenizer lacks: a model's vocabulary may be larger than its
// tokenizer's, as OPT's 50272 rows hold 50265 tokens), and these extra keys: dataset, sample_index, template, max_prompt_tokens,
// gen_tokens, ignore_eos, truncated (whether the document was cut), stopped_at_eos,
// capture_layers and capture_heads (model indices, comma-separated), weights_dtype,
// and capture_options.
package tracecap
