#!/usr/bin/env bash
# Everything to check on a machine with an NVIDIA GPU, in one command, from the repository root:
#
#   bash tools/device_check.sh [--wheels DIR] [--out DIR] [--python PY] [--only S,..] [--skip S,..]
#   bash tools/device_check.sh --dry-run      # the steps and their limits; runs and writes nothing
#
# Steps (each under its own `timeout`; a failing step does not stop the next; the limits sum
# to at most 480 s, and a step never runs past 480 s from the start):
#   gpu-query  nvidia-smi: GPU name, driver, memory (names the default results folder)
#   env        versions of Python, CuPy, PyTorch, nvcc, compute-sanitizer, ... -> info.txt
#   wheels     installs the build requirements that are missing (cython-cmake) from --wheels DIR
#   install    README command 1 against the machine's own packages, CUDA extension forced on:
#              MW_CUDA=ON python3 -m pip install --no-build-isolation --no-deps -e .
#   info       magma-wino info -> info.txt
#   gpu-tests  pytest -m gpu (tests/test_gpu.py and every other test marked gpu) -> pytest.xml
#   validate   magma-wino validate --backend cuda (the full sweep) -> validate.json
#   bench      magma-wino bench --backend cuda --quick --backward, with its im2col+cuBLAS and cuDNN
#              baselines (cuDNN through PyTorch, else CuPy's cuDNN binding) -> bench.json, bench.md
#   memcheck   compute-sanitizer --tool memcheck over a short validate run (CuPy's pool off)
#   racecheck  compute-sanitizer --tool racecheck over the same run
#
# Results: one flat folder, at most 8 files, none over 16 MiB (copied back whole):
# summary.md, steps.log (every step's output, with headers), info.txt, pytest.xml,
# validate.json, bench.json, bench.md.  Default docs/results/gpu/<UTC date>-<GPU name>/.
#
# Options:
#   --out DIR      the results folder (must be empty or absent)
#   --wheels DIR   a folder of wheels for missing build requirements (default .whl/ when it
#                  exists); fill it on a machine with network: bash tools/prepare_device_wheels.sh
#   --python PY    the interpreter (default python3: the machine's own, no venv)
#   --only LIST    run only these steps (comma-separated names); --skip LIST: all but these
#   --dry-run      print the steps, their limits and commands, and exit 0 (any machine)
#   -h, --help     this text
#
# Test hook: MW_DEVICE_CHECK_FAKE="install=fail,bench=timeout,memcheck=skip" replaces every
# step by a tiny command (unlisted steps: ok) and caps each limit at MW_DEVICE_CHECK_FAKE_LIMIT
# seconds (default 2), so the flow (records, timeouts, summary) is testable without a GPU
# (tests/test_device_check.py).  Outcomes: ok, fail, timeout, skip.
set -uo pipefail

