"""Shared pieces of the shortened DMAE/G2SD CLI tests."""
import os.path as osp
import sys

import pytest
import torch

from .cli import ROOT

sys.path.insert(0, osp.join(ROOT, 'tools', 'model_converters'))
from mae_distill_to_vit import main as convert_main  # noqa: E402,F401

SHORT = ['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2',
         'default_hooks.logger.interval=1', 'train_dataloader.batch_size=8']


def save_random(cfg_path, path):
    """A randomly initialised task model saved like a checkpoint (stands in for a teacher)."""
    from mmengine.config import Config

    from mmkd.utils import build_task_model
    torch.manual_seed(0)
    cfg = Config.fromfile(cfg_path).model
    if 'backbone' in cfg and cfg.backbone.get('init_cfg'):
        cfg.backbone.init_cfg = None
    model, _ = build_task_model(cfg)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


@pytest.fixture(scope='module')
def teacher_mae(tmp_path_factory):
    return save_random('configs/_base_/models/mae_vit-d8-w128_p4_digits.py',
                       tmp_path_factory.mktemp('t') / 'teacher_mae.pth')
