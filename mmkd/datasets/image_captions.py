"""Image-caption data sets and transforms for CLIP training and distillation.

* :class:`DigitsShapesCaptions`: a generated, offline image-caption set. It mixes
  scikit-learn's real handwritten digits, captioned ``"a handwritten digit seven"``,
  with drawn shapes (the geometry of :mod:`mmkd.datasets.shapes`) in named colours,
  captioned ``"a red circle and a blue star"`` (shapes listed left to right).
* :class:`CsvCaptionDataset`: image files + captions listed in a CSV/TSV file (the
  layout of open_clip's ``--dataset-type csv``), for LAION/YFCC subsets on disk.
* ``TokenizeCaption`` and ``PackImageText``: the pipeline end that turns a caption
  into token ids and packs ``inputs = dict(img=..., text=...)`` plus a data sample
  carrying the caption, the class label (digits, else -1) and the source.
"""
from __future__ import annotations

import csv
import math
import os.path as osp
from typing import Callable, List, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.structures import BaseDataElement

from mmkd.registry import DATASETS, TRANSFORMS
from mmkd.text.caption_tokenizers import build_tokenizer

#: number words of the digit captions and zero-shot prompts.
DIGIT_WORDS: Tuple[str, ...] = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
                                'eight', 'nine')
#: the colours shapes are painted in (name -> RGB).
SHAPE_COLOURS = {
    'red': (215, 35, 35),
    'green': (35, 165, 55),
    'blue': (40, 75, 215),
    'yellow': (240, 210, 30),
    'purple': (145, 55, 175),
}
#: every word a caption or zero-shot prompt of this data set uses.
CAPTION_WORDS: Tuple[str, ...] = (('a', 'an', 'and', 'handwritten', 'digit', 'photo', 'of', 'the')
                                  + DIGIT_WORDS + ('circle', 'rectangle', 'triangle', 'star')
                                  + tuple(SHAPE_COLOURS))
#: zero-shot prompt of the digit classes (``{}`` = the number word).
DIGIT_TEMPLATE = 'a handwritten digit {}'

_SPLITS = {'train': 0, 'val': 1}


def digit_caption(label: int) -> str:
    return DIGIT_TEMPLATE.format(DIGIT_WORDS[int(label)])


def _shape_image(rng: np.random.Generator, img_size: int, max_shapes: int) -> Tuple[np.ndarray, str]:
    """Draw 1..max_shapes shapes side by side on a muted textured background."""
    from .shapes import SHAPES_CLASSES, _background, _draw_mask
    # a desaturated version of the shapes background keeps the named colours distinct
    img = 0.35 * _background(rng, img_size) + 0.65 * 128.0
    num = int(rng.integers(1, max_shapes + 1))
    slot = img_size / num
    colour_names = list(SHAPE_COLOURS)
    parts = []
    for k in range(num):
        cls_name = SHAPES_CLASSES[int(rng.integers(len(SHAPES_CLASSES)))]
        colour = colour_names[int(rng.integers(len(colour_names)))]
        radius = rng.uniform(0.30, 0.42) * min(slot, img_size)
        radius = min(radius, (slot - 2) / 2, (img_size - 2) / 2)
        cx = k * slot + rng.uniform(radius + 0.5, slot - radius - 0.5)
        cy = rng.uniform(radius + 0.5, img_size - radius - 1.5)
        mask = _draw_mask(img_size, cls_name, cx, cy, radius, rng.uniform(0, 2 * math.pi), rng)
        shade = np.asarray(SHAPE_COLOURS[colour], np.float32) * rng.uniform(0.85, 1.1)
        img[mask] = shade
        parts.append(f'a {colour} {cls_name}')
    img += rng.normal(0, 4.0, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), ' and '.join(parts)


