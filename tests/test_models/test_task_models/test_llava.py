"""LlavaModel: construction from configs, loss on response tokens, tensor/predict modes,
freezing, local weights, vocabulary checks."""
import copy

import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmkd.datasets.shapes_vqa import ShapesVQADataset
from mmkd.models.task_models import LlavaModel, check_same_vocabulary, next_token_targets

VISION = dict(model_type='clip_vision_model', hidden_size=32, intermediate_size=64,
              num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
TEXT = dict(model_type='qwen2', hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
            tie_word_embeddings=True)


def vision(model):
    """The vision tower's embeddings/encoder holder (transformers 5 dropped ``vision_model``)."""
    tower = model.hf_model.vision_tower
    return getattr(tower, 'vision_model', tower)


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(vision_config=copy.deepcopy(VISION), text_config=copy.deepcopy(TEXT),
                vision_feature_layer=-1)
    args.update(kw)
    return LlavaModel(**args)


def batch(model, n=4, num_image_tokens=16):
    ds = ShapesVQADataset(split='val', num_images=3, pipeline=[
        dict(type='PackVQAInputs', num_image_tokens=num_image_tokens)])
    return model.data_preprocessor(pseudo_collate([ds[i] for i in range(n)]), False)


def test_loss_is_cross_entropy_on_response_tokens_only():
    model = tiny()
    data = batch(model)
    loss = model(**data, mode='loss')['loss_ce']
    logits = model(**data, mode='tensor')['logits']
    ids, labels = data['inputs']['input_ids'], data['inputs']['labels']
    # independent: a loop over every (sample, position) whose *next* token is a response token
    total, count = 0.0, 0
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1] - 1):
            if labels[b, t + 1] != -100:
                logp = torch.log_softmax(logits[b, t].double(), -1)
                total -= logp[labels[b, t + 1]].item()
                count += 1
    assert count == 2 * ids.shape[0]  # one answer word + </s> per sample
    assert loss.item() == pytest.approx(total / count, rel=1e-5)
    loss.backward()
    assert model.hf_model.multi_modal_projector.linear_1.weight.grad is not None


def test_tensor_mode_and_image_positions():
    model = tiny(tensor_hidden_states=True)
    data = batch(model)
    out = model(**data, mode='tensor')
    ids = data['inputs']['input_ids']
    assert out['logits'].shape == (*ids.shape, model.vocab_size)
    assert torch.equal(out['image_token_mask'], ids == 4)
    assert out['image_token_mask'].sum(1).tolist() == [16] * 4
    assert out['image_features'].shape == (4, 16, 32)
    assert len(out['hidden_states']) == 3  # embeddings + 2 layers
    targets = next_token_targets(data['inputs']['labels'])
    assert torch.equal(targets[:, :-1], data['inputs']['labels'][:, 1:])
    # the preference sequences run through the same path
    rej = model.forward_features(data['inputs'], sequence='rejected')
    assert rej['logits'].shape[:2] == data['inputs']['rejected_input_ids'].shape


def test_predict_matches_an_unpadded_greedy_loop():
    model = tiny(max_new_tokens=3).eval()
    data = batch(model)
    samples = model(**data, mode='predict')
    inputs = data['inputs']
    for row, sample in enumerate(samples):
        assert isinstance(sample.pred_text, str)
        # greedy decoding of this one sample, without padding, by repeated full forwards
        mask = inputs['prompt_attention_mask'][row].bool()
        ids = inputs['prompt_input_ids'][row][mask][None]
        for _ in range(3):
            with torch.no_grad():
                one = dict(input_ids=ids, pixel_values=inputs['pixel_values'][row:row + 1])
                logits = model.forward_features(one)['logits']
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
        new = ids[0, int(mask.sum()):]
        n = min(len(new), len(sample.pred_token_ids))
        assert sample.pred_token_ids[:n].tolist() == new[:n].tolist()
        assert sample.pred_text == model.tokenizer.decode(new.tolist())


def test_trainable_parts_and_bad_configs():
    model = tiny(trainable=('projector', ))
    trainable = {n.split('.')[1] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'multi_modal_projector'}
    with pytest.raises(ValueError, match='trainable'):
        tiny(trainable=('decoder', ))
    with pytest.raises(ValueError, match='vision_config.model_type'):
        tiny(vision_config=dict(VISION, model_type='vit'))
    with pytest.raises(ValueError, match='text_config.model_type'):
        tiny(text_config=dict(TEXT, model_type='gpt2'))
    with pytest.raises(ValueError, match='smaller than the tokenizer'):
        tiny(text_config=dict(TEXT, vocab_size=10))


def test_image_token_count_mismatch_is_explained():
    model = tiny()
    data = batch(model, num_image_tokens=9)
    with pytest.raises(ValueError, match='num_image_tokens=16'):
        model(**data, mode='loss')


def test_siglip_llama_variant_and_token_count():
    model = tiny(vision_config=dict(VISION, model_type='siglip_vision_model'),
                 text_config=dict(TEXT, model_type='llama'))
    assert model.num_image_tokens == 16  # SigLIP has no CLS: all patches ('full')
    data = batch(model)
    assert torch.isfinite(model(**data, mode='loss')['loss_ce'])
    assert tiny(vision_feature_select_strategy='full').num_image_tokens == 17  # CLIP + CLS