usage() { sed -n '2,/^set -uo pipefail/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { printf 'device_check.sh: %s\n' "$*" >&2; exit 2; }

CALLER=$PWD
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$CALLER/$1" ;; esac; }

OUT_ARG="" WHEELS_ARG="" PY=python3 DRY=0 ONLY="" SKIP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a folder"; OUT_ARG=$(abspath "$2"); shift 2 ;;
    --out=*) OUT_ARG=$(abspath "${1#*=}"); shift ;;
    --wheels) [ $# -ge 2 ] || die "--wheels needs a folder"; WHEELS_ARG=$(abspath "$2"); shift 2 ;;
    --wheels=*) WHEELS_ARG=$(abspath "${1#*=}"); shift ;;
    --python) [ $# -ge 2 ] || die "--python needs an interpreter"; PY=$2; shift 2 ;;
    --python=*) PY=${1#*=}; shift ;;
    --only) [ $# -ge 2 ] || die "--only needs step names"; ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#*=}; shift ;;
    --skip) [ $# -ge 2 ] || die "--skip needs step names"; SKIP=$2; shift 2 ;;
    --skip=*) SKIP=${1#*=}; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
case "$PY" in */*) PY=$(abspath "$PY") ;; esac  # a path: relative to where the script was called
cd "$ROOT" || die "cannot cd to $ROOT"

# --------------------------------------------------------------------------- the steps
STEPS=(gpu-query env wheels install info gpu-tests validate bench memcheck racecheck)
TOTAL_LIMIT=480
declare -A LIMIT=([gpu-query]=5 [env]=20 [wheels]=10 [install]=150 [info]=15
                  [gpu-tests]=60 [validate]=60 [bench]=70 [memcheck]=40 [racecheck]=40)
SAN_FILTERS='"odd sizes" "winograd-pruned" "fused edges"'
# The commands, run by `bash -o pipefail -c` with PY, RES, WHEELS, SANITIZER, MW_SAN_PY exported: the same
# strings are printed by --dry-run, logged and put in the summary.
# shellcheck disable=SC2016  # expanded by the bash -c that runs them, not here
declare -A CMD=(
  [gpu-query]='nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader'
  [env]='"$PY" tools/device_summary.py env | tee -a "$RES/info.txt"'
  [wheels]='mw_build_deps  # missing = tools/device_summary.py missing-build-deps; "$PY" -m pip install --no-index --no-deps --find-links "$WHEELS" $missing'
  [install]='MW_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) CMAKE_ARGS=-DCMAKE_CUDA_FLAGS=--threads=0 "$PY" -m pip install -v --no-index --no-build-isolation --no-deps -e .  # nvcc --threads=0: the 3 targets in parallel'
  [info]='"$PY" -m magma_wino.cli info | tee -a "$RES/info.txt"  # magma-wino info'
  [gpu-tests]='"$PY" -m pytest -m gpu -v -rs --durations=10 -p no:cacheprovider --junitxml="$RES/pytest.xml" tests  # tests/test_gpu.py + every test marked gpu'
  [validate]='"$PY" -m magma_wino.cli validate --backend cuda --json "$RES/validate.json"  # the full sweep, not --quick'
  [bench]='"$PY" -m magma_wino.cli bench --backend cuda --quick --backward --no-progress --json "$RES/bench.json" --markdown "$RES/bench.md"  # baselines on: im2col+cublas, cudnn (PyTorch, else CuPy)'
  [memcheck]='"$SANITIZER" --tool memcheck --error-exitcode 99 --print-limit 20 "$PY" -c "$MW_SAN_PY" '"$SAN_FILTERS"'  # validate --backend cuda --quick --filter F, per F'
  [racecheck]='"$SANITIZER" --tool racecheck --error-exitcode 99 --print-limit 20 "$PY" -c "$MW_SAN_PY" '"$SAN_FILTERS"'  # validate --backend cuda --quick --filter F, per F'
)
# What the sanitizer runs: the quick validation of a few small groups, with CuPy's memory
# pool off (one cudaMalloc per array), so memcheck sees each array's own bounds.
# shellcheck disable=SC2089  # Python source, passed whole to python -c
MW_SAN_PY='import sys, cupy
cupy.cuda.set_allocator(None)
from magma_wino.cli.validate import main
sys.exit(max(main(["--backend", "cuda", "--quick", "--filter", f]) for f in sys.argv[1:]))'
RESULT_FILES="summary.md steps.log info.txt pytest.xml validate.json bench.json bench.md"

in_list() { case ",$2," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
for list in "$ONLY" "$SKIP"; do
  IFS=, read -r -a names <<<"$list"
  for n in "${names[@]}"; do
    [ -n "$n" ] && [ -n "${LIMIT[$n]:-}" ] || [ -z "$n" ] || die "unknown step '$n' (steps: ${STEPS[*]})"
  done
done
selected() {
  if [ -n "$ONLY" ] && ! in_list "$1" "$ONLY"; then return 1; fi
  if [ -n "$SKIP" ] && in_list "$1" "$SKIP"; then return 1; fi
  return 0
}

WHEELS=$WHEELS_ARG
[ -n "$WHEELS" ] || { [ -d "$ROOT/.whl" ] && WHEELS=$ROOT/.whl; }

# --------------------------------------------------------------------------- --dry-run
if [ "$DRY" = 1 ]; then
  echo "magma_wino device check: dry run (nothing is run, nothing is written)"
  echo "results folder: ${OUT_ARG:-docs/results/gpu/<UTC date>-<GPU name from nvidia-smi>/}"
  echo "python: $PY    wheels: ${WHEELS:-none (.whl/ absent; needed if a build requirement is missing)}"
  echo
  printf '  %-10s %7s  %s\n' step limit command
  sum=0
  for s in "${STEPS[@]}"; do
    sel=""; selected "$s" || sel="  [not selected]"
    printf '  %-10s %5s s  %s%s\n' "$s" "${LIMIT[$s]}" "${CMD[$s]}" "$sel"
    sum=$((sum + LIMIT[$s]))
  done
  echo
  echo "total of the limits: $sum s (at most $TOTAL_LIMIT s; no step runs past $TOTAL_LIMIT s from the start)"
  echo "files: $RESULT_FILES (flat, at most 8, none over 16 MiB)"
  echo "variables: PY=$PY  RES=<results folder>  WHEELS=<--wheels>  SANITIZER=compute-sanitizer (PATH, beside nvcc, /usr/local/cuda/bin)"
  echo "MW_SAN_PY (python -c, one argument per validate --filter):"
  printf '%s\n' "$MW_SAN_PY" | sed 's/^/    /'
  echo "the sanitizer steps are skipped (not failed) where compute-sanitizer is not found"
  exit 0
fi

# --------------------------------------------------------------------------- the run
FAKE=${MW_DEVICE_CHECK_FAKE:-}
FAKE_LIMIT=${MW_DEVICE_CHECK_FAKE_LIMIT:-2}
T_START=$(date +%s.%N)
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
sanitise() { printf '%s' "$1" | tr -s ' ' '-' | tr -cd 'A-Za-z0-9_-' | sed 's/--*/-/g; s/^-//; s/-$//'; }
fake_outcome() {  # the outcome MW_DEVICE_CHECK_FAKE gives step $1 (ok when unlisted)
  local item
  IFS=, read -r -a items <<<"$FAKE"
  for item in "${items[@]}"; do [ "${item%%=*}" = "$1" ] && { printf '%s\n' "${item#*=}"; return; }; done
  echo ok
}
fake_cmd() {
  case "$1" in
    fail) echo 'echo "fake step failing" >&2; exit 3' ;;
    timeout) echo 'sleep 60' ;;
    *) echo 'echo "fake step: ok"' ;;
  esac
}

