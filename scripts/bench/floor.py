#!/usr/bin/env python3
"""Measures how far kvsim's replay sits from its floor, side by side in one run.

    /usr/bin/python3 scripts/bench/floor.py [-threads 1,2] [-rounds 3] [-layers 4]

Builds kvsim, writes one OPT-13B-shaped synthetic trace (40 heads of 128, 1024 prompt
+ 64 generated tokens, -layers layers, with V), and then, round after round so that
every figure sees the same load, times:

  floor   kvsim replay of full, window, h2o, auv and oracle at 5 budgets (25 cells),
          against the FLOP floor: the causal q·k products of every layer, head, prompt
          row and decode step (L·H·d·T·(T+1) FLOPs) at the sgemm rate numpy's OpenBLAS
          reaches on a 64×1024×128 attention block with the same thread count;
  cells   kvsim replay of 80 cells (window, h2o, tova and random at 20 budgets, 1% to
          20%) against 1 cell (h2o at 10%);
  peer    kvsim replay of full, window and h2o at the 5 budgets against
          scripts/peer/replay.py, a vectorized numpy replay of the same cells.

Every replay is timed end to end as a process (start, trace read, replay, JSON out),
in wall time and in CPU time (user + system, which a loaded machine disturbs less; the
sgemm rate is then per CPU second too), under nominal accounting, with -threads N for kvsim and OPENBLAS_NUM_THREADS=N for
numpy. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from numpy's environment so
that OpenBLAS picks its own kernels. The script prints each round's times and then the
median ratios per thread count. -baseline BIN times another kvsim build (an older
commit's) in the same rounds. Run it with Debian's python3 (python3-numpy).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMPT, GEN, HEADS, HEAD_DIM = 1024, 64, 40, 128
BUDGETS = ["0.02", "0.04", "0.06", "0.08", "0.10"]
SGEMM = (64, 1024, 128)  # a 64-row prefill block against 1024 keys of 128


def scenario(path, trace, policies, budgets):
    with open(path, "w") as f:
        f.write(f'title = "bench"\ntraces = ["{trace}"]\nbudgets = [{", ".join(budgets)}]\n')
        f.write('accounting = "nominal"\n')
        for p in policies:
            f.write(f'[[policy]]\nname = "{p}"\n')


def timed(cmd, env=None):
    """Runs cmd and returns its wall and CPU (user + system) seconds."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)}: exit {os.waitstatus_to_exitcode(status)}\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime


def numpy_env(threads):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


SGEMM_RATE = """
import time, numpy as np
m, n, k = %d, %d, %d
rng = np.random.default_rng(1)
a = rng.standard_normal((m, k), dtype=np.float32)
b = rng.standard_normal((n, k), dtype=np.float32)
c = a @ b.T
wall = cpu = 0.0
for _ in range(5):
    reps, start, start_cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < 0.2:
        np.matmul(a, b.T, out=c)
        reps += 1
    flop = 2 * m * n * k * reps
    wall = max(wall, flop / (time.perf_counter() - start))
    cpu = max(cpu, flop / (time.process_time() - start_cpu))
print(wall, cpu)
""" % SGEMM


def sgemm_rate(threads):
    r = subprocess.run([sys.executable, "-c", SGEMM_RATE], env=numpy_env(threads), capture_output=True, text=True, check=True)
    wall, cpu = r.stdout.split()
    return float(wall), float(cpu)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-threads", default="1,2")
    ap.add_argument("-rounds", type=int, default=3)
    ap.add_argument("-layers", type=int, default=4)
    ap.add_argument("-baseline", metavar="BIN", help="also time this kvsim binary (an older build), interleaved")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory(prefix="kvsim-floor-") as work:
        measure(args, threads, work)


