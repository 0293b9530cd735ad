#!/usr/bin/env bash
# gpu-check.sh: checks kvsim's CUDA backend end to end on a machine with an NVIDIA GPU.
#
# The machine needs the NVIDIA driver (libcuda.so.1) and nothing else: no Go, no
# network. Where python3 has torch, transformers, safetensors and numpy, the script
# also compares kvsim with transformers' OPTForCausalLM. See the README's "GPU check".
#
# Usage: gpu-check.sh [-o OUT_DIR] [-t CUDA_TEST_BINARY] [-q] [-d cpu] KVSIM_BINARY
#
#   KVSIM_BINARY       a kvsim built with -tags cuda (go build -tags cuda ./cmd/kvsim)
#   -o OUT_DIR         where the log, the summary and the artifacts go
#                      (default: gpu-check-YYYYmmdd-HHMMSS)
#   -t CUDA_TEST       optional: the kernel and backend tests, built with
#                      go test -c -tags cuda -o cuda.test ./gpu/cuda/
#   -q                 quick: skip the opt-13b-shaped timings
#   -d cpu             self-test of the script without a GPU: runs the steps that
#                      need none on the CPU backend (any kvsim build) and skips the
#                      rest; the tests run it this way
#
# Every step runs under a time limit, so the whole run stays under 8 minutes; a
# failing step is reported and the others still run. The exit status is 0 only when
# every step passed (skipped steps do not count as failures).
set -euo pipefail

out="gpu-check-$(date +%Y%m%d-%H%M%S)"
cuda_test=""
quick=0
device=cuda
while getopts "o:t:qd:h" opt; do
  case $opt in
    o) out=$OPTARG ;;
    t) cuda_test=$OPTARG ;;
    q) quick=1 ;;
    d) device=$OPTARG ;;
    h) sed -n '2,24p' "$0"; exit 0 ;;
    *) sed -n '2,24p' "$0" >&2; exit 2 ;;
  esac
done
if [ "$device" != cuda ] && [ "$device" != cpu ]; then
  echo "gpu-check: -d $device: want cuda (the default) or cpu" >&2
  exit 2
