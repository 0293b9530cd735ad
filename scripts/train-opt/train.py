#!/usr/bin/python3
"""Trains kvsim's small OPT with transformers' own OPTForCausalLM on Debian's torch (CPU).

The corpus (corpus.py) is tokenized with GPT2Tokenizer over the BPE files that kvsim's
trainer wrote; every document starts with "</s>" as OPT's do, and the seeded shuffle of
the training documents is cut into blocks of --seq tokens, as OPT's pretraining packs text.
AdamW with linear warmup then cosine decay to a tenth of the peak rate over --steps.
Training stops at --steps, when the held-out loss reaches --target-loss, or after
--max-minutes of wall time, whichever comes first.

--resume continues a run that stopped early (killed, or at --max-minutes) from its
last checkpoint, with the same arguments: the optimizer, the schedule, the order of
the blocks and the random state are restored, so the run goes on as if it had not
stopped. --max-minutes then bounds the new invocation.

OUT_DIR receives loss.tsv (the loss curve: train loss averaged over each logging interval,
held-out loss on the first --eval-blocks held-out blocks), checkpoint/ (save_pretrained,
f32, refreshed every --ckpt-minutes and at the end, with the tokenizer files,
train_state.json and trainer.pt, the state --resume needs) and run.json (the
arguments, counts and timings).
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


# The arguments a resumed run must share with the run it continues: everything that
# shapes the model, the data or the schedule.
RESUME_SAME = ("corpus", "tokenizer", "layers", "hidden", "heads", "ffn", "positions", "seq", "batch", "steps", "lr",
               "warmup", "weight_decay", "seed", "max_docs", "init_from")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="corpus.py's output directory")
    ap.add_argument("--tokenizer", required=True, help="directory with vocab.json and merges.txt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--positions", type=int, default=512)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1000, help="length of the schedule")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--eval-blocks", type=int, default=24)
    ap.add_argument("--ckpt-minutes", type=float, default=10)
    ap.add_argument("--max-minutes", type=float, default=60)
    ap.add_argument("--target-loss", type=float, default=0, help="stop when the held-out loss is at or below (0: never)")
    ap.add_argument("--max-docs", type=int, default=0, help="use only the first N documents of each split (smoke tests)")
    ap.add_argument("--init-from", default="", help="start from this checkpoint's weights (a fresh optimizer and schedule)")
    ap.add_argument("--resume", action="store_true", help="continue --out from its last checkpoint (same arguments)")
    a = ap.parse_args()

    import torch
    common.import_transformers()
    from transformers import OPTConfig
    from transformers.models.opt.modeling_opt import OPTForCausalLM

    torch.set_num_threads(a.threads)
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()

    tok = common.tokenizer(a.tokenizer)
    train_docs = common.read_docs(os.path.join(a.corpus, "train.jsonl"))
    held_docs = common.read_docs(os.path.join(a.corpus, "heldout.jsonl"))
    if a.max_docs:
        train_docs, held_docs = train_docs[: a.max_docs], held_docs[: a.max_docs]
    random.Random(a.seed).shuffle(train_docs)
    train = common.blocks(common.token_stream(tok, train_docs), a.seq)
    held = common.blocks(common.token_stream(tok, held_docs), a.seq)
    if len(train) == 0 or len(held) == 0:
        raise SystemExit(f"train: the corpus gives {len(train)} training and {len(held)} held-out blocks of {a.seq} tokens")
    eval_set = held[: a.eval_blocks]
    t_tok = time.time() - t0
    print(f"tokenized in {t_tok:.0f}s: {train.numel()} training tokens ({len(train)} blocks), "
          f"{held.numel()} held-out tokens ({len(held)} blocks)", flush=True)

    cfg = OPTConfig(vocab_size=len(tok.encoder), hidden_size=a.hidden, num_hidden_layers=a.layers, ffn_dim=a.ffn,
                    num_attention_heads=a.heads, max_position_embeddings=a.positions, do_layer_norm_before=True,
                    word_embed_proj_dim=a.hidden, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                    layerdrop=0.0, activation_function="relu", pad_token_id=1, bos_token_id=2, eos_token_id=2,
                    enable_bias=True, layer_norm_elementwise_affine=True)
    model = OPTForCausalLM(cfg)
    if a.init_from:
        model = OPTForCausalLM.from_pretrained(a.init_from, torch_dtype=torch.float32)
        shape = ("vocab_size", "hidden_size", "num_hidden_layers", "ffn_dim", "num_attention_heads",
                 "max_position_embeddings", "do_layer_norm_before")
        if any(getattr(model.config, k) != getattr(cfg, k) for k in shape):
            raise SystemExit(f"train: {a.init_from} is not shaped as the arguments ask ({', '.join(shape)})")
    ckpt = os.path.join(a.out, "checkpoint")
    resumed = None
    if a.resume:
        trainer = os.path.join(ckpt, "trainer.pt")
        if not os.path.exists(trainer):
            raise SystemExit(f"train: --resume: {trainer} does not exist (a checkpoint written before --resume existed, or none yet)")
        resumed = torch.load(trainer)
        differ = [k for k in RESUME_SAME if resumed["args"].get(k) != getattr(a, k)]
        if differ:
            raise SystemExit(f"train: --resume: {', '.join(f'--{k.replace(chr(95), chr(45))}' for k in differ)} "
                             f"differ from the run's ({', '.join(str(resumed['args'].get(k)) for k in differ)})")
        model = OPTForCausalLM.from_pretrained(ckpt, torch_dtype=torch.float32)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95), eps=1e-8)

    def lr_at(step):
        if step < a.warmup:
            return (step + 1) / a.warmup
        p = min(1.0, (step - a.warmup) / max(1, a.steps - a.warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)

    def heldout_loss(data):
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(data), a.batch):
                x = data[i: i + a.batch]
                out = model(input_ids=x, labels=x)
                n = x.shape[0] * (x.shape[1] - 1)
                total += out.loss.item() * n
                count += n
        model.train()
        return total / count

    def save(step, tokens, held_loss, reason):
        tmp = ckpt + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=False)
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(a.tokenizer, f), tmp)
        with open(os.path.join(tmp, "train_state.json"), "w") as f:
            json.dump({"step": step, "tokens": tokens, "heldout_loss": held_loss, "minutes": minutes_at(),
                       "reason": reason}, f, indent=1)
        torch.save({"args": {k: getattr(a, k) for k in RESUME_SAME}, "step": step, "held_loss": held_loss,
                    "optimizer": opt.state_dict(), "schedule": sched.state_dict(), "generator": gen.get_state(),
                    "order": order, "pos": pos, "epoch": epoch, "torch_rng": torch.get_rng_state(),
                    "minutes": minutes_at(), "train_minutes": train_minutes_at(), "resumes": resumes},
                   os.path.join(tmp, "trainer.pt"))
        shutil.rmtree(ckpt, ignore_errors=True)
        os.replace(tmp, ckpt)

    gen = torch.Generator().manual_seed(a.seed)
    order = torch.randperm(len(train), generator=gen)
    pos, epoch, first, resumes = 0, 0, 1, 0
    held_loss = float("nan")
    minutes0 = train_minutes0 = 0.0  # what earlier invocations of this run took
    curve = os.path.join(a.out, "loss.tsv")
    if resumed:
        opt.load_state_dict(resumed["optimizer"])
        sched.load_state_dict(resumed["schedule"])
        gen.set_state(resumed["generator"])
        torch.set_rng_state(resumed["torch_rng"])
        order, pos, epoch = resumed["order"], resumed["pos"], resumed["epoch"]
        first, held_loss = resumed["step"] + 1, resumed["held_loss"]
        minutes0, train_minutes0, resumes = resumed["minutes"], resumed["train_minutes"], resumed["resumes"] + 1
        # The curve keeps what the checkpoint had seen; later lines died with the run.
        with open(curve) as f:
            kept = [l for i, l in enumerate(f) if i == 0 or int(l.split("\t")[0]) <= resumed["step"]]
        with open(curve, "w") as f:
            f.writelines(kept)
        log = open(curve, "a")
        print(f"resumed at step {first} of {a.steps} (resume {resumes})", flush=True)
    else:
        log = open(curve, "w")
        log.write("step\ttokens\tminutes\tlr\ttrain_loss\theldout_loss\n")
    run_sum, run_n = 0.0, 0
    last_ckpt = time.time()
    t_train = time.time()

    def minutes_at():
        return minutes0 + (time.time() - t0) / 60

    def train_minutes_at():
        return train_minutes0 + (time.time() - t_train) / 60

    stop = "steps"
    step = first - 1
    model.train()
    for step in range(first, a.steps + 1):
        if pos + a.batch > len(order):
            order, pos, epoch = torch.randperm(len(train), generator=gen), 0, epoch + 1
        x = train[order[pos: pos + a.batch]]
        pos += a.batch
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        run_sum += loss.item()
        run_n += 1
        tokens = step * a.batch * a.seq
        minutes = minutes_at()
        evaluated = step % a.eval_every == 0 or step == a.steps
        if evaluated:
            held_loss = heldout_loss(eval_set)
        if step % a.log_every == 0 or evaluated:
            log.write(f"{step}\t{tokens}\t{minutes:.2f}\t{sched.get_last_lr()[0]:.3e}\t{run_sum / run_n:.4f}\t"
                      f"{held_loss if evaluated else ''}\n")
            log.flush()
            print(f"step {step} tokens {tokens} {minutes:.1f} min train {run_sum / run_n:.4f}"
                  + (f" held-out {held_loss:.4f}" if evaluated else "")
                  + f" ({(step - first + 1) * a.batch * a.seq / (time.time() - t_train):.0f} tok/s)", flush=True)
            run_sum, run_n = 0.0, 0
        if evaluated and a.target_loss and held_loss <= a.target_loss:
            stop = "target"
            break
        if (time.time() - t0) / 60 >= a.max_minutes:
            stop = "time"
            break
        if time.time() - last_ckpt >= a.ckpt_minutes * 60:
            save(step, tokens, held_loss, "periodic")
            last_ckpt = time.time()
    tokens = step * a.batch * a.seq
    save(step, tokens, held_loss, stop)
    train_minutes = train_minutes_at()
    run = {"args": vars(a), "argv": sys.argv, "resumes": resumes, "parameters": params, "train_tokens": train.numel(),
           "heldout_tokens": held.numel(), "steps": step, "tokens_seen": tokens, "epochs": tokens / train.numel(),
           "stop": stop, "train_minutes": train_minutes, "tokenize_seconds": t_tok, "last_heldout_loss": held_loss,
           "torch": torch.__version__}
    with open(os.path.join(a.out, "run.json"), "w") as f:
        json.dump(run, f, indent=1)
    print(json.dumps(run, indent=1), flush=True)


if __name__ == "__main__":
    main()
