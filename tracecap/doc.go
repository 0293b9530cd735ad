// Package tracecap captures kvtrace files from real decoding: it reads a
// summarization dataset, builds each sample's prompt, decodes greedily with kvsim's
// OPT engine (package gpu, on any backend), and writes the queries, keys and values
// of every token, prompt and generated, to one trace per sample for trace replay.
//
// # Data
//
// The dataset is XSUM-style JSONL: one JSON object per line, holding the document
// and its reference summary as strings, by default under "document" and "summary"
// (XSUM's own names; CNN/DailyMail uses "article" and "highlights"), and optionally
// an id ("id"). Blank lines are skipped. A line that is not a JSON object, or lacks
// the document or summary field, is an error naming the file and the line.
//
// # Prompt
//
// The default template, DefaultTemplate, is the summarization prompt of the H2O and
// AUV evaluations:
//
//	###
//	Article: {document}
//
//	Summarize the above article in 1 sentence.
//
// H2O's summarization runs (which the AUV paper's XSUM, CNN/DailyMail and Newsroom
// numbers follow) feed the requests that HELM generates for these datasets, and HELM
// frames each article exactly so: "###\nArticle: " before it, a blank line after it,
// then "Summarize the above article in N sentence(s).\n" (1 for XSUM, 3 for
// CNN/DailyMail), the model's summary following on the next line. kvsim uses it
// zero-shot: HELM's five demonstrations would make every prompt six articles long,
// beyond OPT's 2048 positions on CNN/DailyMail, and with them most of the cache would
// hold other articles. Another template is any text with one "{document}"; to feed
// request files that already hold complete prompts (H2O's xsum.jsonl keeps them in
// "article"), use the template "{document}".
//
// A prompt is tokenized as transformers tokenizes it for OPT, with "</s>" (id 2)
// prepended. When it has more than the maximum prompt tokens, the document is cut
// at the end (at a character boundary, to the longest prefix that fits) and the
// template is kept whole, so the instruction always reaches the model.
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
