"""TinyCLIP weight inheritance: manual slices, hard-concrete masks, structural pruning."""
import math

import pytest
import torch

from mmkd.models.surgery.clip_inheritance import inherit_clip_weights
from mmkd.models.surgery.clip_structure import (
    apply_structure,
    encode_image_masked,
    encode_text_masked,
    layer_indices,
    prune_clip,
    structure_of,
)
from mmkd.models.surgery.hard_concrete import (
    CLIPSparsityMasks,
    TowerMasks,
    deterministic_mask,
    hard_concrete_keep_prob,
    hard_concrete_sample,
)
from mmkd.models.task_models import OpenCLIPModel

TEACHER = dict(embed_dim=16,
               vision_cfg=dict(image_size=16, patch_size=8, width=32, layers=4, head_width=8),
               text_cfg=dict(context_length=6, vocab_size=20, width=24, heads=3, layers=3))
STUDENT = dict(embed_dim=12,
               vision_cfg=dict(image_size=16, patch_size=8, width=16, layers=2, head_width=8),
               text_cfg=dict(context_length=5, vocab_size=20, width=16, heads=2, layers=1))


def clip(cfg, seed=0):
    torch.manual_seed(seed)
    return OpenCLIPModel(model_cfg=cfg).clip.eval()


def inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(3, 3, 16, 16, generator=g)
    text = torch.randint(1, 18, (3, 6), generator=g)
    text[:, 4] = 19  # end token: the largest id (argmax pooling)
    return img, text


# ------------------------------------------------------------------ manual inheritance
def test_layer_choice_is_tinyclips_uniform_step():
    assert layer_indices(12, 9) == list(range(9))       # step 1
    assert layer_indices(12, 6) == [0, 2, 4, 6, 8, 10]  # step 2
    assert layer_indices(4, 2) == [0, 2]
    with pytest.raises(ValueError):
        layer_indices(3, 4)


def test_manual_inheritance_copies_the_teachers_slices_exactly():
    teacher, student = clip(TEACHER), clip(STUDENT, seed=5)
    report = inherit_clip_weights(student, teacher)
    assert report['layers'] == {'visual': [0, 2], 'text': [0]}
    tv, sv = teacher.visual, student.visual
    # embeddings and projections: front slices
    assert torch.equal(sv.conv1.weight, tv.conv1.weight[:16])
    assert torch.equal(sv.positional_embedding, tv.positional_embedding[:, :16])
    assert torch.equal(sv.proj, tv.proj[:16, :12])
    assert torch.equal(student.token_embedding.weight, teacher.token_embedding.weight[:, :16])
    assert torch.equal(student.positional_embedding, teacher.positional_embedding[:5, :16])
    assert torch.equal(student.text_projection, teacher.text_projection[:16, :12])
    assert torch.equal(student.logit_scale, teacher.logit_scale)
    # student vision layer 1 <- teacher layer 2; 2 of 4 heads of size 8
    s_blk, t_blk = sv.transformer.resblocks[1], tv.transformer.resblocks[2]
    w_t = t_blk.attn.in_proj_weight  # rows: q heads 0..3, k heads 0..3, v heads 0..3
    for part in range(3):          # q, k, v
        for head in range(2):
            s_rows = s_blk.attn.in_proj_weight[part * 16 + head * 8: part * 16 + head * 8 + 8]
            t_rows = w_t[part * 32 + head * 8: part * 32 + head * 8 + 8, :16]
            assert torch.equal(s_rows, t_rows)
            assert torch.equal(s_blk.attn.in_proj_bias[part * 16 + head * 8: part * 16 + head * 8 + 8],
                               t_blk.attn.in_proj_bias[part * 32 + head * 8: part * 32 + head * 8 + 8])
    assert torch.equal(s_blk.attn.out_proj.weight, t_blk.attn.out_proj.weight[:16, :16])
    assert torch.equal(s_blk.mlp.c_fc.weight, t_blk.mlp.c_fc.weight[:64, :16])
    assert torch.equal(s_blk.mlp.c_proj.weight, t_blk.mlp.c_proj.weight[:16, :64])
    assert torch.equal(s_blk.ln_1.weight, t_blk.ln_1.weight[:16])
    # text: 1 of 3 layers (layer 0), width 24 -> 16, 2 of 3 heads
    s_txt, t_txt = student.transformer.resblocks[0], teacher.transformer.resblocks[0]
    assert torch.equal(s_txt.attn.in_proj_weight[16:24], t_txt.attn.in_proj_weight[24:32, :16])  # k head 0
    assert torch.equal(s_txt.mlp.c_proj.bias, t_txt.mlp.c_proj.bias[:16])


