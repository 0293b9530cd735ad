#!/usr/bin/env bash
# Submits a sharded replay and the merge that waits for it:
#
#   scripts/slurm/submit.sh [-n SHARDS] [-c CPUS] [-only LIST] SCENARIO.toml OUTDIR
#
# -n is the number of shards (default 4), -c the CPUs of each (default: replay.sbatch's
# 4); -only reruns some of them (LIST as sbatch --array takes it, like 2 or 1,3) and
# merges again. Prints the two job ids,
# "ARRAY MERGE", on stdout. Slurm's own SBATCH_* variables (SBATCH_PARTITION,
# SBATCH_ACCOUNT, ...) and $KVSIM reach both jobs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shards=4 only='' cpus=()
while [ $# -gt 0 ]; do
  case $1 in
    -n) shards=$2; shift 2 ;;
    -only) only=$2; shift 2 ;;
    -c) cpus=(--cpus-per-task="$2"); shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "submit.sh: unknown flag $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -ne 2 ]; then
  echo "usage: $0 [-n SHARDS] [-c CPUS] [-only LIST] SCENARIO.toml OUTDIR" >&2
  exit 2
fi
scenario=$(realpath "$1") out=$(realpath -m "$2")
mkdir -p "$out"
array=$(sbatch --parsable --array="${only:-0-$((shards - 1))}" "${cpus[@]}" --export=ALL,KVSIM_SHARDS="$shards" \
  --output="$out/replay-%A_%a.out" "$here/replay.sbatch" "$scenario" "$out")
array=${array%%;*} # --parsable adds ";cluster" on multi-cluster sites
merge=$(sbatch --parsable --dependency=afterok:"$array" --kill-on-invalid-dep=yes \
  --output="$out/merge-%j.out" "$here/merge.sbatch" "$out")
merge=${merge%%;*}
echo "replay array $array (shards ${only:-0-$((shards - 1))} of $shards), merge $merge; results in $out" >&2
echo "$array $merge"
