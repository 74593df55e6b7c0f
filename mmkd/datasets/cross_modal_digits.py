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
        split_files (dict, optional): split -> ``.npy``/``.txt`` file of row indices.
        indices_csv (str, optional): the official ``metadata/<data set>_indices.csv``
            (columns ``group_0``..``group_19``, each a permutation of the rows); the
            permutation in column ``group_<indices_group>`` is cut by
            ``split_ratios`` (official: 0.6/0.2/0.2, group = the run's seed).
        indices_group (int): the column of ``indices_csv``.
        split_ratios (tuple): train/val/test shares (default 0.6/0.2/0.2, as the
            official code); used with ``indices_csv`` or with a seeded permutation
            when neither ``split_files`` nor ``indices_csv`` is given.
        split_seed (int): seed of that permutation.
        shapes (dict, optional): modality -> shape of one sample, to reshape
            flattened rows (AV-MNIST stores 784- and 12544-long rows).
        transpose (dict, optional): modality -> permutation of one sample's axes
            (e.g. RAVDESS video stored (T, C, H, W) -> (1, 0, 2, 3) for (C, T, H, W)).
        minmax (dict, optional): modality -> 'sample' (each row to [0, 1]),
            'channel' (per channel = axis 1 of the array, over all rows), an int
            (per channel along that axis, e.g. 2 for (N, T, C, H, W) video) or
            'global'.
            The official code min-max normalises every modality (per row for 2-D
            arrays, per channel otherwise).
        mmap (bool): memory-map the arrays instead of reading them.
        classes (list[str], optional): class names (metainfo).
        pipeline (list): transforms, usually ending with ``PackMultiModalInputs``.
    """

    SPLITS = ('train', 'val', 'test')
    MINMAX = ('sample', 'channel', 'global')

    def __init__(self,
                 data_root: str,
                 modalities: Dict[str, Union[str, Sequence[str]]],
                 label_file: Union[str, Sequence[str]],
                 split: str = 'train',
                 split_files: Optional[Dict[str, str]] = None,
                 indices_csv: Optional[str] = None,
                 indices_group: int = 0,
                 split_ratios: Sequence[float] = (0.6, 0.2, 0.2),
                 split_seed: int = 0,
                 shapes: Optional[Dict[str, Sequence[int]]] = None,
                 transpose: Optional[Dict[str, Sequence[int]]] = None,
                 minmax: Optional[Dict[str, str]] = None,
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
        for name, option in (('shapes', shapes), ('transpose', transpose), ('minmax', minmax)):
            unknown = sorted(set(option or {}) - set(modalities))
            if unknown:
                raise KeyError(f'{name} names modalities {unknown} that are not in '
                               f'modalities {sorted(modalities)}')
        bad = {k: v for k, v in (minmax or {}).items()
               if v not in self.MINMAX and not isinstance(v, int)}
        if bad:
            raise ValueError(f'minmax={bad}; valid modes: {self.MINMAX} or an int (the '
                             'channel axis of the stored array)')
        self.shapes = dict(shapes or {})
        self.transpose = dict(transpose or {})
        self.modalities = dict(modalities)
        self.label_file = label_file
        self.split = split
        self.split_files = split_files
        self.indices_csv = indices_csv
        self.indices_group = indices_group
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
        if self.indices_csv is not None:
            path = osp.join(self.data_root, self.indices_csv)
            if not osp.isfile(path):
                raise FileNotFoundError(f'indices_csv={path!r} does not exist')
            table = np.genfromtxt(path, delimiter=',', names=True, dtype=np.int64)
            column = f'group_{self.indices_group}'
            if column not in (table.dtype.names or ()):
                raise KeyError(f'indices_csv has no column {column!r}; it has '
                               f'{list(table.dtype.names or ())}')
            order = np.asarray(table[column], dtype=np.int64)
            if len(order) != num:
                raise ValueError(f'indices_csv column {column!r} has {len(order)} rows for '
                                 f'{num} samples')
        else:
            order = np.random.RandomState(self.split_seed).permutation(num)
        # Cut points as the official code: int(n * 0.6), int(n * 0.8).
        end_train = int(num * self.split_ratios[0] + 1e-9)
        end_val = int(num * (self.split_ratios[0] + self.split_ratios[1]) + 1e-9)
        bounds = {'train': (0, end_train), 'val': (end_train, end_val),
                  'test': (end_val, num)}[self.split]
        return order[bounds[0]:bounds[1]]

    def load_data_list(self) -> List[dict]:
        labels = self._join(self.label_file)
        arrays = {}
        for key, files in self.modalities.items():
            array = self._join(files)
            if len(array) != len(labels):
                raise ValueError(f'modalities.{key} has {len(array)} rows but the labels '
                                 f'have {len(labels)}')
            mode = (self.minmax or {}).get(key)
            if mode is not None:
                array = np.asarray(array, dtype=np.float32)
                if mode == 'sample':
                    axes = tuple(range(1, array.ndim))
                elif mode == 'channel' or isinstance(mode, int):
                    channel_axis = 1 if mode == 'channel' else mode
                    axes = tuple(i for i in range(array.ndim) if i != channel_axis)
                else:
                    axes = tuple(range(array.ndim))
                low = array.min(axis=axes, keepdims=True)
                high = array.max(axis=axes, keepdims=True)
                array = (array - low) / np.maximum(high - low, 1e-12)
            arrays[key] = array
        data_list = []
        for idx in self._split_rows(len(labels)).tolist():
            info = {}
            for key, array in arrays.items():
                row = np.asarray(array[idx], dtype=np.float32)
                if key in self.shapes:
                    row = row.reshape(self.shapes[key])
                if key in self.transpose:
                    row = row.transpose(self.transpose[key])
                info[key] = np.ascontiguousarray(row)
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