def test_manual_inheritance_errors():
    teacher = clip(TEACHER)
    bad_heads = dict(STUDENT, vision_cfg=dict(STUDENT['vision_cfg'], head_width=4))
    with pytest.raises(ValueError, match='head_dim'):
        inherit_clip_weights(clip(bad_heads), teacher)
    bigger = dict(STUDENT, vision_cfg=dict(STUDENT['vision_cfg'], width=40, head_width=8))
    with pytest.raises(ValueError, match='no wider and no deeper'):
        inherit_clip_weights(clip(bigger), teacher)
    other_grid = dict(STUDENT, vision_cfg=dict(STUDENT['vision_cfg'], patch_size=4))
    with pytest.raises(ValueError, match='patches'):
        inherit_clip_weights(clip(other_grid), teacher)


# ---------------------------------------------------------------- hard-concrete masks
def test_hard_concrete_sample_golden():
    log_alpha = torch.tensor([2.0, -1.0, 0.5, -6.0, 6.0], dtype=torch.float64)
    u = torch.tensor([0.3, 0.9, 0.5, 0.2, 0.999], dtype=torch.float64)
    z = hard_concrete_sample(log_alpha, u)
    beta, lo, hi = 2 / 3, -0.1, 1.1
    for la, ui, zi in zip(log_alpha.tolist(), u.tolist(), z.tolist()):
        s = 1 / (1 + math.exp(-(math.log(ui) - math.log(1 - ui) + la) / beta))
        assert zi == pytest.approx(min(1.0, max(0.0, s * (hi - lo) + lo)), abs=1e-12)
    assert z[3] == 0.0 and z[4] == 1.0  # the stretch + clip gives exact zeros and ones


def test_keep_probability_golden_and_monte_carlo():
    log_alpha = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64)
    p = hard_concrete_keep_prob(log_alpha)
    for la, pi in zip(log_alpha.tolist(), p.tolist()):
        want = 1 / (1 + math.exp(-(la - (2 / 3) * math.log(0.1 / 1.1))))
        assert pi == pytest.approx(want, rel=1e-12)
    torch.manual_seed(0)
    draws = hard_concrete_sample(log_alpha.expand(20000, 3).clone())
    assert torch.allclose((draws > 0).double().mean(0), p, atol=0.015)


def test_deterministic_mask_zeroes_the_expected_number_of_units():
    log_alpha = torch.tensor([3.0, -3.0, 0.2, -0.5, 4.0, -4.0])
    mask = deterministic_mask(log_alpha)
    keep = sum(1 / (1 + math.exp(-(la - (2 / 3) * math.log(0.1 / 1.1)))) for la in log_alpha.tolist())
    num_zeros = round(6 - keep)
    assert int((mask == 0).sum()) == num_zeros
    soft = [1 / (1 + math.exp(-la / (2 / 3) * 0.8)) for la in log_alpha.tolist()]
    order = sorted(range(6), key=lambda i: soft[i])
    for i in range(6):
        want = 0.0 if i in order[:num_zeros] else soft[i]
        assert mask[i].item() == pytest.approx(want, abs=1e-6)