# The GPU first: it names the default results folder.
GPU_NAME="" GPU_DRIVER="" GPU_MEM="" GPU_OUT="" GPU_RC=0
t0=$(now)
if [ -n "$FAKE" ]; then
  GPU_OUT="FAKE GPU, 0.0, 0 MiB"
  [ "$(fake_outcome gpu-query)" = fail ] && GPU_RC=3 GPU_OUT="fake step failing"
elif ! selected gpu-query; then
  GPU_RC=-1
elif command -v nvidia-smi >/dev/null 2>&1; then
  GPU_OUT=$(timeout -k 2 "${LIMIT[gpu-query]}" nvidia-smi --query-gpu=name,driver_version,memory.total \
    --format=csv,noheader 2>&1); GPU_RC=$?
else
  GPU_OUT="nvidia-smi not found"; GPU_RC=127
fi
GPU_SECONDS=$(elapsed "$t0")
if [ "$GPU_RC" = 0 ]; then
  IFS=, read -r GPU_NAME GPU_DRIVER GPU_MEM <<<"$(printf '%s\n' "$GPU_OUT" | head -n 1)"
  GPU_NAME=$(printf '%s' "$GPU_NAME" | sed 's/^ *//; s/ *$//')
  GPU_DRIVER=${GPU_DRIVER// /} GPU_MEM=$(printf '%s' "$GPU_MEM" | sed 's/^ *//')
fi
DATE=$(date -u +%Y-%m-%d)
FOLDER_NAME="$DATE-$(sanitise "${GPU_NAME:-unknown-gpu}")"
FOLDER_NAME=${FOLDER_NAME%-}

if [ -n "$OUT_ARG" ]; then
  RES=$OUT_ARG
  if [ -d "$RES" ] && [ -n "$(ls -A "$RES")" ]; then die "--out $RES is not empty"; fi
else
  RES=$ROOT/docs/results/gpu/$FOLDER_NAME
  n=2
  while [ -d "$RES" ] && [ -n "$(ls -A "$RES")" ]; do RES=$ROOT/docs/results/gpu/$FOLDER_NAME-$n; n=$((n + 1)); done
fi
mkdir -p "$RES" || die "cannot create $RES"
LOG=$RES/steps.log
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mw-device-check.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$WORK"' EXIT
RECORDS=$WORK/records.tsv
: >"$LOG"; : >"$RECORDS"

SANITIZER=""
for c in compute-sanitizer "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")/compute-sanitizer" \
         /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
  if command -v "$c" >/dev/null 2>&1; then SANITIZER=$(command -v "$c"); break; fi
