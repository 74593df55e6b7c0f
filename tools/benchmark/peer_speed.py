#!/usr/bin/env python
"""mmkd against its peers, side by side: a hand-written loop, torchdistill, mmkd.

In one process, on the same batches, interleaved rounds (the order of the variants
shuffled every round, seeded, as in ``distill_speed.py``) of one training step of
each variant, for three teacher -> student pairs:

* ``kd``: logit KD (KL divergence, tau 1, + the student's cross-entropy)
  ResNet-50 -> ResNet-18, classification at ``--cls-size`` px;
* ``hint``: a FitNet hint (MSE between the layer3 outputs, both 256 channels, so no
  regressor; + cross-entropy) ResNet-34 -> ResNet-18. The teacher is needed only up
  to layer3: mmkd's early exit stops it there, the hand-written loop runs
  ``conv1 .. layer3`` by hand, torchdistill runs its ``sequential`` redesign of the
  teacher (``conv1 .. layer3``);
* ``fpn``: FPN feature KD (FitNet on the five FPN levels with 1x1 conv regressors,
  ``configs/fitnet/fitnet_fpn_retinanet-r50_retinanet-r18_1x_coco.py``) RetinaNet
  R50 -> R18 from mmdet, detection at ``--det-size`` px. torchdistill has no route
  for mmdet detectors (its detection examples use torchvision's), so only mmkd and
  the hand-written loop run.

Variants (every one is a full step: teacher forward under no_grad, student forward,
task loss + distillation loss, backward, SGD step):

* ``mmkd``: ``SingleTeacherDistill.train_step`` on mmpretrain/mmdet models;
* ``hand_tv`` (classification pairs): a hand-written PyTorch loop on torchvision's
  ResNets (``torchvision.models.resnet50/34/18``, random weights);
* ``torchdistill`` (classification pairs): torchdistill's ``DistillationBox``
  (``pre_forward_process``, ``forward_process``, ``post_forward_process``, as its
  training loop calls them) on the same torchvision ResNets, configured in the dict
  form of its YAML (``KDLoss`` / ``MSELoss`` + ``CrossEntropyLoss`` in a
  ``WeightedSumLoss``);
* ``hand_mm``: a hand-written loop on mmkd's own modules (plain forward hooks, the
  same teacher, student, connectors and losses; ``distill_speed.py``'s variant (c)).
  It separates what mmkd costs from what the model implementation costs.

mmpretrain's and torchvision's ResNets are the same architectures (torchvision
style: stride on the 3x3 convolution; the parameter counts, printed, are equal).
Every variant normalises the same raw batch with the student's data preprocessor
inside its timed step. Weights are random; nothing is downloaded.

Prints, per pair and variant, the median, the interquartile range and min-max of the
step time, and the ratios mmkd/hand_tv, mmkd/hand_mm and mmkd/torchdistill; writes
``peer_speed.json`` and ``peer_speed.png`` to ``--out``.

Usage: OMP_NUM_THREADS=1 python tools/benchmark/peer_speed.py [--iters 20] [--warmup 3]
           [--batch-size 8] [--cls-size 64] [--det-size 128] [--pairs kd hint fpn]
           [--out docs/benchmarks] [--no-torchdistill]
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import os.path as osp
import random
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

PAIRS = ('kd', 'hint', 'fpn')
KD_CONFIG = 'configs/kd/kd_logits_resnet50_resnet18_8xb32_in1k.py'
FPN_CONFIG = 'configs/fitnet/fitnet_fpn_retinanet-r50_retinanet-r18_1x_coco.py'
TITLES = {
    'kd': 'logit KD ResNet-50 -> ResNet-18',
    'hint': 'hint ResNet-34 -> ResNet-18 @ layer3',
    'fpn': 'FPN KD RetinaNet R50 -> R18',
}
LABELS = {'hand_tv': 'hand-written (torchvision)', 'torchdistill': 'torchdistill 1.1.5 (torchvision)',
          'hand_mm': 'hand-written (mm modules)', 'mmkd': 'mmkd'}
COLORS = {'hand_tv': '#ff7f0e', 'torchdistill': '#2ca02c', 'hand_mm': '#888888', 'mmkd': '#1f77b4'}
FPN_NO_TORCHDISTILL = ('torchdistill has no route for mmdet detectors (its detection path '
                       'builds torchvision models), so the FPN pair runs mmkd and the '
                       'hand-written loop only')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--iters', type=int, default=20, help='timed rounds per pair')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--cls-size', type=int, default=64, help='classification image side')
    p.add_argument('--det-size', type=int, default=128, help='detection image side')
    p.add_argument('--pairs', nargs='+', default=list(PAIRS), choices=PAIRS)
    p.add_argument('--device', default='cpu')
    p.add_argument('--out', default='work_dirs/benchmark')
    p.add_argument('--no-torchdistill', action='store_true', help='skip torchdistill')
    p.add_argument('--no-plot', action='store_true')
    return p.parse_args(argv)


def load_distill_speed():
    """``tools/benchmark/distill_speed.py`` as a module (its builders and hand loop)."""
    path = osp.join(ROOT, 'tools', 'benchmark', 'distill_speed.py')
    spec = importlib.util.spec_from_file_location('mmkd_distill_speed', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torchdistill_status():
    """``(module, version, None)`` if torchdistill imports, else ``(None, None, reason)``."""
    try:
        import torchdistill
        from torchdistill.core.distillation import DistillationBox  # noqa: F401
    except Exception as err:  # noqa: BLE001 (any import failure is reported, not raised)
        return None, None, (f'torchdistill is not importable here ({type(err).__name__}: '
                            f'{err}); install it with `pip install --no-deps -r '
                            'requirements/benchmark.txt` (or `make bench`)')
    return torchdistill, getattr(torchdistill, '__version__', '?'), None


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------
# The pairs: mmkd algorithm config (dict) and, for classification, torchvision names
# ----------------------------------------------------------------------------------
def hint_model_cfg():
    """The hint pair as an mmkd model config (no shipped config is needed for it)."""
    rec = dict(hint=dict(type='ModuleOutputs', source='backbone.layer3'))
    return dict(
        _scope_='mmkd', type='SingleTeacherDistill',
        architecture=dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py', pretrained=False),
        teacher=dict(cfg_path='mmpretrain::resnet/resnet34_8xb32_in1k.py', pretrained=False),
        distiller=dict(
            type='ConfigurableDistiller', student_recorders=rec, teacher_recorders=rec,
            distill_losses=dict(loss_hint=dict(type='L2Loss', reduction='mean', loss_weight=1.0)),
            loss_forward_mappings=dict(loss_hint=dict(
                s_feature=dict(from_student=True, recorder='hint'),
                t_feature=dict(from_student=False, recorder='hint')))))


TV_MODELS = {'kd': ('resnet50', 'resnet18'), 'hint': ('resnet34', 'resnet18')}
TV_TRUNK = ['conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3']


def build_tv(pair, device):
    import torch
    import torchvision
    torch.manual_seed(0)
    t_name, s_name = TV_MODELS[pair]
    teacher = getattr(torchvision.models, t_name)(weights=None).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = getattr(torchvision.models, s_name)(weights=None).to(device).train()
    return teacher, student


def labels_of(data):
    import torch
    return torch.cat([s.gt_label for s in data['data_samples']]).to(data['inputs'].device)


def hand_tv_step(pair, teacher, student, prep, batches):
    """The hand-written loop on torchvision models."""
    import torch
    import torch.nn.functional as F
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-5)
    store = {}
    if pair == 'hint':
        student.layer3.register_forward_hook(lambda m, i, o: store.__setitem__('s', o))
        trunk = [getattr(teacher, n) for n in TV_TRUNK]  # the teacher up to layer3 only

    def step(k):
        data = prep(batches[k], True)
        x, y = data['inputs'], labels_of(data)
        with torch.no_grad():
            if pair == 'kd':
                t_out = teacher(x)
            else:
                t_out = x
                for module in trunk:
                    t_out = module(t_out)
        logits = student(x)
        loss = F.cross_entropy(logits, y)
        if pair == 'kd':
            loss = loss + F.kl_div(F.log_softmax(logits, 1), F.softmax(t_out, 1),
                                   reduction='batchmean')
        else:
            loss = loss + F.mse_loss(store.pop('s'), t_out)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()
    return step


def torchdistill_step(pair, teacher, student, prep, batches, device):
    """torchdistill's DistillationBox, configured as its YAML would configure it."""
    import torch
    from torchdistill.core.distillation import DistillationBox
    ce = dict(criterion=dict(key='CrossEntropyLoss', kwargs=dict(reduction='mean')),
              criterion_wrapper=dict(key='SimpleLossWrapper', kwargs=dict(
                  input=dict(is_from_teacher=False, module_path='.', io='output'),
                  target=dict(uses_label=True))),
              weight=1.0)
    if pair == 'kd':
        teacher_cfg = dict(requires_grad=False)
        student_cfg = dict(requires_grad=True)
        distill = dict(criterion=dict(key='KDLoss', kwargs=dict(
            student_module_path='.', student_module_io='output', teacher_module_path='.',
            teacher_module_io='output', temperature=1.0, alpha=0.0, reduction='batchmean')),
            weight=1.0)
    else:
        teacher_cfg = dict(sequential=TV_TRUNK, requires_grad=False)
        student_cfg = dict(requires_grad=True, forward_hook=dict(input=[], output=['layer3']))
        distill = dict(criterion=dict(key='MSELoss', kwargs=dict(reduction='mean')),
                       criterion_wrapper=dict(key='SimpleLossWrapper', kwargs=dict(
                           input=dict(is_from_teacher=False, module_path='layer3', io='output'),
                           target=dict(is_from_teacher=True, module_path='.', io='output'))),
                       weight=1.0)
    teacher_cfg['forward_proc'] = student_cfg['forward_proc'] = 'forward_batch_only'
    train_config = dict(
        num_epochs=1, teacher=teacher_cfg, student=student_cfg,
        optimizer=dict(key='SGD', kwargs=dict(lr=1e-5)),
        criterion=dict(key='WeightedSumLoss', kwargs=dict(sub_terms=dict(ce=ce, distill=distill))))
    box = DistillationBox(teacher, student, dataset_dict={}, train_config=train_config,
                          device=torch.device(device), device_ids=None, distributed=False,
                          lr_factor=1)
    box.pre_epoch_process(epoch=0)
    box.teacher_model.eval()

    def step(k):
        data = prep(batches[k], True)
        x, y = data['inputs'], labels_of(data)
        box.pre_forward_process()
        loss = box.forward_process(x, y, {})
        box.post_forward_process(loss=loss)
        return loss.detach()
    return step, box


