"""Multimodal data for cross-modal distillation: a digits demo and real array data sets.

* :class:`CrossModalDigitsDataset`: scikit-learn's digits (modality ``img``) plus a
  derived 1-D "audio" signal (modality ``audio``) generated from each sample's true
  label, so that a student sees images only while multimodal and cross-modal
  teachers exist. Offline and deterministic.
* :class:`MultiModalArrayDataset`: modalities stored as ``.npy`` arrays (AV-MNIST,
  RAVDESS, CrisisMMD, VGGSound-50k features, NYU-Depth-V2 after conversion).
* :class:`PackMultiModalInputs`: packs several modalities into
  ``inputs = {key: tensor}`` and an mmpretrain ``DataSample`` (or mmseg
  ``SegDataSample`` for ``task='seg'``).
"""
from __future__ import annotations

import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset

from mmkd.registry import DATASETS, TRANSFORMS

from .digits import DigitsDataset


def audio_signal(label: int, length: int, noise_std: float, base_freq: int,
                 rng: np.random.RandomState) -> np.ndarray:
    r"""The demo's "audio": a tone whose frequency encodes the class, in noise.

    .. math:: s(t) = \sin\!\big(2\pi (f_0 + y)\,t / L + \varphi\big) + \sigma\,\epsilon_t,
              \quad \varphi \sim U[0, 2\pi),\ \epsilon_t \sim N(0, 1)

    Neighbouring classes have neighbouring frequencies, so the audio modality's
    confusions (y vs y +- 1) differ from the images' (e.g. 3 vs 8): its soft labels
    carry modality-specific knowledge, which cross-modal distillation must handle.
    """
    t = np.arange(length, dtype=np.float64)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    tone = np.sin(2.0 * np.pi * (base_freq + label) * t / length + phase)
    return (tone + noise_std * rng.randn(length)).astype(np.float32)


@DATASETS.register_module()
class CrossModalDigitsDataset(DigitsDataset):
    """:class:`DigitsDataset` (``img``: uint8 HxWx3) plus an ``audio`` signal (float32, (L,)).

    Split, few-label subset and images are exactly those of :class:`DigitsDataset`
    with the same arguments. The signal depends on the sample's *true* label (a
    hidden label hides the annotation, not the modality) and on a seed derived from
    ``split_seed`` and the sample index, so it is identical in every run.

    Args:
        signal_length (int): L, samples of the signal.
        noise_std (float): sigma of the additive Gaussian noise (1.5: about 90% of
            the signals are classified right by their strongest FFT bin).
        base_freq (int): f_0, cycles per signal of class 0.
        **kwargs: :class:`DigitsDataset` arguments (split, img_size,
            labelled_fraction, unlabelled, pipeline, ...).
    """

    def __init__(self, signal_length: int = 64, noise_std: float = 1.5, base_freq: int = 3,
                 **kwargs) -> None:
        if signal_length < 2 * (base_freq + 10):
            raise ValueError(f'signal_length={signal_length} cannot hold frequencies up to '
                             f'{base_freq + 9} cycles (need >= {2 * (base_freq + 10)})')
        if noise_std < 0:
            raise ValueError(f'noise_std must be >= 0, got {noise_std}')
        self.signal_length = signal_length
        self.noise_std = noise_std
        self.base_freq = base_freq
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        from sklearn.datasets import load_digits
        true_labels = load_digits().target
        data_list = super().load_data_list()
        for info in data_list:
            # mmengine's get_data_info overwrites 'sample_idx' with the position in the
            # split; keep the index among the 1,797 digits as well.
            idx = info['source_idx'] = info['sample_idx']
            rng = np.random.RandomState((self.split_seed * 1_000_003 + idx) % (2**31))
            info['audio'] = audio_signal(int(true_labels[idx]), self.signal_length,
                                         self.noise_std, self.base_freq, rng)
        return data_list


def _load_array(path: str, mmap: bool) -> np.ndarray:
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path!r} does not exist')
    return np.load(path, mmap_mode='r' if mmap else None)


