"""Real checkpoint layouts load (issue 17): each test writes a checkpoint in the on-disk
layout its library writes (transformers' ``save_pretrained``, open_clip's state dict and
training checkpoint, timm's ``.safetensors`` / ``.pth``), at tiny random sizes, nothing
downloaded, and loads it through mmkd; each layout has a negative case whose error names
the file and the key.

The LLaVA / LLaVA-MoD / LLaVA-KD official layouts are in
tests/test_tools/test_llava_official_converter.py.
"""
import copy
import os
import os.path as osp

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # never reach the hub, whatever happens

import pytest  # noqa: E402
import torch  # noqa: E402

from mmkd.utils.checkpoint import (  # noqa: E402
    CheckpointFileError,
    UnsafeCheckpointError,
    load_teacher_weights,
    safe_torch_load,
)

transformers = pytest.importorskip('transformers')

V_SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
               image_size=32, patch_size=8)
T_SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
               vocab_size=40, max_position_embeddings=16)
LLAVA_VISION = dict(model_type='clip_vision_model', **V_SMALL)
LLAVA_TEXT = dict(model_type='qwen2', hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                  tie_word_embeddings=True)


# ----------------------------------------------------------------------------- helpers
def randomise(model, seed=1):
    """Weights unlike any fresh initialisation, so that a load that did not happen shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def hf_model(kind: str, half: str):
    """A tiny random transformers CLIP / SigLIP: its vision model or the two-tower model."""
    if kind == 'clip':
        vision = transformers.CLIPVisionConfig(**V_SMALL)
        if half == 'vision':
            return randomise(transformers.CLIPVisionModel(vision))
        cfg = transformers.CLIPConfig(text_config=transformers.CLIPTextConfig(**T_SMALL).to_dict(),
                                      vision_config=vision.to_dict(), projection_dim=16)
        return randomise(transformers.CLIPModel(cfg))
    vision = transformers.SiglipVisionConfig(**V_SMALL)
    if half == 'vision':
        return randomise(transformers.SiglipVisionModel(vision))
    cfg = transformers.SiglipConfig(text_config=transformers.SiglipTextConfig(**T_SMALL).to_dict(),
                                    vision_config=vision.to_dict())
    return randomise(transformers.SiglipModel(cfg))


def without_level(state):
    """Tensor names without CLIP / SigLIP's ``vision_model.`` level, which the vision
    models have up to transformers 4.x and not from 5.0 on: version-independent names."""
    return {k[len('vision_model.'):] if k.startswith('vision_model.') else k: v
            for k, v in state.items()}


def vision_state(model):
    """The vision tower's tensors of either half (a vision model or the two-tower model),
    named without the ``vision_model.`` level."""
    if hasattr(model, 'text_model'):  # the two-tower model: its vision half
        model = model.vision_model
    return without_level(dict(model.state_dict()))


def tensors_of_file(path):
    from safetensors.torch import load_file
    return load_file(path) if path.endswith('.safetensors') else torch.load(path, weights_only=True)


def rewrite_weights(folder, edit, fmt='safetensors'):
    """Rewrite the folder's weights as ``edit(state)``, in safetensors or torch form."""
    for name in ('model.safetensors', 'pytorch_model.bin'):
        path = osp.join(folder, name)
        if osp.exists(path):
            state = dict(tensors_of_file(path))
            os.remove(path)
    state = edit(state)
    if fmt == 'safetensors':
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()},
                  osp.join(folder, 'model.safetensors'), metadata={'format': 'pt'})
    else:
        torch.save(state, osp.join(folder, 'pytorch_model.bin'))
    return folder


def tiny_llava(**kw):
    from mmkd.models.task_models import LlavaModel
    torch.manual_seed(0)
    args = dict(vision_config=copy.deepcopy(LLAVA_VISION), text_config=copy.deepcopy(LLAVA_TEXT),
                vision_feature_layer=-1)
    args.update(kw)
    return LlavaModel(**args)


