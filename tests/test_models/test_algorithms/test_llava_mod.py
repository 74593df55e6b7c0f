"""LlavaMoDDistill: MoE student built from a LLaVA config, frozen hidden teacher, mimic and
preference train steps, stage checkpoints (dense -> sparse)."""
import copy
import warnings

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper

from mmkd.datasets.shapes_vqa import ShapesVQADataset
from mmkd.models.algorithms.llava_mod import LlavaMoDDistill
from mmkd.models.surgery import SparseMoEBlock

VISION = dict(model_type='siglip_vision_model', hidden_size=16, intermediate_size=32,
              num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
TEXT_S = dict(model_type='qwen2', hidden_size=16, intermediate_size=32, num_hidden_layers=2,
              num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128)
TEXT_T = dict(TEXT_S, hidden_size=32, intermediate_size=64, num_hidden_layers=3)


def llava(text):
    return dict(type='LlavaModel', _scope_='mmkd', vision_config=copy.deepcopy(VISION),
                text_config=copy.deepcopy(text))


def build(**kw):
    torch.manual_seed(0)
    args = dict(architecture=llava(TEXT_S), teacher=llava(TEXT_T),
                moe=dict(num_experts=4, top_k=2, layers='sparse', aux_loss_coef=0.01))
    args.update(kw)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'LlavaMoDDistill: no teacher_ckpt', UserWarning)
        return LlavaMoDDistill(**args)


def data(model, n=2):
    ds = ShapesVQADataset(split='train', num_images=2, pipeline=[
        dict(type='PackVQAInputs', num_image_tokens=16, with_preference=True)])
    return model.data_preprocessor(pseudo_collate([ds[i] for i in range(n)]), True)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize('stage', ['mimic', 'preference'])
def test_train_step_updates_student_only(stage):
    algo = build(stage=stage, lm_loss_weight=1.0,
                 preference_loss=dict(type='DPOLoss', beta=0.1))
    layers = algo.student.hf_model.language_model.model.layers
    assert isinstance(layers[0].mlp, SparseMoEBlock) and not isinstance(layers[1].mlp, SparseMoEBlock)
    assert algo.moe_layers == [0]
    # the teacher is frozen, hidden from the module tree and the state dict
    assert not any(k.startswith('teacher') for k in algo.state_dict())
    assert all(not p.requires_grad for p in algo.teacher.parameters())
    params = {id(p) for p in algo.parameters()}
    assert not any(id(p) in params for p in algo.teacher.parameters())
    teacher_before = _snapshot(algo.teacher)
    algo.train()
    assert not algo.teacher.training

    batch = data(algo)
    losses = algo(**batch, mode='loss')
    expected = {'mimic': {'distill.loss_mimic', 'loss_lm', 'loss_moe_aux'},
                'preference': {'distill.loss_pref', 'loss_lm', 'loss_moe_aux',
                               'distill.pref_reward_acc', 'distill.pref_margin'}}
    assert set(losses) == expected[stage]
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    router = layers[0].mlp.router.weight
    assert router.grad is not None and router.grad.abs().sum() > 0
    assert layers[0].mlp.experts[1].down_proj.weight.grad is not None
    assert algo.student.hf_model.multi_modal_projector.linear_1.weight.grad is not None
    assert all(p.grad is None for p in algo.teacher.parameters())

    # one optimizer step through the runner's path changes the student, never the teacher
    algo.zero_grad()
    student_before = _snapshot(algo.student)
    optim = OptimWrapper(torch.optim.SGD([p for p in algo.parameters() if p.requires_grad], lr=0.5))
    log = algo.train_step(data(algo), optim)
    assert torch.isfinite(log['loss'])
    after = algo.student.state_dict()
    assert any(not torch.equal(student_before[k], after[k]) for k in student_before)
    for k, v in algo.teacher.state_dict().items():
        assert torch.equal(teacher_before[k], v), k


def test_preference_loss_uses_teacher_as_reference():
    algo = build(stage='preference', preference_loss=dict(type='DPOLoss', beta=0.5))
    inputs = data(algo)['inputs']
    from mmkd.models.losses.preference_losses import sequence_log_probs
    with torch.no_grad():
        lp = {}
        for who, model in (('s', algo.student), ('t', algo.teacher)):
            for seq in ('chosen', 'rejected'):
                out = model.forward_features(inputs, sequence=seq)
                lp[who, seq] = sequence_log_probs(out['logits'], inputs[f'{seq}_labels'])
        h = (lp['s', 'chosen'] - lp['s', 'rejected']) - (lp['t', 'chosen'] - lp['t', 'rejected'])
        expected = -torch.nn.functional.logsigmoid(0.5 * h).mean()
        got = algo(data(algo)['inputs'], mode='loss')['distill.loss_pref']
    assert got.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)


