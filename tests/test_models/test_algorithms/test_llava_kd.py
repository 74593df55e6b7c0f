"""LlavaKDDistill: hidden frozen teacher, loss terms, vocabulary/visual-token checks,
bf16 teacher, stage-1 freezing."""
import copy
import warnings

import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmkd.datasets.shapes_vqa import ShapesVQADataset
from mmkd.models.algorithms import LlavaKDDistill
from mmkd.models.losses import MDistLoss, RDistLoss
from mmkd.models.losses.llava_kd_losses import select_visual_tokens

VISION = dict(model_type='clip_vision_model', hidden_size=32, intermediate_size=64,
              num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
TEXT = dict(model_type='qwen2', hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)


def llava(width=32, **kw):
    cfg = dict(type='LlavaModel', _scope_='mmkd', vision_config=dict(VISION), vision_feature_layer=-1,
               text_config=dict(TEXT, hidden_size=width, intermediate_size=2 * width))
    cfg.update(kw)
    return copy.deepcopy(cfg)


def algo(**kw):
    torch.manual_seed(0)
    args = dict(architecture=llava(32), teacher=llava(48))
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # 'no teacher_ckpt': tested below
        return LlavaKDDistill(**args)


def batch(model, n=3):
    ds = ShapesVQADataset(split='val', num_images=2, pipeline=[
        dict(type='PackVQAInputs', num_image_tokens=16)])
    return model.data_preprocessor(pseudo_collate([ds[i] for i in range(n)]), True)


def test_loss_terms_match_the_losses_on_both_models():
    model = algo()
    data = batch(model)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_ce', 'distill.loss_mdist_res', 'distill.loss_mdist_vis',
                           'distill.loss_rdist'}
    with torch.no_grad():
        s = model.student.forward_features(data['inputs'])
        t = model.teacher.forward_features(data['inputs'])
    parts = MDistLoss()(s['logits'], t['logits'], s['labels'], s['image_token_mask'], return_parts=True)
    assert losses['distill.loss_mdist_res'].item() == pytest.approx(parts['res'].item(), rel=1e-5)
    assert losses['distill.loss_mdist_vis'].item() == pytest.approx(parts['vis'].item(), rel=1e-5)
    rd = RDistLoss()(select_visual_tokens(s['logits'], s['image_token_mask']),
                     select_visual_tokens(t['logits'], t['image_token_mask']))
    assert losses['distill.loss_rdist'].item() == pytest.approx(rd.item(), rel=1e-5)
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(p.grad is not None for p in model.student.parameters())


def test_teacher_is_hidden_frozen_and_not_saved():
    model = algo()
    assert not any(k.startswith('teacher') for k in model.state_dict())
    ids = {id(p) for p in model.parameters()}
    assert not any(id(p) in ids for p in model.teacher.parameters())
    assert all(not p.requires_grad for p in model.teacher.parameters())
    model.train()
    assert not model.teacher.training and model.student.training


def test_vocabulary_and_visual_token_mismatch_errors():
    with pytest.raises(ValueError, match=r'vocab_size: teacher 40 vs architecture 34'):
        algo(teacher=llava(48, text_config=dict(TEXT, vocab_size=40)))
    with pytest.raises(ValueError, match=r"tokenizer: teacher 'other:.*' vs architecture 'shapes-vqa:"):
        algo(teacher=llava(48, tokenizer=dict(type='ChatWordTokenizer', name='other')))
    with pytest.raises(ValueError, match='same number of visual tokens'):
        algo(teacher=llava(48, vision_config=dict(VISION, patch_size=16)))
    with pytest.raises(ValueError, match='rdist_source'):
        algo(rdist_source='hidden')


def test_bf16_teacher_stage1_projector_only_and_image_feature_relations():
    model = algo(teacher_precision='bf16', rdist_source='image_features',
                 architecture=llava(32, trainable=('projector', )))
    assert next(model.teacher.parameters()).dtype == torch.bfloat16
    data = batch(model)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    grads = {n.split('.')[2] for n, p in model.named_parameters() if p.grad is not None}
    assert grads == {'multi_modal_projector'}
    # predict mode is the student's
    out = model(**data, mode='predict')
    assert all(isinstance(s.pred_text, str) for s in out)


