"""tools/model_converters/llava_official_to_mmkd.py: official LLaVA (haotian-liu/LLaVA),
LLaVA-MoD (MoE-LLaVA layout) and LLaVA-KD (TinyLLaVA Factory layout) checkpoints, written
here in their on-disk form (config.json + safetensors, sharded, or pytorch_model.bin) from
a tiny mmkd LlavaModel, convert into a checkpoint that a fresh LlavaModel loads strictly
(as ``teacher_ckpt``) and that gives the same forward; broken inputs fail naming the file
and the key."""
import copy
import json
import os
import os.path as osp
import sys

os.environ.setdefault('HF_HUB_OFFLINE', '1')

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip('transformers')
from mmengine.dataset import pseudo_collate  # noqa: E402

from mmkd.utils.checkpoint import load_teacher_weights  # noqa: E402

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                            'tools', 'model_converters'))
from llava_official_to_mmkd import main  # noqa: E402

VISION = dict(model_type='clip_vision_model', hidden_size=32, intermediate_size=64,
              num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
TEXT = dict(model_type='qwen2', hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
            tie_word_embeddings=True)


def tiny(seed=0, **kw):
    from mmkd.models.task_models import LlavaModel
    torch.manual_seed(seed)
    args = dict(vision_config=copy.deepcopy(VISION), text_config=copy.deepcopy(TEXT),
                vision_feature_layer=-1)
    args.update(kw)
    return LlavaModel(**args)


def randomised(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def parts_of(model):
    """(vision, projector, causal LM) tensors of an mmkd LlavaModel, each named as in its
    own transformers model, read off the modules (independently of the converter)."""
    hf = model.hf_model
    vision = dict(hf.vision_tower.state_dict())
    projector = dict(hf.multi_modal_projector.state_dict())
    lm = hf.language_model
    if hasattr(lm, 'lm_head'):  # transformers <= 4.51: the causal LM itself
        causal = dict(lm.state_dict())
    else:  # later: the decoder, and lm_head on the LLaVA
        causal = {f'model.{k}': v for k, v in lm.state_dict().items()}
        causal['lm_head.weight'] = hf.lm_head.weight
    return vision, projector, causal


def official_state(model, layout, tied=True, position_ids=True):
    """The tensors as the official code saves them (names from its llava_arch / TinyLLaVA)."""
    vision, projector, causal = parts_of(model)
    # the official code bases save with transformers 4.x: the tower's vision_model. level
    # (which transformers 5's vision models lack) is in their files
    vision = {k if k.startswith('vision_model.') else f'vision_model.{k}': v
              for k, v in vision.items()}
    if position_ids:  # older transformers saved CLIP's position ids
        tower = model.hf_model.vision_tower
        n = getattr(tower, 'vision_model', tower).embeddings.position_embedding.weight.shape[0]
        vision['vision_model.embeddings.position_ids'] = torch.arange(n)[None]
    v_prefix, p_prefix, dec, head = dict(
        llava=('model.vision_tower.vision_tower.', 'model.mm_projector.', 'model.', 'lm_head.'),
        moe=('model.image_tower.image_tower.', 'model.mm_projector.image_spatial_proj.', 'model.',
             'lm_head.'),
        tinyllava=('vision_tower._vision_tower.', 'connector._connector.', 'language_model.model.',
                   'language_model.lm_head.'))[layout]
    out = {v_prefix + k: v for k, v in vision.items()}
    for k, v in projector.items():  # Sequential(Linear, GELU, Linear): indices 0 and 2
        out[p_prefix + k.replace('linear_1.', '0.').replace('linear_2.', '2.')] = v
    for k, v in causal.items():
        if k == 'lm_head.weight':
            if not tied:
                out[head + 'weight'] = v.clone()
        else:
            out[dec + k[len('model.'):]] = v
    return {k: v.contiguous() for k, v in out.items()}


def official_config(layout, tied=True, **extra):
    text = dict(hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
                max_position_embeddings=128, rope_theta=10000.0, tie_word_embeddings=tied,
                vocab_size=34)
    if layout == 'tinyllava':  # LLaVA-KD's config.json (TinyLLaVA Factory)
        cfg = dict(architectures=['TinyLlavaForConditionalGeneration'], model_type='tinyllava',
                   connector_type='mlp2x_gelu', vision_feature_layer=-1,
                   vision_feature_select_strategy='patch', hidden_size=32,
                   text_config=dict(text, model_type='qwen2', architectures=['Qwen2ForCausalLM']),
                   vision_config=dict(model_type='clip_vision_model', hidden_size=32,
                                      num_attention_heads=2, image_size=32, patch_size=8))
    else:
        cfg = dict(text, architectures=['LlavaQwen2ForCausalLM'], model_type='llava_qwen2',
                   mm_vision_select_layer=-1, mm_vision_select_feature='patch', mm_hidden_size=32)
        if layout == 'llava':
            cfg.update(mm_projector_type='mlp2x_gelu', mm_vision_tower='openai/clip-vit-large-patch14-336')
        else:
            cfg.update(image_projector_type='mlp2x_gelu', mm_image_tower='openai/clip-vit-large-patch14-336')
    cfg.update(extra)
    return cfg


def write_folder(folder, state, config, form):
    """config.json + weights: one safetensors file, two shards with an index (what HF's
    Trainer writes for large models), or pytorch_model.bin."""
    from safetensors.torch import save_file
    os.makedirs(folder, exist_ok=True)
    if config is not None:
        with open(osp.join(folder, 'config.json'), 'w') as f:
            json.dump(config, f)
    if form == 'safetensors':
        save_file(state, osp.join(folder, 'model.safetensors'), metadata={'format': 'pt'})
    elif form == 'sharded':
        keys = sorted(state)
        shards = {'model-00001-of-00002.safetensors': keys[::2],
                  'model-00002-of-00002.safetensors': keys[1::2]}
        for name, ks in shards.items():
            save_file({k: state[k] for k in ks}, osp.join(folder, name), metadata={'format': 'pt'})
        with open(osp.join(folder, 'model.safetensors.index.json'), 'w') as f:
            json.dump(dict(metadata=dict(total_size=0),
                           weight_map={k: n for n, ks in shards.items() for k in ks}), f)
    else:
        torch.save(state, osp.join(folder, 'pytorch_model.bin'))
    return str(folder)


def write_config(path, **model_kw):
    args = dict(type='LlavaModel', _scope_='mmkd', vision_config=VISION, text_config=TEXT,
                vision_feature_layer=-1)
    args.update(model_kw)
    with open(path, 'w') as f:
        f.write(f'model = {args!r}\n')
    return str(path)


def logits(model):
    from mmkd.datasets.shapes_vqa import ShapesVQADataset
    ds = ShapesVQADataset(split='val', num_images=2, pipeline=[
        dict(type='PackVQAInputs', num_image_tokens=model.num_image_tokens)])
    data = model.data_preprocessor(pseudo_collate([ds[i] for i in range(2)]), False)
    with torch.no_grad():
        return model(**data, mode='tensor')['logits']


def convert_and_check(tmp_path, ref, folder, extra_args=()):
    out = str(tmp_path / 'converted.pth')
    main([folder, out, *extra_args])
    dst = tiny(seed=5, vision_config=ref_vision(ref)).eval()
    assert not torch.equal(dst.hf_model.multi_modal_projector.linear_1.weight,
                           ref.hf_model.multi_modal_projector.linear_1.weight)
    load_teacher_weights(dst, out, key='teacher_ckpt', strict=True)  # what teacher_ckpt does
    for k, v in ref.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    assert torch.allclose(logits(dst), logits(ref), atol=1e-6, rtol=0)
    return out


def ref_vision(model):
    return dict(VISION, model_type=model.config.vision_config.model_type)


@pytest.mark.parametrize('layout,form', [('llava', 'sharded'), ('moe', 'safetensors'),
                                         ('tinyllava', 'bin')])
def test_official_layouts_convert_and_load_strictly(tmp_path, layout, form):
    vision = dict(VISION, model_type='siglip_vision_model') if layout == 'tinyllava' else VISION
    tied = layout != 'moe'  # one untied case: lm_head.weight saved on its own
    text = dict(TEXT, tie_word_embeddings=tied)
    ref = randomised(tiny(vision_config=vision, text_config=text))
    state = official_state(ref, layout, tied=tied, position_ids=layout != 'tinyllava')
    assert any(k.endswith('lm_head.weight') for k in state) is not tied
    cfg = official_config(layout, tied=tied)
    if layout == 'tinyllava':
        cfg['vision_config']['model_type'] = 'siglip_vision_model'
    folder = write_folder(tmp_path / 'official', state, cfg, form)
    cfg_file = write_config(tmp_path / 'cfg.py', vision_config=vision, text_config=text)
    out = str(tmp_path / 'converted.pth')
    main([folder, out, '--config', cfg_file])
    dst = tiny(seed=5, vision_config=vision, text_config=text).eval()
    load_teacher_weights(dst, out, key='teacher_ckpt', strict=True)
    for k, v in ref.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    assert torch.allclose(logits(dst), logits(ref), atol=1e-6, rtol=0)
    # the same file as LlavaModel(pretrained=...), and the suggested arguments in its meta
    again = tiny(seed=6, vision_config=vision, text_config=text, pretrained=out).eval()
    assert torch.allclose(logits(again), logits(ref), atol=1e-6, rtol=0)
    meta = torch.load(out, weights_only=True)['meta']
    suggested = meta['llava_config']
    assert suggested['vision_config']['model_type'] == vision['model_type']
    for name in ('hidden_size', 'num_hidden_layers', 'intermediate_size', 'image_size', 'patch_size'):
        assert suggested['vision_config'][name] == VISION[name], name
    for name in ('hidden_size', 'num_hidden_layers', 'intermediate_size', 'num_attention_heads',
                 'num_key_value_heads'):
        assert suggested['text_config'][name] == TEXT[name], name
    assert suggested['text_config']['tie_word_embeddings'] is tied
    assert suggested['vision_feature_layer'] == -1
    assert suggested['vision_feature_select_strategy'] == 'default'  # official 'patch'


def test_missing_projector_key_names_the_key_and_the_file(tmp_path):
    ref = randomised(tiny())
    state = official_state(ref, 'llava')
    del state['model.mm_projector.2.bias']
    folder = write_folder(tmp_path / 'official', state, official_config('llava'), 'safetensors')
    with pytest.raises(SystemExit, match=r"'model\.mm_projector\.2\.bias' is missing") as err:
        main([folder, str(tmp_path / 'out.pth')])
    assert folder in str(err.value) and 'model.safetensors' in str(err.value)
    assert not osp.exists(tmp_path / 'out.pth')


def test_wrong_layouts_and_unsupported_checkpoints_are_refused(tmp_path):
    import transformers
    ref = randomised(tiny())
    # a plain CLIP vision folder is no LLaVA checkpoint
    clip = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**{
        k: v for k, v in VISION.items() if k != 'model_type'}))
    clip.save_pretrained(str(tmp_path / 'clip'))
    with pytest.raises(SystemExit, match='not an official LLaVA'):
        main([str(tmp_path / 'clip'), str(tmp_path / 'o.pth')])
    # a linear projector (LLaVA-1's), which transformers' LLaVA projector cannot hold
    folder = write_folder(tmp_path / 'linear', official_state(ref, 'llava'),
                          official_config('llava', mm_projector_type='linear'), 'safetensors')
    with pytest.raises(SystemExit, match=r"mm_projector_type='linear'.*mlp2x_gelu"):
        main([folder, str(tmp_path / 'o.pth')])
    # a sparse (MoE) LLaVA-MoD student: expert tensors are named
    state = official_state(ref, 'moe')
    state['model.layers.1.mlp.deepspeed_moe.experts.deepspeed_experts.0.up_proj.weight'] = \
        torch.zeros(64, 32)
    folder = write_folder(tmp_path / 'moe', state, official_config('moe'), 'safetensors')
    with pytest.raises(SystemExit, match=r'deepspeed_experts.*mixture-of-experts'):
        main([folder, str(tmp_path / 'o.pth')])
    # untied language model whose lm_head is absent
    state = official_state(ref, 'llava', tied=True)
    folder = write_folder(tmp_path / 'untied', state, official_config('llava', tied=False),
                          'safetensors')
    with pytest.raises(SystemExit, match=r"'lm_head\.weight' is missing.*tie_word_embeddings"):
        main([folder, str(tmp_path / 'o.pth')])
    # --config of other sizes: named, with the keys
    folder = write_folder(tmp_path / 'ok', official_state(ref, 'llava'), official_config('llava'),
                          'safetensors')
    wide = write_config(tmp_path / 'wide.py', text_config=dict(TEXT, intermediate_size=96))
    with pytest.raises(SystemExit, match=r'does not fit model of --config.*mlp\.gate_proj\.weight'):
        main([folder, str(tmp_path / 'o.pth'), '--config', wide])


