"""MaskedImageDistill: shared masks, truncated teacher, hidden teacher, losses, errors."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from mmkd.models.algorithms import MaskedImageDistill, random_masking
from mmkd.models.algorithms.masked_image_distill import encode_visible
from mmkd.registry import MODELS

DMAE_CFG = 'configs/dmae/dmae_vit-d8-w128_vit-d4-w64_p4_digits_demo.py'
G2SD_CFG = 'configs/g2sd/g2sd-generic_vit-d8-w128_vit-d4-w64_p4_digits_demo.py'
pytestmark = pytest.mark.filterwarnings('ignore:SingleTeacherDistill')


def model_cfg(path=DMAE_CFG, **overrides):
    cfg = Config.fromfile(path).model
    cfg.teacher_ckpt = None
    for key, value in overrides.items():
        cfg[key] = value  # replace, not merge (ConfigDict.update merges dicts)
    return cfg


def build(path=DMAE_CFG, **overrides) -> MaskedImageDistill:
    torch.manual_seed(0)
    model = MODELS.build(model_cfg(path, **overrides))
    model.init_weights()
    model.teacher.init_weights()
    return model


def images(n=4, seed=0):
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


class BlockCounter:
    """Counts the transformer blocks that start running (pre-hooks: an early exit raised
    in a block's forward hook still counts that block as executed)."""

    def __init__(self, mae):
        self.ran = []
        for prefix, blocks in (('enc', mae.backbone.layers), ('dec', mae.neck.decoder_blocks)):
            for i, block in enumerate(blocks):
                block.register_forward_pre_hook(
                    lambda *_, name=f'{prefix}{i}': self.ran.append(name))


def visible_patch_ids(mae, inputs, first_layer_input):
    """Which patches a model's first block saw, found independently of the algorithm:
    match each visible token against every patch's embedding + position embedding."""
    with torch.no_grad():
        patches = mae.backbone.patch_embed(inputs)[0] + mae.backbone.pos_embed[:, 1:, :]
    tokens = first_layer_input[:, 1:, :]  # drop the class token
    dist = torch.cdist(tokens, patches)
    assert torch.all(dist.min(dim=2).values < 1e-5), 'a visible token is not a patch embedding'
    return dist.argmin(dim=2)


def test_random_masking_matches_mmpretrain_and_encoder_matches_maevit():
    model = build()
    vit = model.architecture.backbone
    x = images()
    torch.manual_seed(3)
    with torch.no_grad():
        latent_ref, mask_ref, restore_ref = vit(x)  # MAEViT draws its own mask
    torch.manual_seed(3)
    spec = random_masking(4, 16, 0.75)
    assert torch.equal(spec.mask, mask_ref) and torch.equal(spec.ids_restore, restore_ref)
    assert spec.ids_keep.shape == (4, 4)
    assert torch.all(spec.mask.gather(1, spec.ids_keep) == 0) and spec.mask.sum() == 4 * 12
    with torch.no_grad():
        latent = encode_visible(vit, x, spec.ids_keep)
    assert torch.allclose(latent, latent_ref, atol=1e-6)


def test_student_pixel_loss_is_mmpretrain_maes_with_the_shared_mask():
    model = build()
    x = images()
    torch.manual_seed(5)
    with torch.no_grad():
        ref = model.architecture.loss(x, None)['loss']  # mmpretrain's MAE.loss
    torch.manual_seed(5)
    with torch.no_grad():
        ours = model.run_mae(model.architecture, x, model.draw_mask(x), with_loss=True)
    assert torch.allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize('path', [DMAE_CFG, G2SD_CFG])
def test_teacher_and_student_see_identical_patches_and_ids(path):
    model = build(path, teacher_early_exit=False, student_early_exit=False)
    seen = {}

    def keep(name):
        def hook(module, args, kwargs):
            seen[name] = args
        return hook

    for side, mae in (('teacher', model.teacher), ('student', model.architecture)):
        mae.backbone.layers[0].register_forward_pre_hook(
            lambda m, a, side=side: seen.__setitem__(side + '_tokens', a[0]))
        mae.neck.register_forward_pre_hook(keep(side + '_neck'), with_kwargs=True)
    x = images(6)
    model.train()
    model.loss(x)
    t_ids = visible_patch_ids(model.teacher, x, seen['teacher_tokens'])
    s_ids = visible_patch_ids(model.architecture, x, seen['student_tokens'])
    assert t_ids.shape == (6, 4)
    assert torch.equal(t_ids, s_ids)  # same patches, same order
    assert len(set(map(tuple, t_ids.tolist()))) > 1  # per-sample masks differ
    # both decoders restore the same order
    assert torch.equal(seen['teacher_neck'][1], seen['student_neck'][1])
    restore = seen['student_neck'][1]
    assert torch.equal(torch.argsort(restore, dim=1)[:, :4], t_ids)


def test_dmae_teacher_runs_exactly_up_to_the_aligned_block():
    model = build()  # teacher recorder: backbone.layers.5 of 8
    t_count, s_count = BlockCounter(model.teacher), BlockCounter(model.architecture)
    model.train()
    losses = model.loss(images())
    assert t_count.ran == [f'enc{i}' for i in range(6)]  # 6 of 8 blocks, no decoder
    assert s_count.ran == [f'enc{i}' for i in range(4)] + ['dec0', 'dec1']  # full student
    assert set(losses) == {'loss_mae', 'distill.loss_dmae'}
    # the full teacher for comparison (what tools/benchmark/dmae_truncated_teacher.py times)
    model.set_teacher_early_exit(False)
    t_count.ran.clear()
    full_losses = model.loss(images())
    assert t_count.ran == [f'enc{i}' for i in range(8)] + [f'dec{i}' for i in range(4)]
    assert set(full_losses) == set(losses)
    model.set_teacher_early_exit(True)
    t_count.ran.clear()
    model.loss(images())
    assert t_count.ran == [f'enc{i}' for i in range(6)]
    assert build(teacher_early_exit=False).teacher_early_exit is False


def test_g2sd_teacher_and_student_stop_after_their_recorded_decoder_blocks():
    model = build(G2SD_CFG)
    t_count, s_count = BlockCounter(model.teacher), BlockCounter(model.architecture)
    pred_calls = []
    model.architecture.neck.decoder_pred.register_forward_hook(lambda *_: pred_calls.append(1))
    model.train()
    losses = model.loss(images())
    assert t_count.ran == [f'enc{i}' for i in range(8)] + ['dec0', 'dec1']  # 2 of 4
    assert s_count.ran == [f'enc{i}' for i in range(4)] + ['dec0', 'dec1']
    assert not pred_calls, 'the G2SD student needs no pixel prediction'
    assert set(losses) == {'distill.loss_g2sd'}


def test_dmae_loss_value_from_an_independent_forward():
    model = build()
    model.train()
    x = images()
    torch.manual_seed(11)
    losses = model.loss(x)
    torch.manual_seed(11)
    spec = random_masking(4, 16, 0.75)
    with torch.no_grad():
        def tokens(vit, depth):
            p = vit.patch_embed(x)[0] + vit.pos_embed[:, 1:, :]
            p = torch.stack([p[b, spec.ids_keep[b]] for b in range(4)])
            h = torch.cat([(vit.cls_token + vit.pos_embed[:, :1]).expand(4, -1, -1), p], 1)
            for layer in vit.layers[:depth]:
                h = layer(h)
            return h
        t = tokens(model.teacher.backbone, 6)            # after block index 5
        s = tokens(model.architecture.backbone, 3)       # after block index 2
        s = model.distiller.connectors['proj'](s)        # 64 -> 128
        expected = (F.normalize(s, dim=-1) - F.normalize(t, dim=-1)).abs().mean()
    assert losses['distill.loss_dmae'].item() == pytest.approx(expected.item(), rel=1e-5)


def test_teacher_hidden_frozen_and_unchanged_by_training():
    model = build()
    teacher = model.teacher
    before = copy.deepcopy(teacher.state_dict())
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not any(id(p) in {id(q) for q in model.parameters()} for p in teacher.parameters())
    state = model.state_dict()
    assert not any(k.startswith('teacher') for k in state)
    assert any(k.startswith('distiller.connectors.proj') for k in state)
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    model.train()
    assert not teacher.training
    student_before = copy.deepcopy(model.architecture.state_dict())
    # default_collate (the MAE dataloaders' collate_fn) stacks the batch
    data = dict(inputs=torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8),
                data_samples=None)
    for _ in range(2):
        log_vars = model.train_step(data, optim)
    assert {'loss', 'loss_mae', 'distill.loss_dmae'} <= set(log_vars)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in teacher.parameters())
    assert any(not torch.equal(v, student_before[k])
               for k, v in model.architecture.state_dict().items())


