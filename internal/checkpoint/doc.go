// Package checkpoint loads Hugging Face OPT checkpoint directories (facebook/opt-125m
// through opt-66b, as published) for kvsim's OPT inference engine, and writes small
// random checkpoints in the same format for tests and demos.
//
// A checkpoint directory holds config.json and the weights in one of four forms,
// looked for in this order:
//
//   - model.safetensors;
//   - model.safetensors.index.json naming safetensors shards;
//   - pytorch_model.bin, a torch.save zip archive: <archive>/data.pkl is a pickle of
//     the state dict whose tensors point, through persistent ids ('storage', type, key,
//     location, numel), at raw storages stored as <archive>/data/<key>;
//   - pytorch_model.bin.index.json naming such archives.
//
// Load never converts weights up front: safetensors files and torch archives are
// memory-mapped, and each Tensor's Data is a slice of the mapping in the stored dtype
// (F16, BF16 or F32). Only a compressed torch entry, which torch never writes, and
// a non-contiguous tensor (a transposed or strided view, which transformers
// copies into its parameters too) are copied into memory instead, each up to
// MaxCopyBytes. The engine converts rows or whole tensors to float32 when it
// needs them (Tensor.Row, Tensor.Float32), so a loaded model costs its file size in
// page cache and almost nothing on the heap.
//
// Tensor names are matched with or without the "model." and "decoder." prefixes, so
// OPTForCausalLM exports ("model.decoder.layers.0.fc1.weight", "lm_head.weight") and
// the original facebook/opt-* files ("decoder.layers.0.fc1.weight") both load. The
// LM head is embed_tokens unless config.json sets tie_word_embeddings to false, as
// transformers ties them: a stored lm_head.weight is then ignored, as transformers
// ignores it. Every tensor the config implies is checked for presence, dtype and shape;
// problems are reported as errors naming the file and the tensor.
//
// WriteSynth writes a complete random checkpoint directory in the same layout
// (config.json, model.safetensors, pytorch_model.bin, optionally sharded, optionally a
// tiny tokenizer), for tests and demos that must not depend on a download.
package checkpoint
