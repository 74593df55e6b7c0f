"""Teachers (and students) from timm, transformers and open_clip for OpenMMLab students.

One test per route of docs/user_guides/teachers.md, all at random weights and tiny
sizes, nothing downloaded: a timm teacher (mmpretrain's ``TimmClassifier``) and a timm
student; a transformers vision teacher (``HFVisionModel``) from a local folder and
from a config object; open_clip image and text towers (``OpenCLIPImageEncoder`` /
``OpenCLIPTextEncoder``) for image-only and text-only students.
"""
import os
import os.path as osp
import time

os.environ.setdefault('HF_HUB_OFFLINE', '1')  # never reach the hub, whatever happens

import pytest  # noqa: E402
import torch  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.structures import BaseDataElement  # noqa: E402

from mmkd.registry import MODELS  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SEG_STUDENT = osp.join(ROOT, 'configs', 'task_models', 'fcn_r18-w16_shapes_demo.py')
# CLIP's normalisation (OpenAI), on 0-255 pixels
CLIP_MEAN = [122.771, 116.746, 104.094]
CLIP_STD = [68.500, 66.632, 70.323]
HF_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
CLIP_CFG = dict(embed_dim=16,
                vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16),
                text_cfg=dict(context_length=8, vocab_size=40, width=32, heads=2, layers=2))
TIMM_VIT = dict(model_name='vit_tiny_patch16_224', pretrained=False, num_classes=4, img_size=16,
                patch_size=4, embed_dim=32, depth=2, num_heads=2)


# ----------------------------------------------------------------------------- helpers
def tiny_classifier(width=8, num_classes=4):
    return dict(
        _scope_='mmpretrain', type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=num_classes,
                               mean=[0.0] * 3, std=[255.0] * 3),
        backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=width, base_channels=width,
                      out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=width * 8))


def cls_batch(n=4, size=16, num_classes=4):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
              for _ in range(n)]
    return dict(inputs=inputs,
                data_samples=[DataSample().set_gt_label(i % num_classes) for i in range(n)])


def seg_batch(n=2, size=64, num_classes=5):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8))
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, size, size), generator=g))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def feature_loss(s_rec, t_rec, s_conn=None, t_conn=None, s_idx=None, t_idx=None, **loss):
    s = dict(from_student=True, recorder=s_rec)
    t = dict(from_student=False, recorder=t_rec)
    for mapping, conn, idx in ((s, s_conn, s_idx), (t, t_conn, t_idx)):
        if conn:
            mapping['connector'] = conn
        if idx is not None:
            mapping['data_idx'] = idx
    return dict(type='L2Loss', **loss), dict(s_feature=s, t_feature=t)


def hf_layer(model_type: str, index: int):
    """Path (under the transformers model) of encoder layer ``index`` and the ``data_idx``
    of its hidden state: transformers 5 moved ViT's layers to ``layers.N`` and dropped
    the ``vision_model.`` level of CLIP / SigLIP vision models, and its layers return the
    hidden state itself where 4.x returned a tuple."""
    import transformers
    v5 = int(transformers.__version__.split('.')[0]) >= 5
    if model_type == 'dinov2':
        path = f'encoder.layer.{index}'
    elif model_type == 'vit':
        path = f'layers.{index}' if v5 else f'encoder.layer.{index}'
    else:  # clip / siglip vision towers
        path = f'encoder.layers.{index}' if v5 else f'vision_model.encoder.layers.{index}'
    return path, (None if v5 else 0)


def vision_part(model):
    """The module holding embeddings/encoder of a CLIP / SigLIP vision model (any version)."""
    return getattr(model, 'vision_model', model)


def distiller(student_recorders, teacher_recorders, losses, connectors=None):
    return dict(type='ConfigurableDistiller', student_recorders=student_recorders,
                teacher_recorders=teacher_recorders, connectors=connectors or {},
                distill_losses={k: v[0] for k, v in losses.items()},
                loss_forward_mappings={k: v[1] for k, v in losses.items()})


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same(before, module):
    after = module.state_dict()
    assert set(before) == set(after)
    for k, v in before.items():
        assert torch.equal(v, after[k]), k