fi
shift $((OPTIND - 1))
if [ $# -ne 1 ]; then
  echo "gpu-check: want one KVSIM_BINARY argument (-h for help)" >&2
  exit 2
fi
kvsim=$(readlink -f "$1")
if [ ! -x "$kvsim" ]; then
  echo "gpu-check: $1 is not an executable" >&2
  exit 2
fi
if [ -n "$cuda_test" ]; then
  cuda_test=$(readlink -f "$cuda_test")
fi
mkdir -p "$out"
out=$(readlink -f "$out")
log="$out/gpu-check.log"
steps="$out/steps.tsv"
: >"$log"
: >"$steps"
failures=0
script_start=$(date +%s)
deadline=$((script_start + 470)) # every step ends by then: the run stays under 8 minutes

# step NAME LIMIT_SECONDS COMMAND...: runs COMMAND with its output in the log, under
# a time limit, and records the status and the time.
step() {
  local name=$1 limit=$2
  shift 2
  local start end status left
  left=$((deadline - $(date +%s)))
  if [ "$left" -lt 10 ]; then
    skip "$name" "out of time (the run is kept under 8 minutes)"
    failures=$((failures + 1))
    return
  fi
  if [ "$limit" -gt "$left" ]; then limit=$left; fi
  printf '\n===== %s (limit %ss): %s\n' "$name" "$limit" "$*" >>"$log"
  start=$(date +%s.%N)
  # bash -c lets the limit cover the exported shell functions (json, hf_bench) too.
  if timeout --signal=TERM --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >>"$log" 2>&1; then
    status=ok
  else
    local rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status="FAIL (timed out)"; else status="FAIL (exit $rc)"; fi
    failures=$((failures + 1))
  fi
  end=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%s\t%s\n' "$name" "$status" "$secs" >>"$steps"
  printf '[%-18s] %-16s %6ss  %s\n' "$status" "$name" "$secs" "$(date +%T)"
}

# skip NAME REASON records a step that could not run here.
skip() {
  printf '%s\tskipped: %s\t-\n' "$1" "$2" >>"$steps"
  printf '[%-18s] %s: %s\n' "skipped" "$1" "$2"
  printf '\n===== %s skipped: %s\n' "$1" "$2" >>"$log"
}

# json FILE COMMAND... writes the command's JSON line (the last line of its output)
# to FILE, and returns the command's status.
json() {
  local file=$1 rc=0
  shift
  "$@" >"$file.tmp" || rc=$?
  tail -n 1 "$file.tmp" >"$file"
  rm -f "$file.tmp"
  cat "$file"
  return $rc
}
export -f json

have_python=0
if command -v python3 >/dev/null && python3 -c "import numpy" 2>/dev/null; then have_python=1; fi
have_hf=0
if [ $have_python = 1 ] && python3 -c "import torch, transformers, safetensors" 2>/dev/null; then have_hf=1; fi

echo "gpu-check: kvsim $kvsim, output in $out"

# on_gpu NAME: true when the run has a GPU; otherwise records NAME as skipped.
on_gpu() {
  if [ "$device" = cuda ]; then return 0; fi
  skip "$1" "-d cpu"
  return 1
}

# 1. The machine.
if on_gpu machine; then
  # shellcheck disable=SC2016 # $0 is the inner shell's: the binary
  step machine 30 bash -c 'set -e; nvidia-smi; echo; uname -a; echo; ldd "$0"' "$kvsim"
fi
if on_gpu device; then
  step device 60 json "$out/device.json" "$kvsim" gpu info
fi

# 2. Kernels and the backend against plain float64 references and the CPU backend.
if [ "$device" = cpu ]; then
  skip kernel-tests "-d cpu"
elif [ -n "$cuda_test" ]; then
  step kernel-tests 120 "$cuda_test" -test.v -test.count=1 \
    -test.run 'TestLinear|TestLinearSplit|TestLayerNormAndEmbed|TestAttention|TestEvictMergesIntoCompensation|TestBackendMatchesCPU'
else
  skip kernel-tests "no -t CUDA_TEST binary given"
fi

# 3. A small random OPT in Hugging Face format, pre-LN, and a post-LN one shaped like
#    opt-350m; CUDA against CPU on both (logits, q/k/v, attention, greedy tokens, and
#    a run with eviction into compensation slots).
tiny="$out/tiny-opt"
tiny_post="$out/tiny-opt-post"
step synth 60 "$kvsim" model synth -preset opt-125m -layers 4 -hidden 256 -heads 4 -vocab 300 -seed 3 "$tiny"
step synth-post 60 "$kvsim" model synth -preset opt-350m -layers 2 -hidden 128 -heads 4 -vocab 300 -seed 4 "$tiny_post"
if on_gpu compare; then
  step compare 120 json "$out/compare.json" "$kvsim" gpu compare -model "$tiny" -prompt 96 -gen 24 -dump "$out/compare"
fi
if on_gpu compare-post; then
  step compare-post 120 json "$out/compare-post.json" "$kvsim" gpu compare -model "$tiny_post" -prompt 40 -gen 8
fi

# 4. Capture on both backends, then replay and (where the command exists) validate.
data="$out/data.jsonl"
python_or_awk_data() {
  local i
  for i in 1 2 3; do
    printf '{"document": "Sample %d. The committee met on Tuesday to discuss the budget for the new library. Members agreed that the reading rooms need more light, that the archive should move to the basement, and that opening hours should be longer on weekends. A vote is expected next month after a public consultation.", "summary": "The committee discussed the library budget; a vote follows next month."}\n' "$i"
  done >"$data"
}
python_or_awk_data
if on_gpu capture-cuda; then
  step capture-cuda 120 "$kvsim" capture -device cuda -progress off -model "$tiny" -data "$data" -out "$out/traces-cuda" -samples 2 -gen 16 -ignore-eos -dtype f32
fi
step capture-cpu 120 "$kvsim" capture -device cpu -progress off -model "$tiny" -data "$data" -out "$out/traces-cpu" -samples 2 -gen 16 -ignore-eos -dtype f32
if [ "$device" = cpu ]; then
  skip trace-attention "-d cpu"
elif [ $have_python = 1 ]; then
  step trace-attention 60 python3 - "$out/traces-cpu" "$out/traces-cuda" "$out/traces.json" <<'PY'
# Compares the CPU- and CUDA-captured traces of each sample: the tokens, q and k, and
# the causal attention recomputed from each trace's q and k, with numpy.
import glob, json, os, sys
import numpy as np
from safetensors.numpy import load_file

cpu_dir, cuda_dir, report = sys.argv[1:4]
worst = {"q_rel_err": 0.0, "k_rel_err": 0.0, "attention_max_abs_err": 0.0}
samples, rows_compared = 0, 0
for cpu_path in sorted(glob.glob(os.path.join(cpu_dir, "*.safetensors"))):
    cuda_path = os.path.join(cuda_dir, os.path.basename(cpu_path))
    if not os.path.exists(cuda_path):
        sys.exit(f"{cuda_path}: missing (the CPU capture has {cpu_path})")
    a, b = load_file(cpu_path), load_file(cuda_path)
    ta, tb = a["tokens"], b["tokens"]
    n = min(len(ta), len(tb))
    equal = ta[:n] == tb[:n]
    same = n if equal.all() else int(np.argmin(equal))  # tokens before the first difference
    print(f"{os.path.basename(cpu_path)}: {len(ta)} tokens, identical for the first {same}")
    layers = sorted(int(k.split(".")[1]) for k in a if k.endswith(".q"))
    for l in layers:
        qa, ka = a[f"layer.{l}.q"].astype(np.float64)[:, :same], a[f"layer.{l}.k"].astype(np.float64)[:, :same]
        qb, kb = b[f"layer.{l}.q"].astype(np.float64)[:, :same], b[f"layer.{l}.k"].astype(np.float64)[:, :same]
        worst["q_rel_err"] = max(worst["q_rel_err"], float(np.linalg.norm(qb - qa) / np.linalg.norm(qa)))
        worst["k_rel_err"] = max(worst["k_rel_err"], float(np.linalg.norm(kb - ka) / np.linalg.norm(ka)))
        mask = np.triu(np.ones((same, same), dtype=bool), 1)
        def attention(q, k):
            s = q @ k.transpose(0, 2, 1)
            s[:, mask] = -np.inf
            s -= s.max(axis=-1, keepdims=True)
            p = np.exp(s)
            return p / p.sum(axis=-1, keepdims=True)
        err = np.abs(attention(qb, kb) - attention(qa, ka)).max()
        worst["attention_max_abs_err"] = max(worst["attention_max_abs_err"], float(err))
        rows_compared += same * qa.shape[0]
    samples += 1
if samples == 0:
    sys.exit(f"no traces in {cpu_dir}")
worst.update(samples=samples, rows_compared=rows_compared)
json.dump(worst, open(report, "w"))
print(json.dumps(worst))
if worst["attention_max_abs_err"] > 1e-2 or worst["q_rel_err"] > 1e-2 or worst["k_rel_err"] > 1e-2:
    sys.exit("CUDA traces differ from CPU traces beyond fp16 tolerance")
PY
else
  skip trace-attention "python3 with numpy and safetensors not found"
fi
cat >"$out/replay.toml" <<TOML
title = "gpu-check: builtin policies on $device-captured traces of a tiny random OPT"
seed = 1
budgets = [0.25, 0.5]
traces = ["traces-$device/*.safetensors"]

[[policy]]
name = "full"

[[policy]]
name = "window"

[[policy]]
name = "h2o"

[[policy]]
name = "auv"
TOML
step replay 120 "$kvsim" replay -progress off -out "$out/replay.csv" -format csv "$out/replay.toml"
# Validate the 2 policies the replay ranks highest, with the policy deciding
# evictions inside the model on the device.
{ cat "$out/replay.toml"; cat <<TOML

[validate]
model = "tiny-opt"
data = "data.jsonl"
samples = 2
gen_tokens = 16
ignore_eos = true
top = 2
TOML
} >"$out/validate.toml"
step validate 180 "$kvsim" validate -device "$device" -progress off -out "$out/validate.csv" -format csv -plot "$out/validate.svg" "$out/validate.toml"

# 5. Timings of random OPT-shaped models built on the device, against the HBM floor:
#    plain decoding, with every layer's attention copied to the host, and with
#    multi-step AUV deciding evictions in the loop (budget 10% of the prompt).
if [ "$device" = cpu ]; then
  for name in bench-1.3b bench-1.3b-attn bench-1.3b-auv bench-13b bench-13b-attn bench-13b-auv; do skip "$name" "-d cpu"; done
else
  step bench-1.3b 120 json "$out/bench-opt-1.3b.json" "$kvsim" gpu bench -preset opt-1.3b -prompt 512 -gen 64
  step bench-1.3b-attn 120 json "$out/bench-opt-1.3b-attn.json" "$kvsim" gpu bench -preset opt-1.3b -prompt 512 -gen 64 -attention
  step bench-1.3b-auv 120 json "$out/bench-opt-1.3b-auv.json" "$kvsim" gpu bench -preset opt-1.3b -prompt 512 -gen 64 -policy auv
  if [ $quick = 0 ]; then
    step bench-13b 180 json "$out/bench-opt-13b.json" "$kvsim" gpu bench -preset opt-13b -prompt 512 -gen 32
    step bench-13b-attn 180 json "$out/bench-opt-13b-attn.json" "$kvsim" gpu bench -preset opt-13b -prompt 512 -gen 32 -attention
    step bench-13b-auv 180 json "$out/bench-opt-13b-auv.json" "$kvsim" gpu bench -preset opt-13b -prompt 512 -gen 32 -policy auv
  else
    for name in bench-13b bench-13b-attn bench-13b-auv; do skip "$name" "quick run (-q)"; done
  fi
fi

# 6. transformers: the same weights through OPTForCausalLM, and its eager decode speed.
if [ "$device" = cpu ]; then
  skip hf-logits "-d cpu"
elif [ $have_hf = 1 ]; then
  step hf-logits 150 python3 - "$tiny" "$out/compare" "$out/hf-logits.json" <<'PY'
# Loads the synthesized checkpoint with OPTForCausalLM in float32 on the GPU, runs the
# prompt plus the teacher-forced tokens kvsim decoded, and compares each step's
# next-token logits and greedy choice with kvsim's CPU and CUDA backends.
import json, sys
import numpy as np
import torch
from transformers import OPTForCausalLM

model_dir, dump, report = sys.argv[1:4]
try:
    model = OPTForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
except TypeError:
    model = OPTForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
model = model.to("cuda").eval()
tok = json.load(open(f"{dump}/tokens.json"))
prompt, inputs = tok["prompt"], tok["inputs"]
ids = torch.tensor([prompt + inputs], device="cuda")
with torch.no_grad():
    logits = model(ids).logits[0].double().cpu().numpy()
steps = len(inputs) + 1
hf = logits[len(prompt) - 1 : len(prompt) - 1 + steps]
result = {"steps": steps}
for name in ("cpu", "cuda"):
    kv = np.fromfile(f"{dump}/logits-{name}.f32", dtype="<f4").reshape(steps, -1).astype(np.float64)
    rel = np.linalg.norm(kv - hf, axis=1) / np.linalg.norm(hf, axis=1)
    result[f"{name}_logits_rel_err"] = float(rel.max())
    greedy = tok[f"{name}_greedy"]
    agree = 0
    while agree < steps and int(hf[agree].argmax()) == greedy[agree]:
        agree += 1
    result[f"{name}_tokens_agree"] = agree
    # A different choice counts only when transformers' logit for its own token beats
    # kvsim's by more than ten times the logits' error: not a near-tie.
    result[f"{name}_clear_disagreements"] = sum(
        1 for i in range(steps)
        if hf[i].max() - hf[i][greedy[i]] > 10 * rel.max() * np.abs(hf[i]).max())
json.dump(result, open(report, "w"))
print(json.dumps(result))
if result["cuda_logits_rel_err"] > 1e-2 or result["cpu_logits_rel_err"] > 1e-3:
    sys.exit("kvsim's logits differ from transformers'")
if result["cuda_clear_disagreements"] or result["cpu_clear_disagreements"]:
    sys.exit("kvsim's greedy tokens differ from transformers' beyond near-ties")
PY
  hf_bench() {
    python3 - "$@" <<'PY'
# Times transformers' eager OPT, fp16, random weights made on the GPU: one prefill and
# greedy decode steps with its KV cache, as kvsim gpu bench does.
import json, statistics, sys, time
import torch
from transformers import OPTConfig, OPTForCausalLM

preset, prompt_len, gen, report = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
shapes = {"opt-1.3b": (24, 2048, 32), "opt-13b": (40, 5120, 40)}
layers, hidden, heads = shapes[preset]
cfg = OPTConfig(vocab_size=50272, hidden_size=hidden, num_hidden_layers=layers, ffn_dim=4 * hidden,
                num_attention_heads=heads, max_position_embeddings=2048, word_embed_proj_dim=hidden,
                do_layer_norm_before=True)
cfg._attn_implementation = "eager"
torch.manual_seed(0)
torch.set_default_dtype(torch.float16)
with torch.device("cuda"):
    model = OPTForCausalLM(cfg).eval()
ids = torch.randint(0, cfg.vocab_size, (1, prompt_len), device="cuda")
def timed(f):
    torch.cuda.synchronize(); t = time.perf_counter(); r = f(); torch.cuda.synchronize()
    return r, time.perf_counter() - t
with torch.no_grad():
    model(ids[:, :16])  # warm-up
    out, prefill = timed(lambda: model(ids, use_cache=True))
    past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
    times = []
    for _ in range(gen):
        out, t = timed(lambda: model(nxt, past_key_values=past, use_cache=True))
        past, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        times.append(t)
result = {"preset": preset, "attention": cfg._attn_implementation, "prefill_s": prefill,
          "prefill_tokens_per_s": prompt_len / prefill, "decode_median_s": statistics.median(times[1:]),
          "decode_tokens_per_s": 1 / statistics.median(times[1:])}
json.dump(result, open(report, "w"))
print(json.dumps(result))
PY
  }
  export -f hf_bench
  step hf-bench-1.3b 150 hf_bench opt-1.3b 512 64 "$out/hf-bench-opt-1.3b.json"
  if [ $quick = 0 ]; then
    step hf-bench-13b 180 hf_bench opt-13b 512 32 "$out/hf-bench-opt-13b.json"
  else
    skip hf-bench-13b "quick run (-q)"
  fi
else
  skip hf-logits "python3 cannot import torch, transformers and safetensors"
fi

# 7. The summary.
summary="$out/summary.md"
{
  echo "# kvsim GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "| step | status | seconds |"
  echo "| --- | --- | ---: |"
  awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$steps"
} >"$summary"
if command -v python3 >/dev/null; then
  python3 - "$out" >>"$summary" <<'PY' || echo "(the metrics table could not be built; see the JSON files)" >>"$summary"
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError):
        return None