def pixels(n=2, size=32):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(3))


# ----------------------------------------------------------------------------- HF vision
@pytest.mark.parametrize('kind', ['clip', 'siglip'])
@pytest.mark.parametrize('half', ['vision', 'full'])
def test_hf_vision_folders_load_into_hfvisionmodel(tmp_path, kind, half):
    """save_pretrained folders of CLIPVisionModel / SiglipVisionModel and of the full
    CLIPModel / SiglipModel: HFVisionModel keeps exactly the vision tower's tensors and
    computes what the source vision model computes."""
    from mmkd.models.task_models.hf_vision import HFVisionModel
    src = hf_model(kind, half).eval()
    src.save_pretrained(str(tmp_path))
    assert osp.isfile(tmp_path / 'model.safetensors')
    model = HFVisionModel(pretrained_path=str(tmp_path))
    expected = vision_state(src)
    got = without_level(model.model.state_dict())
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert torch.equal(got[k], v), k
    tower = src if half == 'vision' else src.vision_model
    x = pixels()
    with torch.no_grad():
        ref = tower(pixel_values=x).last_hidden_state
        out = model.extract(x)['tokens']
    assert torch.allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize('fmt', ['safetensors', 'bin'])
def test_old_clip_checkpoint_with_position_ids_loads(tmp_path, fmt):
    """An older CLIP-L/336-style full checkpoint holds ``*.embeddings.position_ids``, which
    current transformers no longer saves: HFVisionModel and LlavaModel's vision tower
    load it (the key is dropped, the ids are recomputed)."""
    from mmkd.models.task_models.hf_vision import HFVisionModel
    src = hf_model('clip', 'full').eval()
    src.save_pretrained(str(tmp_path))
    positions = (V_SMALL['image_size'] // V_SMALL['patch_size']) ** 2 + 1

    def add_position_ids(state):
        state['vision_model.embeddings.position_ids'] = torch.arange(positions)[None]
        state['text_model.embeddings.position_ids'] = torch.arange(16)[None]
        return state

    rewrite_weights(str(tmp_path), add_position_ids, fmt)
    name = 'model.safetensors' if fmt == 'safetensors' else 'pytorch_model.bin'
    assert 'vision_model.embeddings.position_ids' in tensors_of_file(str(tmp_path / name))
    model = HFVisionModel(pretrained_path=str(tmp_path))
    with torch.no_grad():
        ref = src.vision_model(pixel_values=pixels()).last_hidden_state
        assert torch.allclose(model.extract(pixels())['tokens'], ref, atol=1e-6)
    llava = tiny_llava(pretrained=dict(vision_tower=str(tmp_path)))
    got = without_level(llava.hf_model.vision_tower.state_dict())
    for k, v in vision_state(src).items():
        assert torch.equal(got[k], v), k


def test_hf_vision_folder_missing_key_and_wrong_layout_are_named(tmp_path):
    from mmkd.models.task_models.hf_vision import HFVisionModel
    src = hf_model('siglip', 'vision')
    folder = str(tmp_path / 'siglip')
    src.save_pretrained(folder)
    # the file's name of the tensor: with the vision_model. level when transformers 4.x wrote it
    rewrite_weights(folder, lambda s: {k: v for k, v in s.items()
                                       if k not in ('vision_model.post_layernorm.weight',
                                                    'post_layernorm.weight')})
    # from_pretrained would initialise the missing tensor at random with a warning only
    with pytest.raises(KeyError, match=r"'(vision_model\.)?post_layernorm\.weight'") as err:
        HFVisionModel(pretrained_path=folder)
    assert 'model.safetensors' in str(err.value) and folder in str(err.value)
    # a LLaVA checkpoint's tower names (model.vision_tower.vision_tower.*): another layout
    wrong = str(tmp_path / 'llava_tower')
    hf_model('clip', 'vision').save_pretrained(wrong)
    rewrite_weights(wrong, lambda s: {f'model.vision_tower.vision_tower.{k}': v
                                      for k, v in s.items()}, 'bin')
    with pytest.raises(KeyError, match='llava_official_to_mmkd') as err:
        HFVisionModel(pretrained_path=wrong)
    assert 'pytorch_model.bin' in str(err.value)
    assert "embeddings.patch_embedding.weight'" in str(err.value)  # a missing tensor, named


@pytest.mark.parametrize('kind', ['clip', 'siglip'])
def test_llava_vision_tower_from_full_two_tower_folders(tmp_path, kind):
    """LlavaModel(pretrained=dict(vision_tower=<CLIPModel / SiglipModel folder>)) keeps the
    vision half; a folder without any vision tensors fails naming the file."""
    src = hf_model(kind, 'full')
    src.save_pretrained(str(tmp_path / 'full'))
    llava = tiny_llava(vision_config=dict(LLAVA_VISION, model_type=f'{kind}_vision_model'),
                       pretrained=dict(vision_tower=str(tmp_path / 'full')))
    got = without_level(llava.hf_model.vision_tower.state_dict())
    expected = vision_state(src)
    assert set(expected) <= set(got)
    for k, v in expected.items():
        assert torch.equal(got[k], v), k
    lm = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**{
        k: v for k, v in LLAVA_TEXT.items() if k != 'model_type'}, vocab_size=40))
    lm.save_pretrained(str(tmp_path / 'lm'))
    with pytest.raises(KeyError, match=r'no vision_model\.\* tensors') as err:
        tiny_llava(pretrained=dict(vision_tower=str(tmp_path / 'lm')))
    assert str(tmp_path / 'lm') in str(err.value)