def test_distillation_stopped_skips_the_teacher():
    model = build()
    count = BlockCounter(model.teacher)
    model.distillation_stopped.fill_(True)
    losses = model.loss(images())
    assert set(losses) == {'loss_mae'} and count.ran == []
    # DDP (no find_unused_parameters) needs a gradient for the unused connector too:
    # it gets an exactly-zero one.
    losses['loss_mae'].backward()
    proj = list(model.distiller.connectors['proj'].parameters())
    assert proj and all(p.grad is not None and torch.count_nonzero(p.grad) == 0 for p in proj)


def test_non_finite_loss_names_the_loss():
    model = build()
    with torch.no_grad():  # a diverged connector: the distillation loss becomes NaN
        model.distiller.connectors['proj'].linear.weight.fill_(float('nan'))
    with pytest.raises(FloatingPointError) as err:
        model.loss(images())
    message = str(err.value)
    assert 'distill.loss_dmae=nan' in message and 'iteration' in message
    assert 'loss_mae=' not in message  # only the non-finite loss is named
    off = build(check_finite=False)
    with torch.no_grad():
        off.distiller.connectors['proj'].linear.weight.fill_(float('nan'))
    assert torch.isnan(off.loss(images())['distill.loss_dmae'])


def test_teacher_data_preprocessor_shares_the_mask():
    cfg = model_cfg(teacher_data_preprocessor=dict(
        _scope_='mmpretrain', type='SelfSupDataPreprocessor', mean=[0.0] * 3, std=[255.0] * 3,
        to_rgb=False))
    model = MODELS.build(cfg)
    seen = {}
    for side, mae in (('t', model.teacher), ('s', model.architecture)):
        mae.backbone.layers[0].register_forward_pre_hook(
            lambda m, a, side=side: seen.__setitem__(side, a[0]))
    data = model.data_preprocessor(
        dict(inputs=torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8), data_samples=None),
        True)
    assert 'teacher_inputs' in data
    model.loss(**data)
    t_ids = visible_patch_ids(model.teacher, data['teacher_inputs'], seen['t'])
    s_ids = visible_patch_ids(model.architecture, data['inputs'], seen['s'])
    assert torch.equal(t_ids, s_ids)


