#!/usr/bin/env bash
# The GPU check, in under 8 minutes on a machine with a CUDA PyTorch (`make gpu-check`):
#   1. the CUDA tests (pytest -m cuda),
#   2. a timed one-minute slice of a real grouped training run (MNIST, 1 layer, k=50, VAE and IWAE x 3 seeds,
#      the paper's schedule), stopped with SIGTERM and read back from its checkpoints,
#   3. `iwae bench device=cuda` in pieces (the k=5000 evaluation; 1/2 layers x k=50,5,1 with lockstep groups of
#      1-16) within the time left, merged into one report with the paper-schedule projection.
# Everything lands in $GPU_CHECK_OUT (default outputs/gpu_check); figures.md holds the figures.
# Packages the machine lacks come from .whl/ and MNIST from .gpu_data/ (scripts/gpu_wheels.sh prepares both).
# GPU_CHECK_DEVICE=cpu rehearses the script where there is no GPU (the CUDA tests then skip).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
OUT_DIR=$(mkdir -p "${GPU_CHECK_OUT:-outputs/gpu_check}" && cd "${GPU_CHECK_OUT:-outputs/gpu_check}" && pwd)
BUDGET=${GPU_CHECK_SECONDS:-450}          # seconds for all of it (the check must end inside 8 minutes)
KS=${GPU_CHECK_KS:-50 5 1}                # bench pieces, most important first: k=50 dominates Table 1
GROUP_SIZES=${GPU_CHECK_GROUP_SIZES:-[1,2,4,8,16]}
SLICE=${GPU_CHECK_SLICE_SECONDS:-60}
FIGURES=$OUT_DIR/figures.md
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
say() { echo "$*" | tee -a "$FIGURES"; }

