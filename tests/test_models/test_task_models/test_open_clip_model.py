"""OpenCLIPModel: an open_clip CLIP as an mmengine BaseModel, and its distillation."""
import pytest
import torch

from mmkd.models.preprocessors import ImageTextDataPreprocessor
from mmkd.models.task_models import OpenCLIPModel

CFG = dict(embed_dim=16,
           vision_cfg=dict(image_size=16, patch_size=8, width=32, layers=2, head_width=16),
           text_cfg=dict(context_length=8, vocab_size=40, width=32, heads=2, layers=2))
WORDS = ['a', 'handwritten', 'digit', 'zero', 'one', 'two', 'red', 'star']
TOKENIZER = dict(type='WordTokenizer', vocab=WORDS, context_length=8)
ZERO_SHOT = dict(classes=['zero', 'one', 'two'], templates=['a handwritten digit {}', 'digit {}'])


def batch(n=4, seed=0):
    from mmkd.text.caption_tokenizers import build_tokenizer
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(n, 3, 16, 16, generator=g)
    text = build_tokenizer(TOKENIZER)(['a handwritten digit zero', 'a red star', 'digit one',
                                       'a handwritten digit two'][:n])
    return dict(img=img, text=text)


def model(**kwargs):
    torch.manual_seed(0)
    return OpenCLIPModel(model_cfg=CFG, tokenizer=TOKENIZER, zero_shot=ZERO_SHOT, **kwargs)


def test_modes():
    m = model()
    inputs = batch()
    feats = m(inputs, mode='tensor')
    assert feats['image_features'].shape == (4, 16) and feats['text_features'].shape == (4, 16)
    assert feats['logit_scale'].item() == pytest.approx(1 / 0.07, rel=1e-5)
    losses = m(inputs, mode='loss')
    assert set(losses) == {'loss_contrastive'} and losses['loss_contrastive'].requires_grad
    m.eval()
    preds = m(inputs, mode='predict')
    assert len(preds) == 4
    assert torch.allclose(preds[0].img_embed.norm(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(preds[0].text_embed.norm(), torch.tensor(1.0), atol=1e-5)
    assert preds[0].pred_score.shape == (3, ) and preds[0].pred_score.sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="mode='x'"):
        m(inputs, mode='x')


def test_zero_shot_scores_are_the_prompt_ensemble():
    m = model().eval()
    inputs = batch()
    preds = m(inputs, mode='predict')
    tok = m.tokenizer
    img = torch.nn.functional.normalize(m.clip.encode_image(inputs['img']), dim=-1)
    classes = []
    for name in ZERO_SHOT['classes']:
        t = torch.nn.functional.normalize(
            m.clip.encode_text(tok([f'a handwritten digit {name}', f'digit {name}'])), dim=-1)
        classes.append(torch.nn.functional.normalize(t.mean(0), dim=-1))
    want = (m.logit_scale() * img @ torch.stack(classes).t()).softmax(-1)
    assert torch.allclose(torch.stack([p.pred_score for p in preds]), want, atol=1e-5)
    # the class embeddings are cached and re-encoded after training
    assert m._class_embed is not None
    m.train()
    assert m._class_embed is None


def test_image_only_batches_predict():
    m = model().eval()
    preds = m(dict(img=batch()['img']), mode='predict')
    assert 'text_embed' not in preds[0] and preds[0].pred_score.shape == (3, )


def test_fixed_logit_scale_is_frozen():
    m = model(fixed_logit_scale=50.0)
    assert not m.clip.logit_scale.requires_grad
    assert m(batch(), mode='tensor')['logit_scale'].item() == pytest.approx(50.0)


def test_registered_model_name_builds_without_download():
    m = OpenCLIPModel(model_name='ViT-S-32-alt')
    assert m.clip.visual.conv1.kernel_size == (32, 32)
    with pytest.raises(KeyError, match='ViT-S-32'):
        OpenCLIPModel(model_name='ViT-S-32-altt')


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match='exactly one of model_name'):
        OpenCLIPModel()
    with pytest.raises(ValueError, match='exactly one of model_name'):
        OpenCLIPModel(model_name='ViT-B-32', model_cfg=CFG)
    with pytest.raises(ValueError, match='zero_shot needs a tokenizer'):
        OpenCLIPModel(model_cfg=CFG, zero_shot=ZERO_SHOT)
    with pytest.raises(ValueError, match='vocab_size'):
        OpenCLIPModel(model_cfg=dict(CFG, text_cfg=dict(CFG['text_cfg'], vocab_size=5)),
                      tokenizer=TOKENIZER)
    with pytest.raises(KeyError, match='tokenizer.type'):
        OpenCLIPModel(model_cfg=CFG, tokenizer=dict(type='Bpe'))
    with pytest.raises(TypeError, match='sparsity'):
        OpenCLIPModel(model_cfg=CFG, sparsity=dict(target=0.5))