rows = []
def add(check, value, target, ok):
    rows.append((check, value, target, "ok" if ok else "MISSED"))
dev = load("device.json")
if dev:
    rows.append(("device", f'{dev["device"]} (sm_{dev["compute_capability"].replace(".", "")}, {dev["multiprocessors"]} SMs)', "", ""))
    rows.append(("copy bandwidth (read+write)", f'{dev["copy_bandwidth_bytes_per_s"] / 1e12:.2f} TB/s', "", ""))
for name, label in (("compare.json", "pre-LN"), ("compare-post.json", "post-LN")):
    c = load(name)
    if c:
        add(f"CUDA vs CPU logits, {label}", f'{c["logits_rel_err"]:.2e} (evicting: {c["evict_logits_rel_err"]:.2e})', "< 1e-2",
            max(c["logits_rel_err"], c["evict_logits_rel_err"]) < 1e-2)
        add(f"CUDA vs CPU attention, {label}", f'max Δp {c["probs_max_abs_err"]:.2e}, q/k/v {c["qkv_rel_err"]:.2e}', "< 1e-2",
            c["probs_max_abs_err"] < 1e-2)
        add(f"greedy tokens, {label}", f'{c["tokens_agree"]}/{c["tokens"]} agree before the first difference, {c["tokens_clear_disagreements"]} beyond near-ties',
            "no difference beyond near-ties", c["tokens_clear_disagreements"] == 0)
