"""Save the torch random state in checkpoints and restore it on resume."""
from __future__ import annotations

from typing import Optional

import torch
from mmengine.hooks import Hook

from mmkd.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make ``--resume`` continue the torch random stream where the run stopped.

    mmengine reseeds a resumed run from ``randomness.seed``, so every torch draw in
    the model (dropout, MGD's random masks, MAE masking, ...) after a resume differs
    from the draws of an uninterrupted run. This hook stores the torch (and CUDA)
    generator states of rank 0 in each checkpoint (key ``'rng_state'``) and sets them
    again right before the first resumed training iteration, after mmengine has
    fast-forwarded the data loader, so the resumed iterations draw what the
    uninterrupted run would have drawn.

    numpy's and Python's generators are deliberately *not* restored: mmengine's
    fast-forward re-runs the data pipeline of the skipped iterations from the seed,
    which already brings them to the right state (restoring them would advance
    them twice).

    Exact as long as no new data-loader iterator starts between the saved iteration
    and the next one (an epoch boundary exactly at the checkpoint draws one seed for
    the loader's workers from the torch generator), and ranks share one seed
    (``randomness.diff_rank_seed=False``, the default).
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = {'torch': torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('rng_state')

    def before_train(self, runner) -> None:
        if runner.iter == 0:  # `load_from` a checkpoint to fine-tune, not a resume
            self._pending = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state['torch'].cpu())
        if 'cuda' in state and torch.cuda.is_available():
            cuda_states = state['cuda']
            if len(cuda_states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
        runner.logger.info(f'RandomStateHook: torch random state restored at iteration {runner.iter}')