@DATASETS.register_module()
class MultiModalArrayDataset(BaseDataset):
    """Several modalities stored as arrays with one row per sample.

    Args:
        data_root (str): folder of the files.
        modalities (dict): modality key -> ``.npy`` file (or list of files, joined
            along axis 0, e.g. AV-MNIST's train and test parts), relative to
            ``data_root``. Each row is one sample in the layout the model takes
            (e.g. (1, 28, 28) images, (C, L) signals, (D,) feature vectors).
        label_file (str | list[str]): ``.npy`` labels ((N,) classes, or (N, H, W)
            masks for ``task='seg'``).
        split (str): 'train', 'val' or 'test'.
        split_files (dict, optional): split -> ``.npy``/``.txt`` file of row indices
            (e.g. made from the official ``metadata/*_indices.csv``). Without it, a
            seeded random split with ``split_ratios``.
        split_ratios (tuple): train/val/test shares (default 0.8/0.1/0.1).
        split_seed (int): seed of the random split.
        minmax (bool | list[str]): min-max normalise these modalities to [0, 1]
            over the whole array per channel (dim 1), as the official code does
            (True: all).
        mmap (bool): memory-map the arrays instead of reading them.
        classes (list[str], optional): class names (metainfo).
        pipeline (list): transforms, usually ending with ``PackMultiModalInputs``.
    """

    SPLITS = ('train', 'val', 'test')

    def __init__(self,
                 data_root: str,
                 modalities: Dict[str, Union[str, Sequence[str]]],
                 label_file: Union[str, Sequence[str]],
                 split: str = 'train',
                 split_files: Optional[Dict[str, str]] = None,
                 split_ratios: Sequence[float] = (0.8, 0.1, 0.1),
                 split_seed: int = 0,
                 minmax: Union[bool, Sequence[str]] = True,
                 mmap: bool = False,
                 classes: Optional[Sequence[str]] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 **kwargs) -> None:
        if split not in self.SPLITS:
            raise ValueError(f'MultiModalArrayDataset split={split!r}; valid: {self.SPLITS}')
        if not isinstance(modalities, dict) or not modalities:
            raise TypeError('modalities must be a dict: modality key -> .npy file(s)')
        if split_files is not None and split not in split_files:
            raise KeyError(f'split_files has no entry for split={split!r}; it has '
                           f'{sorted(split_files)}')
        if len(split_ratios) != 3 or abs(sum(split_ratios) - 1.0) > 1e-6:
            raise ValueError(f'split_ratios must be 3 shares summing to 1, got {split_ratios}')
        self.modalities = dict(modalities)
        self.label_file = label_file
        self.split = split
        self.split_files = split_files
        self.split_ratios = tuple(split_ratios)
        self.split_seed = split_seed
        self.minmax = minmax
        self.mmap = mmap
        metainfo = kwargs.pop('metainfo', None) or {}
        if classes is not None:
            metainfo = dict(metainfo, classes=tuple(classes))
        kwargs.setdefault('serialize_data', False)
        super().__init__(ann_file='', data_root=data_root, metainfo=metainfo,
                         pipeline=list(pipeline), **kwargs)

    def _join(self, files) -> np.ndarray:
        files = [files] if isinstance(files, str) else list(files)
        arrays = [_load_array(osp.join(self.data_root, f), self.mmap) for f in files]
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)

    def _split_rows(self, num: int) -> np.ndarray:
        if self.split_files is not None:
            path = osp.join(self.data_root, self.split_files[self.split])
            if path.endswith('.npy'):
                return np.asarray(_load_array(path, False), dtype=np.int64).reshape(-1)
            return np.loadtxt(path, dtype=np.int64, ndmin=1)
        order = np.random.RandomState(self.split_seed).permutation(num)
        n_train = int(round(num * self.split_ratios[0]))
        n_val = int(round(num * self.split_ratios[1]))
        bounds = {'train': (0, n_train), 'val': (n_train, n_train + n_val),
                  'test': (n_train + n_val, num)}[self.split]
        return np.sort(order[bounds[0]:bounds[1]])

    def load_data_list(self) -> List[dict]:
        labels = self._join(self.label_file)
        arrays = {}
        for key, files in self.modalities.items():
            array = self._join(files)
            if len(array) != len(labels):
                raise ValueError(f'modalities.{key} has {len(array)} rows but the labels '
                                 f'have {len(labels)}')
            normalise = self.minmax is True or (isinstance(self.minmax, (list, tuple))
                                                and key in self.minmax)
            if normalise:
                array = np.asarray(array, dtype=np.float32)
                axes = tuple(i for i in range(array.ndim) if i != 1) if array.ndim > 1 else 0
                low = array.min(axis=axes, keepdims=True)
                high = array.max(axis=axes, keepdims=True)
                array = (array - low) / np.maximum(high - low, 1e-12)
            arrays[key] = array
        data_list = []
        for idx in self._split_rows(len(labels)).tolist():
            info = {key: np.asarray(array[idx], dtype=np.float32) for key, array in arrays.items()}
            label = labels[idx]
            info['gt_label'] = int(label) if np.ndim(label) == 0 else np.asarray(label)
            info['sample_idx'] = info['source_idx'] = idx  # row in the arrays
            data_list.append(info)
        return data_list


