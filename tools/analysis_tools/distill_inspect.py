"""Shared helpers of the analysis tools: build a distillation model, feed it one image,
record student and teacher tensors, and draw maps.

Used by ``visualize_features.py``, ``visualize_masks.py`` and ``feature_cka.py``; not a
tool by itself.
"""
from __future__ import annotations

import copy
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # run from a checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402

_LOAD_TRANSFORMS = ('LoadImageFromFile', 'LoadImageFromNDArray')


def load_config(config: str, cfg_options: Optional[dict] = None, teacher_ckpt: Optional[str] = None):
    """Read ``config``; ``teacher_ckpt`` ('none' for random teacher weights) overrides the
    config's ``model.teacher_ckpt``."""
    from mmengine.config import Config

    import mmkd  # noqa: F401  (version checks, torch.load allow-list)
    from mmkd.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    if not osp.isfile(config):
        raise SystemExit(f'error: config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    from mmkd.utils.model_builder import resolve_relative_cfg_paths
    resolve_relative_cfg_paths(cfg)
    if teacher_ckpt is not None:
        cfg.model.teacher_ckpt = None if teacher_ckpt.lower() == 'none' else teacher_ckpt
    ckpt = cfg.model.get('teacher_ckpt')
    if ckpt and '://' not in str(ckpt) and not osp.isfile(ckpt):
        raise SystemExit(
            f'error: model.teacher_ckpt={ckpt!r} does not exist; train the teacher first, '
            'pass --teacher-ckpt PATH, or --teacher-ckpt none for a random teacher')
    return cfg


def build_model(cfg, checkpoint: Optional[str] = None, device: str = 'cpu'):
    """Build the algorithm of ``cfg`` in eval mode, optionally with a trained checkpoint.

    ``checkpoint`` is a ``tools/train.py`` checkpoint of the algorithm (student and
    distiller: connectors, learnable loss parts) or a student-only one (converted or
    published): its keys then load into ``architecture``.
    """
    import warnings

    from mmengine.registry import init_default_scope

    from mmkd.registry import MODELS
    from mmkd.utils import safe_torch_load
    init_default_scope(cfg.get('default_scope', 'mmkd'))
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='SingleTeacherDistill: no teacher_ckpt')
        model = MODELS.build(copy.deepcopy(cfg.model))
    for attr in ('teacher', 'architecture', 'distiller'):
        if not hasattr(model, attr):
            raise SystemExit(f'error: {type(model).__name__} has no {attr!r}; the analysis tools '
                             'need a single-teacher distillation config (SingleTeacherDistill, '
                             'MaskedImageDistill, ...)')
    if checkpoint:
        if not osp.isfile(checkpoint):
            raise SystemExit(f'error: checkpoint {checkpoint!r} does not exist')
        state = safe_torch_load(checkpoint)
        state = state.get('state_dict', state)
        if any(k.startswith(('architecture.', 'distiller.')) for k in state):
            target, prefix = model, ''
        else:
            target, prefix = model.architecture, 'architecture.'
        result = target.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise SystemExit(f'error: {checkpoint!r} has keys this model lacks: '
                             f'{result.unexpected_keys[:8]}')
        missing = [prefix + k for k in result.missing_keys]
        student_missing = [k for k in missing if k.startswith('architecture.')]
        if student_missing:
            raise SystemExit(f'error: {checkpoint!r} lacks student weights: {student_missing[:8]}')
        if missing:
            print(f'note: {len(missing)} distiller tensors are not in the checkpoint and keep '
                  f'their initial values (e.g. {missing[0]})')
    return model.to(device).eval()


def _dataset_cfg(cfg, split: str):
    loader = cfg.get(f'{split}_dataloader')
    if not loader:
        raise SystemExit(f'error: the config has no {split}_dataloader')
    dataset = copy.deepcopy(loader['dataset'])
    # a wrapper (e.g. CachedTeacherDataset) holds the real data set
    while dataset.get('dataset') is not None and 'pipeline' not in dataset:
        dataset = dataset['dataset']
    return dataset


