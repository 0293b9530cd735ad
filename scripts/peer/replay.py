#!/usr/bin/env python3
"""A vectorized numpy replay of kvsim's full, window and h2o cells on kvtrace files.

It is kvsim's measuring stick: an independent implementation of the same replay
protocol (README, "The replay protocol") under nominal accounting, written the way a
researcher would write it in numpy, vectorized over heads. tests/peer_test.go holds
its hit rates to kvsim's; scripts/bench/floor.sh times the two side by side.

    python3 scripts/peer/replay.py -budgets 0.05,0.1,64 -policies full,window,h2o FILE...

prints one JSON object: {"cells": [{"policy", "budget", "hit_rate", "layers"}...],
"seconds"}: each cell's hit rate over all layers and per layer, and the replay's time
after the traces' headers are parsed (reading the layers included). Policies take kvsim's defaults: window keeps 4 sink tokens, h2o
gives half of the budget to its recent window. A budget with a decimal point is a
fraction of each prompt, one without a token count.
"""

import argparse
import json
import math
import struct
import sys
import time

import numpy as np

SINK = 4
RECENT_SHARE = 0.5
MAX_HEADER = 100 << 20  # kvtrace's bound on the JSON header


class Trace:
    """One kvtrace file (a safetensors file; sim/kvtrace/doc.go has the layout)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > MAX_HEADER:
                sys.exit(f"{path}: header of {n} bytes is over {MAX_HEADER}")
            header = json.loads(f.read(n))
        self.data_start = 8 + n
        meta = header.pop("__metadata__")
        if meta.get("format") != "kvtrace":
            sys.exit(f"{path}: not a kvtrace file")
        self.tensors = header
        self.layers = int(meta["layers"])
        self.heads = int(meta["heads"])
        self.head_dim = int(meta["head_dim"])
        self.prompt = int(meta["prompt_len"])
        self.tokens = self.prompt + int(meta["gen_len"])

    def read(self, name):
        """Returns a layer tensor as float32 [heads, tokens, head_dim]."""
        t = self.tensors[name]
        begin, end = t["data_offsets"]
        raw = np.fromfile(self.path, dtype=np.uint8, count=end - begin, offset=self.data_start + begin)
        if t["dtype"] == "F16":
            x = raw.view("<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            x = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        elif t["dtype"] == "F32":
            x = raw.view("<f4").astype(np.float32)
        else:
            sys.exit(f"{self.path}: {name}: dtype {t['dtype']}")
        return x.reshape(t["shape"])


def round_half_away(x):
    """Go's math.Round for x ≥ 0."""
    r = math.floor(x)
    return r + 1 if x - r >= 0.5 else r


def budget_tokens(spec, prompt):
    if "." in spec:
        return max(1, int(round_half_away(float(spec) * prompt)))
    return int(spec)


