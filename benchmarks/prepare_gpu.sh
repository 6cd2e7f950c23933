#!/usr/bin/env bash
# Before the GPU check (benchmarks/run_gpu.sh), on a machine with the repository's .venv and a package
# registry: (1) the wheels an offline GPU machine lacks, into .whl/ (copy the folder there with the
# checkout), and (2) the CPU reference the GPU run's chapter is compared with, into
# benchmarks/results/reference/<chapter>.<profile>.cpu.metrics.json (committed, so it travels too).
#
#   benchmarks/prepare_gpu.sh                      # both
#   benchmarks/prepare_gpu.sh --wheels             # only the wheels
#   benchmarks/prepare_gpu.sh --reference [--chapter ch02_heat_and_blur] [--profile quick]
#
# The reference must come from the same source as the GPU run (the comparison reports whether the
# digests of advxai/ and chapters/ match), so make it again after the chapter or the package changes.
# The chapter run is heavy: on a shared machine, run it through the machine's queue for heavy work.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${ADVXAI_PYTHON:-.venv/bin/python}
CHAPTER=ch02_heat_and_blur
PROFILE=quick
PYVER=3.12  # the GPU machine's Python (--python-version)
DO_WHEELS=0
DO_REFERENCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) DO_WHEELS=1; shift ;;
    --reference) DO_REFERENCE=1; shift ;;
    --chapter) CHAPTER=$2; shift 2 ;;
    --profile) PROFILE=$2; shift 2 ;;
    --python-version) PYVER=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "prepare_gpu.sh: unknown argument '$1' (valid: --wheels, --reference, --chapter NAME, --profile NAME, --python-version X.Y)" >&2; exit 2 ;;
  esac
done
if [ $DO_WHEELS = 0 ] && [ $DO_REFERENCE = 0 ]; then DO_WHEELS=1; DO_REFERENCE=1; fi
if [ ! -x "$PY" ]; then
  echo "prepare_gpu.sh: no Python at $PY; run 'make install' first (or set ADVXAI_PYTHON)" >&2
  exit 2
fi

if [ $DO_WHEELS = 1 ]; then
  # Keep the wheels out of git: they are inputs for one machine, not sources.
  exclude=$(git rev-parse --git-path info/exclude 2>/dev/null || true)
  if [ -n "$exclude" ] && ! grep -qx '/.whl/' "$exclude" 2>/dev/null; then
    mkdir -p "$(dirname "$exclude")" && echo '/.whl/' >> "$exclude"
  fi
  mkdir -p .whl
  # --no-deps: the list names every package needed; the GPU image has the rest (the list's header).
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl -r benchmarks/gpu_requirements.txt
  echo "wheels in .whl: $(ls .whl/*.whl | wc -l) files, $(du -sh .whl | cut -f1)"
fi

if [ $DO_REFERENCE = 1 ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  echo "running $CHAPTER at the $PROFILE profile on the CPU (threads: ${OMP_NUM_THREADS:-torch default}) ..."
  ADVXAI_FORBID_NETWORK=1 "$PY" -m advxai run "$CHAPTER" --profile "$PROFILE" --device cpu --output-dir "$out"
  chapter=$("$PY" -c "from advxai.runner import resolve_chapter; print(resolve_chapter('$CHAPTER'))")
  ref=benchmarks/results/reference/$chapter.$PROFILE.cpu.metrics.json
  mkdir -p "$(dirname "$ref")"
  cp "$out/$chapter.metrics.json" "$ref"
  "$PY" benchmarks/gpu_report.py stamp "$ref" --root "$ROOT"
  echo "reference written: $ref"
fi
