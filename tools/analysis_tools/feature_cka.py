#!/usr/bin/env python
"""Linear-CKA similarity between teacher and student layers (PNG heat map + JSON).

Linear centered kernel alignment (Kornblith, Norouzi, Lee, Hinton, "Similarity of
Neural Network Representations Revisited", ICML 2019) compares two layers through
their responses to the same n inputs. With X (n x p) and Y (n x q) the flattened
features, each column centred over the n samples,

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)
              = <K, L>_F / (||K||_F ||L||_F),   K = X X^T, L = Y Y^T.

It is 1 for representations equal up to an orthogonal transform and an isotropic
scale, it does not need p == q, and it is computed here from the n x n Gram matrices
(float64). A teacher layer that is most similar to a student layer is a natural
distillation site for it; a student stage that matches no teacher stage well is a
candidate for a hint with a connector.

Features: every named module's output on the config's val (or train) data, spatial
maps average-pooled to ``--pool`` x ``--pool`` first (memory; ``--pool 0`` keeps them),
then flattened per sample. A module returning a tuple (an FPN) gives one entry per item
(``neck:0``, ``neck:1``, ...); name ``PATH:i`` to take one item only.

Usage:
    python tools/analysis_tools/feature_cka.py CONFIG [--checkpoint CKPT]
        [--teacher-layers PATH ...] [--student-layers PATH ...] [--num-samples 256]
        [--split val] [--pool 8] [--teacher-ckpt PATH|none] [--out-dir DIR]
        [--cfg-options k=v ...]

Default layers: the backbone's stages (``res_layers`` of a ResNet, ``layers.<i>`` of a
ViT) and the modules the distiller records. Writes ``DIR/cka.png`` and ``DIR/cka.json``.

Few samples inflate linear CKA: with n samples of features far wider than n, even two
unrelated layers score near 1. For features drawn independently of each other, the
expected score is about the chance level

    chance(K, L) = tr(K) tr(L) / ((n - 1) ||K||_F ||L||_F) = sqrt(d_K d_L) / (n - 1),

with d_K = tr(K)^2 / ||K||_F^2 the effective dimension of the layer on these samples
(the participation ratio of the Gram matrix's eigenvalues, at most n - 1; for isotropic
features of p and q dimensions the chance level is 1 / sqrt((1 + n/p)(1 + n/q))). The
tool warns (on the console, in the JSON and in the picture's title) when a pair's chance
level exceeds ``CHANCE_WARN`` = 0.1, which is exactly when n - 1 < 10 sqrt(d_K d_L):
fewer than ten samples per effective dimension.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import distill_inspect as di  # noqa: E402
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

CELL_PX = 60
CHANCE_WARN = 0.1  # warn when unrelated layers would score above this (see the docstring)
MARGIN_W_PX = 220
MARGIN_H_PX = 170


def centered_gram(features: torch.Tensor) -> torch.Tensor:
    """K = Xc Xc^T for X (n, ...) flattened to (n, p) and centred over the n samples."""
    x = features.reshape(features.shape[0], -1).double()
    x = x - x.mean(dim=0, keepdim=True)
    return x @ x.t()


def cka_from_grams(k: torch.Tensor, gram_l: torch.Tensor) -> float:
    """<K, L>_F / (||K||_F ||L||_F) of two centred Gram matrices; 0 if either is 0."""
    denom = torch.linalg.norm(k) * torch.linalg.norm(gram_l)
    if float(denom) == 0.0:
        return 0.0
    return float((k * gram_l).sum() / denom)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between features ``x`` (n, ...) and ``y`` (n, ...) of the same n inputs."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f'linear_cka needs the same number of samples, got {x.shape[0]} and '
                         f'{y.shape[0]}')
    if x.shape[0] < 2:
        raise ValueError('linear_cka needs at least 2 samples')
    return cka_from_grams(centered_gram(x), centered_gram(y))


def cka_matrix(teacher: Dict[str, torch.Tensor], student: Dict[str, torch.Tensor]) -> List[List[float]]:
    """CKA of every (teacher layer, student layer) pair; rows follow ``teacher``."""
    t_grams = {k: centered_gram(v) for k, v in teacher.items()}
    s_grams = {k: centered_gram(v) for k, v in student.items()}
    return [[cka_from_grams(tk, sk) for sk in s_grams.values()] for tk in t_grams.values()]


def effective_dim(k: torch.Tensor) -> float:
    """tr(K)^2 / ||K||_F^2 of a centred Gram matrix: the participation ratio of its
    eigenvalues, the number of directions the n samples really spread over (<= n - 1)."""
    norm2 = float((k * k).sum())
    return float(torch.trace(k)) ** 2 / norm2 if norm2 > 0 else 0.0


def chance_cka(k: torch.Tensor, gram_l: torch.Tensor) -> float:
    """The linear CKA that two layers with these Gram spectra would get, in expectation,
    if their features were independent: tr(K) tr(L) / ((n - 1) ||K||_F ||L||_F)."""
    n = k.shape[0]
    denom = (n - 1) * torch.linalg.norm(k) * torch.linalg.norm(gram_l)
    if float(denom) == 0.0:
        return 0.0
    return float(torch.trace(k) * torch.trace(gram_l) / denom)


def cka_report(teacher: Dict[str, torch.Tensor], student: Dict[str, torch.Tensor]) -> dict:
    """CKA and chance-level matrices (rows follow ``teacher``) and each layer's feature size
    and effective dimension, from one Gram matrix per layer."""
    t_grams = {k: centered_gram(v) for k, v in teacher.items()}
    s_grams = {k: centered_gram(v) for k, v in student.items()}
    return dict(
        cka=[[cka_from_grams(tk, sk) for sk in s_grams.values()] for tk in t_grams.values()],
        chance=[[chance_cka(tk, sk) for sk in s_grams.values()] for tk in t_grams.values()],
        effective_dims=dict(teacher={k: effective_dim(g) for k, g in t_grams.items()},
                            student={k: effective_dim(g) for k, g in s_grams.items()}),
        feature_dims=dict(teacher={k: int(v[0].numel()) for k, v in teacher.items()},
                          student={k: int(v[0].numel()) for k, v in student.items()}))


def few_samples_warning(report: dict, num_samples: int,
                        threshold: float = CHANCE_WARN) -> Optional[str]:
    """A warning naming the pair with the highest chance level, or None when every pair's
    chance level is at most ``threshold``."""
    t_names = list(report['effective_dims']['teacher'])
    s_names = list(report['effective_dims']['student'])
    chance = report['chance']
    i, j = max(((i, j) for i in range(len(t_names)) for j in range(len(s_names))),
               key=lambda ij: chance[ij[0]][ij[1]])
    worst = chance[i][j]
    if worst <= threshold:
        return None
    t, s = t_names[i], s_names[j]
    eff, dims = report['effective_dims'], report['feature_dims']
    return (f'warning: too few samples for these features, linear CKA is inflated: with '
            f'{num_samples} samples, two unrelated layers of these sizes would score up to '
            f'{worst:.2f} (teacher {t}: effective dimension {eff["teacher"][t]:.1f} of '
            f'{dims["teacher"][t]} features; student {s}: {eff["student"][s]:.1f} of '
            f'{dims["student"][s]}). Trust only scores well above the chance level '
            f'("chance_cka" in cka.json); it stays below {threshold} with at least {1 / threshold:g} samples '
            f'per effective dimension: raise --num-samples.')


def default_layers(model, side_recorders) -> List[str]:
    """Backbone stages, then the modules the distiller's recorders read (deduplicated)."""
    from torch import nn
    layers = []
    backbone = getattr(model, 'backbone', None)
    if backbone is not None:
        if getattr(backbone, 'res_layers', None):
            layers += [f'backbone.{name}' for name in backbone.res_layers]
        elif isinstance(getattr(backbone, 'layers', None), nn.ModuleList):
            layers += [f'backbone.layers.{i}' for i in range(len(backbone.layers))]
    modules = dict(model.named_modules())
    for recorder in side_recorders.recorders.values():
        if recorder.source in modules:  # module recorders (not method/function ones)
            layers.append(recorder.source)
    return list(dict.fromkeys(layers))


