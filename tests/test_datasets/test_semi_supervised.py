"""SemiSupervisedSegDataset: labelled/unlabelled split, and unlabelled images never
touch a label (no label path in their data infos, no label file read, no gt in the
packed sample)."""
import mmengine.fileio
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmkd.datasets import SemiSupervisedSegDataset

PIPE_L = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
PIPE_U = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    from mmkd.datasets import generate_shapes
    out = tmp_path_factory.mktemp('shapes_semi')
    generate_shapes(str(out), num_train=16, num_val=2, img_size=32, seed=3)
    return str(out)


def inner(root):
    return dict(type='BaseSegDataset', data_root=root, img_suffix='.png', seg_map_suffix='.png',
                reduce_zero_label=False,
                data_prefix=dict(img_path='images/train', seg_map_path='seg_masks/train'),
                pipeline=PIPE_L)


def build(root, **kwargs):
    kwargs.setdefault('unlabelled_pipeline', PIPE_U)
    return SemiSupervisedSegDataset(dataset=inner(root), labelled_fraction=0.25, **kwargs)


def test_split_is_disjoint_deterministic_and_complete(root):
    ds = build(root)
    assert len(ds.labelled) == 4 and len(ds.unlabelled) == 12
    assert set(ds.labelled.tolist()).isdisjoint(ds.unlabelled.tolist())
    assert sorted(ds.labelled.tolist() + ds.unlabelled.tolist()) == list(range(16))
    assert build(root).labelled.tolist() == ds.labelled.tolist()
    assert build(root, split_seed=1).labelled.tolist() != ds.labelled.tolist()
    assert len(ds) == 12  # 'max' of the two parts


def test_items_labelled_has_gt_unlabelled_has_none(root):
    ds = build(root)
    item = ds[0]
    assert 'gt_sem_seg' in item['labelled']['data_samples']
    assert len(item['unlabelled']) == 2
    paths = []
    for u in item['unlabelled']:
        assert 'gt_sem_seg' not in u['data_samples']
        assert 'seg_map_path' not in u['data_samples'].metainfo
        paths.append(u['data_samples'].img_path)
    assert paths[0] != paths[1]
    labelled_paths = {ds.dataset.get_data_info(i)['img_path'] for i in ds.labelled}
    assert not labelled_paths & set(paths)
    for info in ds.unlabelled_infos:
        assert 'seg_map_path' not in info and info['seg_fields'] == []


def test_unlabelled_images_never_read_a_label_file(root, monkeypatch):
    ds = build(root)
    read = []
    real_get = mmengine.fileio.get

    def spy(path, *args, **kwargs):
        read.append(str(path))
        return real_get(path, *args, **kwargs)

    monkeypatch.setattr(mmengine.fileio, 'get', spy)
    for pos in range(len(ds.unlabelled)):
        ds.get_unlabelled(pos)
    assert len(read) == len(ds.unlabelled)
    assert not [p for p in read if 'seg_masks' in p]
    read.clear()
    ds[0]  # the labelled sample does read its mask: the spy sees label reads
    assert [p for p in read if 'seg_masks' in p]


def test_unlabelled_pipeline_must_not_load_annotations(root):
    with pytest.raises(ValueError, match='LoadAnnotations'):
        build(root, unlabelled_pipeline=PIPE_L)
    with pytest.raises(ValueError, match='unlabelled_pipeline is required'):
        build(root, unlabelled_pipeline=None)


def test_labelled_only_and_labelled_list(root):
    ds = build(root, labelled_only=True, unlabelled_pipeline=None)
    assert len(ds) == 4
    assert 'gt_sem_seg' in ds[1]['data_samples']
    names = ['00002', '00005.png', 'seg/00011']
    ds = build(root, labelled_list=names)
    assert ds.labelled.tolist() == [2, 5, 11]
    with pytest.raises(ValueError, match='not in the data set'):
        build(root, labelled_list=['99999'])


def test_collate_and_semi_supervised_preprocessor(root):
    from mmengine.registry import MODELS, init_default_scope

    from mmkd.models.preprocessors import SemiSupervisedDataPreprocessor
    init_default_scope('mmseg')
    pp = SemiSupervisedDataPreprocessor(MODELS.build(dict(
        type='SegDataPreProcessor', mean=[0.0] * 3, std=[255.0] * 3, size=(32, 32))))
    ds = build(root)
    batch = pseudo_collate([ds[0], ds[1], ds[2]])
    out = pp(batch, training=True)
    assert out['inputs'].shape == (3, 3, 32, 32)
    assert len(out['data_samples']) == 3 and 'gt_sem_seg' in out['data_samples'][0]
    assert [u.shape for u in out['unlabelled_inputs']] == [torch.Size([3, 3, 32, 32])] * 2
    # validation batches go to the student's preprocessor unchanged
    val = pp(pseudo_collate([ds.dataset[0]]), training=False)
    assert set(val) == {'inputs', 'data_samples'}
