"""LLaVA-MoD: a sparse (MoE) multimodal student distilled from a dense LLaVA teacher."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS
from mmkd.utils.checkpoint import load_state_dict_file

from ..losses.preference_losses import sequence_log_probs
from ..surgery.moe_upcycling import find_decoder_layers, moe_blocks, pop_moe_aux_loss, upcycle_to_moe
from ..teachers import TeacherPrecision, TeacherSet
from .base_algorithm import BaseAlgorithm

STAGES = ('mimic', 'preference')
_MOE_KEYS = ('num_experts', 'top_k', 'layers', 'aux_loss_coef', 'decoder_layers', 'balance_count',
             'normalize_weights', 'router_init_std')
#: Scopes of ``student_trainable`` entries (``'scope:pattern'``); a bare pattern is 'layers'.
TRAINABLE_SCOPES = ('layers', 'llm', 'projector', 'vision_tower')


def _strip(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@MODELS.register_module()
class LlavaMoDDistill(BaseAlgorithm):
    """LLaVA-MoD (Shu et al., ICLR 2025, arXiv 2408.15881) on mmkd's ``LlavaModel``.

    The student is a LLaVA model whose LLM gets sparse MoE blocks (``moe``: E experts
    upcycled from the dense MLP, top-k router, balance loss); the teacher is a dense,
    frozen LLaVA of the same vocabulary. Two stages, chosen by ``stage``:

    * ``'mimic'``: forward KL from the teacher's to the student's next-token
      distributions (``mimic_loss``, response tokens or all tokens), plus the student's
      next-token cross-entropy with weight ``lm_loss_weight`` (the official
      dense-to-dense step uses KL only, ``lm_loss_weight=0``; dense-to-sparse uses KL +
      CE, ``1``) and ``moe.aux_loss_coef`` times the summed balance losses.
    * ``'preference'``: DPO (or KTO-pair) on chosen/rejected answers with the frozen
      teacher as the *reference model*: sequence log-probabilities of both answers
      under student and teacher feed ``preference_loss``; plus the balance loss.
      Chosen and rejected sequences go through each model as one concatenated batch.

    Logged as ``distill.loss_mimic`` / ``distill.loss_pref`` (both read the teacher),
    ``loss_lm`` and ``loss_moe_aux`` (the student's own); ``StopDistillHook`` drops the
    teacher and the ``distill.*`` terms (it needs ``lm_loss_weight > 0``). Also logged:
    ``distill.pref_reward_acc`` (fraction of pairs where the
    student's implicit reward prefers the chosen answer) and ``distill.pref_margin``.

    The teacher is held outside the module tree (as in ``SingleTeacherDistill``): not
    in ``parameters()``, the optimizer, DDP/FSDP or any checkpoint; always in eval
    mode, run under ``torch.no_grad()``, optionally in bf16 (``teacher_precision``).

    Args:
        architecture (dict | nn.Module): the student, an ``LlavaModel`` config.
        teacher (dict | nn.Module): the teacher, an ``LlavaModel`` config.
        teacher_ckpt (str, optional): teacher weights (a checkpoint of a LlavaModel
            or of an mmkd algorithm whose student was the teacher).
        stage (str): 'mimic' or 'preference'.
        moe (dict, optional): upcycling of the student's LLM, keys ``num_experts``
            (4), ``top_k`` (2), ``layers`` ('sparse': every other layer), and
            ``aux_loss_coef`` (0.01), ``balance_count``, ``normalize_weights``,
            ``router_init_std``, ``decoder_layers``. None: a dense student (the
            official dense-to-dense mimic step).
        student_ckpt (str, optional): the previous stage's weights. A dense checkpoint
            (no expert weights) is loaded *before* upcycling, so its MLPs become the
            experts; a sparse one after.
        mimic_loss (dict): loss of the 'mimic' stage (``MimicKLLoss``).
        lm_loss_weight (float): weight of the student's cross-entropy on the
            response ('mimic' stage; and on the chosen answer in 'preference').
        preference_loss (dict): ``DPOLoss`` (paper) or ``KTOPairLoss`` (official
            script's ``kto_pair``).
        student_trainable (sequence[str], optional): the only student parameters that
            train; all others are frozen. None: the student's own ``trainable`` setting
            is kept. Names are matched structurally, inside one part of the student:
            each entry is ``'scope:pattern'``, and selects the parameters of that part
            whose name *relative to the part* contains ``pattern`` (an empty pattern:
            the whole part). Scopes: ``'layers'`` (the LLM's decoder layers, names like
            ``'0.mlp.experts.1.up_proj.weight'``), ``'llm'`` (the whole language
            model), ``'projector'``, ``'vision_tower'``. A bare pattern means
            ``'layers:pattern'``, so the official stage 2/3 setting
            (``--train_modules mlp.* wg``: the LLM's MLPs, the MoE experts and the
            routers) is ``('mlp.',)``, and it can never reach the vision tower's
            ``mlp.fc1``/``mlp.fc2`` (CLIP/SigLIP), which a plain substring match over
            the whole student would re-enable. The vision parameters the student froze
            because they never reach the output stay frozen; an entry that matches
            nothing else, or nothing at all, is an error.
        teacher_precision (str): 'fp32', 'bf16' or 'fp16' teacher forward.
        teacher_precision_mode (str): 'cast' (default: weights stored in the reduced
            dtype, half the memory) or 'autocast'.
        teacher_ckpt_strict (bool): fail on missing/unexpected teacher keys.
        check_vocabulary (bool): refuse a teacher with another vocabulary/tokenizer.
        check_finite (bool): stop on a NaN/inf loss before the optimizer step.
        data_preprocessor (dict, optional): overrides the student's.
    """

    def __init__(self,
                 architecture: Union[dict, nn.Module],
                 teacher: Union[dict, nn.Module],
                 teacher_ckpt: Optional[str] = None,
                 stage: str = 'mimic',
                 moe: Optional[dict] = None,
                 student_ckpt: Optional[str] = None,
                 mimic_loss: Optional[dict] = None,
                 lm_loss_weight: float = 0.0,
                 preference_loss: Optional[dict] = None,
                 student_trainable: Optional[Sequence[str]] = None,
                 teacher_precision: str = 'fp32',
                 teacher_precision_mode: str = 'cast',
                 teacher_ckpt_strict: bool = True,
                 check_vocabulary: bool = True,
                 check_finite: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(architecture, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if stage not in STAGES:
            raise ValueError(f'LlavaMoDDistill.stage={stage!r} is not valid; valid: {list(STAGES)}')
        self.stage = stage
        self.check_finite = check_finite
        self.lm_loss_weight = float(lm_loss_weight)
        student = self.architecture
        for name in ('forward_features', 'hf_model'):
            if not hasattr(student, name):
                raise TypeError(f'LlavaMoDDistill.architecture must be an LlavaModel (it has no '
                                f'`{name}`), got {type(student).__name__}')

        # Student: previous-stage weights, then MoE upcycling (order decided by the ckpt).
        self.moe_cfg = self._check_moe(moe)
        state = self._student_state(student_ckpt)
        sparse_ckpt = state is not None and any('.experts.' in k for k in state)
        if state is not None and not sparse_ckpt:
            self._load_student(state, student_ckpt)
        if self.moe_cfg is not None:
            kwargs = {k: v for k, v in self.moe_cfg.items() if k not in ('aux_loss_coef', )}
            self.moe_layers = upcycle_to_moe(student.hf_model, **kwargs)
        else:
            self.moe_layers = []
            if sparse_ckpt:
                raise ValueError(f'student_ckpt={student_ckpt!r} holds MoE experts but `moe` is None; '
                                 'give the same moe=dict(...) as the stage that wrote it')
        if sparse_ckpt:
            self._load_student(state, student_ckpt)
        self.student_trainable = self._set_student_trainable(student_trainable)

        # Teacher: built, loaded, frozen, hidden from the module tree.
        self.teacher_precision = TeacherPrecision(teacher_precision, teacher_precision_mode)
        self.teacher_set = TeacherSet(self.teacher_precision, owner=type(self).__name__)
        # init_weights=False: the LLaVA model initialises itself when built (transformers).
        teacher_model = self.teacher_set.add(
            'teacher', teacher, teacher_ckpt, key='teacher', strict=teacher_ckpt_strict,
            init_weights=False, missing_ckpt_warning='LlavaMoDDistill: no teacher_ckpt given, '
            'the teacher keeps its initial weights (fine for tests, wrong for real training)')
        if not hasattr(teacher_model, 'forward_features'):
            raise TypeError('LlavaMoDDistill.teacher must be an LlavaModel, got '
                            f'{type(teacher_model).__name__}')
        if check_vocabulary:
            from ..task_models.llava import check_same_vocabulary
            check_same_vocabulary(teacher_model, student)

        mimic_loss = dict(type='MimicKLLoss') if mimic_loss is None else mimic_loss
        preference_loss = dict(type='DPOLoss', beta=0.1) if preference_loss is None else preference_loss
        self.mimic_loss = mimic_loss if isinstance(mimic_loss, nn.Module) else MODELS.build(mimic_loss)
        self.preference_loss = (preference_loss if isinstance(preference_loss, nn.Module)
                                else MODELS.build(preference_loss))

    # construction helpers --------------------------------------------------------------
    @staticmethod
    def _check_moe(moe: Optional[dict]) -> Optional[dict]:
        if moe is None:
            return None
        moe = dict(moe)
        bad = sorted(set(moe) - set(_MOE_KEYS))
        if bad:
            raise KeyError(f'LlavaMoDDistill.moe has unknown keys {bad}; valid: {list(_MOE_KEYS)}')
        moe.setdefault('num_experts', 4)
        moe.setdefault('top_k', 2)
        moe.setdefault('layers', 'sparse')
        moe.setdefault('aux_loss_coef', 0.01)
        if moe['aux_loss_coef'] < 0:
            raise ValueError(f'LlavaMoDDistill.moe.aux_loss_coef={moe["aux_loss_coef"]} must be >= 0')
        return moe

    @staticmethod
    def _student_state(path: Optional[str]) -> Optional[Dict[str, torch.Tensor]]:
        if not path:
            return None
        state = load_state_dict_file(path, 'student_ckpt')
        state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
        if any(k.startswith('architecture.') for k in state):  # an mmkd algorithm checkpoint
            state = _strip(state, 'architecture.')
        return state

    def _load_student(self, state: Dict[str, torch.Tensor], path: str) -> None:
        missing, unexpected = self.architecture.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith('data_preprocessor.')]
        if missing or unexpected:
            raise RuntimeError(
                f'student_ckpt={path!r} does not match the student: {len(missing)} missing keys '
                f'{missing[:8]}, {len(unexpected)} unexpected keys {unexpected[:8]}. A dense checkpoint '
                'is loaded before upcycling and a sparse one after: is `moe` the same as in the stage '
                'that wrote it?')

    def _trainable_scopes(self) -> Dict[str, nn.Module]:
        hf = self.architecture.hf_model
        decoder_path = self.moe_cfg.get('decoder_layers') if self.moe_cfg else None
        _, layers = find_decoder_layers(hf, decoder_path)  # the path upcycle_to_moe uses
        return dict(layers=layers, llm=hf.language_model, projector=hf.multi_modal_projector,
                    vision_tower=hf.vision_tower)

    def _never_trained(self) -> set:
        """ids of the vision parameters the student froze as unused (they get no gradient)."""
        tower = self.architecture.hf_model.vision_tower
        vision = getattr(tower, 'vision_model', tower)
        return {id(vision.get_parameter(n)) for n in getattr(self.architecture, 'unused_vision_params', [])}

    def _set_student_trainable(self, patterns: Optional[Sequence[str]]) -> Optional[tuple]:
        if patterns is None:
            return None
        patterns = (patterns, ) if isinstance(patterns, str) else tuple(patterns)
        key = f'LlavaMoDDistill.student_trainable={patterns!r}'
        if not patterns:
            raise ValueError(f'{key}: give at least one pattern, or None to keep the student\'s own '
                             '`trainable` setting')
        scopes, never = self._trainable_scopes(), self._never_trained()
        selected = set()
        for entry in patterns:
            if not isinstance(entry, str):
                raise TypeError(f'{key}: {entry!r} is not a string')
            scope, sep, pattern = entry.partition(':')
            if not sep:
                scope, pattern = 'layers', entry
            if scope not in scopes:
                raise ValueError(f'{key}: {entry!r} names the unknown scope {scope!r}; valid scopes: '
                                 f'{list(TRAINABLE_SCOPES)} (a bare pattern means \'layers:...\')')
            names = [n for n, _ in scopes[scope].named_parameters()]
            hits = [p for n, p in scopes[scope].named_parameters() if pattern in n]
            if not hits:
                raise ValueError(f'{key}: {entry!r} matches no parameter of the {scope!r} scope '
                                 f'(names there are relative to it, e.g. {names[:3]} ...)')
            if all(id(p) in never for p in hits):
                raise ValueError(f'{key}: {entry!r} matches only vision parameters that never reach '
                                 'the output (after vision_feature_layer), kept frozen')
            selected.update(id(p) for p in hits if id(p) not in never)
        for param in self.architecture.parameters():
            param.requires_grad_(id(param) in selected)
        return patterns

    # the hidden teacher ----------------------------------------------------------------
    @property
    def teacher(self) -> nn.Module:
        return self.teacher_set['teacher']

    def _teacher_features(self, batch: dict) -> Dict[str, torch.Tensor]:
        device = batch['input_ids'].device
        teacher = self.teacher_set.ready('teacher', device)
        with self.teacher_set.forward_context(device):
            feats = teacher.forward_features(self.teacher_precision.cast_inputs(batch))
        return {k: v for k, v in feats.items() if k in ('logits', 'labels', 'attention_mask')}

    # steps -----------------------------------------------------------------------------
    def loss(self, inputs: dict, data_samples: Optional[List[BaseDataElement]] = None
             ) -> Dict[str, torch.Tensor]:
        from ..task_models.llava import causal_lm_loss
        student = self.architecture
        self.refuse_cached_teacher_outputs(
            data_samples, 'the mimic KL and the preference loss read the teacher\'s logits at '
            'every position of the conversation, which no cache of tools/cache_teacher.py stores')
        distill = self.distill_active
        if not distill and not self.lm_loss_weight:
            raise self.cannot_stop(f"stage={self.stage!r} with lm_loss_weight=0 has no task loss "
                                   '(the balance loss alone does not train the model)')
        pop_moe_aux_loss(student)  # drop values left by a checkpointed recompute or an eval pass
        losses: Dict[str, torch.Tensor] = {}
        if self.stage == 'mimic':
            t = self._teacher_features(inputs) if distill else None
            s = student.forward_features(inputs)
            if distill:
                losses['distill.loss_mimic'] = self.mimic_loss(
                    s['logits'], t['logits'], labels=s['labels'], attention_mask=s['attention_mask'])
            if self.lm_loss_weight:
                losses['loss_lm'] = self.lm_loss_weight * causal_lm_loss(s['logits'], s['labels'])
        else:
            losses.update(self._preference_losses(inputs, distill))
        aux = pop_moe_aux_loss(student)
        if aux is not None and self.moe_cfg is not None and self.moe_cfg['aux_loss_coef'] > 0:
            losses['loss_moe_aux'] = self.moe_cfg['aux_loss_coef'] * aux
        if not distill:
            losses = self.touch_distillation_parameters(losses)  # DDP/FSDP: see the method
        return self.finish_losses(losses)  # distill_loss_scale, check_finite

    @staticmethod
    def _pair_batch(inputs: dict) -> dict:
        """Chosen and rejected sequences as one batch (2B rows: chosen first)."""
        need = [f'{s}_{k}' for s in ('chosen', 'rejected') for k in ('input_ids', 'labels', 'attention_mask')]
        missing = [k for k in need if k not in inputs]
        if missing:
            raise KeyError(f"LlavaMoDDistill stage='preference' needs preference pairs in the batch; "
                           f'missing {missing}. Pack the data with PackVQAInputs(with_preference=True)')
        batch = {k: torch.cat([inputs[f'chosen_{k}'], inputs[f'rejected_{k}']])
                 for k in ('input_ids', 'labels', 'attention_mask')}
        if inputs.get('pixel_values') is not None:
            batch['pixel_values'] = torch.cat([inputs['pixel_values']] * 2)
        return batch

    def _preference_losses(self, inputs: dict, distill: bool = True) -> Dict[str, torch.Tensor]:
        """DPO against the teacher (the reference model: a distillation term, as the
        paper's "preference distillation"), the chosen answers' CE and reward logs.

        Without ``distill`` (StopDistillHook) only the CE on the chosen answers is left.
        """
        from ..task_models.llava import causal_lm_loss
        batch = self._pair_batch(inputs)
        n = inputs['chosen_input_ids'].shape[0]
        out = {}
        if distill:
            t = self._teacher_features(batch)
            ref = sequence_log_probs(t['logits'], batch['labels'])
        s = self.architecture.forward_features(batch)
        if distill:
            pol = sequence_log_probs(s['logits'], batch['labels'])
            out['distill.loss_pref'] = self.preference_loss(pol[:n], pol[n:], ref[:n], ref[n:])
        if self.lm_loss_weight:
            out['loss_lm'] = self.lm_loss_weight * causal_lm_loss(s['logits'][:n], batch['labels'][:n])
        if not distill:
            return out
        with torch.no_grad():
            reward_c = (pol[:n] - ref[:n]).detach()
            reward_r = (pol[n:] - ref[n:]).detach()
            out['distill.pref_reward_acc'] = (reward_c > reward_r).float().mean()
            out['distill.pref_margin'] = (reward_c - reward_r).mean()
        return out

    # introspection ---------------------------------------------------------------------
    def moe_summary(self) -> dict:
        """Where the experts are and how many parameters train (for logs and tests)."""
        total = sum(p.numel() for p in self.architecture.parameters())
        trainable = sum(p.numel() for p in self.architecture.parameters() if p.requires_grad)
        return dict(moe_layers=list(self.moe_layers), num_moe_blocks=len(moe_blocks(self.architecture)),
                    student_params=total, trainable_params=trainable)