@DATASETS.register_module()
class DigitsShapesCaptions(BaseDataset):
    """Generated image-caption pairs: real handwritten digits + drawn coloured shapes.

    Digits: the 1,797 scikit-learn 8x8 digits with :class:`mmkd.DigitsDataset`'s
    fixed train/val split (80/20, ``split_seed``), resized to ``img_size`` and
    captioned ``"a handwritten digit <number word>"``; ``gt_label`` is the digit (for
    zero-shot classification). Shapes: ``num_shapes[split]`` images with 1 to
    ``max_shapes`` shapes (circle, rectangle, triangle, star, drawn with
    :mod:`mmkd.datasets.shapes`' geometry) in one of the colours of
    :data:`SHAPE_COLOURS`, placed left to right and captioned in that order, e.g.
    ``"a red circle and a blue star"``; ``gt_label`` is -1. Image ``i`` of a split
    depends only on ``(seed, split, i)``. Everything is built in memory, offline.

    Args:
        split (str): 'train' or 'val'.
        sources (tuple[str]): any of 'digits', 'shapes'.
        img_size (int): side of the square RGB images.
        num_shapes (tuple[int, int]): shape images in (train, val).
        max_shapes (int): most shapes per image.
        seed (int): seed of the shape images.
        split_seed (int): seed of the digits train/val split.
        pipeline (list): data transforms.
    """

    METAINFO = dict(classes=DIGIT_WORDS)

    def __init__(self,
                 split: str = 'train',
                 sources: Sequence[str] = ('digits', 'shapes'),
                 img_size: int = 32,
                 num_shapes: Sequence[int] = (1200, 240),
                 max_shapes: int = 2,
                 seed: int = 0,
                 split_seed: int = 0,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        if split not in _SPLITS:
            raise ValueError(f'DigitsShapesCaptions split={split!r}; valid: {sorted(_SPLITS)}')
        bad = [s for s in sources if s not in ('digits', 'shapes')]
        if bad or not sources:
            raise ValueError(f"DigitsShapesCaptions sources={tuple(sources)!r}; valid: a non-empty "
                             "subset of ('digits', 'shapes')")
        if len(num_shapes) != 2:
            raise ValueError(f'num_shapes={num_shapes!r} must be (train count, val count)')
        if img_size < 16:
            raise ValueError(f'img_size={img_size} must be >= 16')
        if not 1 <= max_shapes <= 3:
            raise ValueError(f'max_shapes={max_shapes} must be in 1..3')
        self.split, self.sources, self.img_size = split, tuple(sources), img_size
        self.num_shapes, self.max_shapes = tuple(num_shapes), max_shapes
        self.seed, self.split_seed = seed, split_seed
        kwargs.setdefault('serialize_data', False)
        super().__init__(ann_file='', pipeline=list(pipeline), **kwargs)

    def _digits(self) -> List[dict]:
        import cv2
        from sklearn.datasets import load_digits  # optional heavy import

        from .digits import _split_indices
        digits = load_digits()
        images = (digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        train_idx, val_idx = _split_indices(len(images), 0.2, self.split_seed)
        out = []
        for idx in (train_idx if self.split == 'train' else val_idx).tolist():
            img = cv2.resize(images[idx], (self.img_size, self.img_size),
                             interpolation=cv2.INTER_LINEAR)
            label = int(digits.target[idx])
            out.append(dict(img=np.repeat(img[:, :, None], 3, axis=2), caption=digit_caption(label),
                            gt_label=label, source='digits', sample_idx=idx))
        return out

    def _shapes(self) -> List[dict]:
        out = []
        count = self.num_shapes[_SPLITS[self.split]]
        for i in range(count):
            rng = np.random.default_rng([self.seed, _SPLITS[self.split], i])
            img, caption = _shape_image(rng, self.img_size, self.max_shapes)
            out.append(dict(img=img, caption=caption, gt_label=-1, source='shapes', sample_idx=i))
        return out

    def load_data_list(self) -> List[dict]:
        data = []
        if 'digits' in self.sources:
            data += self._digits()
        if 'shapes' in self.sources:
            data += self._shapes()
        for item in data:
            item['img_shape'] = item['ori_shape'] = item['img'].shape[:2]
        return data


@DATASETS.register_module()
class CsvCaptionDataset(BaseDataset):
    """Image files and captions listed in a CSV/TSV file (open_clip's csv layout).

    Each row names an image (relative to ``data_prefix['img_path']``) and its
    caption, e.g. a LAION/YFCC subset exported with img2dataset. Rows give
    ``img_path`` and ``caption`` (``gt_label`` -1); load the image with
    ``dict(type='LoadImageFromFile')`` first in the pipeline.

    Args:
        ann_file (str): the CSV/TSV file (relative to ``data_root``).
        img_key (str): column of the image path.
        caption_key (str): column of the caption.
        separator (str): column separator ('\\t' for open_clip's default).
    """

    def __init__(self, ann_file: str, img_key: str = 'filepath', caption_key: str = 'title',
                 separator: str = '\t', **kwargs) -> None:
        self.img_key, self.caption_key, self.separator = img_key, caption_key, separator
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'CsvCaptionDataset.ann_file={self.ann_file!r} does not exist')
        prefix = self.data_prefix.get('img_path', '') or ''
        data = []
        with open(self.ann_file, newline='') as f:
            reader = csv.DictReader(f, delimiter=self.separator)
            for key in (self.img_key, self.caption_key):
                if key not in (reader.fieldnames or []):
                    raise KeyError(f'CsvCaptionDataset: column {key!r} is not in {self.ann_file!r}; '
                                   f'columns: {reader.fieldnames}')
            for i, row in enumerate(reader):
                data.append(dict(img_path=osp.join(prefix, row[self.img_key]),
                                 caption=row[self.caption_key], gt_label=-1, source='csv',
                                 sample_idx=i))
        return data


@TRANSFORMS.register_module()
class TokenizeCaption(BaseTransform):
    """Tokenize ``results['caption']`` into ``results['text']`` (LongTensor, L).

    Args:
        tokenizer (dict): see :func:`mmkd.text.caption_tokenizers.build_tokenizer`.
    """

    def __init__(self, tokenizer: dict) -> None:
        self.tokenizer = build_tokenizer(tokenizer, 'TokenizeCaption.tokenizer')

    def transform(self, results: dict) -> dict:
        if 'caption' not in results:
            raise KeyError(f"TokenizeCaption: the sample has no 'caption'; keys: {sorted(results)}")
        results['text'] = self.tokenizer(results['caption'])[0]
        return results


@TRANSFORMS.register_module()
class PackImageText(BaseTransform):
    """Pack ``inputs = dict(img=uint8 CxHxW tensor[, text=token ids])`` and a data sample.

    The data sample (an mmengine ``BaseDataElement``) carries ``caption``,
    ``gt_label`` (int, -1 when the image has no class), ``source`` and the
    ``meta_keys`` present in the results.
    """

    def __init__(self, meta_keys: Sequence[str] = ('sample_idx', 'img_shape', 'ori_shape',
                                                   'img_path')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = results.get('img')
        if img is None:
            raise KeyError("PackImageText: the sample has no 'img'; put LoadImageFromFile "
                           'first for data sets on disk')
        img = np.ascontiguousarray(img if img.ndim == 3 else img[:, :, None])
        inputs = dict(img=torch.from_numpy(img).permute(2, 0, 1).contiguous())
        if 'text' in results:
            inputs['text'] = torch.as_tensor(results['text'], dtype=torch.long)
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        sample.set_field(str(results.get('caption', '')), 'caption', field_type='metainfo')
        sample.set_field(str(results.get('source', '')), 'source', field_type='metainfo')
        sample.gt_label = torch.tensor(int(results.get('gt_label', -1)))
        return dict(inputs=inputs, data_samples=sample)

