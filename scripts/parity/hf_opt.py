"""Reference side of kvsim's transformers parity test (tests/parity_test.go).

Run by the Go test with Debian's python3 and torch, and transformers from
../shared/reference/transformers:

    python3 hf_opt.py TRANSFORMERS_DIR SPEC.json OUT_DIR

SPEC.json (written by the test) lists:

- models: each with a directory and, for random ones, how to make it: shape, pre- or
  post-LN, dtype, weights format ("bin", "bin-sharded", "safetensors",
  "safetensors-sharded") and seed. .bin checkpoints are written by transformers'
  own save_pretrained; safetensors by hand (the safetensors package is absent here).
  Every model is then read back from its directory, in float32.
- cases: a model, a prompt (token ids), a number of greedy tokens and the rows to
  report. For each, OUT_DIR gets transformers' own greedy tokens (computed with its
  KV cache, one token at a time) and, from one forward pass over prompt + greedy
  tokens, the logits and every layer's attention probabilities of those rows.
- tokenizers: directories with vocab.json and merges.txt, and texts. Each text is
  encoded with GPT2Tokenizer set up as OPT's tokenizer_config.json sets it up, and
  the ids are decoded back.

OUT_DIR/result.json indexes the results; arrays are raw little-endian float32 files:
logits [rows][vocab], attention [layers][heads][rows][tokens].
"""

import json
import os
import struct
import sys
import time

SAFE_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def main():
    transformers_dir, spec_path, out_dir = sys.argv[1:4]
    sys.path[:0] = [os.path.join(transformers_dir, "src"), os.path.join(transformers_dir, "shims")]
    import torch

    # One thread: the models are small, and the test shares the cores with the other
    # packages' tests, where a second thread spends its time waiting on the first.
    torch.set_num_threads(1)
    spec = json.load(open(spec_path))
    os.makedirs(out_dir, exist_ok=True)
    result = {"torch": torch.__version__, "models": {}, "cases": [], "tokenizers": []}
    import transformers

    transformers.utils.logging.disable_progress_bar()
    result["transformers"] = transformers.__version__

    models = {}
    for m in spec["models"]:
        start = time.time()
        if m.get("make"):
            make_model(torch, m["dir"], m["make"])
        models[m["name"]] = load_model(torch, m["dir"])
        result["models"][m["name"]] = {"seconds": round(time.time() - start, 3)}

    for i, c in enumerate(spec["cases"]):
        start = time.time()
        r = run_case(torch, models[c["model"]], c, out_dir, i)
        r["seconds"] = round(time.time() - start, 3)
        result["cases"].append(r)

    for i, t in enumerate(spec.get("tokenizers", [])):
        scratch = os.path.join(out_dir, f"tokenizer-{i}")
        result["tokenizers"].append(run_tokenizer(t["dir"], spec["texts"], scratch))

    with open(os.path.join(out_dir, "result.json.tmp"), "w") as f:
        json.dump(result, f)
    os.replace(os.path.join(out_dir, "result.json.tmp"), os.path.join(out_dir, "result.json"))


def make_model(torch, path, mk):
    """Writes a random OPTForCausalLM with weights scaled to give peaked attention."""
    from transformers import OPTConfig
    from transformers.models.opt.modeling_opt import OPTForCausalLM

    config = OPTConfig(
        vocab_size=mk["vocab"], hidden_size=mk["hidden"], num_hidden_layers=mk["layers"],
        ffn_dim=mk["ffn"], num_attention_heads=mk["heads"], max_position_embeddings=mk["positions"],
        word_embed_proj_dim=mk["proj"], do_layer_norm_before=mk["pre_ln"],
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=1, bos_token_id=2, eos_token_id=2,
    )
    torch.manual_seed(mk["seed"])
    model = OPTForCausalLM(config).eval()
    # transformers initialises with std 0.02 and zero biases, which gives near-uniform
    # attention and near-tied logits: a weak test. Draw every tensor instead, with
    # scales that keep activations O(1) and attention peaked.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif "embed_tokens" in name:
                p.copy_(torch.randn_like(p))
            elif "embed_positions" in name:
                p.copy_(0.5 * torch.randn_like(p))
            elif name.endswith("weight"):
                # Strong blocks, so that the next token is not the current one's echo
                # through the tied LM head.
                gain = {"q_proj": 1.5, "k_proj": 1.5, "out_proj": 3.0, "fc2": 3.0}.get(name.split(".")[-2], 1.0)
                p.copy_(gain * torch.randn_like(p) / p.shape[1] ** 0.5)
    model = model.to(getattr(torch, mk["dtype"]))
    fmt = mk["format"]
    if fmt in ("bin", "bin-sharded"):
        shard = mk.get("shard_bytes") if fmt == "bin-sharded" else None
        model.save_pretrained(path, safe_serialization=False, max_shard_size=shard or "10GB")
    else:
        model.config.save_pretrained(path)
        tensors = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied, as transformers drops it
        if fmt == "safetensors":
            write_safetensors(torch, os.path.join(path, "model.safetensors"), tensors)
        else:
            write_safetensors_shards(torch, path, tensors, mk["shard_bytes"])


