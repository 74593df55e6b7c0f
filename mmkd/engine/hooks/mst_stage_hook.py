"""Switch MultiTeacherDistill between MST-Distill's training stages."""
from __future__ import annotations

import contextlib
import math
import random
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.hooks import Hook

from mmkd.registry import HOOKS

from .distill_loss_weight_hook import unwrap

#: key of the hook's entry in training checkpoints
CKPT_KEY = 'mst_stage_hook'


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Leave the torch (CPU and CUDA), numpy and Python generators as they were.

    A validation pass draws from them (a new data-loader iterator takes a seed from
    torch's generator; a sampler built without a seed takes one from numpy's), and the
    training that follows must not see a difference.
    """
    torch_state = torch.get_rng_state()
    cuda_states = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda_states = torch.cuda.get_rng_state_all()
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        np.random.set_state(np_state)
        random.setstate(py_state)


@HOOKS.register_module()
class MSTStageHook(Hook):
    """Run MST-Distill's stages one after the other in a single training run.

    ``stages`` lists ``(name, length)`` pairs (or ``dict(name=..., length=...)``),
    lengths in iterations (or epochs with ``by_epoch=True``). Before every iteration
    the stage is recomputed from the runner's counter, so a resumed run continues
    in the right stage. Past the last boundary the last stage goes on.

    Official schedule (``main-MST-Distill.py``): 100 epochs of each of 'cotrain',
    'masknet', 'student'; during 'student', ``w_kl`` is halved after stage epochs
    0, 30, 60, 90 and ``w_lb`` multiplied by 0.9 after stage epochs 0, 10, 20, ...
    (``kd_decay=(30, 0.5)``, ``lb_decay=(10, 0.9)``): during stage epoch e the
    factor is ``factor ** ceil(e / every)``. The factors are set on an ``MSTRouter``
    combiner (``kd_scale``, ``lb_scale``) and logged.

    **A fresh optimizer per stage** (``fresh_optimizer_per_stage``). The official
    code builds one Adam per stage (``optimizer_s1`` over the teachers and the
    student, one Adam per MaskNet in stage 2, ``optimizers_s3`` over the student and
    the GateNet), each starting from zero moments. Here the runner has one optimizer
    over every trainable parameter; at the first iteration of every stage after the
    first, its per-parameter state (Adam's ``step``/``exp_avg``/``exp_avg_sq``, SGD's
    momentum buffers) is cleared, which makes the next step that of a new optimizer
    with the same parameter groups. Parameters that get no gradient in a stage
    (``grad`` is None after mmengine's ``zero_grad``) are skipped by the optimizer,
    so one optimizer over all of them steps exactly as the official per-stage ones
    (also per MaskNet: each MaskNet's gradient comes from its own loss term only, and
    Adam's update is per parameter). The official code has no learning-rate
    schedule (each stage has a constant lr: ``--s1_lr``, ``--s2_lr``, ``--lr``), so
    no schedule is restarted; ``stage_lr`` sets each stage's constant lr.

    **The best MaskNets on validation** (``keep_best_masknet``). The official code
    evaluates the MaskNets on the val split after every stage-2 epoch and enters
    stage 3 with the MaskNets of the epoch of lowest val loss, where the val loss is
    the mean over val batches of, per batch, the sum over teachers of the mean over
    that teacher's MaskNets of ``tau^2 KL(p_S || p_masked teacher)`` (the stage-2
    training loss, everything in eval mode). This hook does the same: it evaluates
    every ``masknet_val_interval`` epochs (iterations without ``by_epoch``; default
    one epoch of the training data loader) and at the last iteration of the stage,
    keeps a copy of the MaskNets' weights when the loss is lower than every earlier
    one (ties keep the earlier), stores that copy in checkpoints (exact resume), and
    loads it at the first iteration of the next stage, logging which one it kept.
    The evaluation leaves the random generators as they were, so the training is
    the same as without it except for the MaskNets stage 3 starts from.

    Args:
        stages (list): ``[('cotrain', n1), ('masknet', n2), ('student', n3)]``; any
            subset and order of MultiTeacherDistill.STAGES.
        by_epoch (bool): lengths (and decay periods) in epochs instead of iterations.
        kd_decay (tuple, optional): ``(every, factor)`` for the routed KD weight.
        lb_decay (tuple, optional): ``(every, factor)`` for the load-balancing weight.
        fresh_optimizer_per_stage (bool): clear the optimizer state at each stage
            switch, as the official code (default True); False carries the state
            of one optimizer across the stages.
        stage_lr (dict, optional): stage name -> constant lr set at the start of that
            stage (groups with an lr multiplier keep their ratio to the optimizer's
            lr). Not combinable with a ``param_scheduler``. None: the lr is left to
            the optimizer config (and schedule, if any).
        keep_best_masknet (bool): enter the stage after 'masknet' with the MaskNets
            of lowest val loss, as the official code (default True); False keeps the
            last ones.
        masknet_val_dataloader (dict, optional): the data loader of that
            validation: the val split, packing every modality the teachers read
            (``PackMultiModalInputs(keys=(...))``). None: the config's top-level
            ``masknet_val_dataloader`` if it has one (so a config inheriting the
            official schedule only adds that key), else the runner's val data loader
            (which usually packs the student's modality only: an error says so).
        masknet_val_interval (int, optional): epochs (iterations without
            ``by_epoch``) between two evaluations in the 'masknet' stage; None: every
            epoch (``len(train_dataloader)`` iterations without ``by_epoch``).
    """

    priority = 'NORMAL'

    def __init__(self,
                 stages: Sequence[Union[Tuple[str, int], dict]],
                 by_epoch: bool = False,
                 kd_decay: Optional[Sequence[float]] = None,
                 lb_decay: Optional[Sequence[float]] = None,
                 fresh_optimizer_per_stage: bool = True,
                 stage_lr: Optional[Dict[str, float]] = None,
                 keep_best_masknet: bool = True,
                 masknet_val_dataloader: Optional[dict] = None,
                 masknet_val_interval: Optional[int] = None) -> None:
        parsed: List[Tuple[str, int]] = []
        for i, stage in enumerate(stages or ()):
            if isinstance(stage, dict):
                unknown = set(stage) - {'name', 'length'}
                if unknown or 'name' not in stage or 'length' not in stage:
                    raise KeyError(f"stages[{i}] must be dict(name=..., length=...), got {stage}")
                stage = (stage['name'], stage['length'])
            name, length = stage
            if not isinstance(length, int) or length < 1:
                raise ValueError(f'stages[{i}] ({name!r}) length must be an integer >= 1, '
                                 f'got {length!r}')
            parsed.append((name, length))
        if not parsed:
            raise ValueError('MSTStageHook.stages is empty')
        for key, decay in (('kd_decay', kd_decay), ('lb_decay', lb_decay)):
            if decay is not None and (len(decay) != 2 or decay[0] <= 0):
                raise ValueError(f'{key} must be (every > 0, factor), got {decay}')
        if stage_lr is not None:
            if not isinstance(stage_lr, dict):
                raise TypeError(f'MSTStageHook.stage_lr must be a dict stage -> lr, got '
                                f'{stage_lr!r}')
            names = [n for n, _ in parsed]
            for name, lr in stage_lr.items():
                if name not in names:
                    raise KeyError(f'MSTStageHook.stage_lr: {name!r} is not one of the '
                                   f'stages {names}')
                if not isinstance(lr, (int, float)) or lr <= 0:
                    raise ValueError(f'MSTStageHook.stage_lr[{name!r}] must be a number > 0, '
                                     f'got {lr!r}')
        if masknet_val_interval is not None and (not isinstance(masknet_val_interval, int)
                                                 or masknet_val_interval < 1):
            raise ValueError('MSTStageHook.masknet_val_interval must be an integer >= 1 or '
                             f'None (every epoch), got {masknet_val_interval!r}')
        if masknet_val_dataloader is not None and not isinstance(masknet_val_dataloader, dict):
            raise TypeError('MSTStageHook.masknet_val_dataloader must be a data loader config '
                            f'(dict) or None, got {type(masknet_val_dataloader).__name__}')
        self.stages = parsed
        self.by_epoch = by_epoch
        self.kd_decay = tuple(kd_decay) if kd_decay is not None else None
        self.lb_decay = tuple(lb_decay) if lb_decay is not None else None
        self.fresh_optimizer_per_stage = fresh_optimizer_per_stage
        self.stage_lr = dict(stage_lr) if stage_lr is not None else None
        self.keep_best_masknet = keep_best_masknet
        self.masknet_val_dataloader = masknet_val_dataloader
        self.masknet_val_interval = masknet_val_interval
        self._val_loader = None
        self._val_source = 'MSTStageHook.masknet_val_dataloader'
        self._interval: Optional[int] = None
        self._lr_mult: Optional[List[List[float]]] = None
        self._reset_best()

    # Stages ---------------------------------------------------------------------------
    def locate(self, t: float) -> Tuple[int, str, float]:
        """Index and name of the stage at progress ``t``, and the progress within it."""
        begin = 0
        for index, (name, length) in enumerate(self.stages):
            if t < begin + length:
                return index, name, t - begin
            begin += length
        index = len(self.stages) - 1
        name, length = self.stages[index]
        return index, name, t - (begin - length)

    def stage_at(self, t: float) -> Tuple[str, float]:
        """Stage at progress ``t`` and the progress within that stage."""
        _, name, progress = self.locate(t)
        return name, progress

    @staticmethod
    def decay_factor(decay: Optional[Tuple[float, float]], progress: float) -> float:
        if decay is None:
            return 1.0
        every, factor = decay
        return float(factor)**math.ceil(math.floor(progress) / every)

    def _progress(self, runner, batch_idx: int) -> float:
        if self.by_epoch:
            return runner.epoch + batch_idx / max(len(runner.train_dataloader), 1)
        return runner.iter

    def _unit(self) -> str:
        return 'epoch' if self.by_epoch else 'iteration'

    # Optimizer ------------------------------------------------------------------------
    @staticmethod
    def optimizers(runner) -> List[torch.optim.Optimizer]:
        """The torch optimizers of the runner's optim wrapper (or wrapper dict)."""
        wrapper = runner.optim_wrapper
        wrappers = list(wrapper.values()) if hasattr(wrapper, 'optim_wrappers') else [wrapper]
        return [w.optimizer for w in wrappers]

    def _set_stage_lr(self, runner, name: str) -> None:
        lr = self.stage_lr[name]
        for optimizer, mults in zip(self.optimizers(runner), self._lr_mult):
            for group, mult in zip(optimizer.param_groups, mults):
                group['lr'] = lr * mult
        runner.logger.info(f'MSTStageHook: lr {lr:g} in stage {name!r}')

    def _fresh_optimizer(self, runner, name: str) -> None:
        cleared = 0
        for optimizer in self.optimizers(runner):
            cleared += len(optimizer.state)
            optimizer.state.clear()
        runner.logger.info(f'MSTStageHook: a fresh optimizer for stage {name!r} (the state of '
                           f'{cleared} parameters cleared)')

    # MaskNet validation ---------------------------------------------------------------
    def _reset_best(self) -> None:
        self.best_loss = math.inf
        self.best_at: Optional[int] = None
        self.best_state: Optional[Dict[str, torch.Tensor]] = None
        self.last_loss: Optional[float] = None
        self.evaluations = 0

    def _masknet_groups(self, model) -> Dict[str, List[str]]:
        """teacher -> the loss keys of its MaskNet ways (``distill.loss_masknet_<way>``)."""
        groups: Dict[str, List[str]] = {}
        for way in model.ways:
            if way.masknet is not None:
                groups.setdefault(way.teacher, []).append(f'distill.loss_masknet_{way.name}')
        return groups

    def _teacher_batch(self, model, data_batch) -> dict:
        # Training mode of the preprocessor: only then does it prepare the teachers'
        # inputs (no batch augmentation is configured in the MST-Distill configs).
        try:
            return model.data_preprocessor(data_batch, True)
        except (KeyError, TypeError) as err:
            raise ValueError(
                f'MSTStageHook.keep_best_masknet: {self._val_source} cannot feed the '
                f'teachers: {err}. Its pipeline must pack every modality the teachers read, '
                "e.g. dict(type='mmkd.PackMultiModalInputs', keys=('img', 'audio')); set "
                'masknet_val_dataloader (a config key, or an argument of the hook) to such a '
                'loader of the val split, or keep_best_masknet=False to keep the last '
                'MaskNets') from None

    def masknet_val_loss(self, runner) -> float:
        """The official stage-2 val loss of the current MaskNets (lower is better)."""
        model = unwrap(runner.model)
        groups = self._masknet_groups(model)
        was_training = model.training
        total, batches = 0.0, 0
        model.eval()
        # The official val loss is unweighted: a DistillLossWeightHook factor is left out.
        scale = getattr(model, 'distill_loss_scale', 1.0)
        if scale != 1.0:
            model.distill_loss_scale = 1.0
        try:
            with torch.no_grad(), preserved_rng():
                for data_batch in self._val_loader:
                    losses = model.loss(**self._teacher_batch(model, data_batch))
                    value = sum(sum(losses[k] for k in keys) / len(keys)
                                for keys in groups.values())
                    total += float(value)
                    batches += 1
        finally:
            model.train(was_training)
            if scale != 1.0:
                model.distill_loss_scale = scale
        from mmengine.dist import all_reduce
        summed = torch.tensor([total, float(batches)], dtype=torch.float64)
        all_reduce(summed, op='sum')
        if summed[1] == 0:
            raise ValueError('MSTStageHook: the MaskNet val data loader is empty')
        return float(summed[0] / summed[1])

    def _evaluate(self, runner, done: int) -> None:
        value = self.masknet_val_loss(runner)
        self.evaluations += 1
        self.last_loss = value
        if value < self.best_loss:
            self.best_loss, self.best_at = value, done
            masknets = unwrap(runner.model).masknets
            self.best_state = {k: v.detach().cpu().clone()
                               for k, v in masknets.state_dict().items()}
        runner.logger.info(f'MSTStageHook: MaskNet val loss {value:.6g} after {self._unit()} '
                           f'{done} (best {self.best_loss:.6g} after {self._unit()} '
                           f'{self.best_at})')

    def _restore_best(self, runner) -> None:
        if self.best_state is None:
            runner.logger.warning('MSTStageHook: keep_best_masknet but the MaskNets were never '
                                  'evaluated; the last ones are kept')
            return
        unwrap(runner.model).masknets.load_state_dict(self.best_state)
        runner.logger.info(
            f'MSTStageHook: the next stage uses the MaskNets of {self._unit()} {self.best_at} '
            f'(val loss {self.best_loss:.6g}, the lowest of {self.evaluations} evaluations; '
            f'the last MaskNets had {self.last_loss:.6g})')
        self.best_state = None  # no longer needed; the MaskNets are in the model now

    def _masknet_ahead(self, t: float) -> bool:
        """A 'masknet' stage is running or still to come at progress ``t``."""
        begin = 0
        for name, length in self.stages:
            if name == 'masknet' and t < begin + length:
                return True
            begin += length
        return False

    # Hooks ----------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        model = unwrap(runner.model)
        valid = getattr(model, 'STAGES', None)
        if valid is None or not hasattr(model, 'set_stage'):
            raise TypeError(f'MSTStageHook needs a MultiTeacherDistill model, got '
                            f'{type(model).__name__}')
        for i, (name, _) in enumerate(self.stages):
            if name not in valid:
                raise ValueError(f'MSTStageHook.stages[{i}]={name!r}; valid stages: {valid}')
        total = sum(length for _, length in self.stages)
        planned = runner.max_epochs if self.by_epoch else runner.max_iters
        if total != planned:
            runner.logger.warning(f'MSTStageHook: the stages last {total} '
                                  f'{"epochs" if self.by_epoch else "iterations"} but the run '
                                  f'has {planned}; the last stage covers the difference')
        if runner.iter == 0 and runner.epoch == 0:
            # A new run (possibly `load_from` another run's checkpoint): nothing of an
            # earlier run's selection or lr ratios applies.
            self._reset_best()
            self._lr_mult = None
        if self.stage_lr is not None:
            if getattr(runner, 'param_schedulers', None):
                raise ValueError('MSTStageHook.stage_lr sets a constant lr per stage (the '
                                 'official schedule) and cannot be combined with '
                                 'param_scheduler; remove one of them')
            if self._lr_mult is None:  # not restored from a checkpoint
                self._lr_mult = [[g['lr'] / o.defaults['lr'] for g in o.param_groups]
                                 for o in self.optimizers(runner)]
        t = runner.epoch if self.by_epoch else runner.iter
        if self.keep_best_masknet and self._masknet_ahead(t):
            self._build_val_loader(runner, model)

    def _build_val_loader(self, runner, model) -> None:
        loader_cfg, self._val_source = self.masknet_val_dataloader, \
            'MSTStageHook.masknet_val_dataloader'
        if loader_cfg is None:
            cfg = getattr(runner, 'cfg', None)
            loader_cfg = cfg.get('masknet_val_dataloader') if cfg is not None else None
            self._val_source = "the config's masknet_val_dataloader"
        with preserved_rng():
            if loader_cfg is not None:
                self._val_loader = runner.build_dataloader(loader_cfg, seed=runner.seed)
            else:
                self._val_source = "the runner's val_dataloader"
                try:
                    self._val_loader = runner.val_dataloader
                except Exception as err:  # mmengine raises when val_cfg is missing
                    raise ValueError(
                        'MSTStageHook.keep_best_masknet=True needs validation data: set '
                        'masknet_val_dataloader (the val split, packing every modality the '
                        'teachers read; a key of the config or of the hook), or the '
                        f'val_dataloader/val_cfg, or keep_best_masknet=False ({err})') from None
            # Fail now rather than after the first stage: one batch through the teachers'
            # preprocessors.
            self._teacher_batch(model, next(iter(self._val_loader)))
        if self.masknet_val_interval is not None:
            self._interval = self.masknet_val_interval
        else:
            self._interval = 1 if self.by_epoch else max(len(runner.train_dataloader), 1)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        t = self._progress(runner, batch_idx)
        index, name, progress = self.locate(t)
        model = unwrap(runner.model)
        if progress == 0:
            # The first iteration of a stage: the switch, done at the same iteration in
            # an uninterrupted and in a resumed run (so never twice).
            if index > 0:
                if self.stages[index - 1][0] == 'masknet' and self.keep_best_masknet:
                    self._restore_best(runner)
                if self.fresh_optimizer_per_stage:
                    self._fresh_optimizer(runner, name)
            if name == 'masknet':
                self._reset_best()
            if self.stage_lr is not None and name in self.stage_lr:
                self._set_stage_lr(runner, name)
        if model.stage != name:
            model.set_stage(name)
            runner.logger.info(f'MSTStageHook: stage {name!r} from iteration {runner.iter}')
        combiner = getattr(model, 'combiner', None)
        if name == 'student' and hasattr(combiner, 'kd_scale'):
            combiner.kd_scale = self.decay_factor(self.kd_decay, progress)
            combiner.lb_scale = self.decay_factor(self.lb_decay, progress)
            runner.message_hub.update_scalar('train/mst_kd_scale', combiner.kd_scale)
            runner.message_hub.update_scalar('train/mst_lb_scale', combiner.lb_scale)

    def _after_unit(self, runner, t: float) -> None:
        """Evaluate the MaskNets after unit ``t`` (0-based) if it is due."""
        index, name, progress = self.locate(t)
        if name != 'masknet' or not self.keep_best_masknet or self._val_loader is None:
            return
        done = int(progress) + 1  # units of this stage done
        length = self.stages[index][1]
        if done % self._interval == 0 or done == length:
            self._evaluate(runner, int(t) + 1)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self.by_epoch:
            self._after_unit(runner, runner.iter)

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch:
            self._after_unit(runner, runner.epoch)

    # Checkpoints ----------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[CKPT_KEY] = dict(best_loss=self.best_loss, best_at=self.best_at,
                                    best_state=self.best_state, last_loss=self.last_loss,
                                    evaluations=self.evaluations, lr_mult=self._lr_mult)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(CKPT_KEY)
        if not state:
            return
        self.best_loss = state['best_loss']
        self.best_at = state['best_at']
        self.best_state = state['best_state']
        self.last_loss = state['last_loss']
        self.evaluations = state['evaluations']
        self._lr_mult = state['lr_mult']
