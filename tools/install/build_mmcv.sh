#!/usr/bin/env bash
# Build mmcv 2.1.0 (with ops) for the active Python once, cache the wheel, install it.
#
# Why: PyPI has no mmcv 2.x wheels for torch 2.x, mmdet 3.3.0 and mmseg 1.2.2 refuse
# mmcv>=2.2.0, and mmcv 2.1.0's setup.py hard-codes -std=c++17 while torch 2.14's
# headers require C++20. We patch that one flag and build a wheel into a cache dir
# keyed by the torch version, so later set-ups of the same machine take seconds.
set -euo pipefail
PY=$(command -v "${PYTHON:-python}")
case "$PY" in /*) ;; *) PY="$PWD/$PY" ;; esac  # the build cd's into the sdist
MMCV_VERSION=2.1.0
TORCH_VER=$($PY -c 'import torch; print(torch.__version__.split("+")[0])')
CACHE=${MMKD_CACHE_DIR:-$HOME/.cache/mmkd}/wheels/torch-$TORCH_VER
mkdir -p "$CACHE"

if $PY -c "import mmcv, mmcv.ops, sys; sys.exit(0 if mmcv.__version__ == '$MMCV_VERSION' else 1)" 2>/dev/null; then
  echo "[mmkd] mmcv $MMCV_VERSION with ops already installed"
  exit 0
fi

WHEEL=$(ls "$CACHE"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -1 || true)
if [ -z "$WHEEL" ]; then
  echo "[mmkd] building mmcv $MMCV_VERSION wheel for torch $TORCH_VER (about 7 minutes on 2 cores)"
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  # --no-build-isolation: the isolated env gets setuptools>=80, which lacks the pkg_resources mmcv needs
  $PY -m pip install -q "setuptools<80" wheel ninja psutil
  $PY -m pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$WORK"
  tar -xzf "$WORK"/mmcv-$MMCV_VERSION.tar.gz -C "$WORK"
  SRC="$WORK/mmcv-$MMCV_VERSION"
  # torch>=2.10 headers: "#error C++20 or later compatible compiler is required to use ATen"
  sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  # Build into a temp dir, then move: a killed build never leaves a half wheel in the cache.
  (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} FORCE_CUDA=0 \
      $PY -m pip wheel --no-build-isolation --no-deps . -w "$WORK/dist")
  BUILT=$(ls "$WORK"/dist/mmcv-*.whl | head -1)
  mv "$BUILT" "$CACHE/$(basename "$BUILT").part"
  mv "$CACHE/$(basename "$BUILT").part" "$CACHE/$(basename "$BUILT")"
  WHEEL="$CACHE/$(basename "$BUILT")"
fi
echo "[mmkd] installing $WHEEL"
$PY -m pip install --no-deps "$WHEEL"
$PY -c "from mmcv.ops import nms, RoIAlign; import mmcv; print('[mmkd] mmcv', mmcv.__version__, 'ops OK')"
