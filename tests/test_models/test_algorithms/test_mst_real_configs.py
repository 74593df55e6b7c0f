"""The real-scale MST-Distill configs (AV-MNIST, RAVDESS, CrisisMMD-V2, VGGSound-50k,
NYU-Depth-V2) build, and every stage runs a step on random data of their layout
(reduced sizes: the data sets themselves are not available here)."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmkd.registry import MODELS

ROOT = 'configs/mst_distill/'
# config -> (modality -> one sample's shape), classes, task
CASES = {
    'mst-distill_avmnist_image-student.py': (dict(img=(1, 28, 28), audio=(1, 40, 40)), 10, 'cls'),
    'mst-distill_ravdess_visual-student.py': (dict(video=(3, 4, 16, 16), audio=(15, 40)), 8,
                                              'cls'),
    'mst-distill_crisismmd-v2_image-student.py': (dict(visual=(1, 2048), text=(1, 768)), 8,
                                                  'cls'),
    'mst-distill_vggsound-50k_visual-student.py': (dict(visual=(512, 2, 3, 3), audio=(10, 128)),
                                                   141, 'cls'),
    'mst-distill_nyu-depth-v2_rgb-student.py': (dict(img=(3, 64, 64), depth=(1, 64, 64)), 41,
                                                'seg'),
}


def batch(shapes, classes, task, n=2):
    g = torch.Generator().manual_seed(0)
    inputs = {k: [torch.rand(s, generator=g) for _ in range(n)] for k, s in shapes.items()}
    samples = []
    for i in range(n):
        if task == 'cls':
            from mmpretrain.structures import DataSample
            samples.append(DataSample().set_gt_label(i % classes))
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            h, w = shapes['img'][1:]
            sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w)))
            sample.gt_sem_seg = PixelData(
                data=torch.randint(0, classes, (1, h, w), generator=g))
            samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('config', sorted(CASES))
def test_real_scale_config_runs_every_stage(config):
    cfg = Config.fromfile(ROOT + config)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert model.cotrain_teachers and len(model.ways) == 4
    hook = cfg.custom_hooks[0]
    assert hook.stages == [('cotrain', 100), ('masknet', 100), ('student', 100)]
    shapes, classes, task = CASES[config]
    model.train()
    for stage, prefix in (('cotrain', 'distill.loss_kd_'), ('masknet', 'distill.loss_masknet_'),
                          ('student', 'distill.')):
        model.set_stage(stage)
        data = model.data_preprocessor(batch(shapes, classes, task), True)
        losses = model(**data, mode='loss')
        assert any(k.startswith(prefix) for k in losses), (stage, sorted(losses))
        total = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(total), (stage, losses)
        total.backward()
        model.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch(shapes, classes, task), False)
        preds = model(**data, mode='predict')
    assert len(preds) == 2
