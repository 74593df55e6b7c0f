# Sourced by tools/{dist,slurm}_{train,test}.sh (not run): sets PY to the interpreter.
# $PYTHON when set, else the checkout's .venv/bin/python (made by `make install`) when
# it exists, else `python` on PATH. Usage: pick_python SCRIPT_NAME ROOT strict|warn
# ('strict' stops when PY cannot import torch; 'warn' only says so, for slurm, whose
# compute nodes may have another environment than the submitting machine).
pick_python() {
    local name=$1 root=$2 mode=$3
    if [ -n "${PYTHON:-}" ]; then
        PY=$PYTHON
    elif [ -x "$root/.venv/bin/python" ]; then
        PY="$root/.venv/bin/python"
    else
        PY=python
    fi
    if ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' \
            >/dev/null 2>&1; then
        if [ "$mode" = strict ]; then
            echo "$name: '$PY' cannot import torch. Run 'make install' (it creates" \
                 "$root/.venv, which this script then uses), or set PYTHON to the python of an" \
                 "environment where mmkd is installed." >&2
            exit 1
        fi
        echo "$name: warning: '$PY' cannot import torch here. Run 'make install' (it" \
             "creates $root/.venv, which this script then uses), or set PYTHON to the python of" \
             "an environment where mmkd is installed." >&2
    fi
    echo "$name: python: $PY" >&2
}