if ! "$PY" -c "import hydra, omegaconf, platformdirs" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/iwae_site \
        .whl/*.whl || { echo "error: hydra-core is missing and .whl/ has no wheels: run scripts/gpu_wheels.sh"; exit 1; }
    export PYTHONPATH=/tmp/iwae_site${PYTHONPATH:+:$PYTHONPATH}
fi
# The configs live in conf/ and ship as the package iwae_cli.conf (pyproject.toml maps them there). Where no
# installed iwae maps them (pip install -e .), a copy of this tree with conf/ inside the package is run instead.
SRC=$ROOT
if ! (cd / && PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} "$PY" -c "import iwae_cli.conf" 2>/dev/null); then
    SRC=/tmp/iwae_tree
    rm -rf "$SRC" && mkdir -p "$SRC"
    cp -r iwae_cli conf tests pyproject.toml "$SRC"/ && cp -r conf "$SRC/iwae_cli/conf"
fi
cd "$SRC"  # python -m puts the working directory first on sys.path, and pytest puts the tests' root there
export PYTHONPATH=$SRC${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
mkdir -p /tmp/iwae_bin  # an `iwae` command for the tests' subprocesses: this source tree, this Python
printf '#!/bin/sh\nexec %s -m iwae_cli "$@"\n' "$(command -v "$PY")" > /tmp/iwae_bin/iwae
chmod +x /tmp/iwae_bin/iwae
export PATH=/tmp/iwae_bin:$PATH
[ -d "$ROOT/.gpu_data" ] && export IWAE_DATA_DIR=${IWAE_DATA_DIR:-$ROOT/.gpu_data}

: > "$FIGURES"
say "# GPU check ($(date -u +%Y-%m-%dT%H:%MZ))"
say ""
say "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "$DEVICE (no nvidia-smi)")"
say "- $("$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "| cuda available:", torch.cuda.is_available())')"

echo "== 1. CUDA tests"
timeout $(( $(left) - 240 )) "$PY" -m pytest -m cuda -q -p no:cacheprovider -rs tests > "$OUT_DIR/pytest.log" 2>&1
say "- pytest -m cuda (exit $?): $(tail -n 1 "$OUT_DIR/pytest.log")"

echo "== 2. a ${SLICE}-second slice of grouped training"
SLICE_ROOT=$OUT_DIR/slice
"$PY" -m iwae_cli train -m model=vae,iwae seed=0,1,2 k=50 group=true schedule=paper device="$DEVICE" \
    progress=false output_root="$SLICE_ROOT" > "$OUT_DIR/slice.log" 2>&1 &
TRAINING=$!
# the slice starts when the group trains (its step compiled), and ends with SIGTERM: a checkpoint per run
until grep -qs "training 6 runs in lockstep" "$OUT_DIR/slice.log" || ! kill -0 $TRAINING 2>/dev/null \
    || [ "$(left)" -lt $((SLICE + 60)) ]; do sleep 1; done
sleep "$SLICE"
kill -TERM $TRAINING 2>/dev/null
wait $TRAINING
say "- slice: stopped by SIGTERM after ${SLICE} s of training (exit $?)"
"$PY" - "$SLICE_ROOT" "$SLICE" >> "$FIGURES" <<'PYTHON'
import sys
from pathlib import Path
import torch
root, wall = Path(sys.argv[1]), sys.argv[2]
print(f"\n## {wall} s of `iwae train -m model=vae,iwae seed=0,1,2 k=50 group=true schedule=paper` (MNIST, 1 layer)\n")
steps_per_epoch = 59_600 // 20
for path in sorted(root.glob("runs/*/*/*/checkpoint.pt")):
    p = torch.load(path, map_location="cpu", weights_only=True)["position"]
    steps = p["passes_done"] * steps_per_epoch + p["step_in_epoch"]
    seconds = p["train_seconds"]
    print(f"- {path.parent.relative_to(root / 'runs')}: {steps} steps in {seconds:.1f} s of training "
          f"({1e3 * seconds / max(steps, 1):.3f} ms per group step)")
if not any(root.glob("runs/*/*/*/checkpoint.pt")):
    print("- no checkpoint: the slice ended before its first save (see slice.log)")
PYTHON
echo "== 3. bench"
for depth in 1 2; do
    [ "$(left)" -gt 90 ] || break
    timeout $(( $(left) - 60 )) "$PY" -m iwae_cli bench device="$DEVICE" "depths=[$depth]" "ks=[]" \
        min_seconds=1 output_root="$OUT_DIR/bench/eval$depth" > "$OUT_DIR/bench-eval$depth.log" 2>&1
done
for k in $KS; do
    for depth in 1 2; do
        [ "$(left)" -gt 60 ] || { say "- bench L$depth k=$k: skipped (time)"; continue; }
        timeout $(( $(left) - 30 )) "$PY" -m iwae_cli bench device="$DEVICE" "depths=[$depth]" "ks=[$k]" \
            "group_sizes=$GROUP_SIZES" min_seconds=0.5 output_root="$OUT_DIR/bench/L${depth}k$k" \
            > "$OUT_DIR/bench-L${depth}k$k.log" 2>&1 || say "- bench L$depth k=$k: stopped (exit $?)"
    done
done
"$PY" - "$OUT_DIR" >> "$FIGURES" <<'PYTHON'
import json, sys
from pathlib import Path
import pandas as pd
from iwae_cli.core.atomic import atomic_write_json
from iwae_cli.reports.bench import projection_text
from iwae_cli.reports.projection import project_hours
out = Path(sys.argv[1])
rows = []
for report in sorted(out.glob("bench/*/bench/bench.json")):
    for device in json.loads(report.read_text())["devices"].values():
        rows += device["results"]
projection = project_hours(rows, 20)
atomic_write_json(out / "bench.json", {"results": rows, "paper_schedule_projection": projection})
print("\n## iwae bench (per model and step; fraction of the matmul ceiling at the step's shapes)\n")
print("```\n" + pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}") + "\n```\n")
print("```\n" + projection_text(projection) + "\n```")
PYTHON

say ""
say "total: $(( $(date +%s) - START )) s"
cat "$FIGURES"
