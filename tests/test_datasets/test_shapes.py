"""The embedded shapes data set: generator, on-disk formats, and the standard loaders."""
import copy
import filecmp
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmkd.datasets.shapes import (
    SHAPES_CLASSES,
    SHAPES_PALETTE,
    SHAPES_SEG_CLASSES,
    SHAPES_SEG_PALETTE,
    _render_sample,
    ensure_shapes,
    generate_shapes,
    mask_to_rle,
    rle_to_mask,
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CFG = osp.join(ROOT, 'configs', '_base_', 'datasets', 'shapes_detection.py')
SEG_CFG = osp.join(ROOT, 'configs', '_base_', 'datasets', 'shapes_segmentation.py')
TINY = dict(num_train=8, num_val=4, img_size=128, seed=3)


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes_data') / 'shapes'
    ensure_shapes(str(root), **TINY)
    return root


def _all_files(root):
    out = []
    for dirpath, _, files in os.walk(root):
        out.extend(osp.relpath(osp.join(dirpath, f), root) for f in files)
    return sorted(out)


def _load_coco(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


# ----------------------------------------------------------------- generator
def test_rle_round_trip_and_pycocotools_agree():
    rng = np.random.default_rng(0)
    masks = [rng.random((7, 5)) > 0.5, np.zeros((4, 6), bool), np.ones((3, 3), bool)]
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    m[0, 0] = True
    masks.append(m)
    for mask in masks:
        rle = mask_to_rle(mask)
        assert sum(rle['counts']) == mask.size
        np.testing.assert_array_equal(rle_to_mask(rle), mask)
    # hand-written expectation: column-major runs, starting with zeros
    assert mask_to_rle(np.array([[1, 0], [1, 1]], bool))['counts'] == [0, 2, 1, 1]
    mask_utils = pytest.importorskip('pycocotools.mask')
    for mask in masks:
        rle = mask_utils.frPyObjects(mask_to_rle(mask), *mask.shape)
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)


def test_generation_is_deterministic(tmp_path):
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    meta_a = generate_shapes(str(a), **TINY)
    meta_b = generate_shapes(str(b), **TINY)
    assert meta_a == meta_b
    files = _all_files(a)
    assert files == _all_files(b)
    assert len(files) == 2 * (8 + 4) + 2 + 1
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors
    # another seed gives other images
    generate_shapes(str(c), **dict(TINY, seed=4))
    assert not filecmp.cmp(a / 'images/train/00000.png', c / 'images/train/00000.png',
                           shallow=False)


def test_first_images_do_not_depend_on_split_size(tmp_path):
    generate_shapes(str(tmp_path / 'small'), **dict(TINY, num_train=3, num_val=1))
    generate_shapes(str(tmp_path / 'big'), **TINY)
    for name in ('images/train/00002.png', 'seg_masks/train/00002.png',
                 'images/val/00000.png'):
        assert filecmp.cmp(tmp_path / 'small' / name, tmp_path / 'big' / name, shallow=False)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_files_masks_boxes_and_seg_agree(shapes_root, split):
    coco = _load_coco(shapes_root, split)
    assert [c['id'] for c in coco['categories']] == [1, 2, 3, 4]
    assert tuple(c['name'] for c in coco['categories']) == SHAPES_CLASSES
    assert len(coco['images']) == TINY[f'num_{split}']
    anns_by_img = {}
    for ann in coco['annotations']:
        anns_by_img.setdefault(ann['image_id'], []).append(ann)
    assert len({a['id'] for a in coco['annotations']}) == len(coco['annotations'])
    for info in coco['images']:
        img = np.asarray(Image.open(osp.join(shapes_root, 'images', split, info['file_name'])))
        seg_img = Image.open(osp.join(shapes_root, 'seg_masks', split, info['file_name']))
        assert seg_img.mode == 'L'
        seg = np.asarray(seg_img)
        assert img.shape == (info['height'], info['width'], 3) and img.dtype == np.uint8
        assert seg.shape == (info['height'], info['width'])
        assert set(np.unique(seg)) <= set(range(len(SHAPES_SEG_CLASSES)))
        union = np.zeros(seg.shape, int)
        anns = anns_by_img.get(info['id'], [])
        assert anns, 'every image holds at least one shape'
        for ann in anns:
            assert ann['iscrowd'] == 0
            mask = rle_to_mask(ann['segmentation'])
            assert mask.shape == seg.shape
            assert ann['area'] == int(mask.sum()) > 0
            # the mask lies inside its box and touches all four sides (tight box)
            x, y, w, h = ann['bbox']
            ys, xs = np.nonzero(mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x, y, x + w, y + h)
            # semantic mask shows this class wherever the instance is visible
            assert np.all(seg[mask] == ann['category_id'])
            union += mask
        # visible instance masks do not overlap, and cover exactly the foreground
        assert union.max() <= 1
        np.testing.assert_array_equal(union.astype(bool), seg > 0)


def test_occlusion_is_applied_and_bounded():
    """Visible mask = whole shape minus later shapes; each keeps min_visible of itself."""
    occluded = 0
    for i in range(40):
        rng = np.random.default_rng([0, 0, i])
        sample = _render_sample(rng, 96, 4, 8, (20, 60), 0.3, 16, (2, 8))
        insts = sample['instances']
        seg = np.zeros((96, 96), np.uint8)
        for k, inst in enumerate(insts):
            above = np.zeros((96, 96), bool)
            for later in insts[k + 1:]:
                above |= later['full_mask']
            np.testing.assert_array_equal(inst['mask'], inst['full_mask'] & ~above)
            assert inst['mask'].sum() >= 0.3 * inst['full_mask'].sum()
            assert inst['mask'].sum() >= 16
            occluded += int(inst['mask'].sum() < inst['full_mask'].sum())
            seg[inst['full_mask']] = inst['label'] + 1
        np.testing.assert_array_equal(seg, sample['seg'])
    assert occluded > 10, 'the test images should contain occluded shapes'


def test_ensure_shapes_skips_regenerates_and_is_atomic(tmp_path):
    root = tmp_path / 'shapes'
    small = dict(num_train=2, num_val=1, img_size=64)
    meta = ensure_shapes(str(root), **small)
    assert meta['params']['num_train'] == 2 and meta['splits']['val']['images'] == 1
    stamp = os.stat(root / 'meta.json').st_mtime_ns
    # same parameters: nothing is written
    assert ensure_shapes(str(root), **small) == meta
    assert os.stat(root / 'meta.json').st_mtime_ns == stamp
    # other parameters: regenerated in place of the old data set
    meta2 = ensure_shapes(str(root), **dict(small, num_train=3))
    assert meta2['params']['num_train'] == 3
    assert len(os.listdir(root / 'images' / 'train')) == 3
    # a data set without meta.json (e.g. written by hand, or half copied) is replaced
    os.remove(root / 'meta.json')
    ensure_shapes(str(root), **dict(small, num_train=3))
    assert (root / 'meta.json').is_file()
    # no temporary folders are left behind
    assert sorted(os.listdir(tmp_path)) == ['shapes']
    with pytest.raises(TypeError, match='num_trian'):
        ensure_shapes(str(root), num_trian=3)
    with pytest.raises(ValueError, match='max_objects'):
        generate_shapes(str(tmp_path / 'bad'), min_objects=3, max_objects=2)


def test_cli_prints_summary(tmp_path, capsys):
    path = osp.join(ROOT, 'tools', 'dataset_converters', 'generate_shapes.py')
    spec = importlib.util.spec_from_file_location('generate_shapes_cli', path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(['--out', str(tmp_path / 'shapes'), '--num-train', '2', '--num-val', '1',
              '--img-size', '64', '--seed', '1'])
    out = capsys.readouterr().out
    assert 'train' in out and 'val' in out and 'circle' in out
    meta = json.loads((tmp_path / 'shapes' / 'meta.json').read_text())
    assert meta['params']['seed'] == 1 and meta['params']['img_size'] == 64


def test_configs_match_generator_constants():
    from mmengine.config import Config
    det = Config.fromfile(DET_CFG)
    seg = Config.fromfile(SEG_CFG)
    assert det.default_scope == 'mmdet' and seg.default_scope == 'mmseg'
    assert tuple(det.metainfo['classes']) == SHAPES_CLASSES
    assert [tuple(c) for c in det.metainfo['palette']] == [tuple(c) for c in SHAPES_PALETTE]
    assert tuple(seg.metainfo['classes']) == SHAPES_SEG_CLASSES
    assert [tuple(c) for c in seg.metainfo['palette']] == \
        [tuple(c) for c in SHAPES_SEG_PALETTE]
    for cfg in (det, seg):
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            assert cfg[loader]['persistent_workers'] is False
            assert cfg[loader]['dataset']['data_root'] == 'data/shapes/'


# --------------------------------------------------------- standard loaders
def _build_dataset(cfg_path, loader, root, pipeline_edit=None):
    from mmengine.config import Config
    from mmengine.registry import DATASETS, init_default_scope
    cfg = Config.fromfile(cfg_path)
    init_default_scope(cfg.default_scope)
    ds_cfg = copy.deepcopy(cfg[loader]['dataset'])
    ds_cfg['data_root'] = str(root)
    if pipeline_edit is not None:
        pipeline_edit(ds_cfg['pipeline'])
    return cfg, DATASETS.build(ds_cfg)


def test_mmdet_coco_dataset_reads_the_files(shapes_root):
    pytest.importorskip('mmdet')
    coco = _load_coco(shapes_root, 'train')
    _, ds = _build_dataset(DET_CFG, 'train_dataloader', shapes_root)
    assert type(ds).__name__ == 'CocoDataset'
    assert len(ds) == TINY['num_train']
    assert tuple(ds.metainfo['classes']) == SHAPES_CLASSES
    item = ds[0]
    assert tuple(item['inputs'].shape) == (3, 128, 128)
    gt = item['data_samples'].gt_instances
    img_id = item['data_samples'].img_id
    anns = [a for a in coco['annotations'] if a['image_id'] == img_id]
    assert len(gt) == len(anns) > 0
    assert sorted(gt.labels.tolist()) == sorted(a['category_id'] - 1 for a in anns)

    _, val = _build_dataset(DET_CFG, 'val_dataloader', shapes_root)
    item = val[1]
    assert tuple(item['inputs'].shape) == (3, 128, 128)
    assert item['data_samples'].scale_factor == (1.0, 1.0)
    boxes = item['data_samples'].gt_instances.bboxes
    boxes = getattr(boxes, 'tensor', boxes)
    anns = [a for a in _load_coco(shapes_root, 'val')['annotations'] if a['image_id'] == 2]
    expected = sorted([a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                       a['bbox'][1] + a['bbox'][3]] for a in anns)
    assert sorted(boxes.tolist()) == expected


def test_mmdet_coco_metric_is_perfect_on_ground_truth(shapes_root):
    pytest.importorskip('mmdet')
    import torch
    from mmdet.evaluation import CocoMetric

    def with_masks(pipeline):
        for t in pipeline:
            if t['type'] == 'LoadAnnotations':
                t['with_mask'] = True

    _, ds = _build_dataset(DET_CFG, 'val_dataloader', shapes_root, with_masks)
    metric = CocoMetric(
        ann_file=osp.join(shapes_root, 'annotations', 'instances_val.json'),
        metric=['bbox', 'segm'])
    metric.dataset_meta = ds.metainfo
    samples = []
    for i in range(len(ds)):  # the 4 val images
        sample = ds[i]['data_samples']
        gt = sample.gt_instances
        boxes = getattr(gt.bboxes, 'tensor', gt.bboxes)
        samples.append(dict(
            img_id=sample.img_id, ori_shape=sample.ori_shape,
            pred_instances=dict(
                bboxes=boxes.float(), labels=gt.labels,
                scores=torch.ones(len(gt)),
                masks=torch.from_numpy(gt.masks.masks.astype(bool)))))
        # mmdet's RLE decoding gives the pixels of the semantic mask
        seg = np.asarray(Image.open(osp.join(shapes_root, 'seg_masks', 'val',
                                             osp.basename(sample.img_path))))
        np.testing.assert_array_equal(gt.masks.masks.any(axis=0), seg > 0)
    metric.process({}, samples)
    results = metric.evaluate(len(samples))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)
    # the check can fail: a wrong class on one image lowers both scores
    samples[0]['pred_instances']['labels'] = (samples[0]['pred_instances']['labels'] + 1) % 4
    metric.process({}, samples)
    results = metric.evaluate(len(samples))
    assert results['coco/bbox_mAP'] < 1.0 and results['coco/segm_mAP'] < 1.0


def test_mmseg_dataset_reads_the_files(shapes_root):
    pytest.importorskip('mmseg')
    _, ds = _build_dataset(SEG_CFG, 'train_dataloader', shapes_root)
    assert type(ds).__name__ == 'BaseSegDataset'
    assert len(ds) == TINY['num_train']
    assert tuple(ds.metainfo['classes']) == SHAPES_SEG_CLASSES
    item = ds[0]
    assert tuple(item['inputs'].shape) == (3, 128, 128)
    gt = item['data_samples'].gt_sem_seg.data
    assert tuple(gt.shape) == (1, 128, 128)
    assert set(gt.unique().tolist()) <= set(range(len(SHAPES_SEG_CLASSES)))

    _, val = _build_dataset(SEG_CFG, 'val_dataloader', shapes_root)
    item = val[2]
    assert osp.basename(item['data_samples'].img_path) == '00002.png'
    expected = np.asarray(Image.open(osp.join(shapes_root, 'seg_masks', 'val', '00002.png')))
    np.testing.assert_array_equal(item['data_samples'].gt_sem_seg.data[0].numpy(), expected)


def test_mmseg_iou_metric_is_perfect_on_ground_truth(shapes_root):
    pytest.importorskip('mmseg')
    from mmseg.evaluation import IoUMetric
    cfg, ds = _build_dataset(SEG_CFG, 'val_dataloader', shapes_root)
    metric = IoUMetric(**{k: v for k, v in cfg.val_evaluator.items() if k != 'type'})
    metric.dataset_meta = ds.metainfo
    samples = []
    for i in range(3):
        gt = ds[i]['data_samples'].gt_sem_seg.data
        samples.append(dict(pred_sem_seg=dict(data=gt.clone()), gt_sem_seg=dict(data=gt)))
    metric.process({}, samples)
    results = metric.evaluate(len(samples))
    assert results['mIoU'] == pytest.approx(100.0)
    assert results['aAcc'] == pytest.approx(100.0)
    # the check can fail: one image predicted as all background
    samples[0]['pred_sem_seg']['data'] = samples[0]['pred_sem_seg']['data'] * 0
    metric.process({}, samples)
    assert metric.evaluate(len(samples))['mIoU'] < 100.0
