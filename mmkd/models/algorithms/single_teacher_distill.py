"""Distillation from one frozen teacher into one student."""
from __future__ import annotations

from typing import Dict, List, Optional, Union

import torch
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS

from ..preprocessors.distill_data_preprocessor import DistillDataPreprocessor, build_preprocessor
from ..recorders import EarlyExit
from ..teachers import TeacherCompile, TeacherPrecision, TeacherSet, first_device
from ..utils.init_from_teacher import check_init_from_teacher
from ..utils.init_from_teacher import init_student_from_teacher as inherit_from_teacher
from .base_algorithm import BaseAlgorithm, check_finite_losses

_TEACHER_MODES = ('tensor', 'loss', 'predict')


def cached_teacher_outputs(data_samples) -> Optional[Dict[str, torch.Tensor]]:
    """Stack the per-sample cached teacher tensors, if every sample carries them."""
    if not data_samples:
        return None
    per_sample = [getattr(s, 'teacher_outputs', None) for s in data_samples]
    if all(p is None for p in per_sample):
        return None
    if any(p is None for p in per_sample):
        raise ValueError('only part of the batch carries cached teacher outputs; wrap the '
                         'whole training set with CachedTeacherDataset')
    return {k: torch.stack([p[k] for p in per_sample]) for k in per_sample[0]}


