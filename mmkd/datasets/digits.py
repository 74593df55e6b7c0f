"""scikit-learn's handwritten digits as an mmengine data set (real data, offline)."""
from __future__ import annotations

from typing import Callable, List, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset

from mmkd.registry import DATASETS

#: label given to training images whose label is hidden in the few-label setting.
#: torch's cross-entropy ignores it (its default ``ignore_index``), so an mmpretrain
#: head's CE loss skips those images while distillation losses still use them.
UNLABELLED = -100


def _split_indices(num: int, val_fraction: float, seed: int) -> tuple:
    order = np.random.RandomState(seed).permutation(num)
    num_val = int(round(num * val_fraction))
    return np.sort(order[num_val:]), np.sort(order[:num_val])


def labelled_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a class-stratified subset holding ``fraction`` of each class."""
    rng = np.random.RandomState(seed + 1)
    keep = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        count = max(1, int(round(len(idx) * fraction)))
        keep.extend(rng.choice(idx, size=count, replace=False).tolist())
    return np.sort(np.asarray(keep, dtype=np.int64))


@DATASETS.register_module()
class DigitsDataset(BaseDataset):
    """The 1,797 8x8 UCI handwritten digits shipped with scikit-learn, 10 classes.

    Images are scaled from 0..16 to 0..255, resized to ``img_size`` (bilinear) and
    repeated to 3 channels (uint8 HxWx3), so that ordinary mmpretrain pipelines and
    data preprocessors apply. The train/val split is fixed by ``split_seed``
    (80/20 by default).

    Few-label setting: with ``labelled_fraction < 1`` only a class-stratified subset
    of the train split keeps its labels. ``unlabelled='drop'`` removes the others
    (the "student alone" baseline), ``'hide'`` keeps them with label
    :data:`UNLABELLED` (for distillation, where the teacher labels every image).

    Args:
        split (str): 'train' or 'val'.
        img_size (int): side of the square output image.
        val_fraction (float): share of the 1,797 images in the val split.
        split_seed (int): seed of the split and of the labelled subset.
        labelled_fraction (float): share of train images keeping their label.
        unlabelled (str): 'drop' or 'hide'.
        pipeline (list): data transforms (e.g. ``[dict(type='PackInputs')]``).
    """

    METAINFO = dict(classes=tuple(str(i) for i in range(10)))

    def __init__(self,
                 split: str = 'train',
                 img_size: int = 32,
                 val_fraction: float = 0.2,
                 split_seed: int = 0,
                 labelled_fraction: float = 1.0,
                 unlabelled: str = 'drop',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f"DigitsDataset split={split!r}; valid: 'train', 'val'")
        if not 0.0 < labelled_fraction <= 1.0:
            raise ValueError(f'labelled_fraction must be in (0, 1], got {labelled_fraction}')
        if unlabelled not in ('drop', 'hide'):
            raise ValueError(f"unlabelled={unlabelled!r}; valid: 'drop', 'hide'")
        if split == 'val' and labelled_fraction < 1.0:
            raise ValueError('labelled_fraction only applies to the train split')
        self.split = split
        self.img_size = img_size
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.labelled_fraction = labelled_fraction
        self.unlabelled = unlabelled
        kwargs.setdefault('serialize_data', False)
        super().__init__(ann_file='', pipeline=list(pipeline), **kwargs)

    def load_data_list(self) -> List[dict]:
        import cv2
        from sklearn.datasets import load_digits  # optional heavy import

        digits = load_digits()
        images = (digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        labels = digits.target.astype(np.int64)
        train_idx, val_idx = _split_indices(len(labels), self.val_fraction, self.split_seed)
        indices = train_idx if self.split == 'train' else val_idx
        labelled = set(indices.tolist())
        if self.split == 'train' and self.labelled_fraction < 1.0:
            keep = labelled_subset(labels[indices], self.labelled_fraction, self.split_seed)
            labelled = set(indices[keep].tolist())
        data_list = []
        for idx in indices.tolist():
            if idx not in labelled and self.unlabelled == 'drop':
                continue
            img = cv2.resize(images[idx], (self.img_size, self.img_size),
                             interpolation=cv2.INTER_LINEAR)
            img = np.repeat(img[:, :, None], 3, axis=2)
            label = int(labels[idx]) if idx in labelled else UNLABELLED
            data_list.append(dict(img=img, gt_label=label, sample_idx=idx,
                                  img_shape=img.shape[:2], ori_shape=img.shape[:2]))
        return data_list