# ----------------------------------------------------------------------------- Qwen2 tied
def qwen2_folder(folder, tie=True, vocab=40):
    cfg = {k: v for k, v in LLAVA_TEXT.items() if k != 'model_type'}
    cfg.update(tie_word_embeddings=tie, vocab_size=vocab)
    lm = randomise(transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**cfg)), seed=5).eval()
    lm.save_pretrained(str(folder))
    return lm


def test_qwen2_tied_causal_lm_folder_loads_as_llava_language_model(tmp_path):
    """A Qwen2 / Qwen1.5 (both ``Qwen2ForCausalLM``) folder saved with tied embeddings
    has no lm_head.weight; as LlavaModel's language model it loads, tied, and gives the
    source's logits."""
    from mmkd.models.task_models.llava import causal_lm_view
    src = qwen2_folder(tmp_path)
    saved = tensors_of_file(str(tmp_path / 'model.safetensors'))
    assert 'lm_head.weight' not in saved and 'model.embed_tokens.weight' in saved
    llava = tiny_llava(text_config=dict(LLAVA_TEXT, vocab_size=40),
                       pretrained=dict(language_model=str(tmp_path))).eval()
    view = causal_lm_view(llava.hf_model)
    assert view.lm_head.weight is view.model.embed_tokens.weight
    assert torch.equal(view.lm_head.weight, src.lm_head.weight)
    ids = torch.tensor([[1, 5, 7, 9, 2], [3, 3, 8, 1, 0]])
    with torch.no_grad():
        ref = src(input_ids=ids).logits
        out = llava.hf_model(input_ids=ids).logits
    assert torch.allclose(out, ref, atol=1e-5)


