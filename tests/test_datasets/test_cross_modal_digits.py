"""Cross-modal digits, array data sets, multimodal packing and preprocessing."""
import math

import numpy as np
import pytest
import torch

from mmkd.datasets import (
    UNLABELLED,
    CrossModalDigitsDataset,
    DigitsDataset,
    MultiModalArrayDataset,
    PackMultiModalInputs,
)
from mmkd.models.preprocessors import MultiModalDataPreprocessor


def test_images_split_and_labels_match_digits_dataset():
    kwargs = dict(split='train', img_size=16, labelled_fraction=0.1, unlabelled='hide')
    xm = CrossModalDigitsDataset(**kwargs)
    plain = DigitsDataset(**kwargs)
    assert len(xm) == len(plain) == 1438
    for i in (0, 17, 1437):
        a, b = xm.get_data_info(i), plain.get_data_info(i)
        assert np.array_equal(a['img'], b['img']) and a['gt_label'] == b['gt_label']
        assert a['source_idx'] == plain.data_list[i]['sample_idx']  # raw digits index


def test_audio_is_a_noisy_tone_of_the_true_label_and_deterministic():
    from sklearn.datasets import load_digits
    true = load_digits().target
    ds = CrossModalDigitsDataset(split='train', img_size=8, labelled_fraction=0.1,
                                 unlabelled='hide', noise_std=0.0)
    again = CrossModalDigitsDataset(split='train', img_size=8, labelled_fraction=0.1,
                                    unlabelled='hide', noise_std=0.0)
    hidden = [i for i in range(len(ds)) if ds.get_data_info(i)['gt_label'] == UNLABELLED]
    assert hidden
    for i in hidden[:5] + [0, 1, 2]:
        info = ds.get_data_info(i)
        signal = info['audio']
        assert signal.shape == (64, ) and signal.dtype == np.float32
        assert np.array_equal(signal, again.get_data_info(i)['audio'])
        # Without noise the strongest frequency is 3 + true label (hidden or not).
        spectrum = np.abs(np.fft.rfft(signal))
        assert int(spectrum.argmax()) == 3 + int(true[info['source_idx']])
        # and the tone has unit amplitude: sum of squares L/2
        assert float((signal.astype(np.float64)**2).sum()) == pytest.approx(32.0, rel=1e-4)


def test_pack_multimodal_inputs():
    ds = CrossModalDigitsDataset(split='val', img_size=16,
                                 pipeline=[dict(type='mmkd.PackMultiModalInputs',
                                                keys=('img', 'audio'))])
    item = ds[0]
    assert item['inputs']['img'].shape == (3, 16, 16)
    assert item['inputs']['img'].dtype == torch.uint8
    assert item['inputs']['audio'].shape == (1, 64)
    assert int(item['data_samples'].gt_label) == ds.get_data_info(0)['gt_label']
    one = PackMultiModalInputs(keys='audio')(dict(audio=np.zeros(5, np.float32), gt_label=1))
    assert list(one['inputs']) == ['audio'] and one['inputs']['audio'].shape == (1, 5)
    with pytest.raises(KeyError, match=r"lack modalities \['depth'\]"):
        PackMultiModalInputs(keys=('img', 'depth'))(dict(img=np.zeros((4, 4, 3), np.uint8)))


def test_multimodal_data_preprocessor_normalises_each_modality():
    pp = MultiModalDataPreprocessor(modalities=dict(
        img=dict(mean=[10.0, 20.0], std=[2.0, 4.0]), audio=dict(mean=1.0, std=0.5),
        raw=dict()))
    img = [torch.full((2, 3, 3), 30.0), torch.zeros(2, 3, 3)]
    audio = [torch.ones(1, 4) * 2, torch.zeros(1, 4)]
    out = pp(dict(inputs=dict(img=img, audio=audio, raw=[torch.ones(2)] * 2),
                  data_samples=None))['inputs']
    assert out['img'].shape == (2, 2, 3, 3)
    assert out['img'][0, 0, 0, 0].item() == pytest.approx((30 - 10) / 2)
    assert out['img'][1, 1, 0, 0].item() == pytest.approx((0 - 20) / 4)
    assert out['audio'][0, 0, 0].item() == pytest.approx(2.0)
    assert out['audio'][1, 0, 0].item() == pytest.approx(-2.0)
    assert torch.equal(out['raw'], torch.ones(2, 2))
    with pytest.raises(KeyError, match=r"modalities \['depth'\] of the batch are not configured"):
        pp(dict(inputs=dict(depth=[torch.zeros(1)]), data_samples=None))
    # a task preprocessor can handle one modality
    pp = MultiModalDataPreprocessor(modalities=dict(img=dict(
        type='mmpretrain.ClsDataPreprocessor', mean=[0.0] * 3, std=[255.0] * 3)))
    out = pp(dict(inputs=dict(img=[torch.full((3, 2, 2), 255, dtype=torch.uint8)]),
                  data_samples=None))
    assert torch.allclose(out['inputs']['img'], torch.ones(1, 3, 2, 2))


