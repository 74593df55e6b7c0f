#!/usr/bin/env python
"""Time a distillation config against the student alone and a hand-written loop.

In one process, on the same models and the same batches, interleaved rounds (the
order of the variants shuffled every round, seeded) of:
  (a) the student's own train step (the plain task model),
  (b) the mmkd distillation train step,
  (c) a hand-written plain-PyTorch step doing the same computation (teacher forward
      under no_grad up to the recorded tensors, student forward + task losses, the
      same connectors and distillation losses, backward, optimizer step), no
      mmengine/mmkd machinery in the loop,
  (d) the mmkd step with cached teacher outputs (no teacher forward): the stored
      tensors ride on the data samples exactly as ``CachedTeacherDataset`` attaches
      them (fp16-rounded, with the teacher fingerprint); they are attached in memory
      because data loading is outside every variant's timing,
  (e) the mmkd step with the teacher early exit switched off (the whole teacher
      forward runs); where the algorithm has no early exit, (e) is skipped.
Reports medians, the ratios b/c (framework overhead), b/d, d/a and b/e (< 1: the
early exit saves time), and the peak memory of (a), (b) and (c), each measured in a
fresh process above the bare process (imports and batches only), so that (a) holds the
student, and (b) and (c) the student and the teacher (bytes held by tensors: CUDA max
allocated, CPU allocator events recorded by torch.profiler; --rss adds the CPU's peak
resident set size): b-a is what distillation costs, b-c what mmkd adds to the
hand-written loop; writes JSON and a PNG bar chart.

Batches come from the embedded data (digits for mmpretrain students, the shapes set
for mmdet/mmseg students) at --input-size, so real-scale configs (ImageNet, COCO,
Cityscapes pairs) run without their data sets; weights are random.

Usage: python tools/benchmark/distill_speed.py CONFIG [--iters 20] [--batch-size 8]
           [--input-size 128] [--device cpu|cuda] [--out work_dirs/benchmark] [--rss]
"""
import argparse
import json
import os
import os.path as osp
import random
import statistics
import subprocess
import sys
import tempfile
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
    p.add_argument('--rss', action='store_true',
                   help='CPU: also probe the peak resident set size of (a), (b) and (c) (three '
                        'more processes); the main figures count the bytes held by tensors')
    p.add_argument('--memory-probe', choices=['a', 'b', 'c'], help=argparse.SUPPRESS)
    p.add_argument('--memory-metric', choices=['tensor', 'rss'], default='tensor',
                   help=argparse.SUPPRESS)
    p.add_argument('--warm-modules', help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _cuda():
    import torch
    return torch.cuda.is_available()


def load_config(cfg_path, student_config=None):
    """``(cfg, scope, model_cfg, student_cfg)``; the teacher keeps random weights."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmkd  # noqa: F401
    from mmkd.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(cfg_path)
    scope = cfg.get('default_scope', 'mmengine')
    init_default_scope(scope)
    model_cfg = cfg.model.copy()
    if 'teacher_ckpt' in model_cfg:
        model_cfg['teacher_ckpt'] = None  # random weights: nothing is downloaded
    student_cfg = Config.fromfile(student_config) if student_config else None
    return cfg, scope, model_cfg, student_cfg


def build_data(cfg, scope, student_cfg, batch_size, input_size, config_data=False):
    """Fixed batches for the mmkd step and for the student(s) alone: ``(batches,
    student_batches, size)``; ``size`` is the image side, or 'config'."""
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS

    def make_batches(dataset):
        return [pseudo_collate([dataset[(k * batch_size + i) % len(dataset)]
                                for i in range(batch_size)]) for k in range(4)]

    if config_data or student_cfg is not None:
        size = 'config'  # the configs' own pipelines decide the image size
        batches = make_batches(DATASETS.build(cfg.train_dataloader.dataset))
    else:
        size = input_size or (64 if scope == 'mmpretrain' else 128)
        batches = make_batches(embedded_dataset(scope, size))
    student_batches = (make_batches(DATASETS.build(student_cfg.train_dataloader.dataset))
                       if student_cfg is not None else batches)
    return batches, student_batches, size


def build_algo(model_cfg, size, device):
    """The distillation algorithm (teacher included), in train mode on ``device``."""
    import torch

    from mmkd.registry import MODELS
    torch.manual_seed(0)
    algo = MODELS.build(model_cfg)
    fit_input_size([algo], size)
    return algo.to(device).train()


def build_students(model_cfg, student_cfg, size, device):
    """The student(s) alone, as plain task models: ``{name: model}``, no teacher."""
    from mmkd.utils import build_task_model
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
    fit_input_size(students.values(), size)
    for student in students.values():
        student.to(device).train()
    return students


def fit_input_size(models, size):
    """mmseg preprocessors pad/crop to their ``size``: match the benchmark input."""
    if not isinstance(size, int):
        return
    for model in models:
        pp = model.data_preprocessor
        if getattr(pp, 'size', None) is not None:
            pp.size = (size, size)


def build(cfg_path, batch_size, input_size, device, config_data=False, student_config=None):
    """Build the algorithm, the student(s) alone, and fixed batches for both.

    Returns ``(algo, students, batches, student_batches, scope, size, cfg)``.
    """
    cfg, scope, model_cfg, student_cfg = load_config(cfg_path, student_config)
    batches, student_batches, size = build_data(cfg, scope, student_cfg, batch_size, input_size,
                                                config_data)
    algo = build_algo(model_cfg, size, device)
    students = build_students(model_cfg, student_cfg, size, device)
    return algo, students, batches, student_batches, scope, size, cfg


def student_wrappers(cfg, students):
    """SGD (lr 1e-5) for each student alone, or, for algorithms that bring their own
    optimizer constructor (one optimizer per student), the student's own entry."""
    import torch
    from mmengine.optim import OptimWrapper, build_optim_wrapper
    ow_cfg = cfg.optim_wrapper
    if 'constructor' in ow_cfg:
        return {n: build_optim_wrapper(m, ow_cfg[n]) for n, m in students.items()}
    return {n: OptimWrapper(torch.optim.SGD(m.parameters(), lr=1e-5)) for n, m in students.items()}


def algo_wrapper(cfg, algo):
    """SGD (lr 1e-5) over the algorithm, or the config's wrappers when it has a constructor."""
    import torch
    from mmengine.optim import OptimWrapper, build_optim_wrapper
    ow_cfg = cfg.optim_wrapper
    if 'constructor' in ow_cfg:
        return build_optim_wrapper(algo, ow_cfg)
    return OptimWrapper(torch.optim.SGD(algo.parameters(), lr=1e-5))


def student_step(students, student_batches, wrappers):
    """Variant (a): the student(s) alone, one after the other."""
    def step(k):
        for name, student in students.items():
            student.train_step(student_batches[k], wrappers[name])
    return step


def mmkd_step(algo, batches, wrapper):
    """Variant (b): the mmkd distillation train step."""
    def step(k):
        algo.train_step(batches[k], wrapper)
    return step


def early_exit_switch(algo):
    """``switch(enabled)`` turning the teacher early exit on/off, or None where the
    algorithm has none, or has it off, or its losses read a call counted from the end
    (then the teacher always runs to completion)."""
    if not getattr(algo, 'teacher_early_exit', False):
        return None
    distiller = getattr(algo, 'distiller', None)
    if not hasattr(distiller, 'teacher_record_needs'):
        return None
    if hasattr(algo, 'set_teacher_early_exit'):
        return algo.set_teacher_early_exit
    needs = distiller.teacher_record_needs()
    if not needs or any(v is None for v in needs.values()):
        return None

    def switch(enabled):
        algo.teacher_early_exit = bool(enabled)
        distiller.teacher_recorders.set_early_exit(needs if enabled else None)
    return switch


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
        total.backward()
        optimizer.step()
        # Free the gradients now, as mmengine's OptimWrapper does: kept until the next
        # step they would sit under the next teacher forward and raise (c)'s peak.
        optimizer.zero_grad(set_to_none=True)
    return step


def attach_cache(algo, batches, device):
    """Run the teacher once per batch and attach its outputs as a cache would.

    Each data sample gets what ``CachedTeacherDataset.__getitem__`` gives it from a
    cache written by ``tools/cache_teacher.py`` (default ``--dtype fp16``): metainfo
    ``teacher_outputs`` (per source key, stored in fp16, read back as fp32) and
    ``teacher_fingerprint``. The train step then takes the same path as with a real
    cache; reading the shards is data loading, which no variant times.
    """
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


MEMORY_PROBE = ('fresh process per variant; bytes held by tensors above a baseline taken after '
                'the imports (every module the timing process loaded) and the batches, before '
                'any model is built (CPU: allocator events of torch.profiler; CUDA: max '
                "allocated); the peak includes the variant's weights")
RSS_PROBE = ('fresh process per variant; peak resident set size sampled every ms above the '
             'same baseline; includes the C library heap kept after frees and kernel '
             'scratch memory, so it varies by tens of MiB from run to run')
TEACHER_SPAN = 'distill_speed.teacher_forward'


def sync(device):
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def memory_probe(args):
    """Peak memory above the bare process of building and running variant (a), (b) or (c).

    Runs in a fresh process. The baseline is taken after the imports and the batches,
    before any model exists. The imports are every module the timing process had
    loaded (``--warm-modules``): building a model imports task packages on the way
    (registry look-ups), and that code is not the model's memory. Then only what the
    variant needs is built ((a): the student(s) and their optimizer(s), no teacher;
    (b), (c): the distillation algorithm, teacher included, and its optimizer) and 3
    steps run. The peak therefore holds the weights, gradients, optimizer state and
    activations of the variant. For (b) the peak outside the teacher forward is
    reported too: that is where a kept teacher autograd graph would show.

    ``--memory-metric tensor`` (default) counts the bytes held by tensors, on both
    devices: CUDA's max allocated, and on the CPU the allocation and free events that
    torch.profiler records for the CPU allocator, summed in time order. ``rss`` (CPU
    only) samples the resident set size every millisecond instead: that is what the
    operating system sees, but it also holds heap memory the C library keeps after
    frees, so it varies by tens of MiB between identical runs.
    """
    import gc
    import importlib
    import threading

    import torch
    cfg, scope, model_cfg, student_cfg = load_config(args.config, args.student_config)
    batches, student_batches, size = build_data(cfg, scope, student_cfg, args.batch_size,
                                                args.input_size, args.config_data)
    if args.warm_modules:
        with open(args.warm_modules) as f:
            names = json.load(f)
        for name in names:
            if name not in sys.modules and name not in ('__main__', '__mp_main__'):
                try:
                    importlib.import_module(name)
                except Exception:  # private or platform-specific modules: not needed
                    pass
    cuda = args.device.startswith('cuda')
    rss = args.memory_metric == 'rss'
    if rss and cuda:
        raise SystemExit('--memory-metric rss measures CPU runs only; on CUDA the probe '
                         'reads max allocated (--memory-metric tensor)')
    gc.collect()
    # Peaks per phase (RSS and CUDA): inside the teacher forward (its no_grad
    # activations and kernel workspaces, freed when it returns) and everything else
    # (build, student, losses, backward, optimizer). The CPU tensor metric finds the
    # phases afterwards from the profiler's record_function spans.
    peak = {'teacher': 0, 'other': 0}
    phase = ['other']
    done = threading.Event()
    if rss:
        import psutil
        proc = psutil.Process()

    def sample():
        while not done.is_set():
            where = phase[0]
            peak[where] = max(peak[where], proc.memory_info().rss)
            done.wait(0.001)

    def enter(name):
        if cuda:
            peak[phase[0]] = max(peak[phase[0]], torch.cuda.max_memory_allocated())
            torch.cuda.reset_peak_memory_stats()
        elif rss:
            peak[phase[0]] = max(peak[phase[0]], proc.memory_info().rss)
        phase[0] = name

    profiler = None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    elif rss:
        base = proc.memory_info().rss
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
    else:
        base = 0
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                          profile_memory=True)
        profiler.__enter__()
    split = False
    if args.memory_probe == 'a':
        students = build_students(model_cfg, student_cfg, size, args.device)
        step = student_step(students, student_batches, student_wrappers(cfg, students))
    elif args.memory_probe == 'c':
        # The hand-written loop on the same modules: what any implementation of the same
        # computation needs, so b-c is the memory the framework adds.
        algo = build_algo(model_cfg, size, args.device)
        plain = plain_step_fn(algo, torch.optim.SGD(algo.parameters(), lr=1e-5))
        prep = algo.data_preprocessor

        def step(k):
            plain(prep(batches[k], True))
    else:
        algo = build_algo(model_cfg, size, args.device)
        step = mmkd_step(algo, batches, algo_wrapper(cfg, algo))
        split = hasattr(algo, '_teacher_forward')
        if split:
            teacher_forward = algo._teacher_forward

            def tracked(*a, **kw):
                enter('teacher')
                try:
                    with torch.profiler.record_function(TEACHER_SPAN):
                        return teacher_forward(*a, **kw)
                finally:
                    enter('other')
            algo._teacher_forward = tracked  # this probe process only; undone below
    for k in range(3):
        step(k % len(batches))
    enter('other')
    if rss:
        done.set()
        thread.join()
    if profiler is not None:
        profiler.__exit__(None, None, None)
        peak['other'], peak['teacher'] = _profiled_tensor_peaks(profiler)
    if split:
        del algo._teacher_forward
    top = max(peak.values())
    out = dict(peak_delta=max(top - base, 0))
    if split:
        out['peak_delta_outside_teacher_forward'] = max(peak['other'] - base, 0)
    print(json.dumps(out))