def build_pair(pair, args, ds, td):
    """``(variants, info)``: step functions by name, and what the report says of them."""
    import torch
    cfg_path = FPN_CONFIG if pair == 'fpn' else KD_CONFIG
    cfg, scope, model_cfg, _ = ds.load_config(osp.join(ROOT, cfg_path))
    if pair == 'hint':
        model_cfg = hint_model_cfg()
    size = args.det_size if pair == 'fpn' else args.cls_size
    batches, _, size = ds.build_data(cfg, scope, None, args.batch_size, size)
    algo = ds.build_algo(model_cfg, size, args.device)
    prep = algo.data_preprocessor
    ow = ds.algo_wrapper(cfg, algo)
    hand_mm = ds.plain_step_fn(algo, torch.optim.SGD(algo.parameters(), lr=1e-5))
    variants = {'mmkd': lambda k: algo.train_step(batches[k], ow),
                'hand_mm': lambda k: hand_mm(prep(batches[k], True))}
    info = dict(scope=scope, input_size=size, config=cfg_path if pair != 'hint' else
                'built in peer_speed.hint_model_cfg()',
                mm_params=dict(teacher=n_params(algo.teacher), student=n_params(algo.architecture)),
                skipped={})
    if pair == 'fpn':
        info['skipped']['hand_tv'] = 'the pair is defined by mmdet configs (hand_mm is its hand loop)'
        info['skipped']['torchdistill'] = FPN_NO_TORCHDISTILL
        return variants, info, [algo]
    teacher, student = build_tv(pair, args.device)
    info['tv_models'] = dict(zip(('teacher', 'student'), TV_MODELS[pair]))
    info['tv_params'] = dict(teacher=n_params(teacher), student=n_params(student))
    variants['hand_tv'] = hand_tv_step(pair, teacher, student, prep, batches)
    keep = [algo, teacher, student]
    if td['module'] is None:
        info['skipped']['torchdistill'] = td['reason']
    else:
        # A second torchvision pair, so that torchdistill's hooks and its teacher redesign
        # never touch the hand-written loop's models (same seed: the same weights).
        t2, s2 = build_tv(pair, args.device)
        variants['torchdistill'], box = torchdistill_step(pair, t2, s2, prep, batches, args.device)
        keep += [t2, s2, box]
    return variants, info, keep