@TRANSFORMS.register_module()
class PackMultiModalInputs(BaseTransform):
    """Pack modalities into ``inputs = {key: tensor}`` plus a data sample.

    Arrays are converted as mmpretrain's ``PackInputs`` does for images when they
    are images (uint8 HxW[xC] -> CxHxW); float arrays and other arrays are taken as
    already laid out for the model ((L,) becomes (1, L)). Tensors pass unchanged.

    Args:
        keys (str | list[str]): modalities to pack. A string packs a one-key dict.
        task (str): 'cls' (mmpretrain ``DataSample`` with ``gt_label``) or 'seg'
            (mmseg ``SegDataSample`` with ``gt_sem_seg`` from an (H, W) ``gt_label``).
        meta_keys (list[str]): results keys copied into the data sample's metainfo.
    """

    META_KEYS = ('sample_idx', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                 'flip_direction')
    TASKS = ('cls', 'seg')

    def __init__(self, keys: Union[str, Sequence[str]] = ('img', ), task: str = 'cls',
                 meta_keys: Sequence[str] = META_KEYS) -> None:
        if task not in self.TASKS:
            raise ValueError(f'PackMultiModalInputs task={task!r}; valid: {self.TASKS}')
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        if not self.keys:
            raise ValueError('PackMultiModalInputs.keys is empty')
        self.task = task
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def format_input(value):
        import torch
        if isinstance(value, torch.Tensor):
            return value
        value = np.asarray(value)
        if value.dtype == np.uint8 and value.ndim in (2, 3):  # an image, HxW[xC]
            if value.ndim == 2:
                value = value[:, :, None]
            return torch.from_numpy(np.ascontiguousarray(value.transpose(2, 0, 1)))
        if value.ndim == 1:
            value = value[None]
        return torch.from_numpy(np.ascontiguousarray(value))

    def transform(self, results: dict) -> dict:
        missing = [k for k in self.keys if k not in results]
        if missing:
            raise KeyError(f'PackMultiModalInputs: results lack modalities {missing}; they '
                           f'have {sorted(results)}')
        inputs = {key: self.format_input(results[key]) for key in self.keys}
        metainfo = {k: results[k] for k in self.meta_keys if k in results}
        if self.task == 'cls':
            from mmpretrain.structures import DataSample
            sample = DataSample(metainfo=metainfo)
            if 'gt_label' in results:
                sample.set_gt_label(results['gt_label'])
        else:
            import torch
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            shape = tuple(np.shape(results['gt_label']))[-2:]
            metainfo.setdefault('img_shape', shape)
            metainfo.setdefault('ori_shape', shape)
            sample = SegDataSample(metainfo=metainfo)
            label = torch.as_tensor(np.asarray(results['gt_label']), dtype=torch.long)
            sample.gt_sem_seg = PixelData(data=label.reshape((1, ) + shape))
        return dict(inputs=inputs, data_samples=sample)
