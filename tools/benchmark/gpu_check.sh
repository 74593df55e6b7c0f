#!/usr/bin/env bash
# One GPU check of mmkd's speed and memory claims; no download, under 8 minutes on one GPU.
#
#   bash tools/benchmark/gpu_check.sh [OUT_DIR]        # default work_dirs/gpu_check
#
# 1. peer_speed.py on CUDA: the three peer pairs (hand-written loop, torchdistill if it
#    imports, mmkd), with each step's torch.cuda.max_memory_allocated;
# 2. gpu_check.py: teacher precision bf16/fp16 (autocast, cast), student AMP (fp16/bf16,
#    AmpOptimWrapper as tools/train.py --amp), teacher compile (+ channels_last);
# 3. ACAM-KD fusion (tools/analysis_tools/acam_fusion_memory.py) at COCO P3 and P2
#    (800x1333), batch 1 and 2, sdpa and chunked attention, max_memory_allocated;
# 4. with two or more GPUs: the 2-GPU DDP demo (logit KD, digits) and FSDP demo (tiny
#    LLaVA-KD) through tools/dist_train.sh.
# Then one table of everything. Without a GPU (or with GPU_CHECK_DRY_RUN=1) it says so,
# checks that every piece imports and builds on the CPU (gpu_check.py --dry-run, the
# configs of the 2-GPU demos), and exits 0.
set -uo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$DIR/../.." && pwd)
OUT=${1:-$ROOT/work_dirs/gpu_check}
# shellcheck source=tools/pick_python.sh
source "$ROOT/tools/pick_python.sh"
pick_python gpu_check.sh "$ROOT" strict
cd "$ROOT" || exit 1
mkdir -p "$OUT"

NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)
if [ "${GPU_CHECK_DRY_RUN:-0}" = "1" ] || [ "$NGPU" = "0" ]; then
    echo "gpu_check: no CUDA device detected (torch.cuda.device_count() = $NGPU); dry run: checking that every piece imports and builds on the CPU, nothing is timed"
    if OMP_NUM_THREADS=1 "$PY" tools/benchmark/gpu_check.py --dry-run; then
        echo "gpu_check: dry run passed; rerun on a machine with a GPU for the numbers"
        exit 0
    fi
    echo "gpu_check: dry run FAILED" >&2
    exit 1
fi

echo "gpu_check: $NGPU CUDA device(s): $("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')"
STATUS=0
step() {  # step NAME TIMEOUT_S CMD...: run, log, record failure, keep going
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "== $name"
    if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then
        echo "   ok ($((SECONDS - t0)) s)"
    else
        echo "   FAILED or timed out after $((SECONDS - t0)) s (rc $?): tail of $OUT/$name.log" >&2
        tail -n 15 "$OUT/$name.log" >&2
        STATUS=1
    fi
}

step peer_speed 150 "$PY" tools/benchmark/peer_speed.py --device cuda --batch-size 32 \
    --cls-size 224 --det-size 512 --iters 20 --warmup 5 --out "$OUT" --no-plot
step precision_compile 210 "$PY" tools/benchmark/gpu_check.py --iters 20 --warmup 3 \
    --json "$OUT/precision_compile.json"
step acam_fusion 60 "$PY" tools/analysis_tools/acam_fusion_memory.py --levels P3 P2 \
    --batch 1 2 --impl sdpa chunked --device cuda --json "$OUT/acam_fusion.json"

DIST_ROWS=()
if [ "$NGPU" -ge 2 ]; then
    step ddp_2gpu 60 bash tools/dist_train.sh \
        configs/kd/kd_logits_resnet18-w32_resnet18-w8_digits-10pct_demo.py 2 \
        --work-dir "$OUT/ddp" --cfg-options train_cfg.max_epochs=1 env_cfg.dist_cfg.backend=nccl
    DIST_ROWS+=("ddp_2gpu")
    step fsdp_2gpu 90 bash tools/dist_train.sh \
        configs/llava_kd/llava-kd_clip-w128-qwen2-w128-d4_to_w64-d2_shapes-vqa_fsdp_demo.py 2 \
        --work-dir "$OUT/fsdp" --cfg-options env_cfg.dist_cfg.backend=nccl
    DIST_ROWS+=("fsdp_2gpu")
else
    echo "== 2-GPU DDP/FSDP demos: skipped (one GPU)"
fi

# One table: peer pairs, precision/compile rows, ACAM-KD rows, distributed demos.
"$PY" - "$OUT" "${DIST_ROWS[@]}" <<'EOF'
import json, os, sys
sys.path.insert(0, 'tools/benchmark')
import gpu_check
out, dist = sys.argv[1], sys.argv[2:]
rows = []
p = os.path.join(out, 'peer_speed.json')
if os.path.exists(p):
    res = json.load(open(p))
    for pair in res['pairs'].values():
        for name, s in pair['stats'].items():
            ratio = pair['ratios'].get(f'mmkd/{name}')
            rows.append(dict(piece='peer speed', pair=pair['title'],
                             batch=f"{res['batch_size']}x{pair['input_size']}px", variant=name,
                             median_ms=s['median'], max_memory_allocated_mib=s.get('step_peak_mib'),
                             note=f'IQR {s["q1"]:.1f}-{s["q3"]:.1f} ms; step peak above resident'
                                  + (f'; mmkd/{name} {ratio:.3f}' if ratio else '')))
else:
    rows.append(dict(piece='peer speed', variant='-', error='no peer_speed.json'))
p = os.path.join(out, 'precision_compile.json')
rows += json.load(open(p)) if os.path.exists(p) else [dict(piece='precision/compile', variant='-', error='no json')]
p = os.path.join(out, 'acam_fusion.json')
if os.path.exists(p):
    for r in json.load(open(p)):
        rows.append(dict(piece='ACAM-KD fusion', pair=str(r.get('level', '')),
                         batch=str(r.get('shape', r.get('batch', ''))), variant=str(r.get('impl')),
                         median_ms=(r['seconds'] * 1000 if r.get('seconds') is not None else None),
                         max_memory_allocated_mib=(r['peak_bytes'] / 2**20 if r.get('peak_bytes') else None),
                         note=r.get('error', '')))
else:
    rows.append(dict(piece='ACAM-KD fusion', variant='-', error='no acam_fusion.json'))
for name in dist:
    log = os.path.join(out, f'{name}.log')
    text = open(log).read() if os.path.exists(log) else ''
    ok = 'Traceback' not in text and os.path.exists(log)
    rows.append(dict(piece=name, variant='tools/dist_train.sh ... 2', note='passed' if ok else f'failed: see {log}'))
print(gpu_check.format_rows(rows))
EOF
[ $? -eq 0 ] || STATUS=1
echo "gpu_check: logs and JSON in $OUT; exit $STATUS"
exit $STATUS