def time_variants(variants, args, n_batches=4):
    """Interleaved rounds, order shuffled every round (seed 0): ``({name: [seconds]},
    {name: MiB})``; on CUDA the MiB are each step's ``max_memory_allocated`` above what
    was allocated before it (all variants' models stay resident), else empty."""
    import torch
    cuda = args.device.startswith('cuda')
    times = {name: [] for name in variants}
    peaks = {}
    rng = random.Random(0)
    for r in range(args.warmup + args.iters):
        order = list(variants)
        rng.shuffle(order)
        for j, name in enumerate(order):
            k = (r + j) % n_batches
            sync(args.device)
            if cuda:
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            variants[name](k)
            sync(args.device)
            if r >= args.warmup:
                times[name].append(time.perf_counter() - t0)
            if cuda:
                step_peak = (torch.cuda.max_memory_allocated() - before) / 2**20
                peaks[name] = max(peaks.get(name, 0.0), step_peak)
    return times, peaks


def sync(device):
    if device.startswith('cuda'):
        import torch
        torch.cuda.synchronize()


def summary(seconds):
    ms = sorted(s * 1000 for s in seconds)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    return dict(median=statistics.median(ms), q1=q[0], q3=q[2], min=ms[0], max=ms[-1], n=len(ms))


def ratios(stats):
    med = {k: v['median'] for k, v in stats.items()}
    out = {}
    for other in ('hand_tv', 'hand_mm', 'torchdistill'):
        if 'mmkd' in med and other in med:
            out[f'mmkd/{other}'] = med['mmkd'] / med[other]
    return out