def test_init_checkpoint_loads_strictly(tmp_path):
    src = model()
    path = str(tmp_path / 'w.pth')
    torch.save({'state_dict': {f'architecture.{k}': v for k, v in src.state_dict().items()}}, path)
    dst = OpenCLIPModel(model_cfg=CFG, init_checkpoint=path)
    dst.init_weights()
    assert torch.equal(dst.clip.visual.proj, src.clip.visual.proj)
    other = OpenCLIPModel(model_cfg=dict(CFG, embed_dim=8), init_checkpoint=path)
    with pytest.raises(RuntimeError, match='init_checkpoint'):
        other.init_weights()


def test_data_preprocessor_normalises_and_stacks():
    pp = ImageTextDataPreprocessor(mean=[10.0, 20.0, 30.0], std=[2.0, 4.0, 5.0], bgr_to_rgb=True)
    img = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).view(2, 3, 2, 2)
    out = pp(dict(inputs=dict(img=list(img), text=[torch.tensor([1, 2]), torch.tensor([3, 4])]),
                  data_samples=None))
    x = img.float().flip(1)
    want = (x - torch.tensor([10., 20., 30.]).view(1, 3, 1, 1)) / torch.tensor([2., 4., 5.]).view(1, 3, 1, 1)
    assert torch.allclose(out['inputs']['img'], want)
    assert out['inputs']['text'].tolist() == [[1, 2], [3, 4]]
    with pytest.raises(KeyError, match='audio'):
        pp(dict(inputs=dict(audio=[img[0]])))


def test_single_teacher_distill_with_affinity_mimicking():
    from mmkd.models.algorithms import SingleTeacherDistill
    student_cfg = dict(CFG, vision_cfg=dict(CFG['vision_cfg'], width=16, head_width=16))
    taps = dict(img=dict(type='ModuleOutputs', source='image_tap'),
                text=dict(type='ModuleOutputs', source='text_tap'),
                scale=dict(type='ModuleOutputs', source='scale_tap'))
    torch.manual_seed(0)
    algo = SingleTeacherDistill(
        architecture=OpenCLIPModel(model_cfg=student_cfg, contrastive_weight=0.0),
        teacher=OpenCLIPModel(model_cfg=CFG),
        distiller=dict(
            type='ConfigurableDistiller', student_recorders=taps, teacher_recorders=taps,
            distill_losses=dict(loss_affinity=dict(type='AffinityMimickingLoss')),
            loss_forward_mappings=dict(loss_affinity=dict(
                img_S=dict(from_student=True, recorder='img'),
                text_S=dict(from_student=True, recorder='text'),
                img_T=dict(from_student=False, recorder='img'),
                text_T=dict(from_student=False, recorder='text'),
                logit_scale_S=dict(from_student=True, recorder='scale'),
                logit_scale_T=dict(from_student=False, recorder='scale')))))
    algo.train()
    assert not algo.teacher.training
    assert all(not p.requires_grad for p in algo.teacher.parameters())
    assert not any(k.startswith('teacher') for k in algo.state_dict())
    losses = algo.loss(batch())
    assert set(losses) == {'distill.loss_affinity'}
    # the same value, computed directly from the two models' features
    from mmkd.models.losses import AffinityMimickingLoss
    with torch.no_grad():
        s = algo.architecture(batch(), mode='tensor')
        t = algo.teacher(batch(), mode='tensor')
        want = AffinityMimickingLoss()(s['image_features'], s['text_features'], t['image_features'],
                                       t['text_features'], s['logit_scale'], t['logit_scale'])
    assert losses['distill.loss_affinity'].item() == pytest.approx(want.item(), rel=1e-5)
    losses['distill.loss_affinity'].backward()
    assert algo.architecture.clip.visual.proj.grad is not None
    assert all(p.grad is None for p in algo.teacher.parameters())
