"""Tests of ACAMKDLoss (Lan & Tian, ICCV 2025).

Golden values are recomputed here from the paper's formulas with plain Python
floats and explicit loops over the module's parameters; nothing of the
implementation (other than reading its parameters) is reused."""
import math

import pytest
import torch

from mmkd.models.losses.acam_kd_loss import ACAMKDLoss, dice_diversity
from mmkd.registry import MODELS


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def to_lists(t):
    return t.detach().double().tolist()


def golden_acam(loss, s, t, diversity_reduction='mean', normalizer='mass', standardize=True):
    """Channel (E7), spatial (E8) and Dice diversity (E9) terms, batch-averaged,
    computed element by element from the module's parameters. ``normalizer``: the
    mask's size in (E7)-(E8), its energy sum(M^2) or its mass sum(M). ``standardize``:
    the channel means standardised over the channels and the fused feature per channel
    over the positions (population variance + 1e-5) before the selection units."""
    def standardized(xs):
        mean = sum(xs) / len(xs)
        var = sum((x - mean)**2 for x in xs) / len(xs)
        return [(x - mean) / math.sqrt(var + 1e-5) for x in xs]

    def size(mask):
        return sum(x * x for x in mask) if normalizer == 'energy' else sum(mask)

    n, ct, h, w = t.shape
    cs = s.shape[1]
    p_count = h * w
    cq = loss.query_channels
    wq = to_lists(loss.query_proj.weight.reshape(cq, ct))
    wk = to_lists(loss.key_proj.weight.reshape(cq, ct))
    wv = to_lists(loss.value_proj.weight.reshape(ct, ct))
    gains = [g[0] for g in to_lists(loss.channel_units)]
    units = to_lists(loss.spatial_units)
    if isinstance(loss.align, torch.nn.Conv2d):
        wa = to_lists(loss.align.weight.reshape(ct, cs))
        ba = to_lists(loss.align.bias)
    else:
        wa = [[1.0 if i == j else 0.0 for j in range(cs)] for i in range(ct)]
        ba = [0.0] * ct
    m_count = len(gains)
    S = to_lists(s.reshape(n, cs, p_count))
    T = to_lists(t.reshape(n, ct, p_count))

    def mat_vec_cols(wm, x, bias=None):
        rows, cols = len(wm), len(x)
        return [[sum(wm[r][c] * x[c][p] for c in range(cols)) + (bias[r] if bias else 0.0)
                 for p in range(p_count)] for r in range(rows)]

    def dice(masks):
        k = len(masks)
        vals = []
        for i in range(k):
            for j in range(k):
                if i == j:
                    continue
                num = 2 * sum(a * b for a, b in zip(masks[i], masks[j]))
                den = sum(a * a for a in masks[i]) + sum(b * b for b in masks[j])
                vals.append(num / den)
        return sum(vals) / len(vals) if diversity_reduction == 'mean' else sum(vals)

    tot_c = tot_s = tot_div = 0.0
    for b in range(n):
        sa = mat_vec_cols(wa, S[b], ba)  # aligned student (C_T x P)
        q = mat_vec_cols(wq, T[b])
        k = mat_vec_cols(wk, sa)
        v = mat_vec_cols(wv, sa)
        fused = [[0.0] * p_count for _ in range(ct)]
        for i in range(p_count):
            logits = [sum(q[c][i] * k[c][j] for c in range(cq)) / math.sqrt(cq)
                      for j in range(p_count)]
            mx = max(logits)
            ex = [math.exp(x - mx) for x in logits]
            z = sum(ex)
            att = [e / z for e in ex]
            for c in range(ct):
                fused[c][i] = sum(att[j] * v[c][j] for j in range(p_count))
        pooled = [sum(fused[c]) / p_count for c in range(ct)]
        if standardize:
            pooled = standardized(pooled)
            fused = [standardized(fused[c]) for c in range(ct)]
        mc = [[sigmoid(gains[m] * pooled[c]) for c in range(ct)] for m in range(m_count)]
        ms = [[sigmoid(sum(units[m][c] * fused[c][p] for c in range(ct)))
               for p in range(p_count)] for m in range(m_count)]
        d = [[T[b][c][p] - sa[c][p] for p in range(p_count)] for c in range(ct)]
        lc = sum(
            sum((mc[m][c] * d[c][p])**2 for c in range(ct) for p in range(p_count)) /
            (p_count * size(mc[m])) for m in range(m_count)) / m_count
        ls = sum(
            sum((ms[m][p] * d[c][p])**2 for c in range(ct) for p in range(p_count)) /
            (ct * size(ms[m])) for m in range(m_count)) / m_count
        tot_c += lc
        tot_s += ls
        tot_div += dice(ms) + dice(mc)
    return tot_c / n, tot_s / n, tot_div / n


