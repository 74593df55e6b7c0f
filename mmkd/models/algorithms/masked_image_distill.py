"""Distillation between masked autoencoders that see exactly the same visible patches."""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Union

import torch
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS

from ..recorders import EarlyExit
from .base_algorithm import check_finite_losses
from .single_teacher_distill import SingleTeacherDistill

_MAE_LAYOUT = ('an mmpretrain MAE model: type=\'MAE\' with backbone MAEViT (patch_embed, '
               'pos_embed, cls_token, layers), neck MAEPretrainDecoder and head MAEPretrainHead')


class MaskSpec(NamedTuple):
    """One batch's random masking, shared by teacher and student.

    ``ids_keep`` (B, K): indices of the visible patches, in the order the encoders
    see them; ``ids_restore`` (B, L): inverse permutation for the decoder;
    ``mask`` (B, L): 0 visible, 1 masked (MAE's convention).
    """
    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor


def random_masking(batch: int, num_patches: int, mask_ratio: float,
                   device: Union[str, torch.device] = 'cpu',
                   generator: Optional[torch.Generator] = None) -> MaskSpec:
    """MAE's per-sample random masking (He et al., CVPR 2022).

    Every sample keeps ``int(L * (1 - mask_ratio))`` patches chosen by sorting
    uniform noise: the ``K`` patches with the smallest noise are visible. With the
    same random state this draws the same mask as mmpretrain's
    ``MAEViT.random_masking``.
    """
    len_keep = int(num_patches * (1 - mask_ratio))
    noise = torch.rand(batch, num_patches, device=device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch, num_patches, device=device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return MaskSpec(ids_shuffle[:, :len_keep], ids_restore, mask)


def encode_visible(backbone: nn.Module, inputs: torch.Tensor,
                   ids_keep: torch.Tensor) -> torch.Tensor:
    """Run an MAE encoder on the patches ``ids_keep`` only; returns (B, 1 + K, C).

    The same computation as the masked branch of mmpretrain's ``MAEViT.forward``
    (patch embedding, fixed position embedding, gather, class token, blocks,
    final norm), except that the visible patches are given instead of drawn.
    """
    grid = backbone.patch_resolution
    patches, hw = backbone.patch_embed(inputs)
    if tuple(hw) != tuple(grid):
        raise ValueError(
            f'the input gives a {tuple(hw)} patch grid but the MAE encoder was built for '
            f'{tuple(grid)} (img_size / patch_size): masked distillation needs inputs of '
            'the training size (check the pipeline crop size)')
    patches = patches + backbone.pos_embed[:, 1:, :]
    index = ids_keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1])
    x = torch.gather(patches, 1, index)
    cls = (backbone.cls_token + backbone.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1)
    for layer in backbone.layers:
        x = layer(x)
    if getattr(backbone, 'final_norm', True):
        x = backbone.norm1(x)
    return x


