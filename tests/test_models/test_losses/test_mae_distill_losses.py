"""Golden values of the DMAE/G2SD losses and the G2SD predictor: every expected value is
computed here from the papers' formulas with plain Python/math on small tensors."""
import math

import pytest
import torch

from mmkd.models.connectors import MLPConnector
from mmkd.models.losses import HardDistillationLoss, LayerNormSmoothL1Loss, NormalizedL1Loss

# (B=1, N=2 tokens, C=3 channels)
S = [[[1.0, 2.0, 2.0], [0.0, -3.0, 4.0]]]
T = [[[0.0, 0.0, 5.0], [1.0, 1.0, 1.0]]]


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def test_normalized_l1_golden():
    diffs = [abs(a - b) for s, t in zip(S[0], T[0]) for a, b in zip(unit(s), unit(t))]
    expected = 0.5 * sum(diffs) / len(diffs)  # mean over B*N*C, loss_weight 0.5
    loss = NormalizedL1Loss(loss_weight=0.5)(torch.tensor(S), torch.tensor(T))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_normalized_l1_scale_invariant_and_teacher_detached():
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(T, requires_grad=True)
    loss = NormalizedL1Loss()(s, t)
    # per-token normalisation: scaling a token of either side changes nothing
    scaled = NormalizedL1Loss()(s * torch.tensor([[[3.0], [0.5]]]), t * 7.0)
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-6)
    loss.backward()
    assert s.grad is not None and t.grad is None
    assert NormalizedL1Loss()(t, t * 2).item() == pytest.approx(0.0, abs=1e-7)


def layer_norm(v, eps):
    mean = sum(v) / len(v)
    var = sum((x - mean) ** 2 for x in v) / len(v)  # biased, as LayerNorm
    return [(x - mean) / math.sqrt(var + eps) for x in v]


def smooth_l1(d, beta):
    return 0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta


@pytest.mark.parametrize('beta', [2.0, 0.5])
def test_layer_norm_smooth_l1_golden(beta):
    eps = 1e-6
    terms = [smooth_l1(a - b, beta) for s, t in zip(S[0], T[0])
             for a, b in zip(s, layer_norm(t, eps))]
    expected = 2.0 * sum(terms) / len(terms)
    loss = LayerNormSmoothL1Loss(beta=beta, eps=eps, loss_weight=2.0)(torch.tensor(S),
                                                                       torch.tensor(T))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # both branches of the smooth L1 are exercised by these numbers for beta=0.5
    if beta == 0.5:
        d = [abs(a - b) for s, t in zip(S[0], T[0]) for a, b in zip(s, layer_norm(t, eps))]
        assert min(d) < beta < max(d)


def test_layer_norm_target_ignores_teacher_scale_and_shift():
    s = torch.randn(2, 5, 8)
    t = torch.randn(2, 5, 8)
    loss = LayerNormSmoothL1Loss()
    assert loss(s, t).item() == pytest.approx(loss(s, 4.0 * t + 3.0).item(), rel=1e-4)


def test_hard_distillation_golden():
    s = [[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]]
    t = [[0.0, 0.2, 5.0], [2.0, 0.0, 1.0]]  # teacher arg-max labels: 2, 0

    def ce(logits, label):
        m = max(logits)
        return -(logits[label] - m - math.log(sum(math.exp(x - m) for x in logits)))

    expected = 0.5 * (ce(s[0], 2) + ce(s[1], 0)) / 2
    preds_s = torch.tensor(s, requires_grad=True)
    preds_t = torch.tensor(t, requires_grad=True)
    loss = HardDistillationLoss(loss_weight=0.5)(preds_s, preds_t)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert preds_s.grad is not None and preds_t.grad is None


def test_loss_argument_errors():
    with pytest.raises(ValueError, match='beta'):
        LayerNormSmoothL1Loss(beta=0)
    with pytest.raises(ValueError, match='eps'):
        NormalizedL1Loss(eps=0)


def test_mlp_connector_formula_and_errors():
    torch.manual_seed(0)
    conn = MLPConnector(4, 6, hidden_features=5)
    x = torch.randn(2, 3, 4)
    ref = torch.nn.functional.gelu(x @ conn.fc1.weight.t() + conn.fc1.bias)
    ref = ref @ conn.fc2.weight.t() + conn.fc2.bias
    assert torch.allclose(conn(x), ref, atol=1e-6)
    assert MLPConnector(4, 6).fc1.out_features == 6  # hidden defaults to the output width
    with pytest.raises(ValueError, match='in_features=4'):
        conn(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="act='Tanh'"):
        MLPConnector(4, 6, act='Tanh')