def test_dense_stage_checkpoint_upcycles_and_sparse_checkpoint_reloads(tmp_path):
    torch.manual_seed(0)
    dense = build(moe=None)
    assert dense.moe_layers == [] and 'loss_moe_aux' not in dense(**data(dense), mode='loss')
    ckpt = tmp_path / 'dense.pth'
    torch.save({'state_dict': dense.state_dict()}, ckpt)
    sparse = build(student_ckpt=str(ckpt))
    d_mlp = dense.student.hf_model.language_model.model.layers[0].mlp
    s_block = sparse.student.hf_model.language_model.model.layers[0].mlp
    for e in s_block.experts:  # every expert starts from the dense MLP of the previous stage
        assert torch.equal(e.up_proj.weight, d_mlp.up_proj.weight)
    # same output as the dense student at initialisation
    dense.eval(), sparse.eval()
    inputs = data(dense)['inputs']
    with torch.no_grad():
        a = dense.student.forward_features(inputs)['logits']
        b = sparse.student.forward_features(inputs)['logits']
    assert torch.allclose(a, b, atol=1e-5)
    # a sparse checkpoint loads after upcycling
    ckpt2 = tmp_path / 'sparse.pth'
    torch.save({'state_dict': sparse.state_dict()}, ckpt2)
    again = build(stage='preference', student_ckpt=str(ckpt2))
    assert torch.equal(again.student.hf_model.language_model.model.layers[0].mlp.router.weight,
                       s_block.router.weight)
    with pytest.raises(ValueError, match='holds MoE experts'):
        build(moe=None, student_ckpt=str(ckpt2))


def test_trainable_patterns_bf16_teacher_and_bad_config():
    algo = build(student_trainable=('mlp.', ), teacher_precision='bf16')
    trainable = [n for n, p in algo.student.named_parameters() if p.requires_grad]
    assert trainable and all('mlp.' in n for n in trainable)
    assert any('router' in n for n in trainable)
    assert next(algo.teacher.parameters()).dtype == torch.bfloat16
    losses = algo(**data(algo), mode='loss')
    assert losses['distill.loss_mimic'].dtype == torch.float32 and torch.isfinite(
        losses['distill.loss_mimic'])
    with pytest.raises(ValueError, match='stage'):
        build(stage='sft')
    with pytest.warns(UserWarning, match='no teacher_ckpt'):
        LlavaMoDDistill(architecture=llava(TEXT_S), teacher=llava(TEXT_T))
    with pytest.raises(KeyError, match='unknown keys'):
        build(moe=dict(experts=4))
    with pytest.raises(ValueError, match='student_trainable'):
        build(student_trainable=('nothing_like_this', ))
    with pytest.raises(ValueError, match='share one vocabulary'):
        build(teacher=llava(dict(TEXT_T, vocab_size=64)))


def _expected_official_trainable(algo):
    """The official stage-2/3 set (`--train_modules mlp.* wg`), written out by hand from the
    tiny student's structure: 2 Qwen2 decoder layers, layer 0 upcycled to 4 experts + a
    router (moe layers='sparse'), layer 1 dense; Qwen2's MLP projections have no bias."""
    layers = algo.student.hf_model.language_model.model.layers
    prefix = next(n for n, m in algo.student.named_modules() if m is layers)
    projs = ('gate_proj', 'up_proj', 'down_proj')
    names = {f'{prefix}.0.mlp.experts.{e}.{p}.weight' for e in range(4) for p in projs}
    names.add(f'{prefix}.0.mlp.router.weight')
    names |= {f'{prefix}.1.mlp.{p}.weight' for p in projs}
    return names


def test_official_trainable_set_leaves_the_vision_tower_frozen():
    algo = build(student_trainable=('mlp.', ))
    trainable = {n for n, p in algo.student.named_parameters() if p.requires_grad}
    expected = _expected_official_trainable(algo)
    assert len(expected) == 12 + 1 + 3
    assert trainable == expected
    # the vision tower has `mlp.` parameters too (SigLIP's mlp.fc1/fc2): they stay frozen
    vision_mlp = [n for n, _ in algo.student.named_parameters()
                  if n.startswith('hf_model.vision_tower.') and '.mlp.fc1.' in n]
    assert vision_mlp and not set(vision_mlp) & trainable
    # the explicit layer scope is the same thing
    again = build(student_trainable=('layers:mlp.', ))
    assert {n for n, p in again.student.named_parameters() if p.requires_grad} == expected


def test_trainable_scopes_add_parts_explicitly():
    algo = build(student_trainable=('mlp.', 'projector:'))
    trainable = {n for n, p in algo.student.named_parameters() if p.requires_grad}
    projector = {f'hf_model.multi_modal_projector.linear_{i}.{w}' for i in (1, 2)
                 for w in ('weight', 'bias')}
    assert trainable == _expected_official_trainable(algo) | projector
    # 'llm:lm_head' reaches outside the decoder layers, only when asked for
    algo = build(student_trainable=('llm:lm_head', ))
    assert {n for n, p in algo.student.named_parameters() if p.requires_grad} == {
        'hf_model.language_model.lm_head.weight'}
    # the vision scope is an explicit opt-in; parameters after vision_feature_layer stay frozen
    algo = build(student_trainable=('vision_tower:embeddings.', ))
    # transformers 5's SigLIP vision model has no `vision_model.` level
    level = 'vision_model.' if hasattr(algo.student.hf_model.vision_tower, 'vision_model') else ''
    assert {n for n, p in algo.student.named_parameters() if p.requires_grad} == {
        f'hf_model.vision_tower.{level}embeddings.{w}'
        for w in ('patch_embedding.weight', 'patch_embedding.bias', 'position_embedding.weight')}
    with pytest.raises(ValueError, match='never reach the output'):
        build(student_trainable=('vision_tower:mlp.', ))  # only layer 0 (unused at layer -2)
    with pytest.raises(ValueError, match=r"unknown scope 'decoder'.*'layers', 'llm'"):
        build(student_trainable=('decoder:mlp.', ))
    with pytest.raises(ValueError, match="matches no parameter of the 'layers' scope"):
        build(student_trainable=('multi_modal_projector', ))  # not inside the decoder layers