def test_qwen2_folder_untied_config_or_missing_key_is_named(tmp_path):
    qwen2_folder(tmp_path)
    # the model is configured untied, the file has no lm_head: named with the fix
    with pytest.raises(KeyError, match=r"lm_head\.weight.*tie_word_embeddings=True") as err:
        tiny_llava(text_config=dict(LLAVA_TEXT, vocab_size=40, tie_word_embeddings=False),
                   pretrained=dict(language_model=str(tmp_path)))
    assert str(tmp_path) in str(err.value)
    rewrite_weights(str(tmp_path), lambda s: {k: v for k, v in s.items() if k != 'model.norm.weight'})
    with pytest.raises(KeyError, match=r"model\.norm\.weight") as err:
        tiny_llava(text_config=dict(LLAVA_TEXT, vocab_size=40),
                   pretrained=dict(language_model=str(tmp_path)))
    assert str(tmp_path) in str(err.value)


def test_llava_checkpoint_of_the_other_transformers_layout_loads(tmp_path):
    """transformers 4.51 and 4.52+ name a LLaVA's tensors differently; a whole-LLaVA
    checkpoint of either layout loads (pretrained=...)."""
    from mmkd.models.task_models.llava import LLAVA_LAYOUTS, llava_part_prefixes
    src = randomise(tiny_llava(), seed=7)
    mine = llava_part_prefixes(src.hf_model)
    other = next(p for p in LLAVA_LAYOUTS.values() if p != mine)
    state = {}
    for k, v in src.hf_model.state_dict().items():
        part = max((name for name, prefix in mine.items() if k.startswith(prefix)),
                   key=lambda name: len(mine[name]))
        state[other[part] + k[len(mine[part]):]] = v
    assert set(state) != set(src.hf_model.state_dict())
    torch.save(state, tmp_path / 'other_layout.pth')
    dst = tiny_llava(pretrained=str(tmp_path / 'other_layout.pth'))
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    # an mmkd checkpoint of the other layout, re-keyed for strict loaders (teacher_ckpt)
    remapped = src.remap_state_dict({f'hf_model.{k}': v for k, v in state.items()})
    assert set(remapped) == set(src.state_dict())
    assert all(torch.equal(remapped[k], v) for k, v in src.state_dict().items())


# ----------------------------------------------------------------------------- open_clip
OPEN_CLIP_TINY = dict(embed_dim=16,
                      vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16),
                      text_cfg=dict(context_length=8, vocab_size=40, width=32, heads=2, layers=2))


@pytest.fixture(scope='module')
def open_clip_name(tmp_path_factory):
    """A tiny model registered under an open_clip model name (open_clip's add_model_config)."""
    open_clip = pytest.importorskip('open_clip')
    import json
    name = 'mmkd-test-tiny-vit'
    folder = tmp_path_factory.mktemp('open_clip_cfg')
    with open(folder / f'{name}.json', 'w') as f:
        json.dump(OPEN_CLIP_TINY, f)
    open_clip.add_model_config(str(folder / f'{name}.json'))
    assert name in open_clip.list_models()
    return name


def open_clip_file(model_name, folder, form):
    import open_clip
    torch.manual_seed(0)
    src = randomise(open_clip.create_model(model_name, pretrained=None), seed=11).eval()
    state = src.state_dict()
    if form == 'safetensors':
        from safetensors.torch import save_file
        path = folder / 'open_clip_model.safetensors'
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif form == 'training_checkpoint':  # open_clip's training script (DDP: module.)
        path = folder / 'epoch_3.pt'
        opt = torch.optim.AdamW(src.parameters(), lr=1e-3)
        torch.save({'epoch': 3, 'name': 'tiny-run', 'state_dict': {f'module.{k}': v
                                                                  for k, v in state.items()},
                    'optimizer': opt.state_dict()}, path)
    else:  # 'bin' / 'pt': a plain state dict, as the hub's open_clip_pytorch_model.bin
        path = folder / f'open_clip_pytorch_model.{form}'
        torch.save(state, path)
    return src, str(path)