def test_multimodal_array_dataset(tmp_path):
    rng = np.random.RandomState(0)
    np.save(tmp_path / 'a_train.npy', rng.rand(6, 1, 4, 4).astype(np.float32) * 10)
    np.save(tmp_path / 'a_test.npy', rng.rand(4, 1, 4, 4).astype(np.float32) * 10)
    np.save(tmp_path / 'b.npy', rng.rand(10, 7).astype(np.float32))
    np.save(tmp_path / 'y.npy', np.arange(10) % 3)
    np.savetxt(tmp_path / 'val.txt', [8, 2], fmt='%d')
    common = dict(data_root=str(tmp_path), modalities=dict(a=['a_train.npy', 'a_test.npy'],
                                                          b='b.npy'),
                  label_file='y.npy', minmax=dict(a='channel'),
                  pipeline=[dict(type='mmkd.PackMultiModalInputs', keys=('a', 'b'))])
    splits = {s: MultiModalArrayDataset(split=s, **common) for s in ('train', 'val', 'test')}
    rows = [set(splits[s].get_data_info(i)['source_idx'] for i in range(len(splits[s])))
            for s in splits]
    assert [len(r) for r in rows] == [6, 2, 2] and set.union(*rows) == set(range(10))
    # the official metadata CSV: column group_<seed> cut at 60% / 80%
    perm = np.random.RandomState(3).permutation(10)
    with open(tmp_path / 'idx.csv', 'w') as f:
        f.write('group_0,group_1\n')
        f.writelines(f'{i},{p}\n' for i, p in enumerate(perm))
    csv = dict(common, indices_csv='idx.csv', indices_group=1)
    test_rows = MultiModalArrayDataset(split='test', **csv)
    assert [test_rows.get_data_info(i)['source_idx'] for i in range(2)] == perm[8:].tolist()
    with pytest.raises(KeyError, match="no column 'group_5'"):
        MultiModalArrayDataset(split='test', **dict(csv, indices_group=5))
    item = splits['train'][0]
    assert item['inputs']['a'].shape == (1, 4, 4) and item['inputs']['b'].shape == (1, 7)
    all_a = np.concatenate([np.load(tmp_path / 'a_train.npy'), np.load(tmp_path / 'a_test.npy')])
    idx = splits['train'].get_data_info(0)['source_idx']
    expected = (all_a[idx] - all_a.min()) / (all_a.max() - all_a.min())
    assert np.allclose(splits['train'].get_data_info(0)['a'], expected, atol=1e-6)
    val = MultiModalArrayDataset(split='val', split_files=dict(val='val.txt'), **common)
    assert [val.get_data_info(i)['source_idx'] for i in range(len(val))] == [8, 2]
    assert val.get_data_info(0)['gt_label'] == 8 % 3
    with pytest.raises(KeyError, match="split_files has no entry for split='test'"):
        MultiModalArrayDataset(split='test', split_files=dict(val='val.txt'), **common)
    with pytest.raises(ValueError, match="split='dev'"):
        MultiModalArrayDataset(split='dev', **common)
    assert not math.isnan(float(item['inputs']['b'].sum()))
    # flattened rows reshaped, axes permuted, per-sample min-max
    flat = dict(common, modalities=dict(b='b.npy'), minmax=dict(b='sample'),
                shapes=dict(b=(7, 1)), transpose=dict(b=(1, 0)))
    row = MultiModalArrayDataset(split='train', **flat).get_data_info(0)
    raw = np.load(tmp_path / 'b.npy')[row['source_idx']]
    assert row['b'].shape == (1, 7)
    assert np.allclose(row['b'][0], (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)
    with pytest.raises(ValueError, match='valid modes'):
        MultiModalArrayDataset(split='train', **dict(common, minmax=dict(a='row')))
    with pytest.raises(KeyError, match=r"shapes names modalities \['c'\]"):
        MultiModalArrayDataset(split='train', **dict(common, shapes=dict(c=(1, ))))
