"""The real-scale MGD (configs/mgd_ssss) and HFD/BSD (configs/hfd_bsd) configs build and
train: each model is built from its config with random weights (no teacher checkpoint,
no pretrained backbone, so nothing is downloaded), its optimizer wrapper is built from
the config's ``optim_wrapper``, and one ``train_step`` runs on a tiny random batch on CPU.
SyncBN stays as configured: outside torch.distributed it runs as plain BN."""
import contextlib
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SIZE = 32  # input side of the tiny batch (the configs crop 512 / 800 / 1024)

MGD = {'distill.loss_pixel_unlab_wide', 'distill.loss_pixel_unlab_deep', 'distill.loss_pixel_lab_wide',
       'distill.loss_pixel_lab_deep', 'distill.loss_semantic', 'distill.loss_content'}
# every real-scale MGD config replaces the student's CE by sup_loss (OHEM on Cityscapes,
# plain CE with ignore 255 on VOC), logged as loss_seg
MGD_KEYS = {'loss', 'loss_seg'} | MGD
HFD_KEYS = {'loss', 'cnn.loss', 'vit.loss',
            'cnn.decode.loss_ce', 'cnn.decode.acc_seg', 'cnn.aux.loss_ce', 'cnn.aux.acc_seg',
            'vit.decode.loss_ce', 'vit.decode.acc_seg'} | {
    f'distill.loss_{t}_{s}' for s in ('cnn', 'vit') for t in ('hfd', 'region_bsd', 'pixel_bsd')}

# config -> (number of classes, the keys train_step logs)
CASES = {
    'configs/mgd_ssss/mgd-ssss_deeplabv3plus-wrn50-2-r101_deeplabv3plus-r18_8xb2-1of8-22k_'
    'cityscapes-800x800.py': (19, MGD_KEYS),
    'configs/mgd_ssss/mgd-ssss_deeplabv3plus-wrn50-2-r101_deeplabv3plus-mobilenetv2_8xb2-1of8-22k_'
    'cityscapes-800x800.py': (19, MGD_KEYS),
    'configs/mgd_ssss/mgd-ssss_deeplabv3plus-wrn50-2-r101_deeplabv3plus-r18_8xb2-1of8-20k_'
    'voc12aug-512x512.py': (21, MGD_KEYS),
    'configs/mgd_ssss/mgd-ssss_deeplabv3plus-wrn50-2-r101_deeplabv3plus-mobilenetv2_8xb2-1of8-20k_'
    'voc12aug-512x512.py': (21, MGD_KEYS),
    'configs/hfd_bsd/hfd-bsd_deeplabv3plus-r18-d8_segformer-mit-b0_80k_cityscapes-512x1024.py':
        (19, HFD_KEYS),
    'configs/hfd_bsd/hfd-bsd_deeplabv3plus-r18-d8_segformer-mit-b0_80k_ade20k-512x512.py':
        (150, HFD_KEYS),
    'configs/hfd_bsd/hfd-bsd_deeplabv3plus-r18-d8_segformer-mit-b0_40k_voc12aug-512x512.py':
        (21, HFD_KEYS),
}


def test_every_real_scale_config_is_covered():
    """Every config of the two folders that is not a shapes demo (or a demo student
    trained alone) is in CASES, so a new real-scale config cannot skip this test."""
    found = {osp.relpath(p, ROOT) for folder in ('mgd_ssss', 'hfd_bsd')
             for p in glob.glob(osp.join(ROOT, 'configs', folder, '*.py'))
             if 'shapes' not in osp.basename(p)}
    assert found == set(CASES)


def _no_pretrained(cfg):
    """Drop every pretrained-weight reference (``pretrained`` URLs, ``Pretrained``
    init_cfg) in a model dict, in place; returns what was dropped."""
    dropped = []
    if isinstance(cfg, dict):
        if isinstance(cfg.get('pretrained'), str):
            dropped.append(cfg['pretrained'])
            cfg['pretrained'] = None
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            dropped.append(init.get('checkpoint'))
            cfg['init_cfg'] = None
        for value in cfg.values():
            dropped += _no_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            dropped += _no_pretrained(value)
    return dropped