def image_batch(cfg, image: str) -> Tuple[dict, np.ndarray]:
    """One-sample batch for ``image`` and the RGB image the network sees.

    ``image`` is a file path, run through the config's test pipeline (annotation
    loading dropped; for a data set without a loading transform, e.g. the digits, the
    image is resized to the data set's ``img_size``), or ``SPLIT:INDEX`` (for example
    ``val:0``) for a sample of the config's data set.
    """
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import DATASETS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmkd'))
    split, _, index = image.partition(':')
    if split in ('train', 'val', 'test') and index.isdigit() and not osp.exists(image):
        dataset = DATASETS.build(_dataset_cfg(cfg, split))
        item = dataset[int(index)]
    else:
        if not osp.isfile(image):
            raise SystemExit(f'error: image {image!r} does not exist (or use SPLIT:INDEX, '
                             'e.g. val:0)')
        dataset_cfg = _dataset_cfg(cfg, 'test' if cfg.get('test_dataloader') else 'val')
        pipeline = [t for t in dataset_cfg.get('pipeline', [])
                    if 'LoadAnnotations' not in str(t.get('type', ''))]
        has_loader = any(str(t.get('type', '')).split('.')[-1] in _LOAD_TRANSFORMS for t in pipeline)
        if has_loader:
            results = dict(img_path=image, img_id=0)
        else:
            import mmcv
            img = mmcv.imread(image)  # BGR uint8, like OpenMMLab's loaders
            size = dataset_cfg.get('img_size')
            if size:
                img = mmcv.imresize(img, (size, size) if isinstance(size, int) else tuple(size))
            results = dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], img_id=0)
        item = Compose(pipeline)(results)
    batch = pseudo_collate([item])
    shown = batch['inputs'][0]
    shown = shown.numpy() if torch.is_tensor(shown) else np.asarray(shown)
    if shown.ndim == 3 and shown.shape[0] in (1, 3):
        shown = shown.transpose(1, 2, 0)
    if shown.ndim == 3 and shown.shape[2] == 3:
        shown = shown[..., ::-1]  # BGR -> RGB
    shown = shown.squeeze()
    return batch, _to_unit(shown.astype(np.float32))


@torch.no_grad()
def record(model, batch: dict) -> Tuple[Any, Any]:
    """Run teacher and student on ``batch`` with their recorders on; return inputs and
    data samples after preprocessing (the recorders keep their values until reset)."""
    data = model.data_preprocessor(batch, False)
    inputs, samples = data['inputs'], data.get('data_samples')
    teacher_inputs = data.get('teacher_inputs', inputs)
    distiller = model.distiller
    distiller.teacher_recorders.reset()
    distiller.student_recorders.reset()
    if hasattr(model, '_teacher_forward'):
        model._teacher_forward(teacher_inputs, samples)  # early exit, precision, ...
    else:
        with distiller.teacher_recorders:
            model.teacher(teacher_inputs, samples, mode='tensor')
    with distiller.student_recorders:
        model.architecture(inputs, samples, mode='tensor')
    return inputs, samples


def recorded(manager, name: str) -> List[Tuple[str, torch.Tensor]]:
    """Every tensor recorder ``name`` captured in the last step, labelled.

    A tuple output (e.g. FPN levels) gives one entry per item, ``name[i]``; a source
    run several times gives ``name@k``.
    """
    recorder = manager.get_recorder(name)
    out = []
    calls = recorder.data_buffer
    for k, value in enumerate(calls):
        label = name if len(calls) == 1 else f'{name}@{k}'
        if isinstance(value, (list, tuple)):
            out += [(f'{label}[{i}]', v) for i, v in enumerate(value) if torch.is_tensor(v)]
        elif torch.is_tensor(value):
            out.append((label, value))
    return out


