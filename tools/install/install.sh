#!/usr/bin/env bash
# Create .venv (idempotent) and install the whole mmkd stack into it.
# A stamp file holding the hash of the requirement files makes a second run a no-op check.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
STAMP="$VENV/.mmkd-installed"
HASH=$(cat requirements/*.txt tools/install/*.sh setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && "$VENV/bin/python" -c "import mmkd" 2>/dev/null; then
  echo "[mmkd] environment $VENV is up to date"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
$PY -m pip install -q -r requirements/build.txt
$PY -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
# mmcv's own runtime deps come with mmengine; mmcv must be in place before mmdet/mmseg,
# or pip would try (and fail) to build the mmcv sdist in an isolated env.
$PY -m pip install -q "mmengine==0.10.7" "opencv-python>=4.8,<5" "numpy>=1.26,<2.2"
PYTHON=$PY bash tools/install/build_mmcv.sh
$PY -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt -r requirements/docs.txt
# --no-use-pep517: a `setup.py develop` install (egg-link) whose location is the checkout, so that
# mim finds mmkd/.mim (symlinks made by setup.py); a PEP 660 editable install hides it from mim.
$PY -m pip install -q --no-build-isolation --no-deps --no-use-pep517 -e .
$PY -c "import mmkd, mmdet.models, mmseg.models, mmpretrain.models; print('[mmkd] stack OK, mmkd', mmkd.__version__)"
echo "$HASH" > "$STAMP"