def test_random_teacher_warns():
    with pytest.warns(UserWarning, match='no teacher_ckpt'):
        LlavaKDDistill(architecture=llava(32), teacher=llava(48))


def test_distillation_off_keeps_only_ce():
    model = algo(mdist=None, rdist=None)
    assert set(model(**batch(model), mode='loss')) == {'loss_ce'}


@pytest.mark.parametrize('name', [
    'llava-kd_stage1-dpt_siglip-so400m_qwen1.5-4b_to_qwen1.5-1.8b_fsdp-8xb32_llava-558k',
    'llava-kd_stage3-dft_siglip-so400m_qwen1.5-4b_to_qwen1.5-1.8b_fsdp-8xb16_llava-665k'])
def test_real_scale_configs_build_at_tiny_size(name, repo_root):
    """The paper-scale configs' keys are valid: shrink the towers, drop the checkpoint
    paths and the HF tokenizer, build the algorithm and run one loss step."""
    import os.path as osp

    from mmengine.config import Config
    from mmengine.registry import MODELS as ROOT_MODELS
    cfg = Config.fromfile(osp.join(repo_root, 'configs/llava_kd', name + '.py')).model.to_dict()
    assert cfg['teacher_precision'] == 'bf16'
    trainable = cfg['architecture']['trainable']
    assert trainable == (('projector', ) if 'stage1' in name else ('projector', 'llm'))
    for part, width in (('architecture', 32), ('teacher', 48)):
        sub = cfg[part]
        sub.pop('pretrained')
        sub.pop('tokenizer')
        sub['vision_config'] = dict(VISION, model_type='siglip_vision_model')
        sub['text_config'] = dict(sub['text_config'], hidden_size=width, intermediate_size=2 * width,
                                  num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  vocab_size=34)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = ROOT_MODELS.build(dict(cfg, _scope_='mmkd'))
    losses = model(**batch(model, n=2), mode='loss')
    assert set(losses) >= {'loss_ce', 'distill.loss_mdist_res', 'distill.loss_rdist'}


def test_teacher_follows_the_batch_device(monkeypatch):
    # Under FSDP the hidden teacher is not moved with the wrapped student: every step
    # hands it to TeacherPrecision.follow_device with the batch's device first.
    from mmkd.models.teachers.precision import TeacherPrecision
    calls = []
    original = TeacherPrecision.follow_device

    def spy(self, teacher, device):
        calls.append((teacher, torch.device(device)))
        return original(self, teacher, device)

    monkeypatch.setattr(TeacherPrecision, 'follow_device', spy)
    model = algo()
    data = batch(model)
    model(**data, mode='loss')
    assert calls == [(model.teacher, data['inputs']['input_ids'].device)]


def test_mdist_and_rdist_are_losses_of_the_distiller():
    """issue 20: MDist/RDist are the distiller's loss_mdist (logged in two parts) and
    loss_rdist, on tensors the algorithm gives it; one of them off leaves it out."""
    model = algo()
    d = model.distiller
    assert list(d.distill_losses) == ['loss_mdist', 'loss_rdist']
    assert model.mdist is d.distill_losses['loss_mdist'] and not d.compute_in_fp32
    assert d.loss_forward_mappings['loss_mdist']['return_parts'] == dict(value=True)
    assert not d.state_dict()
    off = algo(mdist=None)
    assert off.mdist is None and list(off.distiller.distill_losses) == ['loss_rdist']


def test_a_custom_loss_with_other_argument_names_names_the_config_key():
    """A custom rdist loss whose forward takes other argument names is refused naming
    `LlavaKDDistill.rdist` and the arguments it must take (not the distiller's inner
    mapping alone)."""
    class OtherNames(torch.nn.Module):
        def forward(self, student, teacher):
            return (student - teacher).pow(2).mean()

    with pytest.raises(TypeError, match=r'LlavaKDDistill\.rdist: its loss forward must take '
                       r'\(s_tokens, t_tokens\).*takes no argument'):
        algo(rdist=OtherNames())