def _profiled_tensor_peaks(profiler):
    """(peak outside the teacher forward, peak inside it) of the bytes held by CPU
    tensors, from the allocator events torch.profiler recorded (+ on allocation, - on
    free), summed in time order from the start of the profile."""
    from torch.autograd import DeviceType
    try:
        raw = profiler.profiler.kineto_results.events()
    except AttributeError as err:  # private API of torch.profiler
        raise SystemExit(f'this torch ({err}) does not expose the profiler events the CPU '
                         'tensor-memory probe reads; rerun with --rss') from None
    spans = [(e.start_ns(), e.end_ns()) for e in raw if e.name() == TEACHER_SPAN]
    events = sorted((e.start_ns(), e.nbytes()) for e in raw
                    if e.name() == '[memory]' and e.device_type() == DeviceType.CPU)
    if not events:
        raise SystemExit('the profiler recorded no CPU allocation: cannot measure memory')
    live = outside = inside = 0
    for t, nbytes in events:
        live += nbytes
        if any(a <= t <= b for a, b in spans):
            inside = max(inside, live)
        else:
            outside = max(outside, live)
    return outside, inside


def module_bytes(modules):
    return sum(t.numel() * t.element_size() for m in modules
               for t in list(m.parameters()) + list(m.buffers()))