done
[ -n "$FAKE" ] && SANITIZER=fake-compute-sanitizer

mw_build_deps() {  # the wheels step: install the missing build requirements from $WHEELS
  local missing still
  missing=$("$PY" tools/device_summary.py missing-build-deps) || return 1
  if [ -z "$missing" ]; then echo "every build requirement of pyproject.toml is installed"; return 0; fi
  echo "missing build requirements: ${missing//$'\n'/ }"
  if [ -z "$WHEELS" ] || [ ! -d "$WHEELS" ]; then
    echo "no wheel folder: prepare one on a machine with network (bash tools/prepare_device_wheels.sh)" \
         "and pass --wheels DIR" >&2
    return 1
  fi
  # shellcheck disable=SC2086  # one argument per requirement
  "$PY" -m pip install --no-index --no-deps --find-links "$WHEELS" $missing || return 1
  still=$("$PY" tools/device_summary.py missing-build-deps) || return 1
  [ -z "$still" ] || { echo "still missing: ${still//$'\n'/ }" >&2; return 1; }
}
export -f mw_build_deps
# shellcheck disable=SC2090  # MW_SAN_PY is Python source, not shell words
export PY RES WHEELS SANITIZER MW_SAN_PY
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_NO_CACHE_DIR=1

N_STEPS=${#STEPS[@]}
I_STEP=0
record() {  # name limit effective seconds rc status note command
  local IFS=$'\t' f=("$@")
  f[6]=${f[6]//$'\t'/ }; f[6]=${f[6]//$'\n'/ }; f[7]=${f[7]//$'\t'/ }; f[7]=${f[7]//$'\n'/ }
  printf '%s\n' "${f[*]}" >>"$RECORDS"
  local shown=$3; [ "$6" = skipped ] && shown=$2
  printf '[%2d/%d] %-10s %-8s %6s s  (limit %s s)%s\n' "$I_STEP" "$N_STEPS" "$1" "$6" "$4" "$shown" "${7:+  $7}"
}
summary() {
  local planned
  planned=$(IFS=,; echo "${STEPS[*]}")
  "$PY" "$ROOT/tools/device_summary.py" summary --records "$RECORDS" --results "$RES" --gpu "$GPU_NAME" \
    --driver "$GPU_DRIVER" --memory "$GPU_MEM" --folder "docs/results/gpu/$FOLDER_NAME" \
    --planned "$planned" --date "$DATE" "$@" 2>>"$LOG" && return 0
  { echo "# magma_wino device check: FAIL (tools/device_summary.py failed; raw step records below)"; echo
    echo '```'; cat "$RECORDS"; echo '```'; } >"$RES/summary.md"
  [ "$#" -eq 0 ] || cat "$RES/summary.md"
}

run_step() {
  local name=$1 limit=${LIMIT[$1]} cmd=${CMD[$1]} run=${CMD[$1]} note="" eff rc status t0 secs left outcome
  I_STEP=$((I_STEP + 1))
  if ! selected "$name"; then record "$name" "$limit" 0 0.0 - skipped "not selected (--only/--skip)" "$cmd"; return; fi
  eff=$limit
  if [ -n "$FAKE" ]; then
    outcome=$(fake_outcome "$name")
    [ "$outcome" = skip ] && { record "$name" "$limit" 0 0.0 - skipped "fake skip" "$cmd"; return; }
    [ "$eff" -gt "$FAKE_LIMIT" ] && eff=$FAKE_LIMIT
    run=$(fake_cmd "$outcome") note="fake $outcome"
  fi
  case "$name" in
    memcheck|racecheck)
      [ -n "$SANITIZER" ] || { record "$name" "$limit" 0 0.0 - skipped "compute-sanitizer not found" "$cmd"; return; } ;;
  esac
  left=$(awk -v a="$T_START" -v b="$(now)" -v t="$TOTAL_LIMIT" 'BEGIN { printf "%d", t - (b - a) - 2 }')
  [ "$eff" -gt "$left" ] && eff=$left
  if [ "$eff" -lt 1 ]; then record "$name" "$limit" 0 0.0 - skipped "no time left of the $TOTAL_LIMIT s" "$cmd"; return; fi
  printf '\n==== [%s] %s (limit %s s)\n$ %s\n' "$name" "$(date -u +%H:%M:%S)" "$eff" "$run" >>"$LOG"
  t0=$(now)
  timeout -k 5 "$eff" bash -o pipefail -c "$run" >>"$LOG" 2>&1 </dev/null
  rc=$?
  secs=$(elapsed "$t0")
  if [ "$rc" = 0 ]; then status=pass
  elif { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && awk -v s="$secs" -v l="$eff" 'BEGIN { exit !(s >= l - 0.5) }'; then status=timeout
  elif [ "$rc" = 137 ]; then status=killed
  else status=fail
  fi
  printf '==== [%s] %s: exit %s after %s s\n' "$name" "$status" "$rc" "$secs" >>"$LOG"
  record "$name" "$limit" "$eff" "$secs" "$rc" "$status" "$note" "$cmd"
  summary
}

echo "magma_wino device check -> $RES"
[ -n "$FAKE" ] && echo "(MW_DEVICE_CHECK_FAKE=$FAKE: every step is a fake command)"
# gpu-query already ran (it names the folder): log and record it.
I_STEP=1
{ printf '==== [gpu-query] %s (limit %s s)\n$ %s\n%s\n' "$(date -u +%H:%M:%S)" "${LIMIT[gpu-query]}" \
    "${CMD[gpu-query]}" "$GPU_OUT"; } >>"$LOG"
if [ "$GPU_RC" = -1 ]; then
  record gpu-query "${LIMIT[gpu-query]}" 0 0.0 - skipped "not selected (--only/--skip)" "${CMD[gpu-query]}"
else
  st=pass; [ "$GPU_RC" = 0 ] || st=fail
  [ "$GPU_RC" = 124 ] && st=timeout
  note=""; [ "$GPU_RC" = 127 ] && note="nvidia-smi not found"
  record gpu-query "${LIMIT[gpu-query]}" "${LIMIT[gpu-query]}" "$GPU_SECONDS" "$GPU_RC" "$st" "$note" "${CMD[gpu-query]}"
fi
summary
for s in "${STEPS[@]:1}"; do run_step "$s"; done

echo
summary --print
echo "results: $RES ($(find "$RES" -maxdepth 1 -type f | wc -l) files)"
[ -n "$OUT_ARG" ] && echo "commit them as docs/results/gpu/$FOLDER_NAME/"
head -n 1 "$RES/summary.md" | grep -q ': PASS$'