def test_vocabulary_mismatch_error_names_both():
    a = tiny()
    b = tiny(text_config=dict(TEXT, vocab_size=40))
    with pytest.raises(ValueError, match=r'vocab_size: teacher 34 vs architecture 40'):
        check_same_vocabulary(a, b)
    c = tiny(tokenizer=dict(type='ChatWordTokenizer', name='other'))
    with pytest.raises(ValueError, match=r"tokenizer: teacher 'shapes-vqa:.*' vs architecture 'other:"):
        check_same_vocabulary(a, c)
    check_same_vocabulary(a, tiny())


def test_pretrained_from_checkpoint_and_hf_folders(tmp_path):
    src = tiny()
    torch.manual_seed(1)
    for p in src.parameters():
        p.data.normal_()
    # an mmkd algorithm checkpoint (student under architecture.)
    path = str(tmp_path / 'ckpt.pth')
    torch.save({'state_dict': {f'architecture.{k}': v for k, v in src.state_dict().items()}}, path)
    dst = tiny(pretrained=path)
    for (k, v), w in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(v, w), k
    # separate HF folders for the towers (stage 1 of LLaVA starts from these)
    src.hf_model.language_model.save_pretrained(str(tmp_path / 'llm'))
    src.hf_model.vision_tower.save_pretrained(str(tmp_path / 'vit'))
    part = tiny(pretrained=dict(language_model=str(tmp_path / 'llm'), vision_tower=str(tmp_path / 'vit')))
    assert torch.equal(part.hf_model.language_model.lm_head.weight,
                       src.hf_model.language_model.lm_head.weight)
    assert torch.equal(vision(part).embeddings.patch_embedding.weight,
                       vision(src).embeddings.patch_embedding.weight)
    assert not torch.equal(part.hf_model.multi_modal_projector.linear_1.weight,
                           src.hf_model.multi_modal_projector.linear_1.weight)
    with pytest.raises(KeyError, match='missing'):
        tiny(pretrained=dict(language_model=str(tmp_path / 'vit')))
    with pytest.raises(FileNotFoundError, match='never downloads'):
        tiny(pretrained='Qwen/Qwen2-0.5B')


@pytest.mark.parametrize('vision_type,feature_layer,frozen_layers', [
    ('clip_vision_model', -2, [1]), ('clip_vision_model', -1, []), ('siglip_vision_model', -2, [1]),
    ('clip_vision_model', 0, [0, 1])])
def test_every_trainable_parameter_gets_a_gradient(vision_type, feature_layer, frozen_layers):
    """Vision layers after vision_feature_layer, the final LayerNorm and SigLIP's pooling
    head never reach the loss: they are frozen, so DDP finds no unused parameter."""
    model = tiny(vision_config=dict(VISION, model_type=vision_type),
                 vision_feature_layer=feature_layer)
    model(**batch(model), mode='loss')['loss_ce'].backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad
    layers = {int(n.split('.')[2]) for n in model.unused_vision_params if n.startswith('encoder.layers.')}
    assert sorted(layers) == frozen_layers
    assert any(n.startswith('post_layernorm.') for n in model.unused_vision_params)
    if vision_type == 'siglip_vision_model':
        assert any(n.startswith('head.') for n in model.unused_vision_params)
    used = vision(model).encoder.layers[0]
    if 0 not in frozen_layers:
        assert all(p.requires_grad and p.grad is not None for p in used.parameters())


@pytest.mark.parametrize('vision_type,feature_layer', [('clip_vision_model', -2),
                                                       ('siglip_vision_model', -1)])
def test_same_logits_and_answers_as_transformers_llava(vision_type, feature_layer):
    """LlavaParts with the weights of transformers' own LlavaForConditionalGeneration
    (whatever its layout on the installed version) gives its logits and its greedy
    answers; the weights load through LlavaParts' key conversion."""
    from transformers import LlavaForConditionalGeneration
    model = tiny(vision_config=dict(VISION, model_type=vision_type),
                 vision_feature_layer=feature_layer, max_new_tokens=4).eval()
    torch.manual_seed(1)
    ref = LlavaForConditionalGeneration(model.config).eval()
    model.hf_model.load_state_dict(ref.state_dict())  # strict
    data = batch(model, num_image_tokens=model.num_image_tokens)['inputs']
    with torch.no_grad():
        ours = model(data, mode='tensor')['logits']
        theirs = ref(input_ids=data['input_ids'], attention_mask=data['attention_mask'],
                     pixel_values=data['pixel_values'], use_cache=False).logits
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    ids, mask = data['prompt_input_ids'], data['prompt_attention_mask']
    expected = ref.generate(input_ids=ids, attention_mask=mask, pixel_values=data['pixel_values'],
                            max_new_tokens=4, do_sample=False, num_beams=1,
                            pad_token_id=model.tokenizer.pad_token_id,
                            eos_token_id=model.tokenizer.eos_token_id)[:, ids.shape[1]:]
    assert torch.equal(model.generate(data), expected)