@MODELS.register_module()
class SingleTeacherDistill(BaseAlgorithm):
    """Train ``architecture`` (the student) with task losses + distillation losses.

    The teacher is frozen (``requires_grad=False``), always in eval mode, runs under
    ``torch.no_grad()`` and is deliberately *not* registered as a submodule: it is
    therefore absent from ``parameters()`` (so from the optimizer and from DDP's
    gradient buckets) and from ``state_dict()`` (so from every checkpoint; it is
    rebuilt from ``teacher_ckpt`` when a run resumes). ``.to()``/``.cuda()``/``.half()``
    still move it, through :meth:`_apply`.

    A training step: teacher forward in ``teacher_forward_mode`` (default
    ``'tensor'``: backbone/neck/head outputs, no teacher loss or post-processing)
    while the distiller's teacher recorders capture; student forward in ``'loss'``
    mode while the student recorders capture; then the distiller maps recorded
    tensors through connectors into losses, logged as ``distill.<name>`` next to the
    student's own losses (which keep their task names).

    Args:
        distiller (dict): distiller config, usually ``ConfigurableDistiller``.
        teacher (dict | nn.Module): teacher model dict or ``dict(cfg_path=...)``.
        architecture (dict | nn.Module): the student.
        teacher_ckpt (str, optional): teacher weights, local path or URL (loaded
            with ``weights_only=True``).
        teacher_forward_mode (str): 'tensor' (default), 'loss' or 'predict'.
        teacher_data_preprocessor (dict, optional): when the teacher needs its own
            normalisation; both preprocessors see the same raw batch.
        teacher_ckpt_strict (bool): fail when ``teacher_ckpt`` has missing or
            unexpected keys (default True; the error lists them).
        teacher_ckpt_trusted (bool): load ``teacher_ckpt`` with full pickle
            (``weights_only=False``). Only for files you trust: a pickle can run code.
        check_finite (bool): raise on a NaN/inf loss, naming the loss and the step,
            before the optimizer step (so no bad weights reach a checkpoint).
        calculate_student_loss (bool): add the student's task losses (default True).
        teacher_early_exit (bool): stop the teacher forward as soon as every
            teacher tensor the losses read has been recorded (default True). The
            rest of the teacher (e.g. a detector's head after recording the FPN)
            never runs. Results are identical; only time is saved.
        teacher_precision (str): 'fp32' (default), 'bf16' or 'fp16': run the teacher
            forward in reduced precision, on CPU or GPU. Recorded teacher tensors are
            cast back to fp32 before connectors and losses.
        teacher_precision_mode (str): 'autocast' (default; fp32 weights, autocast
            forward) or 'cast' (weights stored in the reduced dtype: half the memory).
        teacher_compile (bool | dict, optional): run the frozen teacher's forward
            through ``torch.compile`` (``True`` or a dict of its arguments; default
            off). Recorders and the early exit keep working; see
            :mod:`mmkd.models.teachers.compile` and docs/benchmarks.md for when it pays.
        teacher_channels_last (bool): store the teacher's 4-D weights in
            ``channels_last`` (default False).
        init_student_from_teacher (list | dict, optional): student modules to
            initialise from the teacher where shapes match, after the student's own
            ``init_weights`` (MGD's / FGD's ``init_student``, ACAM-KD's "inheriting
            strategy"), e.g. ``['neck', 'bbox_head']`` or ``dict(modules={'neck':
            'neck'}, on_shape_mismatch='skip' | 'error')``. Names are checked at build;
            the copy happens in :meth:`init_weights`, which mmengine's Runner calls
            before ``load_or_resume``, so a resumed run keeps its checkpoint. One log
            line counts the copied and skipped tensors.
        data_preprocessor (dict, optional): overrides the student's.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 distiller: dict,
                 teacher: Union[dict, nn.Module],
                 architecture: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 teacher_ckpt_strict: bool = True,
                 teacher_ckpt_trusted: bool = False,
                 check_finite: bool = True,
                 teacher_forward_mode: str = 'tensor',
                 teacher_data_preprocessor: Optional[dict] = None,
                 calculate_student_loss: bool = True,
                 teacher_early_exit: bool = True,
                 teacher_precision: str = 'fp32',
                 teacher_precision_mode: str = 'autocast',
                 teacher_compile: Optional[Union[bool, dict]] = None,
                 teacher_channels_last: bool = False,
                 init_student_from_teacher: Optional[Union[dict, list]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(architecture, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if teacher_forward_mode not in _TEACHER_MODES:
            raise ValueError(f'teacher_forward_mode={teacher_forward_mode!r}; valid: {_TEACHER_MODES}')
        self.teacher_forward_mode = teacher_forward_mode
        self.check_finite = check_finite
        self.calculate_student_loss = calculate_student_loss
        self.teacher_precision = TeacherPrecision(teacher_precision, teacher_precision_mode)

        # Kept to fingerprint the teacher against a cache of its outputs.
        self._teacher_cfg, self._teacher_ckpt = teacher, teacher_ckpt
        self._checked_cache_fingerprint = None
        self.teacher_set = TeacherSet(self.teacher_precision, owner=type(self).__name__,
                                      compile=TeacherCompile(teacher_compile,
                                                             teacher_channels_last))
        self.teacher_set.add(
            'teacher', teacher, teacher_ckpt, key='teacher', strict=teacher_ckpt_strict,
            trusted=teacher_ckpt_trusted,
            missing_ckpt_warning='SingleTeacherDistill: no teacher_ckpt given, the teacher '
            'keeps its initial weights (fine for tests, wrong for real training)')
        teacher_info = self.teacher_set.info('teacher')

        teacher_pp = build_preprocessor(teacher_data_preprocessor, 'teacher_data_preprocessor',
                                        teacher_info['scope'])
        if teacher_pp is not None:
            self.data_preprocessor = DistillDataPreprocessor(self.data_preprocessor, teacher_pp)

        if not isinstance(distiller, nn.Module):
            distiller = MODELS.build(distiller)
        self.distiller = distiller
        self.distiller.prepare_from_student(self.architecture)
        self.distiller.prepare_from_teacher(self.teacher)
        if self.teacher_set.compile.enabled:
            from ..recorders import MethodOutputs  # FunctionOutputs subclasses it
            patching = sorted(name for name, r in getattr(
                getattr(self.distiller, 'teacher_recorders', None), 'recorders', {}).items()
                if isinstance(r, MethodOutputs))
            if patching:
                raise ValueError(
                    f'teacher_compile: the teacher recorders {patching} patch methods '
                    '(MethodOutputs/FunctionOutputs), which a compiled teacher would recompile '
                    'at every step and then run eagerly; record module outputs instead '
                    '(ModuleOutputs/ModuleInputs) or drop teacher_compile')
        self.teacher_early_exit = teacher_early_exit
        if teacher_early_exit and hasattr(self.distiller, 'teacher_record_needs'):
            self.distiller.teacher_recorders.set_early_exit(self.distiller.teacher_record_needs())
        # `distillation_stopped` (StopDistillHook) is BaseAlgorithm's persistent buffer.
        # Checked now (names, form); applied in init_weights.
        check_init_from_teacher(self.architecture, self.teacher, init_student_from_teacher)
        self._init_student_from_teacher = init_student_from_teacher
        self.init_from_teacher_report = None

    # The hidden teacher ------------------------------------------------------------
    @property
    def teacher(self) -> nn.Module:
        return self.teacher_set['teacher']

    def init_weights(self) -> None:
        """The student's own initialisation, then ``init_student_from_teacher``.

        mmengine's Runner calls this once, before ``load_or_resume``: a resumed or
        ``load_from`` run ends with its checkpoint's weights, not the teacher's.
        """
        first_call = not self.is_init  # mmengine initialises a module once
        super().init_weights()
        if not (first_call and self._init_student_from_teacher):
            return
        if not self.teacher_set.loaded:  # tools/test.py: the checkpoint's weights follow
            from mmengine.logging import print_log
            print_log('init_student_from_teacher is skipped: the teacher was not loaded '
                      f"({self.teacher_set.info('teacher')['not_loaded_reason']})",
                      logger='current', level=30)
            return
        self.init_from_teacher_report = inherit_from_teacher(
            self.architecture, self.teacher, self._init_student_from_teacher)

    # Steps -----------------------------------------------------------------------
    def _teacher_forward(self, inputs: torch.Tensor, data_samples) -> None:
        precision = self.teacher_precision
        device = first_device(inputs, torch.device('cpu'))
        teacher = self.teacher_set.ready('teacher', device)
        with self.teacher_set.forward_context(device), self.distiller.teacher_recorders:
            try:
                teacher(precision.cast_inputs(inputs), data_samples,
                        mode=self.teacher_forward_mode)
            except EarlyExit:
                pass  # every recorded tensor the losses need is there
            except (TypeError, AttributeError, KeyError) as err:
                if self.teacher_forward_mode != 'tensor':
                    raise
                # Some heads (mmseg's Mask2Former, mmdet's DETR family) need the data
                # samples in their forward, which 'tensor' mode does not hand them.
                self._fall_back_to_predict(teacher, precision.cast_inputs(inputs),
                                           data_samples, err)

    def _fall_back_to_predict(self, teacher: nn.Module, inputs, data_samples,
                              err: Exception) -> None:
        """Retry a failed 'tensor' teacher forward in 'predict' mode, once, and say so."""
        from mmengine.logging import print_log
        self.distiller.teacher_recorders.reset()
        try:
            teacher(inputs, data_samples, mode='predict')
        except EarlyExit:
            pass  # every recorded tensor the losses need is there
        except Exception as err2:  # noqa: BLE001 (both failures are reported)
            raise RuntimeError(
                f"the teacher ({type(teacher).__name__}) failed in teacher_forward_mode="
                f"'tensor' ({type(err).__name__}: {err}) and in 'predict' "
                f'({type(err2).__name__}: {err2}). Set teacher_forward_mode to one of '
                f"{_TEACHER_MODES} that this model supports ('loss' needs labelled data "
                'samples).') from err2
        self.teacher_forward_mode = 'predict'
        print_log(
            f"teacher_forward_mode='tensor' failed for the teacher {type(teacher).__name__} "
            f'({type(err).__name__}: {err}); its forward needs the data samples. mmkd runs it '
            "in 'predict' mode from now on; set teacher_forward_mode='predict' in the "
            'config to make this explicit.', logger='current', level=30)

    def teacher_fingerprint(self) -> str:
        from mmkd.utils.fingerprint import teacher_fingerprint
        return teacher_fingerprint(self._teacher_cfg, self._teacher_ckpt,
                                   self.distiller.teacher_sources())

    def _check_cache_fingerprint(self, fingerprint: Optional[str]) -> None:
        if fingerprint is not None and fingerprint == self._checked_cache_fingerprint:
            return
        mine = self.teacher_fingerprint()
        if fingerprint != mine:
            raise ValueError(
                'the cached teacher outputs were computed by another teacher: config, '
                f'teacher_ckpt={self._teacher_ckpt!r} or recorded sources differ (cache '
                f'fingerprint {str(fingerprint)[:12]} != {mine[:12]}). Rebuild the cache with '
                '`python tools/cache_teacher.py CONFIG --out DIR`.')
        if self._checked_cache_fingerprint is None:
            from mmengine.logging import print_log
            print_log(f'teacher outputs come from the cache (teacher fingerprint {mine[:12]}): '
                      'no teacher forward in training', logger='current', level=20)
        self._checked_cache_fingerprint = fingerprint

    def loss(self,
             inputs: torch.Tensor,
             data_samples: Optional[List[BaseDataElement]] = None,
             teacher_inputs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        distill = self.distill_active
        cached = cached_teacher_outputs(data_samples) if distill else None
        if cached is not None:
            # Targets replayed from tools/cache_teacher.py: no teacher forward at all.
            self._check_cache_fingerprint(data_samples[0].get('teacher_fingerprint'))
            self.distiller.inject_teacher_sources(
                {k: v.to(inputs.device if torch.is_tensor(inputs) else v.device)
                 for k, v in cached.items()})
        elif distill:
            self._teacher_forward(inputs if teacher_inputs is None else teacher_inputs,
                                  data_samples)
        losses: Dict[str, torch.Tensor] = {}
        with self.distiller.student_recorders:
            if self.calculate_student_loss:
                losses.update(self.architecture(inputs, data_samples, mode='loss'))
            else:
                self.architecture(inputs, data_samples, mode='tensor')
        if distill:
            losses.update(self.distiller.compute_distill_losses(data_samples))
        else:
            losses = self.touch_distillation_parameters(losses)  # DDP: see the method
        self.distiller.teacher_recorders.reset()
        self.distiller.student_recorders.reset()
        # The distiller applies distill_loss_scale itself (its loss_weight_scale).
        if self.check_finite:
            check_finite_losses(losses)
        return losses
