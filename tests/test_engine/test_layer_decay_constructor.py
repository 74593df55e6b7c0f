"""DistillLayerDecayOptimWrapperConstructor: per-parameter lr = base * rate^(L + 1 - depth),
with the depths written out independently here, for a student inside SingleTeacherDistill."""
import pytest
import torch
from mmengine.config import Config

from mmkd.registry import OPTIM_WRAPPER_CONSTRUCTORS

L = 3  # ViT blocks of the tiny student
RATE = 0.5
BASE_LR = 1.0


def vit_classifier(embed_dims, num_layers):
    return dict(
        _scope_='mmpretrain',
        type='ImageClassifier',
        backbone=dict(type='VisionTransformer',
                      arch=dict(embed_dims=embed_dims, num_layers=num_layers, num_heads=2,
                                feedforward_channels=2 * embed_dims),
                      img_size=8, patch_size=4, out_type='cls_token'),
        neck=None,
        head=dict(type='LinearClsHead', num_classes=3, in_channels=embed_dims))


@pytest.fixture(scope='module')
def algorithm():
    from mmkd.registry import MODELS
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='no teacher_ckpt'):
        return MODELS.build(dict(
            type='SingleTeacherDistill',
            architecture=vit_classifier(8, L),
            teacher=vit_classifier(16, 2),
            distiller=dict(
                type='ConfigurableDistiller',
                student_recorders=dict(f=dict(type='ModuleOutputs', source='backbone')),
                teacher_recorders=dict(f=dict(type='ModuleOutputs', source='backbone')),
                connectors=dict(proj=dict(type='LinearConnector', in_features=8,
                                          out_features=16)),
                distill_losses=dict(loss_l2=dict(type='L2Loss')),
                loss_forward_mappings=dict(loss_l2=dict(
                    s_feature=dict(from_student=True, recorder='f', data_idx=0,
                                   connector='proj'),
                    t_feature=dict(from_student=False, recorder='f', data_idx=0))))))


def build(model, **paramwise):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='DistillLayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper',
                               optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=0.05)),
        paramwise_cfg=dict(layer_decay_rate=RATE, **paramwise)))
    return constructor(model).optimizer


def expected_depth(name):
    """The MAE/BEiT rule, written out by hand for the names of this tiny model."""
    if name in ('architecture.backbone.cls_token', 'architecture.backbone.pos_embed') or \
            name.startswith('architecture.backbone.patch_embed.'):
        return 0
    for i in range(L):
        if name.startswith(f'architecture.backbone.layers.{i}.'):
            return i + 1
    return L + 1  # final norm, head, connector


def by_name(optimizer, model):
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in optimizer.param_groups:
        assert len(group['params']) == 1
        out[names[id(group['params'][0])]] = group
    return out


def test_lr_multipliers_follow_decay_rule(algorithm):
    groups = by_name(build(algorithm), algorithm)
    # hand-checked anchors of the rule: embeddings rate^(L+1), last block rate^1, head 1
    assert groups['architecture.backbone.pos_embed']['lr'] == pytest.approx(RATE**4)
    assert groups['architecture.backbone.layers.0.attn.qkv.weight']['lr'] == pytest.approx(RATE**3)
    assert groups[f'architecture.backbone.layers.{L - 1}.ffn.layers.1.weight']['lr'] == \
        pytest.approx(RATE)
    assert groups['architecture.head.fc.weight']['lr'] == pytest.approx(1.0)
    for name, group in groups.items():
        depth = expected_depth(name)
        assert group['layer_id'] == depth, name
        assert group['lr'] == pytest.approx(BASE_LR * RATE**(L + 1 - depth)), name
        assert group['param_name'] == name


def test_connectors_full_lr_and_teacher_absent(algorithm):
    optimizer = build(algorithm)
    groups = by_name(optimizer, algorithm)
    connector = [n for n in groups if n.startswith('distiller.connectors.proj.')]
    assert connector and all(groups[n]['lr'] == pytest.approx(BASE_LR) for n in connector)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g['params']}
    assert not any(id(p) in in_optimizer for p in algorithm.teacher.parameters())
    trainable = [p for p in algorithm.parameters() if p.requires_grad]
    assert len(in_optimizer) == len(trainable) == len(optimizer.param_groups)