def train_one_step(model, batch, lr=0.1):
    """One train_step; checks the frozen, hidden, untouched teacher and finite losses."""
    teacher_before = snapshot(model.teacher)
    student_before = snapshot(model.architecture)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr))
    log = model.train_step(batch, optim)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in log.values()), log
    assert_same(teacher_before, model.teacher)
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert not model.teacher.training
    assert not any(k.startswith('teacher') for k in model.state_dict())
    changed = [k for k, v in model.architecture.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, student_before[k])]
    assert changed, 'the student did not learn'
    return log


def save_hf(model, folder):
    model.save_pretrained(str(folder))
    return str(folder)


# ----------------------------------------------------------------------------- timm
def test_timm_teacher_teaches_mmpretrain_student_logits(tmp_path):
    """timm route: mmpretrain's TimmClassifier, weights through teacher_ckpt (a plain
    timm state dict), logits recorded at ``model.head``, KLDivergence, one step."""
    import timm
    torch.manual_seed(0)
    timm_vit = timm.create_model(**TIMM_VIT)
    ckpt = tmp_path / 'vit_timm.pth'
    torch.save(timm_vit.state_dict(), ckpt)  # what timm users have: timm keys, no prefix
    model = MODELS.build(dict(
        type='SingleTeacherDistill',
        architecture=tiny_classifier(),
        teacher=dict(_scope_='mmpretrain', type='TimmClassifier', **TIMM_VIT),
        teacher_ckpt=str(ckpt),
        distiller=distiller(
            dict(logits=dict(type='ModuleOutputs', source='head.fc')),
            dict(logits=dict(type='ModuleOutputs', source='model.head')),
            dict(loss_kd=(dict(type='KLDivergence', tau=2.0),
                          dict(preds_S=dict(from_student=True, recorder='logits'),
                               preds_T=dict(from_student=False, recorder='logits')))))))
    assert type(model.teacher).__name__ == 'TimmClassifier'
    assert_same(timm_vit.state_dict(), model.teacher.model)  # loaded, not re-initialised
    log = train_one_step(model, cls_batch())
    assert log['distill.loss_kd'] > 0 and 'loss' in log


def test_timm_student_trains_and_converts_to_a_timm_checkpoint(tmp_path):
    """A timm model as the student: its start weights through init_cfg=Pretrained (a
    timm state dict, loaded after timm's own init), TimmClassifier's loss mode
    (cross-entropy) plus KD; its state dict is a plain timm one."""
    import timm
    torch.manual_seed(1)
    start = timm.create_model(**TIMM_VIT)
    ckpt = tmp_path / 'start.pth'
    torch.save(start.state_dict(), ckpt)
    model = MODELS.build(dict(
        type='SingleTeacherDistill',
        architecture=dict(_scope_='mmpretrain', type='TimmClassifier',
                          data_preprocessor=dict(num_classes=4, mean=[0.0] * 3, std=[255.0] * 3),
                          init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)), **TIMM_VIT),
        teacher=tiny_classifier(),
        distiller=distiller(
            dict(logits=dict(type='ModuleOutputs', source='model.head')),
            dict(logits=dict(type='ModuleOutputs', source='head.fc')),
            dict(loss_kd=(dict(type='KLDivergence', tau=2.0),
                          dict(preds_S=dict(from_student=True, recorder='logits'),
                               preds_T=dict(from_student=False, recorder='logits')))))))
    model.init_weights()  # what the Runner does before training
    assert_same(start.state_dict(), model.architecture.model)
    log = train_one_step(model, cls_batch())
    assert {'loss', 'distill.loss_kd'} <= set(log)
    timm.create_model(**TIMM_VIT).load_state_dict(model.architecture.state_dict(), strict=True)