def make_loss(cs=3, ct=4, m=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    loss = ACAMKDLoss(student_channels=cs, teacher_channels=ct, num_masks=m, **kwargs).double()
    # Larger selection units than the N(0, 0.01) init so the masks are far from 0.5
    # and the golden comparison exercises the sigmoid and the normalisation.
    with torch.no_grad():
        loss.channel_units.copy_(torch.tensor([[1.5], [-0.7], [0.3]][:m], dtype=torch.double))
        loss.spatial_units.normal_(0, 0.8)
    return loss


@pytest.mark.parametrize('normalizer,standardize', [('mass', True), ('energy', True),
                                                    ('mass', False)])
@pytest.mark.parametrize('attention', ['sdpa', 'chunked', 'full'])
@pytest.mark.parametrize('cs', [3, 4])  # with and without the 1x1 alignment conv
def test_golden_value(cs, attention, normalizer, standardize):
    loss = make_loss(cs=cs, channel_weight=0.7, spatial_weight=1.3, diversity_weight=0.4,
                     loss_weight=2.0, attention=attention, attn_chunk_size=4,
                     mask_normalizer=normalizer, normalize_fused=standardize)
    torch.manual_seed(1)
    s = torch.randn(2, cs, 2, 3, dtype=torch.double)
    t = torch.randn(2, 4, 2, 3, dtype=torch.double)
    lc, ls, ldiv = golden_acam(loss, s, t, normalizer=normalizer, standardize=standardize)
    parts = loss.loss_components(s, t)
    assert parts['loss_channel'].item() == pytest.approx(lc, rel=1e-9)
    assert parts['loss_spatial'].item() == pytest.approx(ls, rel=1e-9)
    assert parts['loss_diversity'].item() == pytest.approx(ldiv, rel=1e-9)
    expected = 2.0 * (0.7 * lc + 1.3 * ls + 0.4 * ldiv)
    assert loss(s, t).item() == pytest.approx(expected, rel=1e-9)


def test_golden_value_sum_reduction_and_odd_channels():
    # C_T = 5 -> C_q = 2; diversity summed over the M(M-1) ordered pairs
    loss = make_loss(cs=5, ct=5, diversity_reduction='sum')
    torch.manual_seed(2)
    s = torch.randn(1, 5, 3, 2, dtype=torch.double)
    t = torch.randn(1, 5, 3, 2, dtype=torch.double)
    assert loss.query_channels == 2
    lc, ls, ldiv = golden_acam(loss, s, t, diversity_reduction='sum')
    assert loss(s, t).item() == pytest.approx(lc + ls + ldiv, rel=1e-9)


@pytest.mark.parametrize('normalizer,factor', [('mass', 0.5), ('energy', 1.0)])
def test_mask_normalisation_uniform_masks(normalizer, factor):
    """With all selection units at 0 every mask is 0.5 everywhere. (E7)/(E8) then give
    sum(0.25 * D^2) / (P * C * 0.5) = 0.5 * mean(D^2) with the mass normaliser and
    sum(0.25 * D^2) / (P * C * 0.25) = mean(D^2) with the energy normaliser;
    identical masks have Dice 1."""
    loss = ACAMKDLoss(4, 4, num_masks=3, mask_normalizer=normalizer).double()
    with torch.no_grad():
        loss.channel_units.zero_()
        loss.spatial_units.zero_()
    s = torch.arange(24, dtype=torch.double).reshape(1, 4, 2, 3) / 10
    t = torch.ones(1, 4, 2, 3, dtype=torch.double)
    mse = sum((1.0 - x / 10)**2 for x in range(24)) / 24
    parts = loss.loss_components(s, t)
    assert parts['loss_channel'].item() == pytest.approx(factor * mse, rel=1e-12)
    assert parts['loss_spatial'].item() == pytest.approx(factor * mse, rel=1e-12)
    assert parts['loss_diversity'].item() == pytest.approx(2.0, rel=1e-12)


def test_mask_normalisation_is_by_mask_mass():
    """A spatial mask concentrated on one position makes (E8) the (mask-weighted) error
    of that position: M_p^2 e_p / (C * sum M) with the mask values written out."""
    loss = ACAMKDLoss(2, 2, num_masks=1, mask_normalizer='mass', normalize_fused=False).double()
    with torch.no_grad():
        loss.value_proj.weight.copy_(torch.eye(2, dtype=torch.double).reshape(2, 2, 1, 1))
        loss.query_proj.weight.zero_()  # uniform attention: fused = mean of V at every position
        loss.spatial_units.fill_(0.0)
        loss.channel_units.fill_(2.0)
    s = torch.tensor([[[[0.0, 1.0]], [[2.0, -1.0]]]], dtype=torch.double)  # (1, 2, 1, 2)
    t = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]], dtype=torch.double)
    # fused = channel means of s at both positions: v = (0.5, 0.5)
    mc = [sigmoid(2.0 * 0.5), sigmoid(2.0 * 0.5)]
    e_c = [(1 - 0)**2 + (1 - 1)**2, (0 - 2)**2 + (0 + 1)**2]  # per channel, summed over P
    expected_c = sum(m * m * e for m, e in zip(mc, e_c)) / (2 * sum(mc))
    e_p = [(1 - 0)**2 + (0 - 2)**2, (1 - 1)**2 + (0 + 1)**2]  # per position, summed over C
    expected_s = sum(0.25 * e for e in e_p) / (2 * 1.0)  # spatial masks all 0.5, mass 1.0
    parts = loss.loss_components(s, t)
    assert parts['loss_channel'].item() == pytest.approx(expected_c, rel=1e-12)
    assert parts['loss_spatial'].item() == pytest.approx(expected_s, rel=1e-12)


