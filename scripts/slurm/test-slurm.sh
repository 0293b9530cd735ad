#!/usr/bin/env bash
# Tests kvsim's Slurm recipe on a real Slurm: starts munged, slurmctld and slurmd
# on this machine with a generated configuration in a temporary directory, submits
# a 4-shard replay array and its merge job (submit.sh), and checks that the merged
# JSON equals one `kvsim replay` of the same scenario, timings aside. Then it
# cancels one shard of a second run, checks that `kvsim merge` names it, reruns it
# alone (submit.sh -only) and checks the set again. It stops every daemon it
# started, by pid, however it exits.
#
#   scripts/slurm/test-slurm.sh [KVSIM_BINARY]
#
# Needs root (slurmd runs the jobs as their user, and the generated configuration
# runs everything as root), Debian's slurm-wlm and munge (apt-get install
# slurm-wlm munge), jq, and Go when no binary is given. It installs nothing.
# Bounded: each wait gives up after $WAIT_S seconds (default 300).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=$PWD/scripts/slurm
wait_s=${WAIT_S:-300}

for c in munged slurmctld slurmd sbatch squeue scontrol scancel sinfo jq; do
  command -v "$c" >/dev/null || { echo "test-slurm: $c not found: apt-get install slurm-wlm munge jq" >&2; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
  echo "test-slurm: must run as root: the generated Slurm runs its daemons and jobs as root" >&2
  exit 1
fi

tmp=$(mktemp -d /tmp/kvsim-slurm.XXXXXX)
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ $status -ne 0 ]; then
    echo "test-slurm: FAILED; the queue, then the daemon logs:" >&2
    squeue -o '%i %j %T %r' >&2 2>/dev/null || true
    tail -n 20 "$tmp"/*.log >&2 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ $# -ge 1 ]; then
  kvsim=$(realpath "$1")
else
  echo "== go build kvsim"
  go build -o "$tmp/kvsim" ./cmd/kvsim
  kvsim=$tmp/kvsim
fi
export KVSIM=$kvsim

echo "== munged, slurmctld, slurmd in $tmp"
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool"
chmod 700 "$tmp/munge"
head -c 1024 /dev/urandom >"$tmp/munge/munge.key"
chmod 400 "$tmp/munge/munge.key"
munged --foreground --force --socket="$tmp/munge/socket" --key-file="$tmp/munge/munge.key" \
  --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/seed" --log-file="$tmp/munged.log" 2>>"$tmp/munged.log" &
pids+=($!)

host=$(hostname)
port=$((20000 + RANDOM % 20000))
cat >"$tmp/slurm.conf" <<CONF
ClusterName=kvsimtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=100000,bf_interval=1
ReturnToService=2
MinJobAge=600
NodeName=$host CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$tmp/slurm.conf
for _ in $(seq 50); do [ -S "$tmp/munge/socket" ] && break; sleep 0.1; done
slurmctld -D -i -f "$SLURM_CONF" >>"$tmp/slurmctld.log" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >>"$tmp/slurmd.log" 2>&1 &
pids+=($!)

# wait_until DESCRIPTION COMMAND...: polls COMMAND until it succeeds, for $wait_s at most.
wait_until() {
  local what=$1 deadline=$((SECONDS + wait_s))
  shift
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "test-slurm: gave up after ${wait_s}s waiting for $what" >&2
      return 1
    fi
    sleep 0.5
  done
}
node_idle() { [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; }
wait_until "the node to be idle" node_idle
# job_done ID: the job has ended (scontrol keeps ended jobs for MinJobAge).
job_done() { scontrol -o show job "$1" 2>/dev/null | grep -Eq 'JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)'; }
job_state() { scontrol -o show job "$1" | grep -o 'JobState=[A-Z_]*' | head -n1; }
array_gone() { [ -z "$(squeue -h -j "$1" 2>/dev/null)" ]; }
# timings drops what is measured, not computed: policy and host time and the perf block.
timings() { jq -S 'del(.perf) | del(.cells[].policy_ns_per_head_step) | del(.cells[].host_ns_per_head_step)' "$1"; }

cat >"$tmp/scenario.toml" <<'TOML'
title = "slurm test: the demo's policies on 8 synthetic samples"
seed = 7
budgets = [0.02, 0.06, 0.10]
[synth]
preset = "opt-125m"
layers = 4
prompt_len = 384
gen_len = 48
samples = 8
[[policy]]
name = "full"
[[policy]]
name = "window"
params = { sink = 4 }
[[policy]]
name = "h2o"
[[policy]]
name = "oracle"
[[policy]]
name = "auv"
[[policy]]
name = "nacl"
TOML

echo "== one replay on this machine"
start=$(date +%s.%N)
"$kvsim" replay -format json -out "$tmp/single.json" -progress off "$tmp/scenario.toml"
single_s=$(awk "BEGIN { print $(date +%s.%N) - $start }")

echo "== 4 shards and the merge job on Slurm"
start=$(date +%s.%N)
read -r array merge < <("$here/submit.sh" -n 4 -c 1 "$tmp/scenario.toml" "$tmp/run1" 2>/dev/null)
wait_until "merge job $merge" job_done "$merge"
slurm_s=$(awk "BEGIN { print $(date +%s.%N) - $start }")
if [ "$(job_state "$merge")" != JobState=COMPLETED ]; then
  echo "test-slurm: merge job $merge: $(job_state "$merge")" >&2
  cat "$tmp"/run1/*.out >&2
  exit 1
fi
cmp <(timings "$tmp/single.json") <(timings "$tmp/run1/merged.json")
echo "ok: merged JSON of array $array = one replay (timings aside)"
printf 'time: one replay %.1f s; 4 Slurm shards + merge, submission to merged results, %.1f s\n' "$single_s" "$slurm_s"

echo "== a cancelled shard is named by merge, and its rerun completes the set"
read -r array merge < <("$here/submit.sh" -n 4 -c 1 "$tmp/scenario.toml" "$tmp/run2")
scancel "${array}_2"
wait_until "array $array" array_gone "$array"
wait_until "merge job $merge to be cancelled" job_done "$merge"
if "$kvsim" merge "$tmp"/run2/shard-*.json >/dev/null 2>"$tmp/merge.err"; then
  echo "test-slurm: merge accepted a set without shard 2" >&2
  exit 1
fi
grep -q 'missing 1 of 4 shards: 2/4' "$tmp/merge.err" || { cat "$tmp/merge.err" >&2; exit 1; }
echo "ok: $(cat "$tmp/merge.err")"
read -r array merge < <("$here/submit.sh" -n 4 -c 1 -only 2 "$tmp/scenario.toml" "$tmp/run2")
wait_until "merge job $merge" job_done "$merge"
[ "$(job_state "$merge")" = JobState=COMPLETED ] || { cat "$tmp"/run2/*.out >&2; exit 1; }
cmp <(timings "$tmp/single.json") <(timings "$tmp/run2/merged.json")
echo "ok: after rerunning shard 2 alone (array $array), the merged JSON = one replay"
echo "PASS"