def test_build_errors_name_the_key_and_valid_values():
    with pytest.raises(ValueError, match=r'mask_ratio=1\.0.*\[0, 1\)'):
        MODELS.build(model_cfg(mask_ratio=1.0))
    with pytest.raises(ValueError, match='mask_ratio=0.99 leaves no visible patch'):
        MODELS.build(model_cfg(mask_ratio=0.99))
    teacher = Config.fromfile('configs/_base_/models/mae_vit-d8-w128_p4_digits.py').model
    teacher.backbone.patch_size = 2
    teacher.neck.num_patches = 64
    teacher.neck.patch_size = 2
    teacher.head.patch_size = 2
    with pytest.raises(ValueError, match=r'same patch grid.*teacher \(8, 8\).*\(4, 4\)'):
        MODELS.build(model_cfg(teacher=teacher))
    classifier = Config.fromfile('configs/_base_/models/vit-d4-w64_p4_digits_cls.py').model
    with pytest.raises(TypeError, match=r"architecture must be an mmpretrain MAE model"):
        MODELS.build(model_cfg(architecture=classifier))
    with pytest.raises(ValueError, match=r"student_recorders.feat.*'backbone.layers.2'"):
        cfg = model_cfg()
        cfg.distiller.student_recorders.feat.source = 'backbone.layer.2'
        MODELS.build(cfg)


def test_wrong_input_size_is_reported():
    model = build()
    with pytest.raises(ValueError, match=r'\(8, 8\) patch grid.*built for \(4, 4\)'):
        model.loss(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize('mode', ['autocast', 'cast'])
def test_bf16_teacher_same_mask_close_loss(mode):
    """A bf16 teacher (DMAE's ViT-L in real configs) sees the same mask; the loss stays
    close to the fp32 one and is computed in fp32."""
    ref = build()
    low = build(teacher_precision='bf16', teacher_precision_mode=mode)
    x = images()
    torch.manual_seed(5)
    ref_loss = ref.loss(x)['distill.loss_dmae']
    torch.manual_seed(5)
    low_loss = low.loss(x)['distill.loss_dmae']
    assert low_loss.dtype == torch.float32
    assert low_loss.item() == pytest.approx(ref_loss.item(), rel=0.05)
    assert low_loss.item() != ref_loss.item()  # the teacher really ran in bf16
    expected = torch.bfloat16 if mode == 'cast' else torch.float32
    assert all(p.dtype == expected for p in low.teacher.parameters())