# ----------------------------------------------------------------------------- transformers
def test_hf_vision_teacher_from_folder_teaches_mmseg_student(tmp_path):
    """A DINOv2 teacher from a local save_pretrained folder for an mmseg FCN: a teacher
    layer's tokens (``model.encoder.layer.1``) -> TokensToMap, the student's last
    backbone stage -> ConvConnector, L2 loss; one step."""
    from transformers import Dinov2Config, Dinov2Model
    torch.manual_seed(0)
    hf = Dinov2Model(Dinov2Config(image_size=64, patch_size=16, **HF_SMALL))
    folder = save_hf(hf, tmp_path / 'dinov2-tiny')
    layer, idx = hf_layer('dinov2', 1)
    model = MODELS.build(dict(
        type='SingleTeacherDistill',
        architecture=dict(cfg_path=SEG_STUDENT),
        teacher=dict(_scope_='mmkd', type='HFVisionModel', pretrained_path=folder),
        distiller=distiller(
            dict(c5=dict(type='ModuleOutputs', source='backbone')),
            dict(layer1=dict(type='ModuleOutputs', source=f'model.{layer}')),
            dict(loss_tokens=feature_loss('c5', 'layer1', 's_map', 't_map', s_idx=3, t_idx=idx)),
            connectors=dict(
                # the student's stage 4 is stride 8 (dilated ResNetV1c): 16x16 at 128 px
                s_map=dict(type='ConvConnector', in_channels=128, out_channels=32),
                # the teacher's 8x8 patch grid (128 px / 16), class token dropped
                t_map=dict(type='TokensToMap', in_channels=32, num_extra_tokens=1,
                           out_size=16)))))
    assert type(model.teacher.model).__name__ == 'Dinov2Model'
    # built without teacher_ckpt: init_weights() ran and kept the folder's weights
    assert_same(hf.state_dict(), model.teacher.model)
    log = train_one_step(model, seg_batch(), lr=0.01)
    assert log['distill.loss_tokens'] > 0 and 'decode.loss_ce' in log


def test_hf_classifier_teacher_from_local_folder(tmp_path):
    """The mmpretrain route for a transformers classifier: HuggingFaceClassifier with
    ``model_name=<local folder>`` and ``pretrained=True``; logits at ``model.classifier``."""
    from transformers import ViTConfig, ViTForImageClassification
    torch.manual_seed(0)
    hf = ViTForImageClassification(ViTConfig(image_size=16, patch_size=4, num_labels=4,
                                             **HF_SMALL))
    folder = save_hf(hf, tmp_path / 'vit-cls')
    model = MODELS.build(dict(
        type='SingleTeacherDistill',
        architecture=tiny_classifier(),
        teacher=dict(_scope_='mmpretrain', type='HuggingFaceClassifier', model_name=folder,
                     pretrained=True),
        distiller=distiller(
            dict(logits=dict(type='ModuleOutputs', source='head.fc')),
            dict(logits=dict(type='ModuleOutputs', source='model.classifier')),
            dict(loss_kd=(dict(type='KLDivergence', tau=2.0),
                          dict(preds_S=dict(from_student=True, recorder='logits'),
                               preds_T=dict(from_student=False, recorder='logits')))))))
    assert_same(hf.state_dict(), model.teacher.model)  # the folder's weights survive init
    log = train_one_step(model, cls_batch())
    assert log['distill.loss_kd'] > 0


def test_hf_config_teacher_for_a_timm_backbone_dense_student(tmp_path):
    """A ViT teacher from a config object (random weights) for an mmseg FCN whose backbone
    is timm's (mmpretrain's TIMMBackbone, start weights from a local timm file): the
    teacher's ``patch_map_tap`` (N, C, 8, 8) against the student's stride-16 map,
    through a ConvConnector; one step."""
    import timm
    from safetensors.torch import save_file
    torch.manual_seed(0)
    start = timm.create_model('resnet18', pretrained=False)
    weights = str(tmp_path / 'resnet18.safetensors')
    save_file(start.state_dict(), weights)
    student = dict(
        cfg_path=SEG_STUDENT,
        backbone=dict(_delete_=True, type='mmpretrain.TIMMBackbone', model_name='resnet18',
                      features_only=True, out_indices=(3, 4),
                      # timm reads the local file; nothing is downloaded
                      pretrained=True, pretrained_cfg_overlay=dict(file=weights)),
        decode_head=dict(in_channels=512, in_index=1, channels=32),
        auxiliary_head=dict(in_channels=256, in_index=0, channels=16))
    model = MODELS.build(dict(
        type='SingleTeacherDistill',
        architecture=student,
        teacher=dict(_scope_='mmkd', type='HFVisionModel',
                     config=dict(model_type='vit', image_size=128, patch_size=16, **HF_SMALL)),
        distiller=distiller(
            dict(c4=dict(type='ModuleOutputs', source='backbone')),
            dict(patches=dict(type='ModuleOutputs', source='patch_map_tap')),
            dict(loss_patches=feature_loss('c4', 'patches', 's_map', s_idx=0)),
            connectors=dict(s_map=dict(type='ConvConnector', in_channels=256,
                                       out_channels=32)))))
    assert type(model.architecture.backbone).__name__ == 'TIMMBackbone'
    model.init_weights()  # what the Runner does: TIMMBackbone keeps timm's weights
    assert torch.equal(model.architecture.backbone.timm_model.layer4[1].conv2.weight,
                       start.layer4[1].conv2.weight)
    log = train_one_step(model, seg_batch(), lr=0.01)
    assert log['distill.loss_patches'] > 0