def test_dice_diversity_values():
    masks = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # (N=1, M=3, L=2)
    # pairs: (1,2): 0; (1,3): 2*1/(1+2); (2,3): 2*1/(1+2); each counted twice (ordered)
    pair_sum = 2 * (0 + 2 / 3 + 2 / 3)
    assert dice_diversity(masks, 'sum').item() == pytest.approx(pair_sum)
    assert dice_diversity(masks, 'mean').item() == pytest.approx(pair_sum / 6)
    assert dice_diversity(masks[:, :1]).item() == 0.0  # one mask: no pair
    same = torch.rand(2, 4, 5) + 0.1
    same[:, 1:] = same[:, :1]
    assert dice_diversity(same).item() == pytest.approx(1.0)
    # batch average
    batch = torch.cat([masks, same[:1, :3, :2]], dim=0)
    assert dice_diversity(batch).item() == pytest.approx((pair_sum / 6 + 1.0) / 2)


def test_gradients():
    loss = make_loss(cs=3, ct=4, attn_chunk_size=None)
    s = torch.randn(2, 3, 3, 3, dtype=torch.double, requires_grad=True)
    t = torch.randn(2, 4, 3, 3, dtype=torch.double, requires_grad=True)
    loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None  # the teacher is a target
    for name, p in loss.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_student_gradient_treats_masks_as_constants():
    """detach_student_in_fusion=True (an option since the cooperative form became the
    default): the student's gradient is that of (E7)+(E8) with the masks held fixed."""
    loss = make_loss(cs=4, ct=4, diversity_weight=0.0, detach_student_in_fusion=True,
                     detach_masks=True, mask_normalizer='mass')
    torch.manual_seed(3)
    s = torch.randn(1, 4, 2, 2, dtype=torch.double, requires_grad=True)
    t = torch.randn(1, 4, 2, 2, dtype=torch.double)
    loss(s, t).backward()
    with torch.no_grad():
        masks = loss.compute_masks(s, t)
    mc = masks['channel'][0]  # (M, C)
    ms = masks['spatial'][0].flatten(1)  # (M, P)
    s2 = s.detach().clone().requires_grad_()
    d = (t[0] - s2[0]).flatten(1)  # (C, P)
    m = mc.shape[0]
    manual = 0
    for i in range(m):
        manual = manual + ((mc[i][:, None] * d)**2).sum() / (4 * mc[i].sum()) / m
        manual = manual + ((ms[i][None, :] * d)**2).sum() / (4 * ms[i].sum()) / m
    manual.backward()
    torch.testing.assert_close(s.grad, s2.grad)