def main(argv=None):
    args = parse_args(argv)
    if args.memory_probe:
        return memory_probe(args)
    import torch
    algo, students, batches, student_batches, scope, size, cfg = build(
        args.config, args.batch_size, args.input_size, args.device, args.config_data,
        args.student_config)
    ow_a, ow_b = student_wrappers(cfg, students), algo_wrapper(cfg, algo)
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
    switch = early_exit_switch(algo)
    if switch is None:
        print(f'(e) skipped: {type(algo).__name__} has no teacher early exit in this config')
    prep = algo.data_preprocessor

    step_b = mmkd_step(algo, batches, ow_b)
    variants = {
        'a_student': student_step(students, student_batches, ow_a),
        'b_mmkd': step_b,
        'c_plain': lambda k: plain(prep(batches[k], True)),
        'd_cached': lambda k: algo.train_step(cached[k], ow_b),
        'e_no_early_exit': step_b,  # run with the early exit switched off (outside the timing)
    }
    if plain is None:
        variants.pop('c_plain')
    if cached is None:
        variants.pop('d_cached')
    if switch is None:
        variants.pop('e_no_early_exit')
    times = {name: [] for name in variants}
    # A fresh (seeded) order every round: with a fixed cyclic order each variant always
    # follows the same one, and on a CPU the previous step's allocations and caches
    # change the next step's time by up to ~20% (measured for the ResNet-50 -> 18 pair).
    rng = random.Random(0)
    for r in range(args.warmup + args.iters):
        order = list(variants)
        rng.shuffle(order)
        for j, name in enumerate(order):
            k = (r + j) % len(batches)
            if name == 'e_no_early_exit':
                switch(False)
            sync(args.device)
            t0 = time.perf_counter()
            variants[name](k)
            sync(args.device)
            elapsed = time.perf_counter() - t0
            if name == 'e_no_early_exit':
                switch(True)
            if r >= args.warmup:
                times[name].append(elapsed)
    med = {n: statistics.median(v) * 1000 for n, v in times.items()}

    def ratio(num, den):
        return med[num] / med[den] if num in med and den in med else None
    result = dict(config=args.config, device=args.device, scope=scope, input_size=size,
                  batch_size=args.batch_size, iters=args.iters, order='shuffled per round, seed 0',
                  median_ms=med,
                  ratio_b_over_a=ratio('b_mmkd', 'a_student'),
                  ratio_b_over_c=ratio('b_mmkd', 'c_plain'),
                  ratio_b_over_d=ratio('b_mmkd', 'd_cached'),
                  ratio_d_over_a=ratio('d_cached', 'a_student'),
                  ratio_b_over_e=ratio('b_mmkd', 'e_no_early_exit'),
                  torch=torch.__version__, threads=torch.get_num_threads())
    teacher_bytes = module_bytes(teacher_modules(algo))
    rec_bytes = (sum(v.numel() * v.element_size() for v in _recorded(algo, batches[0]))
                 if generic else 0)
    result['student_weight_mib'] = module_bytes(students.values()) / 2**20
    result['teacher_weight_mib'] = teacher_bytes / 2**20
    result['teacher_recorded_mib'] = rec_bytes / 2**20
    if not args.skip_memory:
        if args.rss and args.device.startswith('cuda'):
            raise SystemExit('--rss measures CPU runs only (on CUDA the probe reads max allocated)')
        fd, modules_file = tempfile.mkstemp(suffix='.json')
        with os.fdopen(fd, 'w') as f:
            json.dump(sorted(sys.modules), f)
        try:
            mem = run_memory_probes(args, modules_file, generic, 'tensor')
            rss = run_memory_probes(args, modules_file, generic, 'rss') if args.rss else None
        finally:
            os.remove(modules_file)
        result['memory_probe'] = MEMORY_PROBE
        result.update(memory_figures(mem))
        if rss is not None:
            result['rss'] = dict(memory_probe=RSS_PROBE, **memory_figures(rss))
        # The bound is about a frozen teacher; collaborative students have none.
        result['memory_bound_mib'] = ((teacher_bytes + rec_bytes) / 2**20 * 1.2
                                      if generic else None)
        result['memory_within_bound'] = (result['memory_b_minus_a_mib'] <= result['memory_bound_mib']
                                         if generic else None)
    report(result, args)
    return result