def test_hf_vision_model_from_config_object():
    """From a config dict (random weights): the three outputs, taps and layer paths."""
    from mmkd.models.task_models import HFVisionModel
    torch.manual_seed(0)
    m = HFVisionModel(config=dict(model_type='vit', image_size=32, patch_size=8, **HF_SMALL))
    assert type(m.model).__name__ == 'ViTModel'
    names = dict(m.named_modules())
    layer, idx = hf_layer('vit', 1)
    layer = f'model.{layer}'
    assert {layer, 'tokens_tap', 'pooled_tap', 'patch_map_tap'} <= set(names)
    seen = {}
    handles = [names[n].register_forward_hook(lambda mod, i, o, n=n: seen.setdefault(n, o))
               for n in (layer, 'patch_map_tap')]
    x = torch.randn(2, 3, 32, 32)
    out = m(x, mode='tensor')
    for h in handles:
        h.remove()
    assert out['tokens'].shape == (2, 17, 32) and out['pooled'].shape == (2, 32)
    assert out['patch_map'].shape == (2, 32, 4, 4)
    # the map is the 16 patch tokens (class token first), row by row
    assert torch.equal(out['patch_map'].flatten(2).transpose(1, 2), out['tokens'][:, 1:])
    hidden = seen[layer] if idx is None else seen[layer][idx]
    assert hidden.shape == (2, 17, 32)
    before = snapshot(m.model)
    m.init_weights()
    assert_same(before, m.model)  # transformers' own initialisation is not re-run
    preds = m(x, mode='predict')
    assert preds[1].img_embed.shape == (32, )
    with pytest.raises(ValueError, match='no task loss'):
        m(x, mode='loss')
    # another input size: a clear error naming the two remedies; resize_to fixes it
    with pytest.raises(ValueError, match='resize_to'):
        m(torch.randn(2, 3, 48, 48))
    m2 = HFVisionModel(config=dict(model_type='vit', image_size=32, patch_size=8, **HF_SMALL),
                       resize_to=32)
    assert m2(torch.randn(2, 3, 48, 48))['patch_map'].shape == (2, 32, 4, 4)


@pytest.mark.parametrize('model_type,cls', [('clip', 'CLIPVisionModel'),
                                            ('siglip', 'SiglipVisionModel')])
def test_hf_two_tower_config_and_folder_give_the_vision_tower(tmp_path, model_type, cls):
    """A CLIP / SigLIP config or folder (text + vision) builds its vision tower only."""
    import transformers

    from mmkd.models.task_models import HFVisionModel
    vision = dict(image_size=32, patch_size=8, **HF_SMALL)
    m = HFVisionModel(config=dict(model_type=model_type, vision_config=vision))
    assert type(m.model).__name__ == cls
    assert m(torch.randn(2, 3, 32, 32))['patch_map'].shape == (2, 32, 4, 4)
    assert f'model.{hf_layer(model_type, 1)[0]}' in dict(m.named_modules())
    full_cfg = getattr(transformers, f'{"CLIP" if model_type == "clip" else "Siglip"}Config')(
        vision_config=vision, text_config=dict(vocab_size=40, max_position_embeddings=8,
                                               **HF_SMALL))
    full = transformers.AutoModel.from_config(full_cfg)
    from_folder = HFVisionModel(pretrained_path=save_hf(full, tmp_path / model_type))
    assert type(from_folder.model).__name__ == cls
    assert torch.equal(vision_part(from_folder.model).embeddings.patch_embedding.weight,
                       full.vision_model.embeddings.patch_embedding.weight)


