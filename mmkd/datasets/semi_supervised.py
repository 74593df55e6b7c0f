"""A labelled/unlabelled view of a segmentation data set, for semi-supervised training.

Semi-supervised segmentation (e.g. MGD, ``MultiGranularityDistill``) trains each step
on a labelled batch and on unlabelled images. :class:`SemiSupervisedSegDataset`
wraps an ordinary mmseg data set (its files, its labelled pipeline) and splits it
into a labelled part (a fraction, or a list of image names such as the official
1/8 split files) and an unlabelled part. Item ``i`` is::

    dict(labelled=<packed sample with gt_sem_seg>,
         unlabelled=[<packed sample without labels>] * num_unlabelled)

mmengine's ``pseudo_collate`` turns a list of such items into
``dict(labelled=dict(inputs=[...], data_samples=[...]), unlabelled=[dict(...), ...])``,
which ``MultiGranularityDistill``'s data preprocessor reads.

Unlabelled images never touch a label: their data infos are copied from the data
set with ``seg_map_path`` removed and ``seg_fields`` emptied, and their pipeline
must not load annotations (a ``LoadAnnotations`` step there is an error).
"""
from __future__ import annotations

import copy
import os.path as osp
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import Compose
from torch.utils.data import Dataset

from mmkd.registry import DATASETS

#: keys removed from the data info of an unlabelled image
LABEL_KEYS = ('seg_map_path', 'gt_seg_map', 'gt_sem_seg')


def _build_in_scope(cfg: dict, scope: Optional[str]):
    from mmengine.registry import DATASETS as ROOT
    from mmengine.registry import DefaultScope
    cfg = copy.deepcopy(dict(cfg))
    scope = cfg.pop('_scope_', None) or scope
    if scope is None:
        return ROOT.build(cfg)
    with DefaultScope.overwrite_default_scope(scope):
        return ROOT.build(cfg)


def _compose_in_scope(pipeline: Sequence[Union[dict, Callable]], scope: Optional[str]) -> Compose:
    from mmengine.registry import DefaultScope
    if scope is None:
        return Compose(list(pipeline))
    with DefaultScope.overwrite_default_scope(scope):
        return Compose(list(pipeline))


def _step_name(step) -> str:
    return step.get('type', '') if isinstance(step, dict) else type(step).__name__


def _image_key(info: dict) -> str:
    """The image's name without folder and suffix (matches split-list entries)."""
    path = info.get('img_path', '')
    return osp.splitext(osp.basename(path))[0]


