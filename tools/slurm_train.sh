#!/usr/bin/env bash
# Usage: [GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=...] \
#        bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# Interpreter on the nodes: $PYTHON when set, else the repository's .venv/bin/python
# (made by `make install`) when it exists, else `python` on PATH. MMKD_DRY_RUN=1 prints
# the srun command instead of running it.
if [ $# -lt 4 ]; then
    echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=("${@:5}")
DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$DIR")
# shellcheck source=tools/pick_python.sh
source "$DIR/pick_python.sh"
pick_python slurm_train.sh "$ROOT" warn
# SRUN_ARGS is split into words on purpose (several srun options in one variable).
CMD=(srun -p "${PARTITION}"
     --job-name="${JOB_NAME}"
     --gres=gpu:"${GPUS_PER_NODE}"
     --ntasks="${GPUS}"
     --ntasks-per-node="${GPUS_PER_NODE}"
     --cpus-per-task="${CPUS_PER_TASK}"
     --kill-on-bad-exit=1
     ${SRUN_ARGS}
     "$PY" -u "$DIR/train.py" "${CONFIG}" --work-dir="${WORK_DIR}" --launcher="slurm"
     --cfg-options env_cfg.dist_cfg.backend=nccl "${PY_ARGS[@]}")
if [ -n "${MMKD_DRY_RUN:-}" ]; then
    printf '%q ' "${CMD[@]}"; echo
    exit 0
fi
set -x
PYTHONPATH="$ROOT:${PYTHONPATH:-}" exec "${CMD[@]}"