def test_same_scales_as_mmpretrain_on_a_plain_classifier():
    """Cross-check with mmpretrain's own constructor (which only works without a teacher)."""
    from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor

    from mmkd.utils import build_task_model
    model, _ = build_task_model(vit_classifier(8, L))
    mine = by_name(build(model), model)
    theirs = LearningRateDecayOptimWrapperConstructor(
        optim_wrapper_cfg=dict(type='OptimWrapper',
                               optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=0.05)),
        paramwise_cfg=dict(layer_decay_rate=RATE))(model).optimizer
    theirs = {g['param_name']: g for g in theirs.param_groups}
    assert set(mine) == set(theirs)
    for name in mine:
        assert mine[name]['lr'] == pytest.approx(theirs[name]['lr']), name


def test_weight_decay_options_and_lr_mult_combine(algorithm):
    groups = by_name(build(algorithm, custom_keys={'.pos_embed': dict(decay_mult=0.0),
                                                   'head': dict(lr_mult=0.1)}), algorithm)
    assert groups['architecture.backbone.pos_embed']['weight_decay'] == 0.0
    assert groups['architecture.backbone.layers.0.attn.qkv.weight']['weight_decay'] == 0.05
    assert groups['architecture.head.fc.weight']['lr'] == pytest.approx(0.1)


def test_num_layers_inferred_or_checked(algorithm):
    groups = by_name(build(algorithm, num_layers=5), algorithm)  # deeper L: smaller scales
    assert groups['architecture.backbone.layers.0.attn.qkv.weight']['lr'] == pytest.approx(RATE**5)
    with pytest.raises(ValueError, match=r'num_layers=2 .*block 2'):
        build(algorithm, num_layers=2)
    with pytest.raises(ValueError, match='no parameter matches'):
        build(algorithm, backbone_prefix='encoder.')


def test_bad_config_names_the_key():
    with pytest.raises(ValueError, match='paramwise_cfg.layer_decay_rate'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='DistillLayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(optimizer=dict(type='AdamW', lr=1.0))))
    with pytest.raises(ValueError, match=r'layer_decay_rate=1\.5'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='DistillLayerDecayOptimWrapperConstructor',
            optim_wrapper_cfg=dict(optimizer=dict(type='AdamW', lr=1.0)),
            paramwise_cfg=dict(layer_decay_rate=1.5)))


@pytest.mark.parametrize('config,rate', [
    ('configs/g2sd/g2sd-specific_vit-base-p16_deit-small-p16_8xb128-200e_in1k.py', 0.75),
    ('configs/dmae/vit-base-p16_dmae-pre_8xb128-coslr-100e_in1k.py', 0.7),
    ('configs/g2sd/g2sd-specific_mask-rcnn_vit-base-p16_vit-small-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py',
     0.7),
    ('configs/g2sd/g2sd-specific_upernet_mae-base-p16_vit-small-p16_8xb2-160k_ade20k-512x512.py', 0.65),
])
def test_configs_use_the_constructor(repo_root, algorithm, config, rate):
    """The papers' rates are wired, and each config's paramwise_cfg works on a distiller."""
    ow = Config.fromfile(f'{repo_root}/{config}').optim_wrapper.to_dict()
    assert ow['constructor'] == 'mmkd.DistillLayerDecayOptimWrapperConstructor'
    assert ow['paramwise_cfg']['layer_decay_rate'] == rate
    ow['type'] = 'OptimWrapper'  # AmpOptimWrapper needs a GPU
    ow.pop('constructor')
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='DistillLayerDecayOptimWrapperConstructor', optim_wrapper_cfg=ow,
        paramwise_cfg=ow.pop('paramwise_cfg')))
    groups = by_name(constructor(algorithm).optimizer, algorithm)
    base = ow['optimizer']['lr']
    assert groups['architecture.backbone.layers.1.attn.proj.weight']['lr'] == \
        pytest.approx(base * rate**(L + 1 - 2))