def softmax_rows(x):
    """Softmax of each row of x (float32, -inf where masked)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Layer:
    """The full-cache attention of one (sample, layer), shared by every cell."""

    def __init__(self, trace, layer, prefill_scores):
        q = trace.read(f"layer.{layer}.q")
        k = trace.read(f"layer.{layer}.k")
        P, T = trace.prompt, trace.tokens
        self.P, self.T, self.H = P, T, trace.heads
        # Decode rows t = P..T-1 attend to 0..t.
        logits = np.matmul(q[:, P:], k.transpose(0, 2, 1))  # [H, G, T]
        causal = np.arange(T)[None, :] <= np.arange(P, T)[:, None]  # [G, T]
        self.logits = np.where(causal, logits, np.float32(-np.inf))
        self.full = softmax_rows(self.logits)
        # h2o's prefill scores: column sums of the causal prompt attention, blockwise
        # so that [H, P, P] never exists at once.
        self.prefill = None
        if prefill_scores:
            self.prefill = np.zeros((self.H, T), dtype=np.float64)
            for r0 in range(0, P, 256):
                r1 = min(P, r0 + 256)
                s = np.matmul(q[:, r0:r1], k[:, :P].transpose(0, 2, 1))
                mask = np.arange(P)[None, :] <= np.arange(r0, r1)[:, None]
                a = softmax_rows(np.where(mask, s, np.float32(-np.inf)))
                self.prefill[:, :P] += a.sum(axis=1, dtype=np.float64)


def resident_probs(logits, resident):
    """The counterfactual attention of one decode row over the resident tokens."""
    x = np.where(resident, logits, np.float32(-np.inf))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e * (np.float32(1) / e.sum(axis=1, dtype=np.float64, keepdims=True)).astype(np.float32)


def replay_full(l):
    return sum(float(l.full[:, g].sum(dtype=np.float64)) for g in range(l.T - l.P))


def replay_window(l, B):
    """StreamingLLM: sinks plus the newest tokens (policies/window)."""
    sink = min(SINK, B - 1, l.P)
    hit = 0.0
    for g in range(l.T - l.P):
        t = l.P + g
        # Resident while attending: the sinks and the newest B - sink tokens up to t.
        recent_from = max(sink, t + 1 - (B + 1 - sink))
        hit += float(l.full[:, g, :sink].sum(dtype=np.float64) + l.full[:, g, recent_from:t + 1].sum(dtype=np.float64))
    return hit


def replay_h2o(l, B):
    """Heavy hitters plus a recent window (policies/h2o), one victim per step per head."""
    H, P, T = l.H, l.P, l.T
    recent = min(B, max(1, int(B * RECENT_SHARE + 0.5)))
    score = l.prefill.copy()
    resident = np.zeros((H, T), dtype=bool)
    resident[:, :P] = True
    pos = np.arange(T)
    if P > B:
        cutoff = P - recent
        order = np.argsort(score[:, :cutoff], axis=1, kind="stable")[:, :P - B]
        rows = np.arange(H)[:, None]
        resident[rows, order] = False
        score[rows, order] = 0
    heads = np.arange(H)
    hit = 0.0
    for g in range(T - P):
        t = P + g
        resident[:, t] = True
        probs = resident_probs(l.logits[:, g], resident)
        score += probs
        hit += float(np.where(resident, l.full[:, g], 0).sum(dtype=np.float64))
        over = resident.sum(axis=1) > B
        if over.any():
            cand = resident & (pos < t + 1 - recent)
            victim = np.argmin(np.where(cand, score, np.inf), axis=1)  # first minimum: the older
            resident[heads[over], victim[over]] = False
            score[heads[over], victim[over]] = 0
    return hit


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-budgets", required=True)
    ap.add_argument("-policies", default="full,window,h2o")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    policies = args.policies.split(",")
    for p in policies:
        if p not in ("full", "window", "h2o"):
            sys.exit(f"policy {p!r}: the peer replays full, window and h2o")
    budgets = args.budgets.split(",")
    traces = [Trace(f) for f in args.files]
    start = time.perf_counter()
    layers = traces[0].layers
    if any(tr.layers != layers for tr in traces):
        sys.exit("the traces have different layer counts")
    # hits[p, b][layer] sums over samples, heads and decode rows; n[layer] counts them.
    hits = {(p, b): [0.0] * layers for p in policies for b in budgets}
    n = [0] * layers
    for tr in traces:
        for layer in range(layers):
            l = Layer(tr, layer, "h2o" in policies)
            n[layer] += tr.heads * (tr.tokens - tr.prompt)
            for p in policies:
                for b in budgets:
                    B = budget_tokens(b, tr.prompt)
                    if p == "full":
                        hits[p, b][layer] += replay_full(l)
                    elif p == "window":
                        hits[p, b][layer] += replay_window(l, B)
                    else:
                        hits[p, b][layer] += replay_h2o(l, B)
    seconds = time.perf_counter() - start
    cells = [{"policy": p, "budget": b, "hit_rate": sum(hits[p, b]) / sum(n),
              "layers": [h / m for h, m in zip(hits[p, b], n)]} for p in policies for b in budgets]
    json.dump({"cells": cells, "seconds": seconds}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