def test_detach_masks_leaves_fusion_to_the_diversity_term():
    loss = make_loss(cs=4, ct=4, diversity_weight=0.0, detach_masks=True,
                     attn_chunk_size=None)
    s = torch.randn(1, 4, 2, 2, dtype=torch.double, requires_grad=True)
    t = torch.randn(1, 4, 2, 2, dtype=torch.double)
    loss(s, t).backward()
    assert s.grad.abs().sum() > 0
    for p in (loss.query_proj.weight, loss.channel_units, loss.spatial_units):
        assert p.grad is None or p.grad.abs().sum() == 0


def test_literal_mode_trains_the_masks_with_the_mimicking_terms():
    """detach_masks=False (the paper read literally): the fusion/masking parameters get
    a gradient from (E7)-(E8) even without the diversity term."""
    loss = make_loss(cs=4, ct=4, diversity_weight=0.0, detach_masks=False,
                     attn_chunk_size=None)
    with torch.no_grad():
        loss.channel_units.fill_(1.0)
    s = torch.randn(1, 4, 3, 3, dtype=torch.double, requires_grad=True)
    t = torch.randn(1, 4, 3, 3, dtype=torch.double)
    loss(s, t).backward()
    for p in (loss.query_proj.weight, loss.key_proj.weight, loss.value_proj.weight,
              loss.channel_units, loss.spatial_units):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_init_std():
    loss = ACAMKDLoss(4, 64, num_masks=400, init_std=None)
    assert loss.spatial_units.std().item() == pytest.approx(1 / 8, rel=0.1)
    assert loss.channel_units.std().item() == pytest.approx(1.0, rel=0.2)
    small = ACAMKDLoss(4, 64, num_masks=400, init_std=0.01)
    assert small.spatial_units.std().item() == pytest.approx(0.01, rel=0.1)
    with pytest.raises(ValueError, match='init_std'):
        ACAMKDLoss(4, 4, init_std=0.0)


def test_student_gradient_through_fusion_when_enabled():
    a = make_loss(cs=4, ct=4, detach_student_in_fusion=True, attn_chunk_size=None)
    b = make_loss(cs=4, ct=4, detach_student_in_fusion=False, attn_chunk_size=None)
    s = torch.randn(1, 4, 2, 2, dtype=torch.double)
    t = torch.randn(1, 4, 2, 2, dtype=torch.double)
    sa, sb = s.clone().requires_grad_(), s.clone().requires_grad_()
    a(sa, t).backward()
    b(sb, t).backward()
    assert a(s, t).item() == pytest.approx(b(s, t).item())
    assert not torch.allclose(sa.grad, sb.grad)


def _values_and_grads(loss, s, t):
    s = s.clone().requires_grad_()
    loss.zero_grad()
    out = loss(s, t)
    out.backward()
    grads = {n: p.grad.clone() for n, p in loss.named_parameters()}
    return out.detach(), s.grad.clone(), grads


