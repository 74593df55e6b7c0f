"""Golden-value tests of the classic losses: every expected value is computed here
directly from the paper's formula with plain Python/math on small tensors."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses import ChannelWiseDivergence, DKDLoss, KLDivergence, L2Loss


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [v / s for v in e]


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


S = [[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]]
T = [[2.0, 1.0, 0.0], [0.0, 0.5, 2.0]]


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_kl_divergence_golden(tau):
    expected = sum(kl(softmax([x / tau for x in t]), softmax([x / tau for x in s]))
                   for s, t in zip(S, T)) / len(S) * tau**2 * 0.5
    loss = KLDivergence(tau=tau, loss_weight=0.5)(torch.tensor(S), torch.tensor(T))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_kl_divergence_pixels_and_grad():
    s = torch.tensor(S).t().reshape(1, 3, 1, 2).requires_grad_()  # (N=1, C=3, H=1, W=2)
    t = torch.tensor(T).t().reshape(1, 3, 1, 2).requires_grad_()
    summed = sum(kl(softmax(tt), softmax(ss)) for ss, tt in zip(S, T))
    # 'pixelmean': mean over the 2 per-pixel distributions; 'batchmean': sum / N (N = 1)
    assert KLDivergence(reduction='batchmean')(s, t).item() == pytest.approx(summed, rel=1e-5)
    loss = KLDivergence(reduction='pixelmean')(s, t)
    assert loss.item() == pytest.approx(summed / 2, rel=1e-5)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None  # the teacher is a target


def test_kl_divergence_zero_when_equal():
    x = torch.randn(4, 7)
    assert KLDivergence(tau=2.0)(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_l2_loss_golden():
    s = [[1.0, 2.0], [3.0, 4.0]]
    t = [[0.0, 2.5], [1.0, 4.0]]
    sq = [(a - b)**2 for rs, rt in zip(s, t) for a, b in zip(rs, rt)]
    st, tt = torch.tensor(s), torch.tensor(t)
    assert L2Loss()(st, tt).item() == pytest.approx(sum(sq) / 4)
    assert L2Loss(reduction='sum', loss_weight=2.0)(st, tt).item() == pytest.approx(2 * sum(sq))
    assert L2Loss(reduction='batchmean')(st, tt).item() == pytest.approx(sum(sq) / 2)
    # normalize: each row divided by its L2 norm first
    def unit(r):
        n = math.sqrt(sum(v * v for v in r))
        return [v / n for v in r]
    sq_n = [(a - b)**2 for rs, rt in zip(s, t) for a, b in zip(unit(rs), unit(rt))]
    assert L2Loss(normalize=True)(st, tt).item() == pytest.approx(sum(sq_n) / 4, rel=1e-6)


def test_cwd_golden():
    # N=1, C=2, H*W=3: each channel is a distribution over the 3 positions.
    s = [[0.0, 1.0, 2.0], [1.0, 1.0, -1.0]]
    t = [[1.0, 0.0, 3.0], [0.5, 2.0, 0.0]]
    tau = 2.0
    expected = sum(kl(softmax([v / tau for v in tc]), softmax([v / tau for v in sc]))
                   for sc, tc in zip(s, t)) * tau**2 / (1 * 2)
    loss = ChannelWiseDivergence(tau=tau)(torch.tensor(s).reshape(1, 2, 1, 3),
                                          torch.tensor(t).reshape(1, 2, 1, 3))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def dkd_reference(s, t, label, tau, alpha, beta):
    ps, pt = softmax([v / tau for v in s]), softmax([v / tau for v in t])
    bs, bt = [ps[label], 1 - ps[label]], [pt[label], 1 - pt[label]]
    tckd = kl(bt, bs)
    others = [i for i in range(len(s)) if i != label]
    qs = softmax([s[i] / tau for i in others])
    qt = softmax([t[i] / tau for i in others])
    nckd = kl(qt, qs)
    return (alpha * tckd + beta * nckd) * tau**2


def test_dkd_golden_and_unlabelled_skip():
    labels = [0, 2]
    tau, alpha, beta = 4.0, 1.0, 8.0
    expected = sum(dkd_reference(s, t, y, tau, alpha, beta) for s, t, y in zip(S, T, labels)) / 2
    loss = DKDLoss(tau=tau, alpha=alpha, beta=beta)(torch.tensor(S), torch.tensor(T),
                                                  torch.tensor(labels))
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    # An unlabelled sample (-100) is skipped: only the first sample counts.
    only_first = dkd_reference(S[0], T[0], 0, tau, alpha, beta)
    loss = DKDLoss(tau=tau, alpha=alpha, beta=beta)(torch.tensor(S), torch.tensor(T),
                                                  torch.tensor([0, -100]))
    assert loss.item() == pytest.approx(only_first, rel=1e-4)


def test_dkd_gradients_are_finite():
    s = torch.randn(5, 10, requires_grad=True)
    loss = DKDLoss(tau=2.0)(s, torch.randn(5, 10), torch.randint(0, 10, (5, )))
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_loss_argument_validation():
    with pytest.raises(ValueError, match='tau'):
        KLDivergence(tau=0)
    with pytest.raises(ValueError, match='reduction'):
        L2Loss(reduction='avg')


# --- KLDivergence reductions: each name means what it means in F.kl_div -------------------
def _kl_div_reference(s, t, tau, reduction):
    """Golden value from torch.nn.functional.kl_div on explicit float64 log-probabilities."""
    log_q = torch.log_softmax(s.double() / tau, dim=1)
    log_p = torch.log_softmax(t.double() / tau, dim=1)
    if reduction == 'pixelmean':  # the sum over classes, averaged over the N*H*W pixels
        rows = s.numel() // s.shape[1]
        return F.kl_div(log_q, log_p, reduction='sum', log_target=True) * tau**2 / rows
    return F.kl_div(log_q, log_p, reduction=reduction, log_target=True) * tau**2


@pytest.mark.parametrize('shape', [(3, 5), (2, 4, 3, 2)], ids=['NC', 'NCHW'])
@pytest.mark.parametrize('reduction', ['batchmean', 'pixelmean', 'sum', 'none'])
def test_kl_divergence_reductions_golden(shape, reduction):
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(shape, generator=g) * 2, torch.randn(shape, generator=g) * 2
    tau, w = 2.0, 0.7
    got = KLDivergence(tau=tau, reduction=reduction, loss_weight=w)(s, t)
    expected = w * _kl_div_reference(s, t, tau, reduction)
    assert got.shape == expected.shape == (shape if reduction == 'none' else ())
    assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-7)


def test_kl_divergence_reduction_denominators_on_dense_logits():
    # The scalar reductions differ only by their denominator: N, N*H*W, 1.
    s, t = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)
    total = KLDivergence(reduction='sum')(s, t).item()
    assert total > 0
    assert KLDivergence(reduction='batchmean')(s, t).item() == pytest.approx(total / 2, rel=1e-6)
    assert KLDivergence(reduction='pixelmean')(s, t).item() == pytest.approx(total / 30, rel=1e-6)
    # 'none' keeps the logits' shape; summing over the classes gives the per-pixel KL
    per_pixel = KLDivergence(reduction='none')(s, t).sum(dim=1)
    assert per_pixel.shape == (2, 3, 5) and (per_pixel >= -1e-7).all()


def test_kl_divergence_matches_mmrazor_formula():
    # MMRazor: loss_weight * tau**2 * F.kl_div(log_softmax(S/tau, 1), softmax(T/tau, 1), 'batchmean')
    s, t = torch.randn(2, 6, 4, 4), torch.randn(2, 6, 4, 4)
    tau, w = 4.0, 3.0
    mmrazor = w * tau**2 * F.kl_div(F.log_softmax(s / tau, dim=1), F.softmax(t / tau, dim=1),
                                    reduction='batchmean')
    got = KLDivergence(tau=tau, loss_weight=w, reduction='batchmean')(s, t)
    assert got.item() == pytest.approx(mmrazor.item(), rel=1e-5)


def test_kl_divergence_bad_reduction_names_the_choices():
    with pytest.raises(ValueError) as err:
        KLDivergence(reduction='avg')
    msg = str(err.value)
    assert "'avg'" in msg and all(r in msg for r in ('batchmean', 'pixelmean', 'sum', 'none'))


def test_kl_divergence_refuses_mean():
    # F.kl_div's 'mean' divides by numel and is announced to become 'batchmean'; mmkd
    # once read it as 'batchmean': refused, the message names the alternatives.
    with pytest.raises(ValueError) as err:
        KLDivergence(reduction='mean')
    msg = str(err.value)
    assert "reduction='mean'" in msg and 'numel' in msg
    assert all(r in msg for r in ("'batchmean'", "'pixelmean'", "'sum'", "'none'"))


# --- DKD for confident students (log-space non-target mass) -------------------------------
def dkd_reference_f64(s, t, label, tau, alpha, beta):
    """DKD in float64 from the definition; the non-target mass is the *sum of the
    non-target probabilities* (never 1 - p_t, which cancels for confident rows)."""
    def probs(z):
        m = max(v / tau for v in z)
        e = [math.exp(v / tau - m) for v in z]
        total = sum(e)
        return [v / total for v in e]
    ps, pt = probs(s), probs(t)
    others = [i for i in range(len(s)) if i != label]
    ns, nt = sum(ps[i] for i in others), sum(pt[i] for i in others)
    tckd = pt[label] * math.log(pt[label] / ps[label]) + nt * math.log(nt / ns)
    nckd = sum(pt[i] / nt * math.log((pt[i] / nt) / (ps[i] / ns)) for i in others)
    return (alpha * tckd + beta * nckd) * tau**2


CONFIDENT_T = [2.0, 0.0, 1.0, -1.0]


@pytest.mark.parametrize('margin', [20.0, 25.0, 30.0])
def test_dkd_golden_for_confident_student(margin):
    # Student target margin 20-30 at tau=1: non-target mass 1e-9 .. 1e-13, below the
    # float32 resolution of 1 - p_t. The old clamp gave 7.1555 for all three margins
    # (golden: 8.2091, 9.9895, 11.7700).
    s = [margin, 0.0, 0.0, 0.0]
    expected = dkd_reference_f64(s, CONFIDENT_T, 0, 1.0, 1.0, 8.0)
    # TCKD grows ~linearly with the margin: -n^T log n^S ~ n^T (margin + log 3)
    assert expected > 8.0
    loss = DKDLoss(tau=1.0, alpha=1.0, beta=8.0)(torch.tensor([s]), torch.tensor([CONFIDENT_T]),
                                               torch.tensor([0]))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_dkd_confident_golden_values_written_out():
    # The same formula, evaluated by hand for margin 25: p^T = softmax([2, 0, 1, -1]),
    # n^S = 3 e^-25 / (1 + 3 e^-25); NCKD uses the uniform student non-target softmax.
    e = [math.exp(v) for v in CONFIDENT_T]
    pt = [v / sum(e) for v in e]
    nt = 1 - pt[0]  # fine in float64 for the teacher (not confident)
    ns = 3 * math.exp(-25) / (1 + 3 * math.exp(-25))
    tckd = pt[0] * math.log(pt[0] / (1 - ns)) + nt * math.log(nt / ns)
    nckd = sum(pt[i] / nt * math.log(3 * pt[i] / nt) for i in (1, 2, 3))
    expected = tckd + 8 * nckd
    assert expected == pytest.approx(9.98954, abs=1e-4)
    loss = DKDLoss(tau=1.0)(torch.tensor([[25.0, 0, 0, 0]]), torch.tensor([CONFIDENT_T]),
                            torch.tensor([0]))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('margin,tau', [(25.0, 1.0), (30.0, 1.0), (80.0, 4.0)])
def test_dkd_target_logit_gradient_for_confident_student(margin, tau):
    # dL/dz_t = w * tau * alpha * (p^S_t - p^T_t) / N: NCKD does not depend on z_t, and
    # TCKD depends on it through the binary logit m = z_t/tau - logsumexp_{j!=t} z_j/tau.
    w, alpha, beta = 0.5, 2.0, 8.0
    s = torch.tensor([[margin, 0.0, 1.0, -1.0], [0.5, 3.0, 0.0, 1.0]], requires_grad=True)
    t = torch.tensor([CONFIDENT_T, [0.0, 1.0, 2.0, 0.0]])
    labels = [0, 1]
    DKDLoss(tau=tau, alpha=alpha, beta=beta, loss_weight=w)(s, t, torch.tensor(labels)).backward()
    for row, y in enumerate(labels):
        ps, pt = softmax([v / tau for v in s[row].tolist()]), softmax([v / tau for v in t[row].tolist()])
        expected = w * tau * alpha * (ps[y] - pt[y]) / 2
        assert s.grad[row, y].item() == pytest.approx(expected, rel=1e-5, abs=1e-8)
    assert abs(s.grad[0, 0].item()) > 0.1  # the old clamp gave exactly 0 here


def test_dkd_full_gradient_matches_float64_definition():
    # Float64 autograd through the definition (non-target mass summed, no 1 - p_t).
    s = torch.tensor([[28.0, 0.0, 1.0, -1.0, 0.5], [1.0, 0.0, 2.0, 0.0, -2.0]], requires_grad=True)
    t = torch.tensor([[3.0, 0.0, 1.0, -1.0, 2.0], [0.0, 0.5, 3.0, 0.0, 1.0]])
    labels = torch.tensor([0, 2])
    tau, alpha, beta = 1.0, 1.0, 8.0
    DKDLoss(tau=tau, alpha=alpha, beta=beta)(s, t, labels).backward()

    s64 = s.detach().double().requires_grad_()
    p_s, p_t = torch.softmax(s64 / tau, 1), torch.softmax(t.double() / tau, 1)
    onehot = F.one_hot(labels, 5).bool()
    pst, ptt = p_s[onehot], p_t[onehot]
    nst, ntt = (p_s * ~onehot).sum(1), (p_t * ~onehot).sum(1)
    tckd = ptt * (ptt.log() - pst.log()) + ntt * (ntt.log() - nst.log())
    qs, qt = p_s[~onehot].view(2, 4) / nst[:, None], p_t[~onehot].view(2, 4) / ntt[:, None]
    nckd = (qt * (qt.log() - qs.log())).sum(1)
    ((alpha * tckd + beta * nckd).mean() * tau**2).backward()
    assert torch.allclose(s.grad.double(), s64.grad, atol=1e-6)


def test_dkd_needs_two_classes():
    with pytest.raises(ValueError, match='C >= 2'):
        DKDLoss()(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))
