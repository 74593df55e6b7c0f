#!/usr/bin/env python
"""Build a config at random weights and run one training step on a tiny batch.

What a user runs before queueing a job, and what ``tests/test_configs.py`` runs on
every shipped config::

    python tools/analysis_tools/dry_run.py configs/mgd/mgd_fpn_retinanet-x101-64x4d_retinanet-r50_2x_coco.py
    python tools/analysis_tools/dry_run.py CONFIG --tiny     # shrink ViT-L / 7B LLM towers first
    python tools/analysis_tools/dry_run.py CONFIG --size 96  # side of the synthetic images

Nothing is downloaded and no checkpoint is read: teacher checkpoints, pretrained
backbones and ``load_from`` are dropped (a build that still tries to load a file
fails, naming it). The batch comes from the config's own data set when it is one of
mmkd's embedded, in-memory data sets (digits, cross-modal digits, shapes VQA, image
captions), and is synthetic otherwise, of the student's task type (mmpretrain
labels, mmdet boxes, mmseg masks), at a small size (the data preprocessor's fixed
pad size is reduced to it). It prints, per distillation loss, the shapes of the
tensors it receives (after connectors), where the teacher's early exit stopped, the
trainable parameters per top-level module, and a suggested connector when two
paired shapes differ. It checks that the losses are finite and hold every declared
distillation term, that the teacher is unchanged, frozen and absent from the
state dict, that ``predict`` works, and that the converted student loads into the
plain task model with ``strict=True``. Exit code 0 when every check passes.

``--tiny`` applies the size reductions listed in :data:`TINY` (one table, used by
the tests too): the configs whose models cannot run on a CPU at their real size
(7B language models, ViT-L) keep their structure, with fewer and narrower layers.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import fnmatch
import os
import os.path as osp
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from torch import nn  # noqa: E402

# Keys of an mmkd algorithm config that name a checkpoint to read at build time.
CKPT_KEYS = ('teacher_ckpt', 'wide_teacher_ckpt', 'deep_teacher_ckpt', 'student_ckpt', 'ckpt',
             'init_checkpoint')

# ---------------------------------------------------------------------------------
# Size reductions for configs too large for a CPU step (--tiny, and the config test)
# ---------------------------------------------------------------------------------
_LLM = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, vocab_size=34, max_position_embeddings=256)
_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
               image_size=32, patch_size=8)


def _tiny_llava(model: dict) -> None:
    """LLaVA towers (SigLIP-so400m / CLIP-L/336 + Qwen 0.5B-7B) at 2 layers of width 32;
    no HF folder, the shapes-VQA word tokenizer, the shapes-VQA data set."""
    parts = [model[k] for k in ('architecture', 'teacher') if isinstance(model.get(k), dict)]
    if model.get('type') == 'LlavaModel':
        parts = [model]
    for i, part in enumerate(parts):
        part.pop('pretrained', None)
        part['tokenizer'] = dict(type='ChatWordTokenizer')
        vision = part.get('vision_config') or {}
        part['vision_config'] = dict(_VISION, model_type=vision.get('model_type', 'clip_vision_model'))
        text = part.get('text_config') or {}
        width = 32 + 16 * i  # the teacher wider than the student, as in the real pair
        part['text_config'] = dict(_LLM, model_type=text.get('model_type', 'qwen2'),
                                   hidden_size=width, intermediate_size=2 * width)
        part.pop('projector_ckpt', None)
    for key in ('mimic_loss', 'mdist', 'rdist'):  # losses that name the vocabulary size
        if isinstance(model.get(key), dict) and 'vocab_size' in model[key]:
            model[key]['vocab_size'] = _LLM['vocab_size']


def _img_size(side: int) -> Callable[[dict], None]:
    """Set every ViT ``img_size`` of the model to ``side`` (the position embeddings of
    MAE-style ViTs are fixed to it; at 512 or 1024 a CPU step takes minutes)."""
    def reduce(node) -> None:
        if isinstance(node, dict):
            if 'cfg_path' in node:  # inline the referenced model, so its ViT is reached
                from mmkd.utils.model_builder import _drop_pretrained, load_model_cfg, merge_model_cfg
                rest = {k: v for k, v in node.items() if k not in ('cfg_path', 'pretrained')}
                scope = rest.pop('_scope_', None)
                model_cfg, file_scope = load_model_cfg(node['cfg_path'])
                merged = merge_model_cfg(model_cfg, dict(rest.pop('model_override', None) or {},
                                                         **rest))
                if not node.get('pretrained', False):
                    _drop_pretrained(merged)
                merged['_scope_'] = scope or merged.get('_scope_') or file_scope
                node.clear()
                node.update(merged)
            if 'img_size' in node and isinstance(node['img_size'], (int, tuple, list)):
                node['img_size'] = side
            for value in node.values():
                reduce(value)
        elif isinstance(node, list):
            for value in node:
                reduce(value)
    reduce.side = side
    return reduce


# pattern (fnmatch on the config's path relative to configs/) -> (reason, reducer)
TINY: Dict[str, tuple] = {
    'llava_kd/*llava-5*.py': ('SigLIP-so400m + Qwen1.5-4B/1.8B', _tiny_llava),
    'llava_kd/*llava-6*.py': ('SigLIP-so400m + Qwen1.5-4B/1.8B', _tiny_llava),
    'llava_mod/*clip-l336-qwen2-7b*.py': ('CLIP-L/336 + Qwen2-7B/0.5B', _tiny_llava),
    'g2sd/*upernet_mae-base-p16*512x512.py': ('MAE ViT-B teacher at 512x512 (1,024 tokens)',
                                            _img_size(64)),
}


def tiny_size(config: str) -> Optional[int]:
    """The input side a TINY reduction fixes (``_img_size``), else None."""
    rel = _rel_config(config)
    for pattern, (_, reducer) in TINY.items():
        if fnmatch.fnmatch(rel, pattern):
            return getattr(reducer, 'side', None)
    return None


def tiny_reason(config: str) -> Optional[str]:
    """Why ``config`` needs ``--tiny`` (None when it runs at its real size)."""
    rel = _rel_config(config)
    for pattern, (reason, _) in TINY.items():
        if fnmatch.fnmatch(rel, pattern):
            return reason
    return None


def _rel_config(config: str) -> str:
    path = osp.abspath(config)
    base = osp.join(ROOT, 'configs') + os.sep
    return path[len(base):] if path.startswith(base) else osp.basename(path)


# ---------------------------------------------------------------------------------
# Loading and random initialisation
# ---------------------------------------------------------------------------------
def load_config(config: str, cfg_options: Optional[dict] = None):
    """``Config.fromfile`` + relative ``cfg_path`` resolution + the default scope."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmkd.utils import register_all_modules
    from mmkd.utils.model_builder import resolve_relative_cfg_paths
    register_all_modules(init_default_scope=False)
    if not osp.isfile(config):
        raise FileNotFoundError(f'config {config!r} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    resolve_relative_cfg_paths(cfg)
    init_default_scope(cfg.get('default_scope', 'mmkd'))
    return cfg


_HALF_STRUCTURE = '<half of the full structure>'


def _resolve_half_structures(node) -> None:
    """Replace the stand-in marker by half the structure of the node's full CLIP."""
    if isinstance(node, dict):
        if node.get('pruned_structure') == _HALF_STRUCTURE:
            from mmkd.models.surgery.clip_structure import structure_of
            from mmkd.registry import MODELS
            full_cfg = {k: v for k, v in node.items() if k != 'pruned_structure'}
            full_cfg.setdefault('_scope_', 'mmkd')
            full = structure_of(MODELS.build(copy.deepcopy(full_cfg)).clip)
            node['pruned_structure'] = {
                tower: dict(width=f['width'], head_dim=f['head_dim'],
                            heads=[max(1, h // 2) for h in f['heads']],
                            mlp=[max(1, m // 2) for m in f['mlp']])
                for tower, f in full.items()}
        for value in node.values():
            _resolve_half_structures(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _resolve_half_structures(value)


def random_init_model_cfg(model_cfg: dict) -> List[str]:
    """Drop every checkpoint and pretrained reference from ``model_cfg`` in place.

    Returns what was dropped (``'key.path=value'``), for the report.
    """
    dropped: List[str] = []

    def visit(node, path):
        if isinstance(node, dict):
            for key in list(node):
                value = node[key]
                where = f'{path}.{key}' if path else key
                if key in CKPT_KEYS and isinstance(value, str):
                    dropped.append(f'{where}={value}')
                    node[key] = None
                elif key == 'pretrained' and isinstance(value, str):
                    dropped.append(f'{where}={value}')
                    node[key] = None
                elif key == 'pretrained' and value is True and 'cfg_path' in node:
                    dropped.append(f'{where}=True')
                    node[key] = False
                elif key == 'pruned_structure' and isinstance(value, str):
                    # the pruned checkpoint of an earlier TinyCLIP stage: a stand-in
                    # structure (half of every layer's heads and MLP) is computed at build
                    dropped.append(f'{where}={value} (stand-in: half the heads and MLP)')
                    node[key] = _HALF_STRUCTURE
                elif key == 'init_cfg' and isinstance(value, dict) and value.get('type') == 'Pretrained':
                    dropped.append(f"{where}.checkpoint={value.get('checkpoint')}")
                    node[key] = None
                else:
                    visit(value, where)
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                visit(value, f'{path}[{i}]')

    visit(model_cfg, 'model')
    return dropped


@contextlib.contextmanager
def no_checkpoint_reads():
    """Fail, naming the file, when a random-init build tries to read a checkpoint."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def refuse(cls, filename, *args, **kwargs):
        raise RuntimeError(f'the random-init build tried to load a checkpoint: {filename!r}. '
                           'Some key of the model config still names weights; dry_run drops '
                           f'{CKPT_KEYS}, pretrained and init_cfg=Pretrained')

    original = CheckpointLoader.__dict__['load_checkpoint']
    CheckpointLoader.load_checkpoint = classmethod(refuse)
    old_env = {k: os.environ.get(k) for k in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')}
    os.environ.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    try:
        yield
    finally:
        CheckpointLoader.load_checkpoint = original
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def cached_package_metafiles():
    """Read each package's metafiles once while the context is open.

    mmengine resolves every ``'mmseg::x.py'`` by loading all of the package's
    ``model-index.yml`` metafiles (seconds per path); a run over many configs (the
    config test) reads them once. Restores mmengine's loader on exit.
    """
    import functools

    from mmengine.config import utils as config_utils
    original = config_utils.load

    @functools.lru_cache(maxsize=None)
    def cached(path):
        return original(path)

    def load(file, *args, **kwargs):
        if isinstance(file, str) and file.endswith(('.yml', '.yaml')) and not args and not kwargs:
            return copy.deepcopy(cached(file))
        return original(file, *args, **kwargs)

    config_utils.load = load
    try:
        yield
    finally:
        config_utils.load = original


@contextlib.contextmanager
def _quiet_init_log():
    """mmengine logs one INFO block per parameter in init_weights: keep warnings only."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_model(cfg, tiny: bool = False, config: str = ''):
    """Build ``cfg.model`` at random weights (as the Runner: build, then init_weights)."""
    from mmengine.config import ConfigDict

    from mmkd.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else cfg.model)
    if tiny:
        rel = _rel_config(config)
        for pattern, (_, reducer) in TINY.items():
            if fnmatch.fnmatch(rel, pattern):
                reducer(model_cfg)
    # as mmengine's Runner: a top-level `data_preprocessor` is the model's default
    if isinstance(model_cfg, dict) and cfg.get('data_preprocessor') is not None:
        top = cfg.data_preprocessor
        model_cfg.setdefault('data_preprocessor', top.to_dict() if hasattr(top, 'to_dict') else top)
    dropped = random_init_model_cfg(model_cfg)
    torch.manual_seed(0)
    with no_checkpoint_reads(), warnings.catch_warnings(), _quiet_init_log():
        warnings.filterwarnings('ignore', message='.*no .*ckpt.*', category=UserWarning)
        _resolve_half_structures(model_cfg)
        # ConfigDict, as the Runner passes it: mmdet reads train_cfg.rpn by attribute
        model = MODELS.build(ConfigDict(model_cfg))
        if hasattr(model, 'init_weights'):
            model.init_weights()
    return model, model_cfg, dropped


# ---------------------------------------------------------------------------------
# The tiny batch
# ---------------------------------------------------------------------------------
# mmkd's data sets that are generated in memory: small versions build in seconds
EMBEDDED = {
    'DigitsDataset': {},
    'mmkd.DigitsDataset': {},
    'CrossModalDigitsDataset': {},
    'mmkd.CrossModalDigitsDataset': {},
    'ShapesVQADataset': dict(num_images=4),
    'mmkd.ShapesVQADataset': dict(num_images=4),
    'DigitsShapesCaptions': dict(num_shapes=(8, 4)),
    'mmkd.DigitsShapesCaptions': dict(num_shapes=(8, 4)),
}


def _inner_dataset(ds_cfg: dict) -> dict:
    """The data set under wrappers that need files (CachedTeacherDataset, RepeatDataset)."""
    while isinstance(ds_cfg, dict) and 'dataset' in ds_cfg and ds_cfg.get('type') in (
            'CachedTeacherDataset', 'mmkd.CachedTeacherDataset', 'RepeatDataset',
            'ClassBalancedDataset'):
        ds_cfg = ds_cfg['dataset']
    return ds_cfg


def embedded_batch(cfg, n: int = 2) -> Optional[dict]:
    """Two samples of the config's own training set, if it is an in-memory one."""
    loader = cfg.get('train_dataloader')
    if not loader or 'dataset' not in loader:
        return None
    ds_cfg = copy.deepcopy(_inner_dataset(loader['dataset']))
    ds_cfg = ds_cfg.to_dict() if hasattr(ds_cfg, 'to_dict') else ds_cfg
    if not isinstance(ds_cfg, dict) or ds_cfg.get('type') not in EMBEDDED:
        return None
    ds_cfg.update(EMBEDDED[ds_cfg['type']])
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import FUNCTIONS

    from mmkd.registry import DATASETS
    dataset = DATASETS.build(ds_cfg)
    picks = _distinct_label_indices(dataset, n)
    collate = pseudo_collate
    collate_cfg = loader.get('collate_fn')
    if collate_cfg:  # e.g. default_collate (MAE configs stack the images)
        collate = FUNCTIONS.get(collate_cfg['type'])
    return collate([dataset[i] for i in picks])


def _distinct_label_indices(dataset, n: int) -> List[int]:
    """``n`` indices, with different labels when the data set has labels (BN, KD)."""
    seen, picks = set(), []
    for i in range(min(len(dataset), 200)):
        info = dataset.get_data_info(i) if hasattr(dataset, 'get_data_info') else {}
        label = info.get('gt_label') if isinstance(info, dict) else None
        key = int(label) if label is not None and int(label) >= 0 else None
        if key is None or key not in seen:
            picks.append(i)
            if key is not None:
                seen.add(key)
        if len(picks) == n:
            return picks
    return list(range(n))


def _images(n: int, size: int, g: torch.Generator) -> List[torch.Tensor]:
    return [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8) for _ in range(n)]


def _num_classes(module: nn.Module, default: int) -> int:
    for name in ('num_classes', ):
        for m in module.modules():
            value = getattr(m, name, None)
            if isinstance(value, int) and value > 0:
                return value
    return default


def task_of(student: nn.Module) -> str:
    """'det', 'seg', 'cls' or 'mae' from the student's data preprocessor / type."""
    pp = type(getattr(student, 'data_preprocessor', None)).__name__.lower()
    name = type(student).__name__
    if pp == 'detdatapreprocessor' or type(student).__module__.startswith('mmdet'):
        return 'det'
    if pp == 'segdatapreprocessor' or type(student).__module__.startswith('mmseg'):
        return 'seg'
    if name == 'MAE' or pp == 'selfsupdatapreprocessor':
        return 'mae'
    return 'cls'


# Multi-modal real-scale configs (MST-Distill): one sample's shape per modality, in the
# layout of each data set at reduced spatial size (the arrays are the user's)
MODAL_SHAPES: Dict[str, dict] = {
    'mst_distill/mst-distill_avmnist_image-student.py':
        dict(img=(1, 28, 28), audio=(1, 40, 40)),
    'mst_distill/mst-distill_ravdess_visual-student.py':
        dict(video=(3, 4, 16, 16), audio=(15, 40)),
    'mst_distill/mst-distill_crisismmd-v2_image-student.py':
        dict(visual=(1, 2048), text=(1, 768)),
    'mst_distill/mst-distill_vggsound-50k_visual-student.py':
        dict(visual=(512, 2, 3, 3), audio=(10, 128)),
    'mst_distill/mst-distill_nyu-depth-v2_rgb-student.py':
        dict(img=(3, 64, 64), depth=(1, 64, 64)),
}


def _modal_shapes(cfg, config: str) -> Optional[dict]:
    return MODAL_SHAPES.get(_rel_config(config))


def multimodal_batch(model: nn.Module, cfg, config: str, n: int = 2) -> dict:
    """A dict-of-modalities batch as PackMultiModalInputs packs it (cls or seg labels)."""
    shapes = _modal_shapes(cfg, config)
    g = torch.Generator().manual_seed(0)
    student = next(iter(student_of(model).values()))
    task = task_of(student)
    classes = _num_classes(student, 10)
    inputs = {k: [torch.rand(s, generator=g) for _ in range(n)] for k, s in shapes.items()}
    samples = []
    for i in range(n):
        if task == 'seg':
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            h, w = next(iter(shapes.values()))[-2:]
            sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
            sample.gt_sem_seg = PixelData(data=torch.randint(0, classes, (1, h, w), generator=g))
        else:
            from mmpretrain.structures import DataSample
            sample = DataSample().set_gt_label(i % classes)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def synthetic_batch(student: nn.Module, size: int, n: int = 2, seed: int = 0,
                    labelled: bool = True) -> dict:
    """A batch of the student's task type, as its data set's pipeline packs it."""
    g = torch.Generator().manual_seed(seed)
    task = task_of(student)
    if task == 'mae':  # the decoder's position embedding fixes the input size
        size = _vit_img_size(student) or size
    inputs = _images(n, size, g)
    samples = []
    if task == 'cls':
        from mmpretrain.structures import DataSample
        classes = _num_classes(student, 10)
        samples = [DataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
                   .set_gt_label(i % classes) for i in range(n)]
    elif task == 'mae':
        from mmpretrain.structures import DataSample
        samples = [DataSample() for _ in range(n)]
        return dict(inputs=torch.stack(inputs), data_samples=samples)  # default_collate
    elif task == 'seg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        classes = _num_classes(student, 4)
        for _ in range(n):
            sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                                 pad_shape=(size, size), scale_factor=(1.0, 1.0),
                                                 flip=False, flip_direction=None))
            label = torch.randint(0, classes, (1, size, size), generator=g)
            # a band of ignored pixels, as real masks have (the head's ignore_index);
            # not with class-weighted losses, which index their weights by the label
            if not any(getattr(m, 'class_weight', None) is not None for m in student.modules()):
                label[:, : max(1, size // 8)] = _ignore_index(student)
            if labelled:
                sample.gt_sem_seg = PixelData(data=label)
            samples.append(sample)
    else:
        samples = _det_samples(student, size, n, g)
    return dict(inputs=inputs, data_samples=samples)


def _llava_of(model: nn.Module):
    """The student ``LlavaModel`` of a LLaVA config (plain or distilled), else None."""
    for candidate in (model, getattr(model, 'architecture', None)):
        if type(candidate).__name__ == 'LlavaModel':
            return candidate
    return None


def llava_batch(model: nn.Module, cfg, n: int = 2, word_tokenizer: bool = False) -> dict:
    """Two shapes-VQA questions (with a rejected answer for preference stages), packed
    with the config's own tokenizer for the student's number of image tokens. The real
    LLaVA data (LlavaJsonDataset) needs the images and json files of the paper."""
    from mmengine.dataset import pseudo_collate

    from mmkd.datasets import ShapesVQADataset
    student = _llava_of(model)
    tokenizer = None
    pipeline = (cfg.get('train_dataloader') or {}).get('dataset', {}).get('pipeline') or []
    for step in pipeline:
        if isinstance(step, dict) and step.get('type') in ('PackVQAInputs', 'mmkd.PackVQAInputs'):
            tokenizer = step.get('tokenizer')
    if tokenizer is None or word_tokenizer:  # --tiny replaced the HF tokenizer of the towers
        tokenizer = dict(type='ChatWordTokenizer')
    tokenizer = tokenizer.to_dict() if hasattr(tokenizer, 'to_dict') else tokenizer
    size = _vit_img_size(student) or 32
    ds = ShapesVQADataset(split='train', num_images=2, img_size=size, pipeline=[dict(
        type='PackVQAInputs', tokenizer=tokenizer, num_image_tokens=student.num_image_tokens,
        with_preference=True)])
    return pseudo_collate([ds[i] for i in range(n)])


def _clip_of(model: nn.Module):
    for candidate in (model, getattr(model, 'architecture', None)):
        if type(candidate).__name__ == 'OpenCLIPModel':
            return candidate
    return None


def clip_batch(model: nn.Module, cfg, n: int = 2) -> dict:
    """Two embedded image-caption pairs, tokenized by the config's own tokenizer, at the
    student tower's image size (the LAION/YFCC shards are the user's)."""
    from mmengine.dataset import pseudo_collate

    from mmkd.datasets import DigitsShapesCaptions
    tokenizer = None
    pipeline = (cfg.get('train_dataloader') or {}).get('dataset', {}).get('pipeline') or []
    for step in pipeline:
        if isinstance(step, dict) and str(step.get('type')).split('.')[-1] == 'TokenizeCaption':
            tokenizer = step['tokenizer']
    tokenizer = tokenizer.to_dict() if hasattr(tokenizer, 'to_dict') else tokenizer
    size = _vit_img_size(_clip_of(model)) or 32
    ds = DigitsShapesCaptions(split='train', img_size=size, num_shapes=(8, 4), pipeline=[
        dict(type='TokenizeCaption', tokenizer=tokenizer), dict(type='PackImageText')])
    return pseudo_collate([ds[i] for i in range(n)])


def _ignore_index(model: nn.Module) -> int:
    head = getattr(model, 'decode_head', None)
    value = getattr(head, 'ignore_index', None)
    return int(value) if isinstance(value, int) else 255


def _vit_img_size(model: nn.Module) -> Optional[int]:
    for m in model.modules():
        img_size = getattr(m, 'img_size', None)
        if img_size is None:
            img_size = getattr(m, 'image_size', None)  # open_clip's towers
        if isinstance(img_size, (tuple, list)) and len(img_size) == 2:
            return int(img_size[0])
        if isinstance(img_size, int):
            return img_size
    return None


def _det_samples(student, size, n, g):
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData
    classes = _num_classes(student, 4)
    with_mask = bool(getattr(student, 'with_mask', False)) or any(
        'mask_head' in name for name, _ in student.named_children()) or hasattr(
            getattr(student, 'roi_head', None), 'mask_head') and student.roi_head.with_mask
    samples = []
    for i in range(n):
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
            scale_factor=(1.0, 1.0), flip=False, flip_direction=None, img_id=i,
            img_path=f'synthetic_{i}.png'))
        count = 2
        xy = torch.rand(count, 2, generator=g) * size * 0.5
        wh = torch.rand(count, 2, generator=g) * size * 0.4 + size * 0.1
        boxes = torch.cat([xy, (xy + wh).clamp(max=size - 1)], dim=1)
        inst = InstanceData()
        inst.bboxes = HorizontalBoxes(boxes)
        inst.labels = torch.randint(0, classes, (count, ), generator=g)
        if with_mask:
            from mmdet.structures.mask import BitmapMasks
            masks = torch.zeros(count, size, size, dtype=torch.uint8)
            for k, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
                masks[k, y1:y2 + 1, x1:x2 + 1] = 1
            inst.masks = BitmapMasks(masks.numpy(), size, size)
        sample.gt_instances = inst
        sample.ignored_instances = InstanceData(bboxes=HorizontalBoxes(torch.zeros(0, 4)),
                                                labels=torch.zeros(0, dtype=torch.long))
        samples.append(sample)
    return samples


# ---------------------------------------------------------------------------------
# Inspecting the model
# ---------------------------------------------------------------------------------
def student_of(model: nn.Module) -> Dict[str, nn.Module]:
    """name -> student module (one for most algorithms, several for collaborative)."""
    if hasattr(model, 'students'):
        return dict(model.students)
    if hasattr(model, 'architecture'):
        return {'architecture': model.architecture}
    return {'model': model}


def teachers_of(model: nn.Module) -> Dict[str, nn.Module]:
    """name -> frozen teacher (hidden from registration) of an algorithm."""
    out = {}
    for attr in ('teacher', 'wide_teacher', 'deep_teacher'):
        value = getattr(type(model), attr, None)
        if isinstance(value, property):
            t = getattr(model, attr)
            if isinstance(t, nn.Module):
                out[attr] = t
    teachers = getattr(model, 'teachers', None)
    if getattr(model, 'cotrain_teachers', False):
        return out  # MST-Distill's stage 1 trains its teachers: they are learners here
    if isinstance(teachers, dict):
        out.update({f'teachers.{k}': v for k, v in teachers.items() if isinstance(v, nn.Module)})
    elif isinstance(teachers, nn.ModuleDict) and not getattr(model, 'cotrain_teachers', False):
        out.update({f'teachers.{k}': v for k, v in teachers.items()})
    return out


def declared_terms(model: nn.Module) -> List[str]:
    """The distillation log keys the config declares (each must be logged)."""
    name = type(model).__name__
    if name == 'MultiTeacherDistill':
        # its distiller declares the terms of every stage; the stage decides which are
        # logged (a trailing '*' is a prefix that must be logged)
        return [{'cotrain': 'distill.loss_kd_*',
                 'masknet': 'distill.loss_masknet_*'}.get(model.stage, 'distill.*')]
    if name == 'LlavaKDDistill':  # its distiller's loss_mdist is logged in two parts
        return ((['distill.loss_mdist_res', 'distill.loss_mdist_vis'] if model.mdist else [])
                + (['distill.loss_rdist'] if model.rdist else []))
    distiller = getattr(model, 'distiller', None)
    if distiller is not None and hasattr(distiller, 'distill_losses'):
        return [f'distill.{name}' for name in distiller.distill_losses]
    if name == 'LlavaMoDDistill':
        return ['distill.loss_mimic'] if model.stage == 'mimic' else ['distill.loss_pref']
    if name == 'MultiGranularityDistill':
        out = []
        if model.loss_pixel is not None:
            out += [f'distill.loss_pixel_unlab_{t}' for t in ('wide', 'deep')]
            if model.labelled_consistency:
                out += [f'distill.loss_pixel_lab_{t}' for t in ('wide', 'deep')]
        out += ['distill.loss_semantic'] if model.loss_semantic is not None else []
        out += ['distill.loss_content'] if model.loss_content is not None else []
        return out
    if name == 'CollaborativeDistill':
        return [f'distill.loss_{t}_{s}' for s in model.students for t in model.losses]
    return []


def term_logged(term: str, keys) -> bool:
    if term.endswith('*'):
        return any(k.startswith(term[:-1]) for k in keys)
    return term in keys


def trainable_counts(model: nn.Module) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            top = name.split('.', 1)[0]
            if top in ('architecture', 'students', 'connectors') and '.' in name:
                parts = name.split('.')
                top = '.'.join(parts[:2] if top != 'students' else parts[:3])
            counts[top] = counts.get(top, 0) + p.numel()
    return counts


# where the keys an error names live in the config (distiller keys under model.distiller)
_KEY_ROOTS = {
    'loss_forward_mappings.': 'model.distiller.', 'distill_losses.': 'model.distiller.',
    'connectors.': 'model.distiller.', 'student_recorders': 'model.distiller.',
    'teacher_recorders': 'model.distiller.', 'architecture': 'model.', 'teacher': 'model.',
    'students.': 'model.',
}


class ConfigBuildError(RuntimeError):
    """A config whose model does not build: names the file and the full key path."""

    def __init__(self, config: str, err: Exception) -> None:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        for root, prefix in _KEY_ROOTS.items():
            if text.startswith(root):
                text = prefix + text
                break
        self.config, self.original = config, err
        super().__init__(f'{config}: the model does not build ({type(err).__name__}): {text}')


@dataclass
class Report:
    config: str
    log_vars: Dict[str, float] = field(default_factory=dict)
    declared: List[str] = field(default_factory=list)
    shapes: Dict[str, Dict[str, tuple]] = field(default_factory=dict)
    teacher_modules: Dict[str, tuple] = field(default_factory=dict)
    trainable: Dict[str, int] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)
    suggestions: List[str] = field(default_factory=list)
    predictions: int = 0
    predict_note: str = "mode='predict'"
    converted_tensors: int = 0
    batch_source: str = ''
    init_from_teacher: str = ''
    problems: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        out = [f'config: {self.config}', f'batch: {self.batch_source}']
        for item in self.dropped:
            out.append(f'  random init: dropped {item}')
        if self.init_from_teacher:
            out.append(f'  {self.init_from_teacher}')
        out.append('distillation terms (tensor shapes after connectors):')
        for term in self.declared:
            value = self.log_vars.get(term)
            out.append(f'  {term}: {value if value is None else round(value, 6)}')
            loss_name = term.split('.', 1)[1]
            for arg, shape in self.shapes.get(loss_name, {}).items():
                out.append(f'      {arg}: {shape}')
        others = [k for k in self.log_vars if k not in self.declared]
        out.append('other logged values: ' + ', '.join(
            f'{k}={self.log_vars[k]:.4g}' for k in others))
        for name, (ran, total, last) in self.teacher_modules.items():
            where = f'stopped after {last!r}' if ran < total else 'ran to the end'
            out.append(f'teacher {name}: {ran}/{total} modules ran ({where})')
        out.append('trainable parameters:')
        for name, count in self.trainable.items():
            out.append(f'  {name}: {count:,}')
        out.append(f'{self.predict_note}: {self.predictions} results; converted student: '
                   f'{self.converted_tensors} tensors loaded strictly')
        for s in self.suggestions:
            out.append(f'suggestion: {s}')
        for p in self.problems:
            out.append(f'PROBLEM: {p}')
        out.append('OK' if not self.problems else f'{len(self.problems)} problem(s)')
        return out


@contextlib.contextmanager
def record_loss_inputs(model: nn.Module, shapes: Dict[str, Dict[str, tuple]]):
    """Capture the shape of every tensor a ConfigurableDistiller hands to a loss."""
    distiller = getattr(model, 'distiller', None)
    if distiller is None or not hasattr(distiller, 'get_record'):
        yield
        return
    original = distiller.get_record

    def spy(source, data_samples=None, where=''):
        value = original(source, data_samples, where)
        parts = where.split('.')
        if len(parts) >= 3 and torch.is_tensor(value):
            shapes.setdefault(parts[1], {})[parts[2]] = tuple(value.shape)
        return value

    distiller.get_record = spy
    try:
        yield
    finally:
        del distiller.get_record


@contextlib.contextmanager
def count_teacher_modules(teachers: Dict[str, nn.Module], out: Dict[str, tuple]):
    """How many leaf modules of each teacher started, and the last one (early exit)."""
    handles, state = [], {}
    for name, teacher in teachers.items():
        leaves = [(n, m) for n, m in teacher.named_modules() if not list(m.children())]
        state[name] = dict(ran=set(), last=None, total=len(leaves))
        for leaf_name, leaf in leaves:
            def hook(module, args, _name=name, _leaf=leaf_name):
                state[_name]['ran'].add(_leaf)
                state[_name]['last'] = _leaf
            # a pre-hook: the module whose recorder raises the early exit counts as run
            handles.append(leaf.register_forward_pre_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for name, s in state.items():
            if s['ran']:
                out[name] = (len(s['ran']), s['total'], s['last'])


def _suggest(err: Exception) -> Optional[str]:
    text = str(err)
    return text if 'declare a connector' in text else None


def _shrink_preprocessor(model: nn.Module, size: int) -> None:
    """Fixed pad sizes (512x1024 seg crops, 1024 LSJ) make a CPU step take minutes."""
    for module in model.modules():
        if type(module).__name__.lower().endswith('datapreprocessor'):
            if isinstance(getattr(module, 'size', None), (tuple, list)):
                module.size = (size, size)
            augments = getattr(module, 'batch_augments', None)
            if isinstance(augments, nn.ModuleList) or isinstance(augments, (list, tuple)):
                for aug in augments:
                    if hasattr(aug, 'size'):
                        aug.size = (size, size)


def _shrink_zero_shot(model: nn.Module, classes: int = 4, templates: int = 2) -> List[str]:
    """Zero-shot predict encodes classes x templates prompts (ImageNet: 1000 x 80 text
    forwards); the dry run keeps the first few of each."""
    notes = []
    for name, module in model.named_modules():
        prompts = getattr(module, 'zero_shot', None)
        if isinstance(prompts, list) and prompts and isinstance(prompts[0], list):
            if len(prompts) > classes or len(prompts[0]) > templates:
                notes.append(f'{name or "model"}.zero_shot: {len(prompts)} classes x '
                             f'{len(prompts[0])} prompts -> {classes} x {templates}')
                module.zero_shot = [p[:templates] for p in prompts[:classes]]
                module._class_embed = None
    return notes


def _plain_student(model_cfg: dict, name: str) -> nn.Module:
    from mmkd.utils.model_builder import build_task_model
    if name == 'architecture':
        cfg = model_cfg['architecture']
    else:
        cfg = model_cfg['students'][name.split('.')[-1]]
    with no_checkpoint_reads(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        student, _ = build_task_model(copy.deepcopy(cfg), key=name)
    moe = model_cfg.get('moe')
    if moe:  # LLaVA-MoD: the student is the LLaVA model with the same sparse MoE blocks
        from mmkd.models.surgery.moe_upcycling import upcycle_to_moe
        kwargs = {k: v for k, v in moe.items() if k != 'aux_loss_coef'}
        upcycle_to_moe(student.hf_model, **kwargs)
    return student


def _build_optim_wrapper(model, cfg):
    from mmengine.optim import build_optim_wrapper
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    # a plain (non-AMP) wrapper on CPU: AmpOptimWrapper needs CUDA, and the dry run
    # checks the model and the parameter groups, not the mixed-precision loop
    if optim_cfg.get('type') == 'AmpOptimWrapper':
        optim_cfg['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):
            optim_cfg.pop(key, None)
    return build_optim_wrapper(model, optim_cfg)


# side of the synthetic images per task: ViT/16 detectors with a simple FPN need 4x4
# tokens at their coarsest level (64 / 16)
DEFAULT_SIZE = dict(det=64, seg=32, cls=32, mae=32)


def make_batch(model: nn.Module, cfg, config: str, size: int, tiny: bool) -> tuple:
    """A training batch of two samples for ``model``; returns (data, description)."""
    students = student_of(model)
    if type(model).__name__ == 'MultiGranularityDistill':
        first = next(iter(students.values()))
        data = dict(labelled=synthetic_batch(first, size, seed=1),
                    unlabelled=[synthetic_batch(first, size, seed=2, labelled=False),
                                synthetic_batch(first, size, seed=3, labelled=False)])
        return data, f'synthetic seg batches, 2 labelled + 2 x 2 unlabelled, {size}x{size}'
    if _modal_shapes(cfg, config) is not None and embedded_batch(cfg) is None:
        return multimodal_batch(model, cfg, config), 'synthetic multi-modal batch (shapes of MODAL_SHAPES)'
    if _clip_of(model) is not None and embedded_batch(cfg) is None:
        return clip_batch(model, cfg), '2 image-caption pairs of DigitsShapesCaptions at the tower size'
    if _llava_of(model) is not None:
        return (llava_batch(model, cfg, word_tokenizer=tiny),
                '2 questions of ShapesVQADataset, packed for this tower')
    data = embedded_batch(cfg)
    if data is not None:
        return data, f"2 samples of {cfg.train_dataloader.dataset.get('type')}"
    first = next(iter(students.values()))
    return synthetic_batch(first, size), f'synthetic {task_of(first)} batch, 2 x {size}x{size}'


def dry_run(config: str, tiny: Optional[bool] = None, size: Optional[int] = None,
            cfg_options: Optional[dict] = None,
            batch_fn: Optional[Callable[[nn.Module, Any], dict]] = None) -> Report:
    """Build ``config`` at random weights, run one train step, check and report."""
    with _quiet_init_log():
        return _dry_run(config, tiny, size, cfg_options, batch_fn)


def _dry_run(config, tiny, size, cfg_options, batch_fn) -> Report:
    cfg = load_config(config, cfg_options)
    if tiny is None:
        tiny = tiny_reason(config) is not None
    report = Report(config=config)
    try:
        model, model_cfg, report.dropped = build_model(cfg, tiny=tiny, config=config)
    except (KeyError, TypeError, ValueError, FileNotFoundError, AttributeError) as err:
        raise ConfigBuildError(config, err) from err
    init_report = getattr(model, 'init_from_teacher_report', None)
    if init_report is not None:
        report.init_from_teacher = init_report.line()
    students = student_of(model)
    report.dropped += _shrink_zero_shot(model)
    size = size or (tiny and tiny_size(config)) or DEFAULT_SIZE[task_of(next(iter(students.values())))]
    _shrink_preprocessor(model, size)
    teachers = teachers_of(model)
    report.declared = declared_terms(model)
    report.trainable = trainable_counts(model)

    if batch_fn is not None:
        data, report.batch_source = batch_fn(model, cfg), 'given'
    else:
        data, report.batch_source = make_batch(model, cfg, config, size, tiny)

    optim_wrapper = _build_optim_wrapper(model, cfg)
    teacher_before = {n: {k: v.detach().clone() for k, v in t.state_dict().items()}
                      for n, t in teachers.items()}
    model.train()
    report.declared = []
    missing = []
    for stage in _stages(cfg):  # MST-Distill: one step per stage, in the config's order
        if stage is not None:
            model.set_stage(stage)
            model.train()
        declared = declared_terms(model)
        try:
            with record_loss_inputs(model, report.shapes), \
                    count_teacher_modules(teachers, report.teacher_modules):
                log_vars = model.train_step(copy.deepcopy(data), optim_wrapper)
        except ValueError as err:
            suggestion = _suggest(err)
            if suggestion:
                report.suggestions.append(suggestion)
                report.problems.append('a loss received tensors of different shapes')
                return report
            raise
        values = {k: float(torch.as_tensor(v).detach().float().mean()) for k, v in log_vars.items()}
        missing += [t for t in declared if not term_logged(t, values)]
        report.declared += [t for t in declared if t not in report.declared]
        report.log_vars.update(values)

    for key, value in report.log_vars.items():
        if not torch.isfinite(torch.tensor(value)):
            report.problems.append(f'{key} is not finite ({value})')
    if missing:
        report.problems.append(f'declared distillation terms not logged: {missing}')
    state_keys = list(model.state_dict())
    for name, teacher in teachers.items():
        after = teacher.state_dict()
        changed = [k for k, v in teacher_before[name].items() if not torch.equal(v, after[k])]
        if changed:
            report.problems.append(f'teacher {name} changed during the step: {changed[:3]}')
        if any(p.requires_grad for p in teacher.parameters()):
            report.problems.append(f'teacher {name} has parameters that require grad')
        if teacher.training:
            report.problems.append(f'teacher {name} is in train mode')
        ids = {id(p) for p in teacher.parameters()}
        if any(id(p) in ids for p in model.parameters()):
            report.problems.append(f'teacher {name} parameters are in model.parameters()')
    if teachers and any(k.startswith(('teacher.', 'wide_teacher.', 'deep_teacher.'))
                        for k in state_keys):
        report.problems.append('the teacher is in the state dict')

    model.eval()
    with torch.no_grad():
        if task_of(next(iter(students.values()))) == 'mae':
            # masked-image pre-training has no predictions; its product is the encoder
            batch = model.data_preprocessor(copy.deepcopy(data), False)
            feats = model(batch['inputs'], batch['data_samples'], mode='tensor')
            feats = feats if isinstance(feats, (list, tuple)) else [feats]
            report.predictions = int(feats[0].shape[0])
            report.predict_note = "mode='tensor' (features of the encoder)"
        else:
            preds = model.val_step(copy.deepcopy(_predict_data(data)))
            report.predictions = len(preds)
    if not report.predictions:
        report.problems.append('predict returned no results')

    state = model.state_dict()
    from tools.model_converters.convert_kd_ckpt_to_student import convert
    for name in students:
        prefix = 'architecture.' if name == 'architecture' else f'students.{name}.'
        if name == 'model':
            continue  # a plain task-model config: its checkpoint is the student's
        plain = _plain_student(model_cfg, name if name == 'architecture' else f'students.{name}')
        converted = convert(state, prefix)
        plain.load_state_dict(converted, strict=True)
        report.converted_tensors += len(converted)
    return report


def _stages(cfg) -> list:
    """The stages an MSTStageHook of the config runs (``[None]``: a single-stage method)."""
    for hook in cfg.get('custom_hooks') or []:
        if str(hook.get('type', '')).split('.')[-1] == 'MSTStageHook':
            return [s['name'] if isinstance(s, dict) else s[0] for s in hook['stages']]
    return [None]


def _predict_data(data: dict) -> dict:
    """The validation form of a training batch (semi-supervised batches: the labelled part)."""
    if isinstance(data, dict) and 'labelled' in data:
        return data['labelled']
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--tiny', action='store_true', default=None,
                        help='apply the TINY size reductions (default: only for configs in TINY)')
    parser.add_argument('--size', type=int, default=None,
                        help='side of the synthetic images (default: 64 for detection, else 32)')
    parser.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE')
    args = parser.parse_args(argv)
    from mmengine.config import DictAction
    options = None
    if args.cfg_options:
        ns = argparse.Namespace()
        DictAction(option_strings=[], dest='o')(parser, ns, args.cfg_options)
        options = ns.o
    try:
        report = dry_run(args.config, tiny=args.tiny, size=args.size, cfg_options=options)
    except (ConfigBuildError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print('\n'.join(report.lines()))
    return 0 if not report.problems else 1


if __name__ == '__main__':
    sys.exit(main())