@pytest.mark.parametrize('impl,chunk', [('chunked', 1), ('chunked', 5), ('chunked', 7),
                                        ('sdpa', None)])
def test_attention_implementations_match_full(impl, chunk):
    full = make_loss(cs=3, ct=4, attention='full')
    chunked = make_loss(cs=3, ct=4, attention=impl, attn_chunk_size=chunk)
    torch.manual_seed(4)
    s = torch.randn(2, 3, 3, 4, dtype=torch.double)
    t = torch.randn(2, 4, 3, 4, dtype=torch.double)
    v_full, gs_full, gp_full = _values_and_grads(full, s, t)
    v_chunk, gs_chunk, gp_chunk = _values_and_grads(chunked, s, t)
    torch.testing.assert_close(v_chunk, v_full)
    torch.testing.assert_close(gs_chunk, gs_full)
    for name in gp_full:
        torch.testing.assert_close(gp_chunk[name], gp_full[name], msg=name)


def test_pooled_attention_matches_full_at_input_size():
    full = make_loss(cs=3, ct=4, attn_chunk_size=None)
    pooled = make_loss(cs=3, ct=4, attn_chunk_size=None, kv_pool_size=(3, 4))
    coarse = make_loss(cs=3, ct=4, attn_chunk_size=None, kv_pool_size=2)
    torch.manual_seed(5)
    s = torch.randn(2, 3, 3, 4, dtype=torch.double)
    t = torch.randn(2, 4, 3, 4, dtype=torch.double)
    v_full, gs_full, gp_full = _values_and_grads(full, s, t)
    v_pool, gs_pool, gp_pool = _values_and_grads(pooled, s, t)
    torch.testing.assert_close(v_pool, v_full)
    torch.testing.assert_close(gs_pool, gs_full)
    for name in gp_full:
        torch.testing.assert_close(gp_pool[name], gp_full[name], msg=name)
    # a coarser grid is an approximation: it runs and differs
    assert not torch.allclose(coarse(s, t), v_full)


def test_compute_masks_shapes_and_range():
    loss = ACAMKDLoss(3, 8, num_masks=5)
    s, t = torch.randn(2, 3, 4, 6), torch.randn(2, 8, 4, 6)
    with torch.no_grad():
        masks = loss.compute_masks(s, t)
    assert masks['channel'].shape == (2, 5, 8)
    assert masks['spatial'].shape == (2, 5, 4, 6)
    for m in masks.values():
        assert bool(((m > 0) & (m < 1)).all())


def test_shape_errors_name_both_shapes():
    loss = ACAMKDLoss(3, 4)
    with pytest.raises(ValueError, match=r'\(1, 3, 4, 4\).*\(1, 4, 5, 4\)'):
        loss(torch.randn(1, 3, 4, 4), torch.randn(1, 4, 5, 4))
    with pytest.raises(ValueError, match='student_channels=3'):
        loss(torch.randn(1, 5, 4, 4), torch.randn(1, 4, 4, 4))
    with pytest.raises(ValueError, match='teacher_channels=4'):
        loss(torch.randn(1, 3, 4, 4), torch.randn(1, 6, 4, 4))
    with pytest.raises(ValueError, match='NCHW'):
        loss(torch.randn(3, 4, 4), torch.randn(4, 4, 4))