def tensor_bytes(torch, t):
    # numpy has no bfloat16: view the tensor's storage as bytes.
    return t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()


def write_safetensors(torch, path, tensors):
    names = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = tensor_bytes(torch, t)
        header[name] = {"dtype": names[str(t.dtype).replace("torch.", "")], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def write_safetensors_shards(torch, path, tensors, shard_bytes):
    shards, current, size = [], {}, 0
    for name in sorted(tensors):
        n = tensors[name].numel() * tensors[name].element_size()
        if current and size + n > shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = tensors[name]
        size += n
    shards.append(current)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(torch, os.path.join(path, file), shard)
        for name, t in shard.items():
            weight_map[name] = file
            total += t.numel() * t.element_size()
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def read_safetensors(torch, path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        dtype = getattr(torch, SAFE_DTYPES[e["dtype"]])
        out[name] = torch.frombuffer(bytearray(data[base + begin:base + end]), dtype=dtype).reshape(e["shape"])
    return out


def load_model(torch, path):
    """Reads a checkpoint directory back, in float32: with from_pretrained where
    transformers can (.bin), else by reading the safetensors files by hand."""
    from transformers import OPTConfig
    from transformers.models.opt.modeling_opt import OPTForCausalLM

    if os.path.exists(os.path.join(path, "pytorch_model.bin")) or os.path.exists(
            os.path.join(path, "pytorch_model.bin.index.json")):
        model = OPTForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
        return model.eval()
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    state = {}
    for f in files:
        state.update(read_safetensors(torch, os.path.join(path, f)))
    model = OPTForCausalLM(OPTConfig.from_pretrained(path))
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise SystemExit(f"{path}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    return model.float().eval()


def write_f32(path, array):
    import numpy as np

    np.ascontiguousarray(array, dtype="<f4").tofile(path)


def run_case(torch, model, c, out_dir, index):
    prompt, gen, rows = c["prompt"], c["gen"], c["rows"]
    with torch.no_grad():
        # Greedy decoding with transformers' KV cache, one token at a time, as
        # generate() does, so that its cached path is what kvsim is held to.
        out = model(input_ids=torch.tensor([prompt]), use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1]
        greedy = []
        for _ in range(gen):
            nxt = int(torch.argmax(logits))
            greedy.append(nxt)
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1]
        seq = torch.tensor([prompt + greedy])
        full = model(input_ids=seq, output_attentions=True, use_cache=False)
        idx = torch.tensor(rows)
        logits_path = os.path.join(out_dir, f"case-{index}.logits.f32")
        write_f32(logits_path, full.logits[0, idx].numpy())
        attn = torch.stack([a[0][:, idx, :] for a in full.attentions])  # [layers][heads][rows][tokens]
        attn_path = os.path.join(out_dir, f"case-{index}.attention.f32")
        write_f32(attn_path, attn.numpy())
    return {"name": c["name"], "greedy": greedy, "tokens": len(prompt) + gen, "vocab": int(full.logits.shape[-1]),
            "layers": int(attn.shape[0]), "heads": int(attn.shape[1]),
            "logits": os.path.basename(logits_path), "attention": os.path.basename(attn_path)}


# OPT's tokenizer_config.json, as published with facebook/opt-125m and the rest:
# "</s>" is bos, eos and unk, "<pad>" pads, none strips the whitespace around it, and
# a bos starts every encoding.
def opt_special(text):
    return {"content": text, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True,
            "__type": "AddedToken"}


OPT_TOKENIZER_CONFIG = {
    "tokenizer_class": "GPT2Tokenizer", "errors": "replace", "add_prefix_space": False, "add_bos_token": True,
    "bos_token": opt_special("</s>"), "eos_token": opt_special("</s>"), "unk_token": opt_special("</s>"),
    "pad_token": opt_special("<pad>"),
}


def run_tokenizer(path, texts, scratch):
    """Encodes texts with GPT2Tokenizer.from_pretrained on path's vocab.json and
    merges.txt beside OPT's tokenizer_config.json, and decodes the ids back."""
    import shutil

    from transformers import AddedToken, GPT2Tokenizer

    # Without the tokenizers package (Debian has none), transformers 4.31 falls back on
    # its own AddedToken, which lacks tokenizers' __str__ (the token's text): special
    # tokens would then be looked up by their repr and resolve to no id.
    if AddedToken.__str__ is object.__str__:
        AddedToken.__str__ = lambda self: self.content
    os.makedirs(scratch)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(path, f), scratch)
    with open(os.path.join(scratch, "tokenizer_config.json"), "w") as f:
        json.dump(OPT_TOKENIZER_CONFIG, f)
    tok = GPT2Tokenizer.from_pretrained(scratch)
    ids = [tok(t)["input_ids"] for t in texts]
    decoded = [tok.decode(i, skip_special_tokens=False, clean_up_tokenization_spaces=False) for i in ids]
    return {"dir": path, "ids": ids, "decoded": decoded}


if __name__ == "__main__":
    main()
