"""Shared by train.py, export.py and check_nll.py: importing transformers, the tokenizer,
and cutting a corpus split into the fixed-length blocks the model trains and is scored on."""
import json
import os
import sys

EOS = 2  # "</s>": OPT's separator, first token of every document


def import_transformers():
    """Puts the transformers snapshot of ../shared/reference on the path (or $KVSIM_TRANSFORMERS)."""
    here = os.path.dirname(os.path.abspath(__file__))
    ref = os.environ.get("KVSIM_TRANSFORMERS") or os.path.join(here, "..", "..", "..", "shared", "reference", "transformers")
    if not os.path.isdir(os.path.join(ref, "src", "transformers")):
        raise SystemExit(f"transformers snapshot not found at {ref} (set KVSIM_TRANSFORMERS)")
    sys.path[:0] = [os.path.join(ref, "src"), os.path.join(ref, "shims")]
    import transformers  # noqa: F401
    return transformers


def tokenizer(tok_dir):
    """GPT2Tokenizer over vocab.json and merges.txt, with OPT's special tokens."""
    from transformers import GPT2Tokenizer
    return GPT2Tokenizer(os.path.join(tok_dir, "vocab.json"), os.path.join(tok_dir, "merges.txt"),
                         bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")


def read_docs(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def token_stream(tok, docs):
    """"</s>" then the document's tokens, for every document in order, as one list."""
    out = []
    for d in docs:
        out.append(EOS)
        out.extend(tok.encode(d["text"]))
    return out


def blocks(stream, seq):
    """The stream cut into consecutive blocks of seq tokens; the tail that does not fill one is dropped."""
    import torch
    n = len(stream) // seq
    return torch.tensor(stream[: n * seq], dtype=torch.long).view(n, seq)