def run_memory_probes(args, modules_file, generic, metric):
    """Peak MiB of (a), (b) and, with a hand-written loop, (c), each in a fresh process."""
    mem = {}
    for v in ('a', 'b', 'c') if generic else ('a', 'b'):
        cmd = [sys.executable, osp.abspath(__file__), args.config, '--memory-probe', v,
               '--memory-metric', metric, '--batch-size', str(args.batch_size),
               '--device', args.device, '--warm-modules', modules_file]
        if args.input_size:
            cmd += ['--input-size', str(args.input_size)]
        if args.config_data:
            cmd += ['--config-data']
        if args.student_config:
            cmd += ['--student-config', args.student_config]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith('{')]
        if out.returncode != 0 or not lines:
            raise SystemExit(f'memory probe {v} ({metric}) failed:\n{out.stderr[-2000:]}')
        probe = json.loads(lines[-1])
        mem[v] = probe['peak_delta'] / 2**20
        if 'peak_delta_outside_teacher_forward' in probe:
            mem['b_outside'] = probe['peak_delta_outside_teacher_forward'] / 2**20
    return mem


def memory_figures(mem):
    """The peaks and their differences: b-a (what distillation costs), c-a and b-c (what
    mmkd adds to the hand-written loop), and (b) outside its teacher forward minus (a)."""
    out = dict(peak_mib=dict(a_student=mem['a'], b_mmkd=mem['b']),
               memory_b_minus_a_mib=mem['b'] - mem['a'])
    if 'c' in mem:
        out['peak_mib']['c_plain'] = mem['c']
        out['memory_c_minus_a_mib'] = mem['c'] - mem['a']
        out['memory_b_minus_c_mib'] = mem['b'] - mem['c']
    if 'b_outside' in mem:
        out['peak_b_outside_teacher_forward_mib'] = mem['b_outside']
        out['memory_b_outside_teacher_forward_minus_a_mib'] = mem['b_outside'] - mem['a']
    return out


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


