"""Print the loss dict of one step of every tiny algorithm, at full precision.

Run from the repository root, before and after a refactoring, and compare::

    OMP_NUM_THREADS=1 PYTHONPATH=.:tests python -m test_models.test_algorithms._one_step_totals \
        | grep '^@@' > before.txt

(``tests`` on the path, not ``-m tests....``: a ``tests`` package in site-packages
shadows the repository's.) Result lines start with ``@@`` (mmengine logs to stdout too).

Each case prints its keys in dict order (mmengine sums in that order) with
``float.hex``-exact values, then the summed ``loss`` of ``parse_losses``; for
``CollaborativeDistill`` also the log of one ``train_step`` (one update per student).
Not a test (the leading underscore keeps pytest away).
"""
import sys

import torch

from mmkd.utils import register_all_modules

from .tiny_algorithms import CASES, run_loss


def _value(v) -> str:
    if torch.is_tensor(v):
        v = v.detach().double()
        return repr(v.item()) if v.numel() == 1 else f'tensor{tuple(v.shape)} sum={v.sum().item()!r}'
    return repr(v)


def main(names=None) -> None:
    torch.set_num_threads(1)
    register_all_modules()
    from mmengine.registry import DefaultScope
    DefaultScope.get_instance('one-step-totals', scope_name='mmkd')  # as tests/conftest.py
    for name, case in CASES.items():
        if names and name not in names:
            continue
        model = case.build()
        data = case.data(model)
        losses = run_loss(model, data)
        print(f'@@ == {name} ({type(model).__name__})')
        for key, value in losses.items():
            print(f'@@   {key} = {_value(value)}')
        total, _ = model.parse_losses(losses)
        print(f'@@   [parse_losses] loss = {_value(total)}')
        keys = list(model.state_dict())
        where = keys.index('distillation_stopped') if 'distillation_stopped' in keys else None
        print(f'@@   [state_dict] {len(keys)} keys, distillation_stopped at {where}')
        if name == 'collaborative':
            from mmengine.optim import build_optim_wrapper
            optim = build_optim_wrapper(model, dict(
                constructor='mmkd.CollaborativeOptimWrapperConstructor',
                cnn=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)),
                vit=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))))
            from .test_collaborative_distill import batch
            x, samples = batch(seed=5)
            raw = dict(inputs=list((x * 50 + 120).clamp(0, 255).to(torch.uint8)),
                       data_samples=samples)
            torch.manual_seed(1)
            log = model.train_step(raw, optim)
            for key, value in log.items():
                print(f'@@   [train_step] {key} = {_value(value)}')
        sys.stdout.flush()


if __name__ == '__main__':
    main(sys.argv[1:])
