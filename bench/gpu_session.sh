#!/usr/bin/env bash
# Everything that needs an NVIDIA GPU, in one go (about 8-10 minutes on one H200):
#
#     OUT=/tmp/gpu-logs EMOJI=../shared/data/emoji-google bash bench/gpu_session.sh
#
# For a machine that has PyTorch but no internet: installs this checkout without its
# dependencies (torch, typer, rich, pillow, imageio and safetensors must already be there),
# then runs the CUDA tests, the training-throughput benchmark at batch 64 and at the default
# batch, and, when EMOJI names the emoji folder, a SWD-only quality comparison (no Inception
# file needed). Six files land in $OUT: session.log (every step's output), train64.json,
# train8.json, quality.json and the two sample grids. A failing step is reported, the next
# one still runs, and the exit status says whether any failed.
set -uo pipefail
OUT=${OUT:-/tmp/animegan-gpu}
PY=${PYTHON:-python3}
WORK=${WORK:-/tmp/animegan-gpu-work}
EMOJI=${EMOJI:-}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK"
LOG="$OUT/session.log"
status=0

step() {  # step NAME COMMAND...: run it into the log, remember a failure
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$LOG"
    local start=$SECONDS
    "$@" >>"$LOG" 2>&1
    local rc=$?
    echo "== $name: rc=$rc in $((SECONDS - start)) s" | tee -a "$LOG"
    [ $rc -eq 0 ] || status=1
}

step gpu nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step install "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e .
step versions "$PY" -c "import torch, animegan_cli; print(torch.__version__, \
torch.cuda.get_device_name(), animegan_cli.__version__)"
step tests "$PY" -m pytest -q -rs tests/test_cuda.py
step train64 "$PY" bench/train_throughput.py --device cuda --batch-size 64 \
    --workdir "$WORK" --json "$OUT/train64.json"
step train8 "$PY" bench/train_throughput.py --device cuda --batch-size 8 --variants b,c \
    --workdir "$WORK" --json "$OUT/train8.json"
if [ -n "$EMOJI" ]; then
    step prepare "$PY" -m animegan_cli prepare "$EMOJI" -o "$WORK/emoji-64" --size 64
    # Budgets are host CPU seconds of the training process: on a GPU a proxy for its time.
    step quality "$PY" bench/quality.py --device cuda --no-fid --sets "emoji=$WORK/emoji-64" \
        --budget both --budget-cap 600 --samples 4096 --recipes canonical,defaults \
        --workdir "$WORK/quality" --grids "$OUT"
    cp "$WORK/quality/quality.json" "$OUT/" 2>/dev/null
fi
tail -n 40 "$LOG"
exit $status