def measure(args, threads, work):
    kvsim = os.path.join(work, "kvsim")
    subprocess.run(["go", "build", "-o", kvsim, "./cmd/kvsim"], cwd=ROOT, check=True)
    binaries = {"kvsim": kvsim}
    if args.baseline:
        binaries["baseline"] = os.path.abspath(args.baseline)
    out = subprocess.run([kvsim, "trace", "synth", "-preset", "opt-13b", "-layers", str(args.layers),
                          "-prompt", str(PROMPT), "-gen", str(GEN), "-out", work],
                         check=True, capture_output=True, text=True).stdout.split()
    trace = out[0]
    T = PROMPT + GEN
    flops = args.layers * HEADS * HEAD_DIM * T * (T + 1)
    runs = {
        "floor": (["full", "window", "h2o", "auv", "oracle"], BUDGETS),
        "one": (["h2o"], ["0.10"]),
        "eighty": (["window", "h2o", "tova", "random"], [f"{i / 100:.2f}" for i in range(1, 21)]),
        "peer": (["full", "window", "h2o"], BUDGETS),
    }
    for name, (policies, budgets) in runs.items():
        scenario(os.path.join(work, name + ".toml"), trace, policies, budgets)
    peer = [sys.executable, os.path.join(ROOT, "scripts/peer/replay.py"), "-budgets", ",".join(BUDGETS),
            "-policies", "full,window,h2o", trace]

    shared = {t: {"rate": [], "numpy": []} for t in threads}
    times = {(b, t): {name: [] for name in runs} for b in binaries for t in threads}
    for rnd in range(args.rounds):
        for t in threads:
            shared[t]["rate"].append(sgemm_rate(t))
            for b, path in binaries.items():
                m = times[b, t]
                for name in runs:
                    m[name].append(timed([path, "replay", "-threads", str(t), "-format", "json", "-progress", "off",
                                          os.path.join(work, name + ".toml")]))
                print(f"round {rnd + 1}, {b}, {t} thread(s), wall/CPU s: " +
                      ", ".join(f"{k} {m[k][-1][0]:.2f}/{m[k][-1][1]:.2f}" for k in runs), flush=True)
            shared[t]["numpy"].append(timed(peer, env=numpy_env(t)))
            print(f"round {rnd + 1}, {t} thread(s): sgemm {shared[t]['rate'][-1][0] / 1e9:.1f} GFLOP/s wall, "
                  f"{shared[t]['rate'][-1][1] / 1e9:.1f} per CPU second; numpy peer wall/CPU s "
                  f"{shared[t]['numpy'][-1][0]:.2f}/{shared[t]['numpy'][-1][1]:.2f}", flush=True)

    print(f"\ntrace: opt-13b shape, {args.layers} layers × {HEADS} heads × {HEAD_DIM}, {PROMPT}+{GEN} tokens; "
          f"floor FLOPs {flops / 1e9:.2f} G; medians of {args.rounds} rounds")
    for clock, i in (("wall", 0), ("CPU", 1)):
        print(f"\n{clock} time (the sgemm rate per {clock} second too):")
        print("| build | threads | sgemm GFLOP/s | floor s | 25-cell replay s | ÷ floor | 1 cell s | 80 cells s | 80 ÷ 1 | "
              "15 cells s | numpy peer s | numpy ÷ kvsim |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for b in binaries:
            for t in threads:
                med = {k: statistics.median(x[i] for x in v) for k, v in times[b, t].items()}
                rate = statistics.median(x[i] for x in shared[t]["rate"])
                numpy = statistics.median(x[i] for x in shared[t]["numpy"])
                floor = flops / rate
                print(f"| {b} | {t} | {rate / 1e9:.1f} | {floor:.3f} | {med['floor']:.2f} | {med['floor'] / floor:.1f}× | "
                      f"{med['one']:.2f} | {med['eighty']:.2f} | {med['eighty'] / med['one']:.1f}× | {med['peer']:.2f} | "
                      f"{numpy:.2f} | {numpy / med['peer']:.1f}× |")


if __name__ == "__main__":
    main()
