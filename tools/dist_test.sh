#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]
# One node, NUM_PROCS processes through torchrun. Without GPUs it uses the gloo
# backend on CPU (set in configs/_base_/default_runtime.py); with GPUs pass
# --cfg-options env_cfg.dist_cfg.backend=nccl for speed.
# Interpreter: $PYTHON when set, else the repository's .venv/bin/python (made by
# `make install`) when it exists, else `python` on PATH. MMKD_DRY_RUN=1 prints the
# command instead of running it.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROCS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$DIR")
# shellcheck source=tools/pick_python.sh
source "$DIR/pick_python.sh"
pick_python dist_test.sh "$ROOT" strict
CMD=("$PY" -m torch.distributed.run
     --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR"
     --nproc_per_node="$NPROCS" --master_port="$PORT"
     "$DIR/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}")
if [ -n "${MMKD_DRY_RUN:-}" ]; then
    printf '%q ' "${CMD[@]}"; echo
    exit 0
fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "${CMD[@]}"