def test_hf_vision_model_bad_input(tmp_path):
    """A missing or invalid folder fails at once, naming the key and the folder; a hub
    name is never looked up."""
    from transformers import ViTConfig, ViTModel

    from mmkd.models.task_models import HFVisionModel
    start = time.monotonic()
    for path in (str(tmp_path / 'missing'), 'google/vit-base-patch16-224'):
        with pytest.raises(FileNotFoundError, match='pretrained_path=.*never downloads'):
            HFVisionModel(pretrained_path=path)
    assert time.monotonic() - start < 5  # no hub retries
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('x')
    with pytest.raises(FileNotFoundError, match=r"pretrained_path='.*empty'.*no config.json"):
        HFVisionModel(pretrained_path=str(empty))
    config_only = tmp_path / 'config_only'
    ViTConfig(**HF_SMALL).save_pretrained(str(config_only))
    with pytest.raises(FileNotFoundError, match='config.json but no weights'):
        HFVisionModel(pretrained_path=str(config_only))
    with pytest.raises(ValueError, match='exactly one of pretrained_path'):
        HFVisionModel()
    folder = save_hf(ViTModel(ViTConfig(**HF_SMALL)), tmp_path / 'vit')
    with pytest.raises(ValueError, match='exactly one of pretrained_path'):
        HFVisionModel(pretrained_path=folder, config=dict(model_type='vit'))
    with pytest.raises(KeyError, match="model_class='NoSuchModel'"):
        HFVisionModel(pretrained_path=folder, model_class='NoSuchModel')
    with pytest.raises(TypeError, match="dict with 'model_type'"):
        HFVisionModel(config=dict(hidden_size=32))
    with pytest.raises(ValueError, match="config.model_type='no_such_type'"):
        HFVisionModel(config=dict(model_type='no_such_type'))


# ----------------------------------------------------------------------------- open_clip
def test_open_clip_image_tower_teaches_mmpretrain_student(tmp_path):
    """An open_clip image tower (weights from a full CLIP checkpoint) teaches an image-only
    mmpretrain classifier: the student's neck output -> LinearConnector -> the image
    embedding (normalised L2, i.e. cosine), and the tower's tokens -> the student's
    map; CLIP mean/std through teacher_data_preprocessor; one step."""
    import open_clip

    from mmkd.models.preprocessors.distill_data_preprocessor import DistillDataPreprocessor
    torch.manual_seed(0)
    clip = open_clip.model.CLIP(**CLIP_CFG)
    ckpt = tmp_path / 'open_clip.pth'
    torch.save(clip.state_dict(), ckpt)  # both towers: the text tower's keys are ignored
    model = MODELS.build(dict(
        type='SingleTeacherDistill',
        architecture=tiny_classifier(),
        teacher=dict(_scope_='mmkd', type='OpenCLIPImageEncoder',
                     model_cfg=dict(embed_dim=16, vision_cfg=CLIP_CFG['vision_cfg']),
                     init_checkpoint=str(ckpt), resize_to=32),
        teacher_data_preprocessor=dict(type='ImgDataPreprocessor', mean=CLIP_MEAN, std=CLIP_STD),
        distiller=distiller(
            dict(pooled=dict(type='ModuleOutputs', source='neck'),
                 c4=dict(type='ModuleOutputs', source='backbone')),
            dict(embed=dict(type='ModuleOutputs', source='embed_tap'),
                 tokens=dict(type='ModuleOutputs', source='clip.visual.transformer.resblocks.1')),
            dict(loss_embed=feature_loss('pooled', 'embed', 'to_embed', s_idx=0, normalize=True),
                 loss_tokens=feature_loss('c4', 'tokens', 's_map', 't_map', s_idx=0)),
            connectors=dict(
                to_embed=dict(type='LinearConnector', in_features=64, out_features=16),
                # student: 2x2 map at 16 px; teacher: 4x4 patches at 32 px + class token
                s_map=dict(type='ConvConnector', in_channels=64, out_channels=32, out_size=4),
                t_map=dict(type='TokensToMap', in_channels=32, num_extra_tokens=1)))))
    assert isinstance(model.data_preprocessor, DistillDataPreprocessor)
    assert_same(clip.visual.state_dict(), model.teacher.clip.visual)  # init_checkpoint loaded
    assert not any('transformer.resblocks' in k and not k.startswith('clip.visual')
                   for k in model.teacher.state_dict())  # the text tower is gone
    log = train_one_step(model, cls_batch())
    assert log['distill.loss_embed'] > 0 and log['distill.loss_tokens'] > 0