class LayerTaps:
    """Forward hooks that keep each named module's (pooled) output per batch."""

    def __init__(self, model, specs: Sequence[str], pool: int) -> None:
        from mmkd.models.recorders import find_module
        self.pool = pool
        self.outputs: Dict[str, List[torch.Tensor]] = {}
        self.handles = []
        for spec in specs:
            path, _, idx = spec.partition(':')
            module = find_module(model, path, what='layer')
            if idx and not idx.isdigit():
                raise SystemExit(f'error: layer {spec!r}: the part after ":" must be an item index')
            self.handles.append(module.register_forward_hook(self._hook(path, idx)))

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        t = t.detach().float()
        if self.pool and t.dim() == 4 and (t.shape[2] > self.pool or t.shape[3] > self.pool):
            t = torch.nn.functional.adaptive_avg_pool2d(t, self.pool)
        return t.reshape(t.shape[0], -1).cpu()

    def _hook(self, path: str, idx: str):
        def hook(module, inputs, output):
            if isinstance(output, (list, tuple)):
                items = [(f'{path}:{i}', o) for i, o in enumerate(output) if torch.is_tensor(o)]
                if idx:
                    items = [(f'{path}:{idx}', output[int(idx)])]
            elif torch.is_tensor(output):
                items = [(path, output)]
            else:
                raise SystemExit(f'error: layer {path!r} returned a {type(output).__name__}, '
                                 'not a tensor or a tuple of tensors')
            for name, value in items:
                self.outputs.setdefault(name, []).append(self._reduce(value))
        return hook

    def features(self, num: int) -> Dict[str, torch.Tensor]:
        return {k: torch.cat(v)[:num] for k, v in self.outputs.items()}

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='trained algorithm or student checkpoint')
    parser.add_argument('--teacher-ckpt', help="override model.teacher_ckpt ('none': random)")
    parser.add_argument('--teacher-layers', nargs='+', help='module paths in the teacher')
    parser.add_argument('--student-layers', nargs='+', help='module paths in the student')
    parser.add_argument('--num-samples', type=int, default=256)
    parser.add_argument('--batch-size', type=int, default=None, help='default: the config\'s')
    parser.add_argument('--split', default='val', choices=['train', 'val', 'test'])
    parser.add_argument('--pool', type=int, default=8,
                        help='average-pool spatial maps to this size first (0: keep)')
    parser.add_argument('--out-dir', default='cka')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


