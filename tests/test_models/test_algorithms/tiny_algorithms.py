"""A tiny build of every mmkd algorithm (random weights, no data, a few seconds each).

Shared by ``test_feature_matrix.py`` (every core feature on every algorithm) and
``_one_step_totals.py`` (the loss dict of one step, printed at full precision, to show
that a refactoring leaves the numbers unchanged). Each :class:`Case` says how to build
the model, what its ``loss`` reads, which modules are its frozen teachers, and one loss
module whose output a test can turn into NaN.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from mmkd.registry import MODELS

from .helpers import batch as cls_batch
from .helpers import logit_distiller, tiny_classifier


@dataclass
class Case:
    """One tiny algorithm.

    Attributes:
        name: the case id.
        algorithm: the registry name of its class.
        build: a fresh model (seeded).
        data: the keyword arguments of ``model.loss`` (preprocessed, deterministic).
        teachers: the frozen teachers whose forwards must not run once stopped.
        nan_target: ``(module, loss key)``: turning the module's output into NaN makes
            that logged loss non-finite.
        stop_error: None if ``StopDistillHook`` can stop it; else a regex of the error.
        uses_cache: replays cached teacher outputs (else refuses them).
        resting: key prefixes of the task losses of other trained models (co-trained
            teachers) that rest, with the distillation, once it is stopped.
    """
    name: str
    algorithm: str
    build: Callable[[], nn.Module]
    data: Callable[[nn.Module], dict]
    teachers: Callable[[nn.Module], List[nn.Module]]
    nan_target: Callable[[nn.Module], Tuple[nn.Module, str]]
    stop_error: Optional[str] = None
    uses_cache: bool = False
    resting: Tuple[str, ...] = ()


def _quiet(fn):
    def wrapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # 'no teacher_ckpt given' and the like
            torch.manual_seed(0)
            return fn(*args, **kwargs)
    return wrapped


def _registry_name(*names: str) -> str:
    """The first of ``names`` that is registered (a renamed class keeps its case)."""
    for name in names:
        if MODELS.get(name) is not None:
            return name
    raise KeyError(names)


# SingleTeacherDistill --------------------------------------------------------------------
@_quiet
def build_single():
    return MODELS.build(dict(type='SingleTeacherDistill', architecture=tiny_classifier(4),
                             teacher=tiny_classifier(8), distiller=logit_distiller()))


def data_cls(model):
    return model.data_preprocessor(cls_batch(), True)


# MaskedImageDistill (DMAE demo) -----------------------------------------------------------
DMAE_CFG = 'configs/dmae/dmae_vit-d8-w128_vit-d4-w64_p4_digits_demo.py'


@_quiet
def build_masked():
    from mmengine.config import Config
    cfg = Config.fromfile(DMAE_CFG).model
    cfg.teacher_ckpt = None
    model = MODELS.build(cfg)
    model.init_weights()
    model.teacher.init_weights()
    return model


def data_masked(model):
    g = torch.Generator().manual_seed(0)
    raw = dict(inputs=torch.randint(0, 256, (4, 3, 16, 16), generator=g, dtype=torch.uint8),
               data_samples=None)
    return model.data_preprocessor(raw, True)


def first_distill_loss(model):
    name = next(iter(model.distiller.distill_losses))
    return model.distiller.distill_losses[name], f'distill.{name}'


# MultiTeacherDistill (MST-Distill) ---------------------------------------------------------
def _mst(stage, cotrain_teachers=False):
    @_quiet
    def build():
        from .test_multi_teacher_distill import build as mst_build
        from .test_multi_teacher_distill import teachers_cfg
        teachers = teachers_cfg()
        if cotrain_teachers:
            teachers['mm']['logits_source'] = teachers['audio']['logits_source'] = 'fc2'
        return mst_build(stage=stage, cotrain_teachers=cotrain_teachers, teachers=teachers)
    return build


def data_mst(model):
    from .test_multi_teacher_distill import mm_batch
    return model.data_preprocessor(mm_batch(unlabelled=(1, )), True)


def mst_teachers(model):
    return list(model.teachers.values())  # co-trained ones too: they rest once stopped


# CollaborativeDistill (HFD + BSD demo) ------------------------------------------------------
HFD_CFG = 'configs/hfd_bsd/hfd-bsd_deeplabv3plus-r18-w16_segformer-mit-tiny_shapes_demo.py'
HFD_SIZE = 64


@_quiet
def build_collaborative():
    from mmengine.config import Config
    cfg = Config.fromfile(HFD_CFG).model.to_dict()
    for student in cfg['students'].values():  # unpadded SIZE px inputs (see its tests)
        student['model_override'] = dict(data_preprocessor=dict(size=(HFD_SIZE, HFD_SIZE)))
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def data_collaborative(model):
    from .test_collaborative_distill import batch
    x, samples = batch(seed=5)
    raw = dict(inputs=list((x * 50 + 120).clamp(0, 255).to(torch.uint8)), data_samples=samples)
    return model.data_preprocessor(raw, True)


# MultiGranularityDistill (MGD-SSSS) ---------------------------------------------------------
@_quiet
def build_mgd():
    from .test_semi_supervised_distill import tiny_seg
    return MODELS.build(dict(
        type=_registry_name('MultiGranularityDistill', 'SemiSupervisedDistill'),
        architecture=tiny_seg(4), wide_teacher=tiny_seg(8), deep_teacher=tiny_seg(4, 34),
        student_feat_source='decode_head.conv_cat'))


def data_mgd(model):
    from .test_semi_supervised_distill import raw_batch
    return model.data_preprocessor(raw_batch(), True)


# LlavaKDDistill / LlavaMoDDistill -----------------------------------------------------------
@_quiet
def build_llava_kd():
    from .test_llava_kd import llava
    return MODELS.build(dict(type='LlavaKDDistill', architecture=llava(32), teacher=llava(48)))


def data_llava_kd(model):
    from .test_llava_kd import batch
    return batch(model)


def _llava_mod(stage):
    @_quiet
    def build():
        from .test_llava_mod import TEXT_S, TEXT_T, llava
        return MODELS.build(dict(
            type='LlavaMoDDistill', architecture=llava(TEXT_S), teacher=llava(TEXT_T),
            stage=stage, lm_loss_weight=1.0,
            moe=dict(num_experts=4, top_k=2, layers='sparse', aux_loss_coef=0.01)))
    return build


def data_llava_mod(model):
    from .test_llava_mod import data
    return data(model)


def _teacher(model):
    return [model.teacher]


CASES: Dict[str, Case] = {c.name: c for c in [
    Case('single', 'SingleTeacherDistill', build_single, data_cls, _teacher,
         lambda m: (m.distiller.distill_losses['loss_kd'], 'distill.loss_kd'), uses_cache=True),
    Case('masked_image', 'MaskedImageDistill', build_masked, data_masked, _teacher,
         first_distill_loss),
    Case('mst_student', 'MultiTeacherDistill', _mst('student'), data_mst, mst_teachers,
         lambda m: (m.combiner.loss_kd, 'distill.loss_kd')),
    Case('mst_masknet', 'MultiTeacherDistill', _mst('masknet'), data_mst, mst_teachers,
         lambda m: (m.masknets['mm_0'], 'distill.loss_masknet_mm@fusion'),
         stop_error=r"MultiTeacherDistill: .*stage 'masknet'"),
    Case('mst_cotrain', 'MultiTeacherDistill', _mst('cotrain'), data_mst, mst_teachers,
         lambda m: (m.teachers['audio'].fc1, 'distill.loss_kd_from_audio')),
    Case('mst_cotrain_teachers', 'MultiTeacherDistill', _mst('cotrain', True), data_mst,
         mst_teachers, lambda m: (m.teachers['audio'].fc1, 'distill.loss_kd_from_audio'),
         resting=('mm.', 'audio.')),
    Case('collaborative', 'CollaborativeDistill', build_collaborative, data_collaborative,
         lambda m: [], lambda m: (m.losses['hfd'], 'distill.loss_hfd_cnn')),
    Case('mgd', 'MultiGranularityDistill', build_mgd, data_mgd,
         lambda m: list(m.teachers.values()), lambda m: (m.loss_semantic, 'distill.loss_semantic')),
    Case('llava_kd', 'LlavaKDDistill', build_llava_kd, data_llava_kd, _teacher,
         lambda m: (m.rdist, 'distill.loss_rdist')),
    Case('llava_mod_mimic', 'LlavaMoDDistill', _llava_mod('mimic'), data_llava_mod, _teacher,
         lambda m: (m.mimic_loss, 'distill.loss_mimic')),
    Case('llava_mod_preference', 'LlavaMoDDistill', _llava_mod('preference'), data_llava_mod,
         _teacher, lambda m: (m.preference_loss, 'distill.loss_pref')),
]}


def run_loss(model: nn.Module, data: dict, seed: int = 1) -> Dict[str, torch.Tensor]:
    """One ``loss`` call in training mode from a fixed random state."""
    model.train()
    torch.manual_seed(seed)
    return model.loss(**copy.copy(data))
