"""Golden values of PerSampleKLDivergence (MST-Distill's KD terms), computed with plain
Python arithmetic on small tensors (no torch softmax/KL)."""
import math

import pytest
import torch

from mmkd.models.losses import KLDivergence, PerSampleKLDivergence


def softmax(row, tau):
    exps = [math.exp(v / tau) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


S = [[1.0, -0.5, 0.2, 2.0], [0.3, 0.1, -1.2, 0.8], [-0.7, 1.5, 0.0, 0.4]]
T = [[2.0, 0.0, 0.5, 1.0], [1.2, -0.4, 0.6, 0.3], [0.0, 0.0, 0.0, 3.0]]


def golden(s_rows, t_rows, tau, w=1.0):
    """w tau^2 mean_n KL(softmax(t_n/tau) || softmax(s_n/tau))."""
    per_sample = [kl(softmax(t, tau), softmax(s, tau)) for s, t in zip(s_rows, t_rows)]
    return w * tau**2 * sum(per_sample) / len(per_sample)


@pytest.mark.parametrize('tau,w', [(1.0, 1.0), (4.0, 1.0), (2.0, 0.5)])
def test_golden_value_flat_logits(tau, w):
    loss = PerSampleKLDivergence(tau=tau, loss_weight=w)
    value = loss(torch.tensor(S, dtype=torch.float64), torch.tensor(T, dtype=torch.float64))
    assert value.item() == pytest.approx(golden(S, T, tau, w), rel=1e-12)


def test_golden_value_dense_logits_is_the_mean_over_pixels_of_each_sample():
    # (N=2, C=3, H=1, W=2): sample n's KL is the mean of its two pixels' KLs
    s = [[[[0.1, 1.0]], [[-0.3, 0.2]], [[0.5, -1.0]]],
         [[[2.0, 0.0]], [[0.0, 0.3]], [[-1.0, 0.7]]]]
    t = [[[[1.0, 0.0]], [[0.4, 0.4]], [[-0.2, 0.9]]],
         [[[0.0, 1.5]], [[1.0, -0.5]], [[0.3, 0.3]]]]
    tau = 2.0
    per_sample = []
    for n in range(2):
        pix = [kl(softmax([t[n][c][0][x] for c in range(3)], tau),
                  softmax([s[n][c][0][x] for c in range(3)], tau)) for x in range(2)]
        per_sample.append(sum(pix) / 2)
    expected = tau**2 * sum(per_sample) / 2
    value = PerSampleKLDivergence(tau=tau)(torch.tensor(s, dtype=torch.float64),
                                           torch.tensor(t, dtype=torch.float64))
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_equals_kl_divergence_batchmean_on_flat_logits():
    s, t = torch.tensor(S), torch.tensor(T)
    assert PerSampleKLDivergence(tau=3.0)(s, t).item() == pytest.approx(
        KLDivergence(tau=3.0)(s, t).item(), rel=1e-6)


def test_detach_target():
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(T, requires_grad=True)
    PerSampleKLDivergence()(s, t).backward()
    assert t.grad is None and s.grad.abs().sum() > 0
    s.grad = None
    PerSampleKLDivergence(detach_target=False)(s, t).backward()
    assert t.grad.abs().sum() > 0 and s.grad.abs().sum() > 0  # mutual learning: both learn


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match='PerSampleKLDivergence.*tau'):
        PerSampleKLDivergence(tau=0.0)
    with pytest.raises(TypeError, match='detach_target'):
        PerSampleKLDivergence(detach_target='yes')
    with pytest.raises(ValueError, match='class dimension'):
        PerSampleKLDivergence()(torch.zeros(3), torch.zeros(3))
