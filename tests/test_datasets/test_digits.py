import numpy as np
import pytest

from mmkd.datasets import UNLABELLED, DigitsDataset


def test_split_is_fixed_and_disjoint():
    train = DigitsDataset(split='train', img_size=8)
    val = DigitsDataset(split='val', img_size=8)
    ids_t = {d['sample_idx'] for d in train.data_list}
    ids_v = {d['sample_idx'] for d in val.data_list}
    assert len(ids_t) + len(ids_v) == 1797 and not ids_t & ids_v
    assert len(ids_v) == 359
    again = DigitsDataset(split='val', img_size=8)
    assert [d['sample_idx'] for d in again.data_list] == [d['sample_idx'] for d in val.data_list]


def test_images_are_real_digits_resized():
    from sklearn.datasets import load_digits
    ds = DigitsDataset(split='val', img_size=8)
    item = ds.data_list[0]
    raw = load_digits().images[item['sample_idx']]
    assert item['img'].shape == (8, 8, 3) and item['img'].dtype == np.uint8
    np.testing.assert_allclose(item['img'][:, :, 0], np.clip(raw * 255 / 16, 0, 255).astype(np.uint8))
    assert item['gt_label'] == load_digits().target[item['sample_idx']]
    assert DigitsDataset(split='val', img_size=16).data_list[0]['img'].shape == (16, 16, 3)


def test_labelled_fraction_drop_and_hide():
    full = DigitsDataset(split='train', img_size=8)
    drop = DigitsDataset(split='train', img_size=8, labelled_fraction=0.1, unlabelled='drop')
    hide = DigitsDataset(split='train', img_size=8, labelled_fraction=0.1, unlabelled='hide')
    assert len(hide) == len(full)
    labelled = [d for d in hide.data_list if d['gt_label'] != UNLABELLED]
    assert len(labelled) == len(drop) and 130 <= len(drop) <= 160
    # stratified: every class keeps labelled examples
    assert {d['gt_label'] for d in drop.data_list} == set(range(10))
    assert {d['sample_idx'] for d in labelled} == {d['sample_idx'] for d in drop.data_list}


def test_bad_arguments_name_the_key():
    with pytest.raises(ValueError, match='split'):
        DigitsDataset(split='test')
    with pytest.raises(ValueError, match='labelled_fraction'):
        DigitsDataset(labelled_fraction=0)
    with pytest.raises(ValueError, match='unlabelled'):
        DigitsDataset(labelled_fraction=0.5, unlabelled='keep')