def labelled_indices(num: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a random subset of ``round(num * fraction)`` (>= 1) items."""
    count = max(1, int(round(num * fraction)))
    order = np.random.RandomState(seed).permutation(num)
    return np.sort(order[:count])


@DATASETS.register_module()
class SemiSupervisedSegDataset(Dataset):
    """Yield one labelled sample and ``num_unlabelled`` unlabelled ones per item.

    Args:
        dataset (dict | Dataset): the full training set with its **labelled**
            pipeline (an mmseg data set such as ``BaseSegDataset`` or
            ``CityscapesDataset``, or a ``ConcatDataset`` of them).
        unlabelled_pipeline (list, optional): the pipeline of unlabelled images; it must not
            load annotations (``LoadAnnotations``), e.g. ``LoadImageFromFile``,
            ``RandomResize``, ``RandomCrop``, ``RandomFlip``, ``PackSegInputs``.
        labelled_fraction (float): share of the images that keep their labels, a
            random subset drawn with ``split_seed``. Ignored when
            ``labelled_list`` is given.
        labelled_list (str | list[str], optional): image names (file name without
            folder and suffix; a text file with one per line, first token used)
            that keep their labels, e.g. an official 1/8 split file.
        num_unlabelled (int): unlabelled samples per item (2 for CutMix).
        unlabelled_from_labelled (bool): also draw unlabelled samples among the
            labelled images (their labels still removed). Default False: the
            unlabelled pool is the complement, as in the official MGD splits.
        split_seed (int): seed of the labelled subset.
        length (str | int): items per epoch: 'max' (default: the larger of the two
            parts, as the official code's epoch), 'labelled', 'unlabelled' or a
            number.
        labelled_only (bool): yield only the labelled sample (a plain packed
            sample, length = labelled images): the supervised-only baseline on
            exactly the same labelled split.
        scope (str, optional): registry scope in which ``dataset`` and the
            unlabelled pipeline are built (default 'mmseg').

    Item ``i`` takes labelled image ``i % L`` and ``num_unlabelled`` distinct
    unlabelled images drawn at random (numpy's global generator, which mmengine
    seeds, as the random transforms do).
    """

    def __init__(self,
                 dataset: Union[dict, Dataset],
                 unlabelled_pipeline: Optional[Sequence[Union[dict, Callable]]] = None,
                 labelled_fraction: float = 0.125,
                 labelled_list: Optional[Union[str, Sequence[str]]] = None,
                 num_unlabelled: int = 2,
                 unlabelled_from_labelled: bool = False,
                 split_seed: int = 0,
                 length: Union[str, int] = 'max',
                 labelled_only: bool = False,
                 scope: Optional[str] = 'mmseg') -> None:
        if labelled_list is None and not 0.0 < labelled_fraction <= 1.0:
            raise ValueError(f'labelled_fraction must be in (0, 1], got {labelled_fraction}')
        if int(num_unlabelled) < 1:
            raise ValueError(f'num_unlabelled must be >= 1, got {num_unlabelled}')
        self.labelled_only = labelled_only
        if unlabelled_pipeline is None:
            if not labelled_only:
                raise ValueError('unlabelled_pipeline is required (unless labelled_only=True)')
            unlabelled_pipeline = []
        for step in unlabelled_pipeline:
            if 'LoadAnnotations' in _step_name(step):
                raise ValueError(
                    f'unlabelled_pipeline contains {_step_name(step)!r}: unlabelled images '
                    'must not load labels; remove that step (keep LoadImageFromFile, the '
                    'geometric transforms and PackSegInputs)')
        self.scope = scope
        if isinstance(dataset, dict):
            dataset = _build_in_scope(dataset, scope)
        self.dataset = dataset
        self.num_unlabelled = int(num_unlabelled)
        self.unlabelled_pipeline = _compose_in_scope(unlabelled_pipeline, scope)

        num = len(dataset)
        if num < 2:
            raise ValueError(f'dataset has {num} image(s); a semi-supervised split needs >= 2')
        infos = [self._info(i) for i in range(num)]
        if labelled_list is not None:
            names = self._read_list(labelled_list)
            keys = [_image_key(info) for info in infos]
            chosen = [i for i, k in enumerate(keys) if k in names]
            missing = names - set(keys)
            if missing:
                raise ValueError(f'labelled_list names {len(missing)} image(s) not in the data '
                                 f'set, e.g. {sorted(missing)[:5]}')
            labelled = np.asarray(sorted(chosen), dtype=np.int64)
        else:
            labelled = labelled_indices(num, labelled_fraction, split_seed)
        self.labelled = labelled
        if unlabelled_from_labelled:
            unlabelled = np.arange(num)
        else:
            unlabelled = np.setdiff1d(np.arange(num), labelled)
        if len(unlabelled) < self.num_unlabelled:
            raise ValueError(f'only {len(unlabelled)} unlabelled image(s) for num_unlabelled='
                             f'{self.num_unlabelled}; lower labelled_fraction or set '
                             'unlabelled_from_labelled=True')
        self.unlabelled = unlabelled
        # Label-free copies of the unlabelled images' data infos.
        self.unlabelled_infos = [self.strip_labels(infos[i]) for i in unlabelled]
        if labelled_only:
            length = 'labelled'
        if isinstance(length, str):
            lengths = dict(max=max(len(labelled), len(unlabelled)), labelled=len(labelled),
                           unlabelled=len(unlabelled))
            if length not in lengths:
                raise ValueError(f"length={length!r}; valid: 'max', 'labelled', 'unlabelled' or "
                                 'an int')
            self._length = lengths[length]
        else:
            self._length = int(length)

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _read_list(labelled_list) -> set:
        if isinstance(labelled_list, str):
            if not osp.isfile(labelled_list):
                raise FileNotFoundError(f'labelled_list={labelled_list!r} does not exist')
            with open(labelled_list) as f:
                entries = [line.split()[0] for line in f if line.strip()]
        else:
            entries = list(labelled_list)
        return {osp.splitext(osp.basename(e))[0] for e in entries}

    def _info(self, idx: int) -> dict:
        if not hasattr(self.dataset, 'get_data_info'):
            raise TypeError(f'dataset {type(self.dataset).__name__} has no get_data_info; wrap '
                            'an mmengine BaseDataset (e.g. an mmseg data set)')
        return self.dataset.get_data_info(idx)

    @staticmethod
    def strip_labels(info: dict) -> dict:
        """A copy of ``info`` with every label entry removed."""
        info = copy.deepcopy(info)
        for key in LABEL_KEYS:
            info.pop(key, None)
        info['seg_fields'] = []
        return info

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def __len__(self) -> int:
        return self._length

    def get_unlabelled(self, pos: int) -> dict:
        """The ``pos``-th unlabelled image through the unlabelled pipeline."""
        results = copy.deepcopy(self.unlabelled_infos[pos])
        out = self.unlabelled_pipeline(results)
        if out is None:
            raise RuntimeError(f'unlabelled_pipeline returned None for unlabelled image {pos}')
        data_sample = out.get('data_samples')
        if data_sample is not None and 'gt_sem_seg' in data_sample:
            raise RuntimeError('an unlabelled sample carries gt_sem_seg; the unlabelled '
                               'pipeline must not create labels')
        return out

    def __getitem__(self, idx: int) -> dict:
        labelled = self.dataset[int(self.labelled[idx % len(self.labelled)])]
        if self.labelled_only:
            return labelled
        picks = np.random.choice(len(self.unlabelled), self.num_unlabelled, replace=False)
        return dict(labelled=labelled, unlabelled=[self.get_unlabelled(int(p)) for p in picks])


def supervised_subset(dataset: Union[dict, Dataset], labelled_fraction: float = 0.125,
                      split_seed: int = 0, scope: Optional[str] = 'mmseg') -> List[int]:
    """Indices of the labelled subset that :class:`SemiSupervisedSegDataset` would keep."""
    if isinstance(dataset, dict):
        dataset = _build_in_scope(dataset, scope)
    return labelled_indices(len(dataset), labelled_fraction, split_seed).tolist()