def _random_init_model_cfg(cfg):
    model = copy.deepcopy(cfg.model.to_dict())
    if model['type'] == 'MultiGranularityDistill':
        assert model['wide_teacher_ckpt'] and model['deep_teacher_ckpt']  # set for real runs
        model['wide_teacher_ckpt'] = model['deep_teacher_ckpt'] = None
        # the student's ImageNet backbone (open-mmlab://resnet18_v1c, mmcls://mobilenet_v2)
        assert _no_pretrained(model), 'the real-scale student starts from a pretrained backbone'
    else:
        assert model['type'] == 'CollaborativeDistill'
        for student in model['students'].values():
            assert student['pretrained'] is True  # real runs start from ImageNet backbones
            student['pretrained'] = False  # the builder then drops every Pretrained init_cfg
    return model


def _raw_batch(n, num_classes, seed, labelled=True):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8))
        s = SegDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE)))
        if labelled:
            label = torch.randint(0, num_classes, (1, SIZE, SIZE), generator=g)
            label[:, :4] = 255  # a band of unlabelled pixels (ignore_index)
            s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('config', sorted(CASES),
                         ids=[osp.splitext(osp.basename(c))[0] for c in sorted(CASES)])
def test_real_scale_config_builds_and_trains_one_step(config, monkeypatch):
    from mmengine.optim import OptimWrapperDict, build_optim_wrapper
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmkd.registry import MODELS

    def no_download(cls, filename, *args, **kwargs):
        raise AssertionError(f'the random-init build tried to load a checkpoint: {filename}')

    monkeypatch.setattr(CheckpointLoader, 'load_checkpoint', classmethod(no_download))
    num_classes, expected = CASES[config]
    cfg = Config.fromfile(osp.join(ROOT, config))
    model_cfg = _random_init_model_cfg(cfg)
    torch.manual_seed(0)
    # MultiGranularityDistill says that its teachers keep random weights
    with (pytest.warns(UserWarning, match='no .*_teacher_ckpt')
          if model_cfg['type'] == 'MultiGranularityDistill' else contextlib.nullcontext()):
        model = MODELS.build(model_cfg)
    model.init_weights()  # as the Runner does: this is where a pretrained URL would load
    algorithm = model.__class__.__name__
    students = dict(model.students) if algorithm == 'CollaborativeDistill' else dict(
        student=model.architecture)
    for student in students.values():
        assert student.decode_head.num_classes == num_classes
        # as configured for 8 GPUs; the step below runs it as plain BN (no process group)
        assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in student.modules())
    # the configs pad every batch to their crop size; keep the tiny batch tiny
    preprocessor = getattr(model.data_preprocessor, 'preprocessor', model.data_preprocessor)
    assert tuple(preprocessor.size) in {(512, 512), (512, 1024), (800, 800)}
    preprocessor.size = (SIZE, SIZE)

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    if algorithm == 'CollaborativeDistill':
        assert isinstance(optim_wrapper, OptimWrapperDict) and set(optim_wrapper.keys()) == {'cnn', 'vit'}
        data = _raw_batch(2, num_classes, seed=1)
    else:
        data = dict(labelled=_raw_batch(2, num_classes, seed=1),
                    unlabelled=[_raw_batch(2, num_classes, seed=2, labelled=False),
                                _raw_batch(2, num_classes, seed=3, labelled=False)])
    before = {name: [p.detach().clone() for p in s.parameters()] for name, s in students.items()}
    model.train()
    log_vars = model.train_step(data, optim_wrapper)

    assert set(log_vars) == expected
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)).all(), (key, value)
    for key in (expected & MGD) | {k for k in expected if '.distill.' in k}:
        assert float(log_vars[key]) >= 0, key
    for name, student in students.items():  # the step updated every student
        assert any(not torch.equal(p, b) for p, b in zip(student.parameters(), before[name])), name
