"""A ViT teacher and a CNN student differ in layout, channels and grid size; the
config wires them with connectors only (configs/fitnet/*hetero_demo.py)."""
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper

from mmkd.registry import DATASETS, MODELS

CFG = 'configs/fitnet/fitnet_vit-tiny-p4_resnet18-w8_digits-10pct_hetero_demo.py'


def test_vit_teacher_cnn_student_trains_through_connectors():
    cfg = Config.fromfile(CFG)
    cfg.model.teacher_ckpt = None
    model = MODELS.build(cfg.model)
    assert type(model.teacher.backbone).__name__ == 'VisionTransformer'
    assert type(model.architecture.backbone).__name__ == 'ResNet_CIFAR'
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(4)])
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    before = model.distiller.connectors['s_map'].layers[0].weight.clone()
    log = model.train_step(batch, optim)
    assert torch.isfinite(torch.tensor(log['distill.loss_fitnet']))
    # the student-side connector learns; the teacher-side one has no parameters
    assert not torch.equal(before, model.distiller.connectors['s_map'].layers[0].weight)
    assert not list(model.distiller.connectors['t_map'].parameters())