def test_open_clip_text_tower_teaches_text_student():
    """A text-only pair: an open_clip text tower teaches a smaller one (distillation only,
    the student has no task loss) on plain token-id batches."""
    torch.manual_seed(0)
    student_text = dict(context_length=8, vocab_size=40, width=16, heads=2, layers=1)
    model = MODELS.build(dict(
        type='SingleTeacherDistill',
        architecture=dict(_scope_='mmkd', type='OpenCLIPTextEncoder',
                          model_cfg=dict(embed_dim=8, text_cfg=student_text)),
        teacher=dict(_scope_='mmkd', type='OpenCLIPTextEncoder',
                     model_cfg=dict(embed_dim=16, text_cfg=CLIP_CFG['text_cfg'])),
        calculate_student_loss=False,
        distiller=distiller(
            dict(embed=dict(type='ModuleOutputs', source='embed_tap')),
            dict(embed=dict(type='ModuleOutputs', source='embed_tap')),
            dict(loss_embed=feature_loss('embed', 'embed', 'to_teacher', normalize=True)),
            connectors=dict(to_teacher=dict(type='LinearConnector', in_features=8,
                                            out_features=16)))))
    g = torch.Generator().manual_seed(0)
    batch = dict(inputs=[torch.randint(0, 40, (8, ), generator=g) for _ in range(4)],
                 data_samples=[BaseDataElement() for _ in range(4)])
    log = train_one_step(model, batch)
    assert set(log) == {'loss', 'distill.loss_embed'}
    model.eval()
    preds = model.architecture(torch.stack(batch['inputs']), mode='predict')
    assert torch.allclose(preds[0].text_embed.norm(), torch.tensor(1.0), atol=1e-5)


def test_open_clip_towers_match_the_full_model(tmp_path):
    """Each tower, loaded from a checkpoint of the full model, gives open_clip's own
    encode_image / encode_text; wrong inputs and checkpoints fail clearly."""
    import open_clip

    from mmkd.models.task_models import OpenCLIPImageEncoder, OpenCLIPTextEncoder
    torch.manual_seed(0)
    clip = open_clip.model.CLIP(**CLIP_CFG).eval()
    ckpt = tmp_path / 'clip.pth'
    torch.save({'state_dict': {f'clip.{k}': v for k, v in clip.state_dict().items()}}, ckpt)
    image = OpenCLIPImageEncoder(model_cfg=CLIP_CFG, init_checkpoint=str(ckpt)).eval()
    text = OpenCLIPTextEncoder(model_cfg=CLIP_CFG, init_checkpoint=str(ckpt)).eval()
    image.init_weights()
    text.init_weights()
    img = torch.randn(2, 3, 32, 32)
    ids = torch.randint(0, 40, (2, 8))
    with torch.no_grad():
        assert torch.allclose(image(img), clip.encode_image(img), atol=1e-6)
        assert torch.allclose(text(ids), clip.encode_text(ids), atol=1e-6)
        assert torch.allclose(text(dict(text=ids)), text(list(ids)))
    assert 'clip.visual' not in dict(text.named_modules())
    assert not any(k.startswith('clip.visual') for k in text.state_dict())
    with pytest.raises(ValueError, match='resize_to=32'):
        image(torch.randn(2, 3, 16, 16))
    with pytest.raises(ValueError, match='context_length=8'):
        text(torch.randint(0, 40, (2, 5)))
    with pytest.raises(TypeError, match='token ids'):
        text(torch.randn(2, 8))
    with pytest.raises(ValueError, match='no task loss'):
        image(img, mode='loss')
    with pytest.raises(ValueError, match='exactly one of model_name'):
        OpenCLIPImageEncoder()
    wider = dict(CLIP_CFG, vision_cfg=dict(CLIP_CFG['vision_cfg'], width=64, head_width=32))
    with pytest.raises(RuntimeError, match='init_checkpoint=.*does not fit'):
        OpenCLIPImageEncoder(model_cfg=wider, init_checkpoint=str(ckpt)).init_weights()