def loss_inputs(model, loss_name: str, samples=None) -> Dict[str, Any]:
    """The keyword arguments the distiller passes to loss ``loss_name`` (connectors applied)."""
    distiller = model.distiller
    if loss_name not in distiller.distill_losses:
        raise SystemExit(f'error: no loss {loss_name!r} in model.distiller.distill_losses; '
                         f'declared: {sorted(distiller.distill_losses)}')
    return {arg: distiller.get_record(src, samples, f'loss_forward_mappings.{loss_name}.{arg}')
            for arg, src in distiller.loss_forward_mappings[loss_name].items()}


def spatial_map(tensor: torch.Tensor, reduce: str = 'l2') -> np.ndarray:
    """A 2-D map of one sample's feature: NCHW -> HW over channels; tokens (N, L, C) with
    a square number of patch tokens (a class token is dropped) -> grid; (N, C) -> 1 x C."""
    x = tensor.detach().float()[0]
    if x.dim() == 2:  # tokens (L, C)
        side = int(round(x.shape[0] ** 0.5))
        if side * side != x.shape[0]:
            side = int(round((x.shape[0] - 1) ** 0.5))
            if side * side != x.shape[0] - 1:
                raise ValueError(f'cannot lay out {x.shape[0]} tokens on a square grid')
            x = x[1:]
        x = x.t().reshape(-1, side, side)
    elif x.dim() == 1:
        return x.reshape(1, -1).numpy()
    elif x.dim() != 3:
        raise ValueError(f'cannot draw a tensor of shape {tuple(tensor.shape)}')
    if reduce == 'l2':
        m = x.pow(2).sum(0).sqrt()
    elif reduce == 'mean':
        m = x.mean(0)
    elif reduce == 'absmean':
        m = x.abs().mean(0)
    elif reduce == 'max':
        m = x.max(0).values
    else:
        raise ValueError(f"reduce={reduce!r}; valid: 'l2', 'mean', 'absmean', 'max'")
    return m.numpy()


def _to_unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(a)), float(np.max(a))
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def resize_to(a: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``shape`` (H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]
    t = torch.nn.functional.interpolate(t, size=tuple(shape), mode='bilinear', align_corners=False)
    return t[0, 0].numpy()


def figure(rows: int, cols: int, panel_px: int, title_px: int = 0):
    """A figure of ``rows`` x ``cols`` square panels of ``panel_px`` pixels (dpi 100), so
    the PNG is exactly ``cols * panel_px`` wide and ``rows * panel_px + title_px`` high."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    dpi = 100
    width, height = cols * panel_px, rows * panel_px + title_px
    fig, axes = plt.subplots(rows, cols, figsize=(width / dpi, height / dpi), dpi=dpi,
                             squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01,
                        top=1 - (title_px + 18) / height, wspace=0.08, hspace=0.25)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def show_overlay(ax, image: np.ndarray, heat: Optional[np.ndarray], title: str,
                 alpha: float = 0.55, cmap: str = 'jet') -> None:
    """``image`` (H, W[, 3], values in [0, 1]) with ``heat`` resized onto it."""
    ax.imshow(image, cmap='gray' if image.ndim == 2 else None, vmin=0, vmax=1)
    if heat is not None:
        ax.imshow(_to_unit(resize_to(heat, image.shape[:2])), cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    ax.set_title(title, fontsize=7)


def show_tensor(ax, image: np.ndarray, tensor: torch.Tensor, reduce: str, title: str) -> None:
    """A feature map laid over ``image``, or a bar chart for a vector (e.g. logits)."""
    if tensor.dim() == 2:  # (N, C): one value per channel / class
        values = tensor.detach().float()[0].numpy()
        ax.bar(np.arange(len(values)), values, color='tab:blue')
        ax.set_box_aspect(1)
        ax.set_title(title, fontsize=7)
        return
    show_overlay(ax, image, spatial_map(tensor, reduce), title)


def save(fig, out: str) -> str:
    import os

    import matplotlib.pyplot as plt
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=100)  # no bbox_inches: the size stays what figure() promised
    plt.close(fig)
    return out
