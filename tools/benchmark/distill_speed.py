#!/usr/bin/env python
"""Time a distillation config against the student alone and a hand-written loop.

In one process, on the same models and the same batches, interleaved rounds of:
  (a) the student's own train step (the plain task model),
  (b) the mmkd distillation train step,
  (c) a hand-written plain-PyTorch step doing the same computation (teacher forward
      under no_grad up to the recorded tensors, student forward + task losses, the
      same connectors and distillation losses, backward, optimizer step), no
      mmengine/mmkd machinery in the loop,
  (d) the mmkd step with cached teacher outputs (no teacher forward).
Reports medians, the ratios b/c (framework overhead), b/d and d/a, and the peak
memory of (a) and (b) (CUDA: max allocated; CPU: peak RSS growth in a fresh
process); writes JSON and a PNG bar chart.

Batches come from the embedded data (digits for mmpretrain students, the shapes set
for mmdet/mmseg students) at --input-size, so real-scale configs (ImageNet, COCO,
Cityscapes pairs) run without their data sets; weights are random.

Usage: python tools/benchmark/distill_speed.py CONFIG [--iters 20] [--batch-size 8]
           [--input-size 128] [--device cpu|cuda] [--out work_dirs/benchmark]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='mmkd distillation step benchmark')
    p.add_argument('config')
    p.add_argument('--iters', type=int, default=20, help='timed rounds')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--input-size', type=int, default=None,
                   help='image side (default: 64 classification, 128 dense)')
    p.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    p.add_argument('--out', default='work_dirs/benchmark')
    p.add_argument('--name', default=None, help='name of the result files')
    p.add_argument('--config-data', action='store_true',
                   help="take the batches from the config's own train_dataloader.dataset "
                        '(demo configs use the embedded data sets) instead of the embedded '
                        'set chosen by default_scope')
    p.add_argument('--student-config', default=None,
                   help='(a) trains the model of this config on its own train data (for '
                        'algorithms whose batches the student cannot read, e.g. a labelled + '
                        'unlabelled batch, or several modalities); implies --config-data')
    p.add_argument('--skip-memory', action='store_true')
    p.add_argument('--memory-probe', choices=['a', 'b'], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _cuda():
    import torch
    return torch.cuda.is_available()


def build(cfg_path, batch_size, input_size, device, config_data=False, student_config=None):
    """Build the algorithm, the student(s) alone, and fixed batches for both.

    Returns ``(algo, students, batches, student_batches, scope, size, cfg)``.
    """
    import torch
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS, init_default_scope

    import mmkd  # noqa: F401
    from mmkd.registry import MODELS
    from mmkd.utils import build_task_model, register_all_modules
    register_all_modules()
    cfg = Config.fromfile(cfg_path)
    scope = cfg.get('default_scope', 'mmengine')
    init_default_scope(scope)
    model_cfg = cfg.model.copy()
    if 'teacher_ckpt' in model_cfg:
        model_cfg['teacher_ckpt'] = None  # random weights: nothing is downloaded
    torch.manual_seed(0)
    algo = MODELS.build(model_cfg)
    student_cfg = Config.fromfile(student_config) if student_config else None
    if student_cfg is not None:  # the student's own config, data and batches
        student_cfgs = {'architecture': student_cfg.model}
    elif 'architecture' in model_cfg:
        student_cfgs = {'architecture': model_cfg['architecture']}
    elif isinstance(model_cfg.get('students'), dict):  # collaborative: every student alone
        student_cfgs = dict(model_cfg['students'])
    else:
        raise SystemExit('error: model has neither `architecture` nor `students`; '
                         'give --student-config')
    students = {}
    for name, scfg in student_cfgs.items():
        student, _ = build_task_model(scfg, key=name)
        if getattr(student, 'contrastive_weight', None) == 0:
            # TinyCLIP configs move the student's contrastive loss into the affinity
            # loss (its alpha); the student trained alone needs it back.
            student.contrastive_weight = 1.0
        students[name] = student

    def make_batches(dataset):
        return [pseudo_collate([dataset[(k * batch_size + i) % len(dataset)]
                                for i in range(batch_size)]) for k in range(4)]

    if config_data or student_cfg is not None:
        size = 'config'  # the configs' own pipelines decide the image size
        batches = make_batches(DATASETS.build(cfg.train_dataloader.dataset))
    else:
        size = input_size or (64 if scope == 'mmpretrain' else 128)
        for pp in [algo.data_preprocessor] + [m.data_preprocessor for m in students.values()]:
            if hasattr(pp, 'size') and getattr(pp, 'size', None) is not None:
                pp.size = (size, size)  # mmseg pads/crops to this; match the benchmark input
        batches = make_batches(embedded_dataset(scope, size))
    student_batches = (make_batches(DATASETS.build(student_cfg.train_dataloader.dataset))
                       if student_cfg is not None else batches)
    algo.to(device).train()
    for student in students.values():
        student.to(device).train()
    return algo, students, batches, student_batches, scope, size, cfg


def optim_wrappers(cfg, algo, students):
    """SGD (lr 1e-5) for everything, except algorithms that bring their own optimizer
    constructor (one optimizer per student): those use the config's wrappers, and each
    student alone uses its own entry of them."""
    import torch
    from mmengine.optim import OptimWrapper, build_optim_wrapper
    ow_cfg = cfg.optim_wrapper
    if 'constructor' in ow_cfg:
        ow_b = build_optim_wrapper(algo, ow_cfg)
        ow_a = {n: build_optim_wrapper(m, ow_cfg[n]) for n, m in students.items()}
    else:
        ow_b = OptimWrapper(torch.optim.SGD(algo.parameters(), lr=1e-5))
        ow_a = {n: OptimWrapper(torch.optim.SGD(m.parameters(), lr=1e-5))
                for n, m in students.items()}
    return ow_a, ow_b


def train_steps(cfg, algo, students, batches, student_batches, wrappers=None):
    """``{'a': step(k), 'b': step(k)}``: the student(s) alone, and the mmkd step."""
    ow_a, ow_b = wrappers or optim_wrappers(cfg, algo, students)

    def step_a(k):
        for name, student in students.items():
            student.train_step(student_batches[k], ow_a[name])

    def step_b(k):
        algo.train_step(batches[k], ow_b)

    return {'a': step_a, 'b': step_b}


def teacher_modules(algo):
    if hasattr(algo, 'teacher'):
        return [algo.teacher]
    teachers = getattr(algo, 'teachers', None)
    if isinstance(teachers, dict):
        return list(teachers.values())
    return []  # collaborative students teach each other


def embedded_dataset(scope, size):
    from mmengine.registry import DATASETS
    if scope == 'mmpretrain':
        from mmkd.datasets import DigitsDataset
        return DigitsDataset(split='train', img_size=size, pipeline=[dict(type='PackInputs')])
    from mmkd.datasets import ensure_shapes
    root = osp.join(ROOT, 'data/shapes/')
    ensure_shapes(root)
    if scope == 'mmdet':
        return DATASETS.build(dict(
            type='CocoDataset', data_root=root, ann_file='annotations/instances_train.json',
            data_prefix=dict(img='images/train/'), filter_cfg=dict(filter_empty_gt=True),
            metainfo=dict(classes=('circle', 'rectangle', 'triangle', 'star')),
            pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                      dict(type='Resize', scale=(size, size), keep_ratio=False),
                      dict(type='PackDetInputs')]))
    if scope == 'mmseg':
        return DATASETS.build(dict(
            type='BaseSegDataset', data_root=root, img_suffix='.png', seg_map_suffix='.png',
            data_prefix=dict(img_path='images/train', seg_map_path='seg_masks/train'),
            pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                      dict(type='Resize', scale=(size, size), keep_ratio=False),
                      dict(type='PackSegInputs')]))
    raise SystemExit(f'error: no embedded data for default_scope={scope!r}')


class _Stop(Exception):
    pass


def plain_step_fn(algo, optimizer):
    """The hand-written loop: torch hooks, the same modules, no mmkd/mmengine calls."""
    import torch

    from mmkd.models.recorders import ModuleInputs, ModuleOutputs
    distiller = algo.distiller
    modules_t = dict(algo.teacher.named_modules())
    modules_s = dict(algo.architecture.named_modules())
    store_t, store_s = {}, {}
    active = []  # non-empty while the hand-written step runs
    needs = distiller.teacher_record_needs()
    for side, managers, modules, store in (('t', distiller.teacher_recorders, modules_t, store_t),
                                           ('s', distiller.student_recorders, modules_s, store_s)):
        for name, rec in managers.recorders.items():
            if not isinstance(rec, (ModuleOutputs, ModuleInputs)):
                raise SystemExit('the plain loop supports ModuleOutputs/ModuleInputs recorders')
            want_inputs = isinstance(rec, ModuleInputs)

            def hook(mod, inp, out, name=name, store=store, side=side, want_inputs=want_inputs):
                if not active:  # the same modules also run in variants (a), (b) and (d)
                    return
                store.setdefault(name, []).append(inp if want_inputs else out)
                if side == 't' and all(len(store_t.get(n, ())) >= c for n, c in needs.items()):
                    raise _Stop
            modules[rec.source].register_forward_hook(hook)
    losses_cfg = distiller.loss_forward_mappings

    def fetch(src, store):
        value = store[src['recorder']][src.get('record_idx', 0)]
        if src.get('data_idx') is not None:
            value = value[src['data_idx']]
        if src.get('connector'):
            value = distiller.connectors[src['connector']](value)
        return value

    def step(data):
        active.append(True)
        try:
            run(data)
        finally:
            active.clear()

    def run(data):
        store_t.clear()
        store_s.clear()
        with torch.no_grad():
            try:
                algo.teacher(data['inputs'], data['data_samples'], mode='tensor')
            except _Stop:
                pass
        task = algo.architecture(data['inputs'], data['data_samples'], mode='loss')
        total = 0
        for key, value in task.items():
            if 'loss' in key:
                total = total + (sum(value) if isinstance(value, (list, tuple)) else value)
        for name, mapping in losses_cfg.items():
            kwargs = {arg: fetch(src, store_s if src['from_student'] else store_t)
                      for arg, src in mapping.items()}
            total = total + distiller.distill_losses[name](**kwargs)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    return step


def attach_cache(algo, batches, device):
    """Run the teacher once per batch and attach its outputs as a cache would."""
    import copy

    fingerprint = algo.teacher_fingerprint()
    cached = []
    for batch in batches:
        data = algo.data_preprocessor(copy.deepcopy(batch), True)
        algo.distiller.teacher_recorders.reset()
        algo._teacher_forward(data['inputs'], data['data_samples'])
        values = {k: v.detach() for k, v in algo.distiller.read_teacher_sources().items()}
        algo.distiller.teacher_recorders.reset()
        new = copy.deepcopy(batch)
        for i, sample in enumerate(new['data_samples']):
            sample.set_metainfo(dict(teacher_fingerprint=fingerprint,
                                     teacher_outputs={k: v[i].half().float() for k, v in values.items()}))
        cached.append(new)
    return cached


def sync(device):
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def memory_probe(args):
    """Peak memory growth of 3 steps of variant (a) or (b) in this fresh process.

    CUDA: max allocated minus allocated before the steps. CPU: the peak of RSS,
    sampled every millisecond by a thread, minus RSS just before the steps.
    """
    import gc
    import threading

    import psutil
    import torch
    algo, students, batches, student_batches, _, _, cfg = build(
        args.config, args.batch_size, args.input_size, args.device, args.config_data,
        args.student_config)
    step = train_steps(cfg, algo, students, batches, student_batches)[args.memory_probe]
    gc.collect()
    proc = psutil.Process()
    peak = {'rss': 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak['rss'] = max(peak['rss'], proc.memory_info().rss)
            done.wait(0.001)

    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = proc.memory_info().rss
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
    for k in range(3):
        step(k % len(batches))
    if args.device.startswith('cuda'):
        top = torch.cuda.max_memory_allocated()
    else:
        done.set()
        thread.join()
        top = peak['rss']
    print(json.dumps(dict(peak_delta=max(top - base, 0))))


def main(argv=None):
    args = parse_args(argv)
    if args.memory_probe:
        return memory_probe(args)
    import torch
    algo, students, batches, student_batches, scope, size, cfg = build(
        args.config, args.batch_size, args.input_size, args.device, args.config_data,
        args.student_config)
    ow_a, ow_b = optim_wrappers(cfg, algo, students)
    generic = hasattr(algo, 'distiller') and hasattr(algo.distiller, 'teacher_record_needs')
    cached = plain = None
    if not generic:
        print(f'(c), (d) skipped: {type(algo).__name__} has its own train step (no '
              'ConfigurableDistiller), so there is no generic hand-written loop or cache')
    else:
        try:
            cached = attach_cache(algo, batches, args.device)
        except (IndexError, RuntimeError, ValueError) as err:
            # e.g. TinyCLIP records the teacher's logit scale, a scalar, not per sample
            print(f'(d) skipped: the recorded teacher tensors cannot be cached per sample ({err})')
        plain = plain_step_fn(algo, torch.optim.SGD(algo.parameters(), lr=1e-5))
    prep = algo.data_preprocessor

    steps = train_steps(cfg, algo, students, batches, student_batches, (ow_a, ow_b))
    variants = {
        'a_student': steps['a'],
        'b_mmkd': steps['b'],
        'c_plain': lambda k: plain(prep(batches[k], True)),
        'd_cached': lambda k: algo.train_step(cached[k], ow_b),
    }
    if plain is None:
        variants.pop('c_plain')
    if cached is None:
        variants.pop('d_cached')
    times = {name: [] for name in variants}
    order = list(variants)
    for r in range(args.warmup + args.iters):
        shift = r % len(order)
        for j, name in enumerate(order[shift:] + order[:shift]):  # rotate to spread drift
            k = (r + j) % len(batches)
            sync(args.device)
            t0 = time.perf_counter()
            variants[name](k)
            sync(args.device)
            if r >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    med = {n: statistics.median(v) * 1000 for n, v in times.items()}
    result = dict(config=args.config, device=args.device, scope=scope, input_size=size,
                  batch_size=args.batch_size, iters=args.iters, median_ms=med,
                  ratio_b_over_a=med['b_mmkd'] / med['a_student'],
                  ratio_b_over_c=med['b_mmkd'] / med['c_plain'] if plain else None,
                  ratio_b_over_d=med['b_mmkd'] / med['d_cached'] if cached else None,
                  ratio_d_over_a=med['d_cached'] / med['a_student'] if cached else None,
                  torch=torch.__version__, threads=torch.get_num_threads())
    teachers = teacher_modules(algo)
    teacher_bytes = sum(p.numel() * p.element_size() for t in teachers for p in t.parameters())
    teacher_bytes += sum(b.numel() * b.element_size() for t in teachers for b in t.buffers())
    rec_bytes = (sum(v.numel() * v.element_size() for v in _recorded(algo, batches[0]))
                 if generic else 0)
    result['teacher_weight_mib'] = teacher_bytes / 2**20
    result['teacher_recorded_mib'] = rec_bytes / 2**20
    if not args.skip_memory:
        mem = {}
        for v in ('a', 'b'):
            cmd = [sys.executable, osp.abspath(__file__), args.config, '--memory-probe', v,
                   '--batch-size', str(args.batch_size), '--device', args.device]
            if args.input_size:
                cmd += ['--input-size', str(args.input_size)]
            if args.config_data:
                cmd += ['--config-data']
            if args.student_config:
                cmd += ['--student-config', args.student_config]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith('{')]
            if out.returncode != 0 or not lines:
                raise SystemExit(f'memory probe {v} failed:\n{out.stderr[-2000:]}')
            mem[v] = json.loads(lines[-1])['peak_delta'] / 2**20
        result['peak_mib'] = dict(a_student=mem['a'], b_mmkd=mem['b'])
        result['memory_b_minus_a_mib'] = mem['b'] - mem['a']
        # The bound is about a frozen teacher; collaborative students have none.
        result['memory_bound_mib'] = ((teacher_bytes + rec_bytes) / 2**20 * 1.2
                                      if generic else None)
    report(result, args)
    return result


def _recorded(algo, batch):
    import copy
    data = algo.data_preprocessor(copy.deepcopy(batch), True)
    algo.distiller.teacher_recorders.reset()
    algo._teacher_forward(data['inputs'], data['data_samples'])
    values = list(algo.distiller.read_teacher_sources().values())
    algo.distiller.teacher_recorders.reset()
    return values


def px(size):
    return f'{size}px' if isinstance(size, int) else 'input size from the config'


def report(result, args):
    name = args.name or osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out if osp.isabs(args.out) else osp.join(ROOT, args.out)
    os.makedirs(out_dir, exist_ok=True)
    med = result['median_ms']
    print(f"\n{name}  ({result['device']}, batch {result['batch_size']}, "
          f"{px(result['input_size'])}, {result['iters']} rounds, median step time)")
    labels = {'a_student': '(a) student alone', 'b_mmkd': '(b) mmkd distillation',
              'c_plain': '(c) hand-written PyTorch', 'd_cached': '(d) mmkd, cached teacher'}
    labels = {k: v for k, v in labels.items() if k in med}
    for key, label in labels.items():
        print(f'  {label:<28} {med[key]:9.2f} ms')

    def fmt(x):
        return 'n/a' if x is None else f'{x:.3f}'
    print(f"  b/a distillation vs alone   {fmt(result['ratio_b_over_a']):>9}")
    print(f"  b/c framework overhead      {fmt(result['ratio_b_over_c']):>9}")
    print(f"  b/d teacher cost factor     {fmt(result['ratio_b_over_d']):>9}")
    print(f"  d/a cached vs student alone {fmt(result['ratio_d_over_a']):>9}")
    if 'peak_mib' in result and result['memory_bound_mib'] is None:
        print(f"  peak memory (a) {result['peak_mib']['a_student']:.1f} MiB, (b) "
              f"{result['peak_mib']['b_mmkd']:.1f} MiB")
    elif 'peak_mib' in result:
        print(f"  peak memory (a) {result['peak_mib']['a_student']:.1f} MiB, (b) "
              f"{result['peak_mib']['b_mmkd']:.1f} MiB; b-a = {result['memory_b_minus_a_mib']:.1f} "
              f"MiB vs bound (teacher weights {result['teacher_weight_mib']:.1f} + recorded "
              f"{result['teacher_recorded_mib']:.2f}) x 1.2 = {result['memory_bound_mib']:.1f} MiB")
    with open(osp.join(out_dir, f'{name}.json'), 'w') as f:
        json.dump(result, f, indent=2)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.2))
    keys = list(labels)
    ax.barh([labels[k] for k in keys], [med[k] for k in keys],
            color=['#888888', '#1f77b4', '#ff7f0e', '#2ca02c'][:len(keys)])
    for i, k in enumerate(keys):
        ax.text(med[k], i, f' {med[k]:.1f}', va='center', fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel('median step time (ms)')
    ax.set_title(f'{name}\n{result["device"]}, batch {result["batch_size"]}, '
                 f'{px(result["input_size"])}', fontsize=8)
    fig.tight_layout()
    fig.savefig(osp.join(out_dir, f'{name}.png'), dpi=120)
    print(f'  wrote {osp.join(out_dir, name)}.json/.png')


if __name__ == '__main__':
    main()