@MODELS.register_module()
class MaskedImageDistill(SingleTeacherDistill):
    """Masked-image distillation from an MAE teacher into an MAE student (DMAE, G2SD).

    The algorithm owns the random masking: each step draws one :class:`MaskSpec`
    (MAE's per-sample masking, ``mask_ratio``) and both encoders run on exactly
    those visible patches (same ``ids_keep``); both decoders restore the same order
    (same ``ids_restore``). Then, as in :class:`SingleTeacherDistill`, the
    distiller's recorders capture teacher and student tensors (e.g. a block's
    output: ``ModuleOutputs`` with source ``'backbone.layers.17'`` or
    ``'neck.decoder_blocks.3'``) and connectors/losses turn them into
    ``distill.<name>`` losses.

    * **Teacher truncation** (DMAE's efficiency point) is the engine's
      ``teacher_early_exit`` (default True): the teacher forward ends as soon as
      every teacher tensor the losses read is recorded, so a teacher aligned at
      block 18 of 24 runs 18 blocks on the visible tokens and never its decoder.
      ``teacher_early_exit=False`` runs the whole teacher (encoder, decoder,
      prediction), e.g. to measure the saving.
    * **Student**: with ``calculate_student_loss=True`` (DMAE) the student runs
      fully and adds MAE's pixel loss on the masked patches, logged as
      ``loss_mae`` (not ``loss``, which mmengine uses for the total). With
      ``False`` (G2SD's generic stage) the student has no task loss and, with
      ``student_early_exit=True``, also stops once its recorded tensors are there
      (e.g. after its last decoder block: no decoder norm or pixel prediction).

    The teacher is frozen, in eval mode, runs under ``no_grad`` and is held outside
    the module tree (not in ``parameters()``, the optimizer or checkpoints).
    ``predict``/``tensor`` modes are the student MAE's (unmasked features).

    Args:
        distiller (dict): usually ``ConfigurableDistiller``.
        teacher (dict | nn.Module): an MAE model (``dict(cfg_path=...)`` or a model
            dict), typically larger than the student, cutting images into the same
            patch grid.
        architecture (dict | nn.Module): the student MAE model.
        teacher_ckpt (str, optional): teacher weights (an MAE pre-training
            checkpoint), loaded with ``weights_only=True``.
        mask_ratio (float): share of patches hidden from both encoders, in [0, 1).
        calculate_student_loss (bool): add MAE's pixel loss of the student.
        teacher_early_exit (bool): end the teacher forward once its records are there.
        student_early_exit (bool): same for the student, only without a student loss.
        teacher_data_preprocessor (dict, optional): when the teacher needs another
            normalisation; the masks are shared all the same.
        teacher_precision (str): 'fp32', 'bf16' or 'fp16' (see SingleTeacherDistill).
        teacher_precision_mode (str): 'autocast' or 'cast'.
        check_finite (bool): raise on a NaN/inf loss, naming the loss and the step,
            before the optimizer step (default True).
        data_preprocessor (dict, optional): overrides the student's.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 distiller: dict,
                 teacher: Union[dict, nn.Module],
                 architecture: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 mask_ratio: float = 0.75,
                 calculate_student_loss: bool = True,
                 teacher_early_exit: bool = True,
                 student_early_exit: bool = True,
                 teacher_data_preprocessor: Optional[dict] = None,
                 teacher_precision: str = 'fp32',
                 teacher_precision_mode: str = 'autocast',
                 check_finite: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(distiller=distiller, teacher=teacher, architecture=architecture,
                         check_finite=check_finite, teacher_precision=teacher_precision,
                         teacher_precision_mode=teacher_precision_mode,
                         teacher_ckpt=teacher_ckpt, teacher_forward_mode='tensor',
                         teacher_data_preprocessor=teacher_data_preprocessor,
                         calculate_student_loss=calculate_student_loss,
                         teacher_early_exit=teacher_early_exit,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self._check_mae(self.architecture, 'architecture', need_head=calculate_student_loss)
        self._check_mae(self.teacher, 'teacher', need_head=False)
        s_grid = tuple(self.architecture.backbone.patch_resolution)
        t_grid = tuple(self.teacher.backbone.patch_resolution)
        if s_grid != t_grid:
            raise ValueError(
                f'teacher and architecture must cut images into the same patch grid to share '
                f'masks: teacher {t_grid} vs architecture (student) {s_grid}; set the same '
                'img_size/patch_size ratio in both backbones')
        self.num_patches = s_grid[0] * s_grid[1]
        if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) \
                or not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f'mask_ratio={mask_ratio!r}; valid: a number in [0, 1)')
        if int(self.num_patches * (1 - mask_ratio)) < 1:
            raise ValueError(
                f'mask_ratio={mask_ratio} leaves no visible patch out of {self.num_patches}; '
                f'valid: mask_ratio < {1 - 1 / self.num_patches:.4f}')
        self.mask_ratio = float(mask_ratio)
        self.student_early_exit = student_early_exit and not calculate_student_loss
        if self.student_early_exit:
            self.distiller.student_recorders.set_early_exit(self._student_record_needs())

    # Configuration -------------------------------------------------------------------
    @staticmethod
    def _check_mae(model: nn.Module, key: str, need_head: bool) -> None:
        backbone = getattr(model, 'backbone', None)
        missing = [a for a in ('patch_embed', 'pos_embed', 'cls_token', 'layers', 'patch_resolution')
                   if backbone is None or not hasattr(backbone, a)]
        if not missing and getattr(model, 'neck', None) is None:
            missing = ['neck']
        if missing:
            raise TypeError(f'{key} must be {_MAE_LAYOUT}; got {type(model).__name__} with '
                            f'backbone {type(backbone).__name__} (missing: {missing})')
        if need_head and getattr(model, 'head', None) is None:
            raise TypeError(f'{key} has no head: calculate_student_loss=True needs '
                            "MAEPretrainHead (or set calculate_student_loss=False)")

    def _student_record_needs(self) -> Optional[Dict[str, Optional[int]]]:
        """Student recorder name -> calls the losses read (the teacher's rule, mirrored)."""
        needs: Dict[str, Optional[int]] = {}
        for mapping in self.distiller.loss_forward_mappings.values():
            for source in mapping.values():
                if 'from_data' in source or not source.get('from_student', True):
                    continue
                idx = source.get('record_idx', 0)
                name = source['recorder']
                if idx < 0 or needs.get(name, 0) is None:
                    needs[name] = None
                else:
                    needs[name] = max(needs.get(name, 0), idx + 1)
        return needs or None

    def set_teacher_early_exit(self, enabled: bool) -> None:
        """Switch the teacher truncation on or off (e.g. to measure what it saves)."""
        self.teacher_early_exit = bool(enabled)
        needs = self.distiller.teacher_record_needs() if enabled else None
        self.distiller.teacher_recorders.set_early_exit(needs)

    # Forward passes ---------------------------------------------------------------------
    def draw_mask(self, inputs: torch.Tensor) -> MaskSpec:
        """The step's mask, shared by teacher and student."""
        return random_masking(inputs.shape[0], self.num_patches, self.mask_ratio, inputs.device)

    @staticmethod
    def run_mae(model: nn.Module, inputs: torch.Tensor, masks: MaskSpec,
                with_loss: bool) -> Optional[torch.Tensor]:
        """Encoder on the visible patches, decoder, and MAE's pixel loss if ``with_loss``.

        Ends early (returning None) when a recorder manager raises ``EarlyExit``.
        """
        try:
            latent = encode_visible(model.backbone, inputs, masks.ids_keep)
            pred = model.neck(latent, masks.ids_restore)
        except EarlyExit:
            return None
        if not with_loss:
            return None
        return model.head.loss(pred, inputs, masks.mask)

    def loss(self,
             inputs: torch.Tensor,
             data_samples: Optional[List[BaseDataElement]] = None,
             teacher_inputs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        if isinstance(inputs, (list, tuple)):  # SelfSupDataPreprocessor with one view
            inputs = inputs[0]
        if isinstance(teacher_inputs, (list, tuple)):
            teacher_inputs = teacher_inputs[0]
        self.refuse_cached_teacher_outputs(
            data_samples, 'the teacher reads the image under the random mask drawn at each '
            'step, so no stored output fits')
        masks = self.draw_mask(inputs)
        distill = self.distill_active
        if distill:
            t_inputs = inputs if teacher_inputs is None else teacher_inputs
            precision = self.teacher_precision
            teacher = self.teacher_set.ready('teacher', t_inputs.device)
            with self.teacher_set.forward_context(t_inputs.device), \
                    self.distiller.teacher_recorders:
                self.run_mae(teacher, precision.cast_inputs(t_inputs), masks, with_loss=False)
        losses: Dict[str, torch.Tensor] = {}
        with self.distiller.student_recorders:
            pixel_loss = self.run_mae(self.architecture, inputs, masks,
                                      with_loss=self.calculate_student_loss)
        if pixel_loss is not None:
            losses['loss_mae'] = pixel_loss
        if distill:
            losses.update(self.distiller.compute_distill_losses(data_samples))
        else:
            losses = self.touch_distillation_parameters(losses)  # DDP: see the method
        self.distiller.teacher_recorders.reset()
        self.distiller.student_recorders.reset()
        if self.check_finite:
            check_finite_losses(losses)
        return losses