@pytest.mark.parametrize('form', ['bin', 'pt', 'safetensors', 'training_checkpoint'])
def test_open_clip_pretrained_local_file(tmp_path, open_clip_name, form):
    from mmkd.models.task_models import OpenCLIPModel
    src, path = open_clip_file(open_clip_name, tmp_path, form)
    model = OpenCLIPModel(model_name=open_clip_name, pretrained=path).eval()
    got = model.clip.state_dict()
    for k, v in src.state_dict().items():
        assert torch.equal(got[k], v), k
    img = pixels()
    text = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model.extract(dict(img=img, text=text))
        assert torch.allclose(out['image_features'], src.encode_image(img), atol=1e-6)
        assert torch.allclose(out['text_features'], src.encode_text(text), atol=1e-6)


def test_open_clip_towers_pretrained_local_file(tmp_path, open_clip_name):
    from mmkd.models.task_models import OpenCLIPImageEncoder, OpenCLIPTextEncoder
    src, path = open_clip_file(open_clip_name, tmp_path, 'training_checkpoint')
    image = OpenCLIPImageEncoder(model_name=open_clip_name, pretrained=path).eval()
    text = OpenCLIPTextEncoder(model_name=open_clip_name, pretrained=path).eval()
    img = pixels()
    ids = torch.randint(0, 40, (2, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(image.extract(img), src.encode_image(img), atol=1e-6)
        assert torch.allclose(text.extract(ids), src.encode_text(ids), atol=1e-6)


def test_open_clip_wrong_or_absent_file_is_named(tmp_path, open_clip_name):
    from mmkd.models.task_models import OpenCLIPModel
    _, path = open_clip_file(open_clip_name, tmp_path, 'bin')
    state = torch.load(path, weights_only=True)
    del state['visual.proj']
    torch.save(state, path)
    with pytest.raises(RuntimeError, match=r"visual\.proj") as err:
        OpenCLIPModel(model_name=open_clip_name, pretrained=path)
    assert f'pretrained={path!r}' in str(err.value)
    absent = str(tmp_path / 'nope.bin')
    with pytest.raises(FileNotFoundError, match='pretrained=.*nope.bin.*does not exist'):
        OpenCLIPModel(model_name=open_clip_name, pretrained=absent)


# ----------------------------------------------------------------------------- timm
TIMM_VIT = dict(model_name='vit_tiny_patch16_224', pretrained=False, num_classes=4, img_size=16,
                patch_size=4, embed_dim=32, depth=2, num_heads=2)


def timm_teacher():
    pytest.importorskip('timm')
    from mmkd.registry import MODELS
    from mmkd.utils import register_all_modules
    register_all_modules()
    return MODELS.build(dict(_scope_='mmpretrain', type='TimmClassifier', **TIMM_VIT))


def timm_file(folder, form):
    import timm
    src = randomise(timm.create_model(**TIMM_VIT), seed=13).eval()
    state = src.state_dict()
    if form == 'safetensors':  # the hub's model.safetensors (timm's save_for_hf)
        from safetensors.torch import save_file
        path = folder / 'model.safetensors'
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif form == 'pth':  # torch.save(model.state_dict())
        path = folder / 'vit_tiny.pth'
        torch.save(state, path)
    else:  # timm's train.py CheckpointSaver: epoch, arch, state_dict, optimizer, version
        path = folder / 'checkpoint-3.pth.tar'
        opt = torch.optim.SGD(src.parameters(), lr=0.1, momentum=0.9)
        torch.save({'epoch': 3, 'arch': TIMM_VIT['model_name'], 'state_dict': state,
                    'optimizer': opt.state_dict(), 'version': 2, 'metric': 0.5}, path)
    return src, str(path)


@pytest.mark.parametrize('form', ['safetensors', 'pth', 'train_checkpoint'])
def test_timm_teacher_ckpt_reads_timm_files(tmp_path, form):
    src, path = timm_file(tmp_path, form)
    teacher = timm_teacher()
    load_teacher_weights(teacher, path, key='teacher_ckpt')
    got = teacher.model.state_dict()
    for k, v in src.state_dict().items():
        assert torch.equal(got[k], v), k
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(teacher.model.eval()(x), src(x), atol=1e-6)


def test_teacher_ckpt_safetensors_through_the_algorithm(tmp_path):
    """``teacher_ckpt='model.safetensors'`` in a SingleTeacherDistill config."""
    from mmkd.registry import MODELS
    from mmkd.utils import register_all_modules
    register_all_modules()
    src, path = timm_file(tmp_path, 'safetensors')
    student = dict(_scope_='mmpretrain', type='TimmClassifier', **dict(TIMM_VIT, depth=1))
    model = MODELS.build(dict(
        _scope_='mmkd', type='SingleTeacherDistill', architecture=student,
        teacher=dict(_scope_='mmpretrain', type='TimmClassifier', **TIMM_VIT), teacher_ckpt=path,
        distiller=dict(type='ConfigurableDistiller',
                       student_recorders=dict(logits=dict(type='ModuleOutputs', source='model.head')),
                       teacher_recorders=dict(logits=dict(type='ModuleOutputs', source='model.head')),
                       distill_losses=dict(loss_kd=dict(type='KLDivergence', tau=1.0)),
                       loss_forward_mappings=dict(loss_kd=dict(
                           preds_S=dict(from_student=True, recorder='logits'),
                           preds_T=dict(from_student=False, recorder='logits'))))))
    got = model.teacher.model.state_dict()
    for k, v in src.state_dict().items():
        assert torch.equal(got[k], v), k


def test_timm_files_negative_cases_are_named(tmp_path):
    src, path = timm_file(tmp_path, 'safetensors')
    from safetensors.torch import load_file, save_file
    state = load_file(path)
    del state['head.weight']
    save_file(state, path)
    with pytest.raises(RuntimeError, match=r"teacher_ckpt=.*model\.safetensors.*head\.weight"):
        load_teacher_weights(timm_teacher(), path)
    # a truncated safetensors file (an interrupted copy)
    with open(path, 'rb') as f:
        data = f.read()
    cut = str(tmp_path / 'cut.safetensors')
    with open(cut, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(CheckpointFileError, match=r"teacher_ckpt=.*cut\.safetensors.*truncated"):
        load_teacher_weights(timm_teacher(), cut)
    # timm's checkpoint with its argparse args: a pickled object, refused with the opt-in
    import argparse
    with_args = str(tmp_path / 'with_args.pth.tar')
    torch.save({'epoch': 1, 'arch': 'vit', 'state_dict': src.state_dict(),
                'args': argparse.Namespace(lr=0.1)}, with_args)
    with pytest.raises(UnsafeCheckpointError, match=r'with_args\.pth\.tar.*teacher_ckpt_trusted'):
        load_teacher_weights(timm_teacher(), with_args)


def test_safe_loader_reads_safetensors_by_content_and_explains_a_missing_package(
        tmp_path, monkeypatch):
    from safetensors.torch import save_file
    state = {'a': torch.arange(4.0), 'b': torch.ones(2, 3)}
    named_oddly = str(tmp_path / 'weights.pth')  # a safetensors file under a .pth name
    save_file(state, named_oddly)
    loaded = safe_torch_load(named_oddly)
    assert set(loaded) == {'a', 'b'} and torch.equal(loaded['b'], state['b'])
    empty = str(tmp_path / 'empty.safetensors')
    open(empty, 'wb').close()
    with pytest.raises(CheckpointFileError, match=r'empty\.safetensors.*empty'):
        safe_torch_load(empty, key='teacher_ckpt')
    good = str(tmp_path / 'good.safetensors')
    save_file(state, good)
    import sys
    monkeypatch.setitem(sys.modules, 'safetensors.torch', None)  # as if not installed
    with pytest.raises(ImportError, match=r"teacher_ckpt=.*good\.safetensors.*pip install safetensors"):
        safe_torch_load(good, key='teacher_ckpt')