@pytest.mark.parametrize('kwargs', [
    {'num_masks': 0}, {'attn_chunk_size': 0}, {'kv_pool_size': (2, 0)}, {'attention': 'flash'},
    {'diversity_masks': ('spatial', 'pixel')}, {'diversity_reduction': 'max'}
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ACAMKDLoss(4, 4, **kwargs)


def test_built_from_registry():
    loss = MODELS.build(
        {'type': 'ACAMKDLoss', 'student_channels': 8, 'teacher_channels': 8, 'num_masks': 6})
    assert isinstance(loss, ACAMKDLoss)
    assert loss.paired_inputs == ()
    assert isinstance(loss.align, torch.nn.Identity)
    out = loss(torch.randn(1, 8, 5, 5), torch.randn(1, 8, 5, 5))
    assert out.dim() == 0 and torch.isfinite(out)


# ------------------------------------------------- SDPA against a direct softmax
def direct_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v written out, d = the query/key size."""
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


@pytest.mark.parametrize('cq,c', [(3, 7), (2, 4), (9, 19), (8, 16)])
def test_sdpa_attention_equals_direct_softmax_fp32(cq, c):
    """The SDPA path pads q, k, v to one head size; values and gradients (w.r.t. q, k
    and v) equal the direct formula within fp32 tolerance, also for odd sizes."""
    from mmkd.models.losses.acam_kd_loss import cross_attention
    torch.manual_seed(7)
    q = torch.randn(2, 37, cq, requires_grad=True)
    k = torch.randn(2, 37, cq, requires_grad=True)
    v = torch.randn(2, 37, c, requires_grad=True)
    weight = torch.randn(2, 37, c)  # a non-uniform upstream gradient
    out = cross_attention(q, k, v, impl='sdpa')
    assert out.shape == (2, 37, c)
    grads = torch.autograd.grad((out * weight).sum(), (q, k, v))
    qd, kd, vd = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref = direct_attention(qd, kd, vd)
    ref_grads = torch.autograd.grad((ref * weight.double()).sum(), (qd, kd, vd))
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    for g, r, name in zip(grads, ref_grads, 'qkv'):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-5, msg=name)


def test_sdpa_loss_equals_chunked_loss_fp32():
    """The whole loss (values, student and parameter gradients) is the same with the
    SDPA attention and the previous chunked implementation, in fp32."""
    torch.manual_seed(8)
    s = torch.randn(2, 6, 5, 7)
    t = torch.randn(2, 8, 5, 7)
    results = []
    for attention in ('sdpa', 'chunked'):
        torch.manual_seed(0)
        loss = ACAMKDLoss(6, 8, num_masks=4, attention=attention, attn_chunk_size=8)
        results.append(_values_and_grads(loss, s, t))
    (v0, gs0, gp0), (v1, gs1, gp1) = results
    torch.testing.assert_close(v0, v1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gs0, gs1, rtol=1e-4, atol=1e-6)
    for name in gp0:
        torch.testing.assert_close(gp0[name], gp1[name], rtol=1e-4, atol=1e-6, msg=name)


def test_sdpa_never_holds_the_p_by_p_weights():
    """Peak bytes of tensors allocated during forward + backward (profiler memory events)
    stay far below one P x P fp32 matrix with SDPA, while the full path exceeds it."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    def peak(attention):
        torch.manual_seed(0)
        loss = ACAMKDLoss(8, 8, num_masks=2, attention=attention)
        s = torch.randn(1, 8, 48, 64, requires_grad=True)  # P = 3072
        t = torch.randn(1, 8, 48, 64)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            loss(s, t).backward()
        events = sorted((e for e in prof.profiler.kineto_results.events()
                         if e.name() == '[memory]' and e.device_type() == DeviceType.CPU),
                        key=lambda e: e.start_ns())
        held = top = 0
        for e in events:
            held += e.nbytes()
            top = max(top, held)
        return top

    p_by_p = 3072 * 3072 * 4
    assert peak('full') >= p_by_p
    assert peak('sdpa') < p_by_p / 8


# ----------------------------------------------------------- cooperative default
def test_default_is_the_cooperative_form():
    loss = ACAMKDLoss(4, 4)
    assert loss.detach_masks is False and loss.detach_student_in_fusion is False
    assert loss.attention == 'sdpa'


def test_cooperative_default_student_gradient_includes_the_fusion_path():
    """With the defaults the student's gradient is NOT the masks-held-fixed gradient of
    (E7)+(E8): it also flows through STCA-FF (keys and values) and the masks. Checked
    against a finite difference of the whole loss, which sees every path."""
    loss = make_loss(cs=4, ct=4, diversity_weight=0.5)
    torch.manual_seed(9)
    s = torch.randn(1, 4, 2, 3, dtype=torch.double, requires_grad=True)
    t = torch.randn(1, 4, 2, 3, dtype=torch.double)
    loss(s, t).backward()
    fixed = make_loss(cs=4, ct=4, diversity_weight=0.5, detach_student_in_fusion=True,
                      detach_masks=True)
    s_fixed = s.detach().clone().requires_grad_()
    fixed(s_fixed, t).backward()
    assert not torch.allclose(s.grad, s_fixed.grad)
    eps = 1e-6
    numeric = torch.zeros_like(s)
    with torch.no_grad():
        for idx in range(s.numel()):
            d = torch.zeros(s.numel(), dtype=torch.double)
            d[idx] = eps
            d = d.reshape(s.shape)
            numeric.view(-1)[idx] = (loss(s + d, t) - loss(s - d, t)) / (2 * eps)
    torch.testing.assert_close(s.grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize('normalizer', ['energy', 'mass'])
def test_mimic_terms_and_a_common_mask_level(normalizer):
    """The cause of the collapse with the paper's mass normaliser: for masks at one
    common level mu = sigmoid(b), (E7)+(E8) equal mu * MSE each (their gradient in b
    is 2 * mu(1-mu) * MSE > 0, so training lowers every mask), while the energy
    normaliser gives MSE whatever mu is (no gradient in b)."""

    class LevelMasks(ACAMKDLoss):
        def masks_from_fused(self, fused):
            n, c, h, w = fused.shape
            mu = torch.sigmoid(self.level)
            ones = fused.new_ones(())
            return (mu * ones).expand(n, self.num_masks, c), (mu * ones).expand(
                n, self.num_masks, h * w)

    loss = LevelMasks(3, 3, num_masks=2, diversity_weight=0.0,
                      mask_normalizer=normalizer).double()
    loss.level = torch.nn.Parameter(torch.tensor(0.4, dtype=torch.double))
    torch.manual_seed(10)
    s = torch.randn(1, 3, 2, 2, dtype=torch.double)
    t = torch.randn(1, 3, 2, 2, dtype=torch.double)
    mse = ((t - s)**2).mean().item()
    mu = sigmoid(0.4)
    value = loss(s, t)
    value.backward()
    if normalizer == 'mass':
        assert value.item() == pytest.approx(2 * mu * mse, rel=1e-12)
        assert loss.level.grad.item() == pytest.approx(2 * mu * (1 - mu) * mse, rel=1e-9)
    else:
        assert value.item() == pytest.approx(2 * mse, rel=1e-12)
        assert abs(loss.level.grad.item()) < 1e-12


def test_normalize_fused_centres_every_mask_logit():
    """With normalize_fused (default) the logits of each spatial mask average to 0 over
    the positions and those of each channel mask to 0 over the channels, so no mask
    can be constant at a learned level; without it the logits have a free level."""
    torch.manual_seed(11)
    s = torch.randn(2, 6, 5, 4, dtype=torch.double)
    t = torch.randn(2, 6, 5, 4, dtype=torch.double)
    for flag in (True, False):
        loss = ACAMKDLoss(6, 6, num_masks=3, normalize_fused=flag).double()
        with torch.no_grad():
            loss.spatial_units.fill_(-3.0)  # every unit pushes its logits down
            loss.channel_units.fill_(-3.0)
            masks = loss.compute_masks(s, t)
        sp = torch.logit(masks['spatial'].flatten(2))
        ch = torch.logit(masks['channel'])
        if flag:
            torch.testing.assert_close(sp.mean(-1), torch.zeros(2, 3, dtype=torch.double),
                                       atol=1e-9, rtol=0)
            torch.testing.assert_close(ch.mean(-1), torch.zeros(2, 3, dtype=torch.double),
                                       atol=1e-9, rtol=0)
            assert sp.std(-1).min() > 0.5  # spatially selective
        else:
            assert not torch.allclose(sp.mean(-1), torch.zeros(2, 3, dtype=torch.double),
                                      atol=1e-2)