def main(argv=None):
    args = parse_args(argv)
    import logging

    import torch
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmengine').setLevel(logging.WARNING)  # no init_weights listing
    ds = load_distill_speed()
    module, version, reason = (None, None, 'skipped (--no-torchdistill)') if args.no_torchdistill \
        else torchdistill_status()
    td = dict(module=module, version=version, reason=reason)
    if reason:
        print(f'torchdistill: {reason}')
    results = dict(torch=torch.__version__, threads=torch.get_num_threads(), device=args.device,
                   batch_size=args.batch_size, iters=args.iters, warmup=args.warmup,
                   order='shuffled per round, seed 0', torchdistill=version,
                   torchdistill_reason=reason, pairs={})
    for pair in args.pairs:
        t0 = time.perf_counter()
        variants, info, keep = build_pair(pair, args, ds, td)
        times, peaks = time_variants(variants, args)
        stats = {name: summary(v) for name, v in times.items()}
        for name, mib in peaks.items():
            stats[name]['step_peak_mib'] = mib
        results['pairs'][pair] = dict(title=TITLES[pair], **info, stats=stats, ratios=ratios(stats),
                                      wall_s=time.perf_counter() - t0)
        report_pair(pair, results['pairs'][pair], args)
        del variants, keep
        gc.collect()
    out_dir = args.out if osp.isabs(args.out) else osp.join(ROOT, args.out)
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'peer_speed.json'), 'w') as f:
        json.dump(results, f, indent=2)
    if not args.no_plot:
        plot(results, osp.join(out_dir, 'peer_speed.png'))
    print(markdown_table(results))
    print(f'wrote {osp.join(out_dir, "peer_speed")}.json' + ('' if args.no_plot else '/.png'))
    return results