def test_vision_tower_from_its_own_folder_when_absent(tmp_path):
    """LLaVA checkpoints saved without the (frozen) vision tower take it from the CLIP
    folder given by --vision-tower (here the full CLIPModel folder)."""
    import transformers
    ref = randomised(tiny())
    state = {k: v for k, v in official_state(ref, 'llava').items()
             if not k.startswith('model.vision_tower.')}
    folder = write_folder(tmp_path / 'no_tower', state, official_config('llava'), 'safetensors')
    with pytest.raises(SystemExit, match=r"no vision tower tensors.*clip-vit-large-patch14-336.*"
                                         r"--vision-tower"):
        main([folder, str(tmp_path / 'o.pth')])
    v_cfg = transformers.CLIPVisionConfig(**{k: v for k, v in VISION.items() if k != 'model_type'})
    t_cfg = transformers.CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, vocab_size=40)
    full = transformers.CLIPModel(transformers.CLIPConfig(text_config=t_cfg.to_dict(),
                                                          vision_config=v_cfg.to_dict()))
    full.vision_model.load_state_dict({  # the tower's names with or without vision_model.
        k[len('vision_model.'):] if k.startswith('vision_model.') else k: v
        for k, v in ref.hf_model.vision_tower.state_dict().items()})
    full.save_pretrained(str(tmp_path / 'clip_full'))
    convert_and_check(tmp_path, ref, folder, ['--vision-tower', str(tmp_path / 'clip_full')])


def test_llava_stage1_projector_file_loads_as_the_projector(tmp_path):
    """LLaVA's stage-1 output ``mm_projector.bin`` (``model.mm_projector.{0,2}.*``) is
    LlavaModel(pretrained=dict(projector=...)); a missing tensor is named with the file."""
    ref = randomised(tiny())
    state = {k: v for k, v in official_state(ref, 'llava').items()
             if k.startswith('model.mm_projector.')}
    assert len(state) == 4
    path = str(tmp_path / 'mm_projector.bin')
    torch.save(state, path)
    dst = tiny(seed=5, pretrained=dict(projector=path))
    for k, v in ref.hf_model.multi_modal_projector.state_dict().items():
        assert torch.equal(dst.hf_model.multi_modal_projector.state_dict()[k], v), k
    del state['model.mm_projector.0.bias']
    torch.save(state, path)
    with pytest.raises(KeyError, match=r"mm_projector\.bin.*missing \['linear_1\.bias'\]"):
        tiny(pretrained=dict(projector=path))