LABELS = {'a_student': '(a) student alone', 'b_mmkd': '(b) mmkd distillation',
          'c_plain': '(c) hand-written PyTorch', 'd_cached': '(d) mmkd, cached teacher',
          'e_no_early_exit': '(e) mmkd, no early exit'}
COLORS = {'a_student': '#888888', 'b_mmkd': '#1f77b4', 'c_plain': '#ff7f0e',
          'd_cached': '#2ca02c', 'e_no_early_exit': '#9467bd'}


def fmt(x, spec='.3f'):
    return 'n/a' if x is None else format(x, spec)


def report(result, args):
    name = args.name or osp.splitext(osp.basename(args.config))[0]
    out_dir = args.out if osp.isabs(args.out) else osp.join(ROOT, args.out)
    os.makedirs(out_dir, exist_ok=True)
    med = result['median_ms']
    print(f"\n{name}  ({result['device']}, batch {result['batch_size']}, "
          f"{px(result['input_size'])}, {result['iters']} rounds, median step time)")
    labels = {k: v for k, v in LABELS.items() if k in med}
    for key, label in labels.items():
        print(f'  {label:<30} {med[key]:9.2f} ms')
    print(f"  b/a distillation vs alone     {fmt(result['ratio_b_over_a']):>9}")
    print(f"  b/c framework overhead        {fmt(result['ratio_b_over_c']):>9}")
    print(f"  b/d teacher cost factor       {fmt(result['ratio_b_over_d']):>9}")
    print(f"  d/a cached vs student alone   {fmt(result['ratio_d_over_a']):>9}")
    print(f"  b/e early exit (<1: it saves) {fmt(result['ratio_b_over_e']):>9}")
    if 'peak_mib' in result:
        peak = result['peak_mib']
        line = (f"  peak tensor memory above the bare process: (a) {peak['a_student']:.1f} MiB, "
                f"(b) {peak['b_mmkd']:.1f} MiB; b-a = {result['memory_b_minus_a_mib']:.1f} MiB")
        if result['memory_bound_mib'] is not None:
            line += (f" vs bound (teacher weights {result['teacher_weight_mib']:.1f} + recorded "
                     f"{result['teacher_recorded_mib']:.2f}) x 1.2 = "
                     f"{result['memory_bound_mib']:.1f} MiB: "
                     f"{'within' if result['memory_within_bound'] else 'OVER'}")
        print(line)
        if 'memory_b_minus_c_mib' in result:
            print(f"  (c) hand-written loop: peak {peak['c_plain']:.1f} MiB; c-a = "
                  f"{result['memory_c_minus_a_mib']:.1f} MiB (the teacher's cost in any "
                  f"implementation), b-c = {result['memory_b_minus_c_mib']:.1f} MiB (what mmkd adds)")
        if 'peak_b_outside_teacher_forward_mib' in result:
            print(f"  (b) outside its teacher forward: peak "
                  f"{result['peak_b_outside_teacher_forward_mib']:.1f} MiB, minus (a) = "
                  f"{result['memory_b_outside_teacher_forward_minus_a_mib']:.1f} MiB")
    if 'rss' in result:
        r = result['rss']
        c = f", (c) {r['peak_mib']['c_plain']:.1f}" if 'c_plain' in r['peak_mib'] else ''
        print(f"  peak RSS above the bare process: (a) {r['peak_mib']['a_student']:.1f}, "
              f"(b) {r['peak_mib']['b_mmkd']:.1f}{c} MiB; b-a = {r['memory_b_minus_a_mib']:.1f} MiB")
    with open(osp.join(out_dir, f'{name}.json'), 'w') as f:
        json.dump(result, f, indent=2)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    keys = list(labels)
    ax.barh([labels[k] for k in keys], [med[k] for k in keys], color=[COLORS[k] for k in keys])
    for i, k in enumerate(keys):
        ax.text(med[k], i, f' {med[k]:.1f}', va='center', fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(med.values()) * 1.15)
    ax.set_xlabel('median step time (ms)')
    ax.set_title(f'{name}\n{result["device"]}, batch {result["batch_size"]}, '
                 f'{px(result["input_size"])}', fontsize=8)
    ratios = (f"overhead b/c {fmt(result['ratio_b_over_c'])}   cached d/a "
              f"{fmt(result['ratio_d_over_a'])}   early exit b/e {fmt(result['ratio_b_over_e'])}"
              f"   b/d {fmt(result['ratio_b_over_d'], '.2f')}")
    if result.get('memory_bound_mib') is not None:
        ratios += (f"\npeak b-a {result['memory_b_minus_a_mib']:.0f} MiB "
                   f"(bound {result['memory_bound_mib']:.0f} MiB)")
    fig.text(0.01, 0.01, ratios, fontsize=7, va='bottom')
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    fig.savefig(osp.join(out_dir, f'{name}.png'), dpi=120)
    plt.close(fig)
    print(f'  wrote {osp.join(out_dir, name)}.json/.png')


if __name__ == '__main__':
    main()