def report_pair(pair, res, args):
    print(f"\n{res['title']}  ({args.device}, batch {args.batch_size}, {res['input_size']}px, "
          f"{args.iters} rounds after {args.warmup} warm-up; step time ms)")
    if 'tv_params' in res:
        print(f"  parameters teacher/student: mm {res['mm_params']['teacher']:,}/"
              f"{res['mm_params']['student']:,}, torchvision {res['tv_models']['teacher']}/"
              f"{res['tv_models']['student']} {res['tv_params']['teacher']:,}/"
              f"{res['tv_params']['student']:,}")
    for name in LABELS:
        if name in res['stats']:
            s = res['stats'][name]
            print(f"  {LABELS[name]:<33} median {s['median']:8.2f}  IQR {s['q1']:8.2f}-{s['q3']:<8.2f}"
                  f"  min-max {s['min']:8.2f}-{s['max']:.2f}")
        elif name in res['skipped']:
            print(f"  {LABELS[name]:<33} skipped: {res['skipped'][name]}")
    for key, value in res['ratios'].items():
        print(f'  {key:<33} {value:.3f}')


def markdown_table(results):
    rows = ['| pair | input | variant | median ms | IQR ms | min-max ms |', '|---|---|---|---|---|---|']
    for res in results['pairs'].values():
        for name in LABELS:
            if name not in res['stats']:
                continue
            s = res['stats'][name]
            rows.append(f"| {res['title']} | {results['batch_size']}x{res['input_size']}px | "
                        f"{LABELS[name]} | {s['median']:.1f} | {s['q1']:.1f}-{s['q3']:.1f} | "
                        f"{s['min']:.1f}-{s['max']:.1f} |")
    rows += ['', '| pair | mmkd/hand (torchvision) | mmkd/hand (mm modules) | mmkd/torchdistill |',
             '|---|---|---|---|']
    for res in results['pairs'].values():
        r = res['ratios']
        cells = [f"{r[k]:.3f}" if k in r else 'n/a' for k in
                 ('mmkd/hand_tv', 'mmkd/hand_mm', 'mmkd/torchdistill')]
        rows.append(f"| {res['title']} | " + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def plot(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    pairs = list(results['pairs'].items())
    fig, axes = plt.subplots(len(pairs), 1, figsize=(6.8, 1.3 + 1.25 * len(pairs) * 1.2),
                             squeeze=False)
    for ax, (_, res) in zip(axes[:, 0], pairs):
        names = [n for n in LABELS if n in res['stats']]
        med = [res['stats'][n]['median'] for n in names]
        err = [[res['stats'][n]['median'] - res['stats'][n]['q1'] for n in names],
               [res['stats'][n]['q3'] - res['stats'][n]['median'] for n in names]]
        ax.barh([LABELS[n] for n in names], med, xerr=err, color=[COLORS[n] for n in names],
                capsize=3)
        q3 = [res['stats'][n]['q3'] for n in names]
        for i, m in enumerate(med):  # the label right of the error bar
            ax.text(max(m, q3[i]), i, f'  {m:.1f}', va='center', fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, max(q3) * 1.3)
        ratio = '   '.join(f'{k} {v:.3f}' for k, v in res['ratios'].items())
        ax.set_title(f"{res['title']}, {results['batch_size']}x{res['input_size']}px\n{ratio}",
                     fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel(f"median step time, ms (bars: IQR); {results['device']}, "
                           f"{results['threads']} thread(s), torch {results['torch']}", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == '__main__':
    main()
