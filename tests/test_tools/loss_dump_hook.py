"""Test-only hook: writes each rank's logged losses per iteration to the work dir."""
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class LossDumpHook(Hook):
    """Append ``{iter: {name: value}}`` to ``losses_rank<R>.json`` after every iteration."""

    def __init__(self) -> None:
        self.records = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.records[runner.iter] = {k: float(v) for k, v in (outputs or {}).items()}
        with open(osp.join(runner.work_dir, f'losses_rank{get_rank()}.json'), 'w') as f:
            json.dump(self.records, f)