t = load("traces.json")
if t:
    add("captured traces, CUDA vs CPU", f'attention max Δp {t["attention_max_abs_err"]:.2e}, q {t["q_rel_err"]:.2e}', "< 1e-2",
        t["attention_max_abs_err"] < 1e-2)
h = load("hf-logits.json")
if h:
    add("transformers vs kvsim logits", f'CUDA {h["cuda_logits_rel_err"]:.2e}, CPU {h["cpu_logits_rel_err"]:.2e}', "< 1e-2",
        h["cuda_logits_rel_err"] < 1e-2)
    add("transformers vs kvsim greedy", f'CUDA {h["cuda_tokens_agree"]}/{h["steps"]} agree before the first difference, {h["cuda_clear_disagreements"]} beyond near-ties',
        "no difference beyond near-ties", h["cuda_clear_disagreements"] == 0 and h["cpu_clear_disagreements"] == 0)
for preset in ("opt-1.3b", "opt-13b"):
    b, ba, bp, hf = (load(f"bench-{preset}.json"), load(f"bench-{preset}-attn.json"), load(f"bench-{preset}-auv.json"),
                     load(f"hf-bench-{preset}.json"))
    if b:
        add(f"{preset} decode vs HBM floor", f'{b["decode_median_s"] * 1e3:.2f} ms/token, floor {b["decode_floor_s"] * 1e3:.2f} ms: {100 * b["floor_ratio"]:.0f}%',
            "≥ 60% (opt-13b)", preset != "opt-13b" or b["floor_ratio"] >= 0.6)
        rows.append((f"{preset} prefill", f'{b["prefill_tokens_per_s"]:.0f} tokens/s ({b["prompt_tokens"]} tokens in {b["prefill_s"]:.3f} s)', "", ""))
        rows.append((f"{preset} driver calls per decode token", f'{b["launches_per_token"]} launches, {b["uploads_per_token"]} uploads, {b["downloads_per_token"]} downloads, {b["syncs_per_token"]} waits', "", ""))
    if b and ba:
        over = ba["decode_median_s"] / b["decode_median_s"] - 1
        rows.append((f"{preset} attention to host each step", f'{ba["decode_median_s"] * 1e3:.2f} ms/token (+{100 * over:.1f}%), {ba["downloads_per_token"]} copies', "", ""))
    if bp:  # its plain decode rate is its own run's, before the policy run
        add(f"{preset} multi-step AUV overhead", f'policy {bp["policy_us_per_token"]:.0f} µs + slots {bp["slot_us_per_token"]:.0f} µs per token: {100 * bp["eviction_share"]:.1f}% of decode (budget {bp["budget"]})',
            "< 5% of decode (opt-13b)", preset != "opt-13b" or bp["eviction_share"] < 0.05)
        rows.append((f"{preset} decode with AUV in the loop", f'{bp["policy_decode_tokens_per_s"]:.1f} vs {bp["decode_tokens_per_s"]:.1f} tokens/s plain', "", ""))
    if b and hf:
        add(f"{preset} decode vs transformers eager", f'{b["decode_tokens_per_s"]:.1f} vs {hf["decode_tokens_per_s"]:.1f} tokens/s', "≥ 1×",
            b["decode_tokens_per_s"] >= hf["decode_tokens_per_s"])
print()
print("| check | measured | target | |")
print("| --- | --- | --- | --- |")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
PY
fi
total=$(( $(date +%s) - script_start ))
echo >>"$summary"
echo "Total: ${total} s; failed steps: $failures. Full output: gpu-check.log." >>"$summary"
echo
cat "$summary"
echo
echo "gpu-check: summary $summary, log $log"
[ "$failures" -eq 0 ]