def test_expected_sparsity_golden():
    masks = TowerMasks(width=4, heads=[2, 1], head_dim=3, mlp=[5, 2])
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in masks.log_alphas():
            p.copy_(torch.randn(p.shape, generator=g) * 2)
    P = lambda t: [1 / (1 + math.exp(-(x - (2 / 3) * math.log(0.1 / 1.1)))) for x in t.tolist()]  # noqa
    d = sum(P(masks.hidden))
    heads = [sum(P(h)) for h in masks.heads]
    mlp = [sum(P(m)) for m in masks.mlp]
    want = d * sum(4 * 3 * h + 2 * m for h, m in zip(heads, mlp))
    assert masks.expected_params().item() == pytest.approx(want, rel=1e-6)
    assert masks.full_params() == 4 * (4 * 3 * 2 + 2 * 5 + 4 * 3 * 1 + 2 * 2)
    # two towers: one joint sparsity (TinyCLIP's --total-loss-flag)
    struct = {'visual': dict(width=4, heads=[2, 1], head_dim=3, mlp=[5, 2]),
              'text': dict(width=2, heads=[1], head_dim=2, mlp=[3])}
    both = CLIPSparsityMasks(struct, target_sparsity=0.5, warmup_iters=10, start_sparsity=0.1)
    with torch.no_grad():
        both.towers['visual'].load_state_dict(masks.state_dict())
    text = both.towers['text']
    text_kept = sum(P(text.hidden)) * (4 * 2 * sum(P(text.heads[0])) + 2 * sum(P(text.mlp[0])))
    full = masks.full_params() + 2 * (4 * 2 * 1 + 2 * 3)
    assert both.expected_sparsity().item() == pytest.approx(1 - (want + text_kept) / full, rel=1e-6)
    # the target ramps linearly from start to target over warmup_iters
    assert both.current_target(0) == pytest.approx(0.1)
    assert both.current_target(5) == pytest.approx(0.3)
    assert both.current_target(50) == pytest.approx(0.5)


def test_lagrangian_value_and_multipliers_ascend():
    struct = {'visual': dict(width=4, heads=[2], head_dim=2, mlp=[4])}
    masks = CLIPSparsityMasks(struct, target_sparsity=0.6, towers=('visual', ), init_lambda=2.0)
    out = masks.lagrangian(step=0)
    gap = 0.6 - out['expected_sparsity'].item()
    assert out['loss_lagrangian'].item() == pytest.approx(2.0 * gap + 2.0 * gap * gap, rel=1e-5)
    out['loss_lagrangian'].backward()
    # gradient reversal: a descent step on lambda increases it while the target is missed
    assert masks.lambda_1.grad.item() == pytest.approx(-gap, rel=1e-5)
    assert masks.lambda_2.grad.item() == pytest.approx(-gap * gap, rel=1e-5)
    # the masks are pushed towards sparsity (lower log_alpha)
    assert masks.towers['visual'].hidden.grad.min() > 0


def test_sparsity_config_errors():
    struct = {'visual': dict(width=4, heads=[2], head_dim=2, mlp=[4])}
    with pytest.raises(ValueError, match='prune_types'):
        CLIPSparsityMasks(struct, target_sparsity=0.5, prune_types=('layers', ))
    with pytest.raises(ValueError, match='towers'):
        CLIPSparsityMasks(struct, target_sparsity=0.5)  # no 'text' tower here
    with pytest.raises(ValueError, match='target_sparsity'):
        CLIPSparsityMasks(struct, target_sparsity=1.0, towers=('visual', ))


# ------------------------------------------------------------------------- pruning
def _ones(struct):
    return {k: dict(hidden=torch.ones(v['width']), heads=[torch.ones(h) for h in v['heads']],
                    mlp=[torch.ones(m) for m in v['mlp']]) for k, v in struct.items()}


def test_masked_forward_without_masks_is_open_clips_forward():
    model = clip(TEACHER)
    img, text = inputs()
    assert torch.allclose(encode_image_masked(model, img), model.encode_image(img), atol=1e-6)
    assert torch.allclose(encode_text_masked(model, text), model.encode_text(text), atol=1e-6)


