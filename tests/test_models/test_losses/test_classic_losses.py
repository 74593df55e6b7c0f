"""Golden-value tests of the classic losses: every expected value is computed here
directly from the paper's formula with plain Python/math on small tensors."""
import math

import pytest
import torch

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
    expected = sum(kl(softmax(tt), softmax(ss)) for ss, tt in zip(S, T)) / 2
    loss = KLDivergence()(s, t)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
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