@torch.no_grad()
def collect(model, loader, t_taps: LayerTaps, s_taps: LayerTaps, num: int) -> int:
    seen = 0
    for batch in loader:
        data = model.data_preprocessor(batch, False)
        inputs, samples = data['inputs'], data.get('data_samples')
        model.teacher(data.get('teacher_inputs', inputs), samples, mode='tensor')
        model.architecture(inputs, samples, mode='tensor')
        seen += len(samples) if samples is not None else inputs.shape[0]
        if seen >= num:
            break
    return min(seen, num)


def plot(matrix, t_names, s_names, title: str, out: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    dpi = 100
    w_px, h_px = MARGIN_W_PX + CELL_PX * len(s_names), MARGIN_H_PX + CELL_PX * len(t_names)
    fig = plt.figure(figsize=(w_px / dpi, h_px / dpi), dpi=dpi)
    ax = fig.add_axes([(MARGIN_W_PX - 70) / w_px, 110 / h_px, CELL_PX * len(s_names) / w_px,
                       CELL_PX * len(t_names) / h_px])
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap='viridis', aspect='auto')
    ax.set_xticks(range(len(s_names)), s_names, rotation=45, ha='right', fontsize=6)
    ax.set_yticks(range(len(t_names)), t_names, fontsize=6)
    ax.set_xlabel('student', fontsize=7)
    ax.set_ylabel('teacher', fontsize=7)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, f'{v:.2f}', ha='center', va='center', fontsize=6,
                    color='white' if v < 0.6 else 'black')
    cax = fig.add_axes([1 - 60 / w_px, 110 / h_px, 10 / w_px, CELL_PX * len(t_names) / h_px])
    fig.colorbar(im, cax=cax).ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=7)
    di.save(fig, out)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.runner import Runner
    cfg = di.load_config(args.config, args.cfg_options, args.teacher_ckpt)
    model = di.build_model(cfg, args.checkpoint)
    loader_cfg = dict(cfg.get(f'{args.split}_dataloader') or {})
    if not loader_cfg:
        raise SystemExit(f'error: the config has no {args.split}_dataloader')
    if args.batch_size:
        loader_cfg['batch_size'] = args.batch_size
    loader_cfg['num_workers'] = 0
    loader_cfg.pop('persistent_workers', None)
    loader = Runner.build_dataloader(loader_cfg)

    distiller = model.distiller
    t_specs = args.teacher_layers or default_layers(model.teacher, distiller.teacher_recorders)
    s_specs = args.student_layers or default_layers(model.architecture, distiller.student_recorders)
    t_taps = LayerTaps(model.teacher, t_specs, args.pool)
    s_taps = LayerTaps(model.architecture, s_specs, args.pool)
    try:
        n = collect(model, loader, t_taps, s_taps, args.num_samples)
    finally:
        t_taps.remove()
        s_taps.remove()
    if n < 2:
        raise SystemExit(f'error: only {n} sample(s) in the {args.split} set; CKA needs >= 2')
    teacher, student = t_taps.features(n), s_taps.features(n)
    report = cka_report(teacher, student)
    matrix = report['cka']
    warning = few_samples_warning(report, n)
    t_names, s_names = list(teacher), list(student)
    best = {s: t_names[max(range(len(t_names)), key=lambda i: matrix[i][j])]
            for j, s in enumerate(s_names)}

    os.makedirs(args.out_dir, exist_ok=True)
    result = dict(config=args.config, checkpoint=args.checkpoint, split=args.split,
                  num_samples=n, pool=args.pool, teacher_layers=t_names, student_layers=s_names,
                  feature_dims=report['feature_dims'], effective_dims=report['effective_dims'],
                  cka=matrix, chance_cka=report['chance'], chance_threshold=CHANCE_WARN,
                  few_samples_warning=warning, best_teacher_layer=best)
    json_path = osp.join(args.out_dir, 'cka.json')
    with open(json_path, 'w') as f:
        json.dump(result, f, indent=2)
    png_path = osp.join(args.out_dir, 'cka.png')
    title = f'linear CKA, {osp.basename(args.config)}, n={n}'
    if warning:
        worst = max(max(row) for row in report['chance'])
        title += f'\nfew samples: unrelated layers would score up to {worst:.2f}'
    plot(matrix, t_names, s_names, title, png_path)
    if warning:
        print(warning)
    print(f'wrote {png_path} and {json_path} ({len(t_names)} teacher x {len(s_names)} student '
          f'layers, {n} samples)')
    for s, t in best.items():
        print(f'  student {s:<28} most similar teacher layer: {t}')
    return result


if __name__ == '__main__':
    main()