def test_pruning_with_all_ones_masks_keeps_the_outputs():
    model = clip(TEACHER)
    pruned = prune_clip(model, _ones(structure_of(model))).eval()
    img, text = inputs()
    assert structure_of(pruned) == structure_of(model)
    assert torch.allclose(pruned.encode_image(img), model.encode_image(img), atol=1e-5)
    assert torch.allclose(pruned.encode_text(text), model.encode_text(text), atol=1e-5)


def test_pruning_with_masks_gives_the_expected_shapes_and_the_masked_outputs():
    model = clip(TEACHER)
    g = torch.Generator().manual_seed(2)

    def rand(n, zeros):
        m = torch.rand(n, generator=g) * 0.5 + 0.5
        m[torch.randperm(n, generator=g)[:zeros]] = 0.0
        return m

    masks = {'visual': dict(hidden=rand(32, 12), heads=[rand(4, 1), rand(4, 4), rand(4, 2), rand(4, 0)],
                            mlp=[rand(128, 100), rand(128, 0), rand(128, 128), rand(128, 64)]),
             'text': dict(hidden=rand(24, 8), heads=[rand(3, 2), rand(3, 1), rand(3, 0)],
                          mlp=[rand(96, 90), rand(96, 6), rand(96, 50)])}
    pruned = prune_clip(model, masks).eval()
    struct = structure_of(pruned)
    # a fully pruned group keeps one unit (with its zero mask folded in)
    assert struct['visual'] == dict(width=20, heads=[3, 1, 2, 4], head_dim=8, mlp=[28, 128, 1, 64])
    assert struct['text'] == dict(width=16, heads=[1, 2, 3], head_dim=8, mlp=[6, 90, 46])
    blk = pruned.visual.transformer.resblocks[0]
    assert tuple(blk.attn.in_proj_weight.shape) == (3 * 3 * 8, 20)
    assert tuple(blk.attn.out_proj.weight.shape) == (20, 3 * 8)
    assert tuple(blk.mlp.c_fc.weight.shape) == (28, 20) and tuple(blk.mlp.c_proj.weight.shape) == (20, 28)
    assert tuple(pruned.visual.conv1.weight.shape) == (20, 3, 8, 8)
    assert tuple(pruned.visual.proj.shape) == (20, 16)
    assert tuple(pruned.token_embedding.weight.shape) == (20, 16)
    img, text = inputs()
    assert torch.allclose(pruned.encode_image(img), encode_image_masked(model, img, masks['visual']),
                          atol=1e-5)
    assert torch.allclose(pruned.encode_text(text), encode_text_masked(model, text, masks['text']),
                          atol=1e-5)
    # the structure rebuilds from the full config; the pruned weights load strictly
    rebuilt = apply_structure(clip(TEACHER, seed=9), struct).eval()
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    assert torch.allclose(rebuilt.encode_image(img), pruned.encode_image(img))


def test_masked_wrapper_trains_the_masks_and_prunes():
    torch.manual_seed(0)
    model = OpenCLIPModel(model_cfg=TEACHER, sparsity=dict(target_sparsity=0.5, warmup_iters=2))
    model.train()
    img, text = inputs()
    losses = model(dict(img=img, text=text), mode='loss')
    assert set(losses) == {'loss_contrastive', 'loss_lagrangian', 'expected_sparsity', 'target_sparsity'}
    assert int(model.l0_masks.step) == 1
    (losses['loss_contrastive'] + losses['loss_lagrangian']).backward()
    assert model.l0_masks.towers['visual'].hidden.grad is not None
    model.eval()
    pruned = model.prune()
    masks = model.l0_masks(sample=False)
    assert torch.allclose(pruned.eval().encode_image(img),
                          encode_image_masked(model.clip, img, masks['visual']), atol=1e-5)
