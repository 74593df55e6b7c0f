"""Golden values of the FRS losses (G2SD's detection stage), computed by explicit loops."""
import math

import pytest
import torch

from mmkd.models.losses import FRSClsLoss, FRSFeatureLoss
from mmkd.models.losses.frs_loss import feature_richness_mask


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def _loop_mask(t_logits):
    n, a, h, w = t_logits.shape
    return [[[max(_sig(float(t_logits[i, k, y, x])) for k in range(a)) for x in range(w)]
             for y in range(h)] for i in range(n)]


def _loop_feature_loss(s, t, t_logits, weight):
    m = _loop_mask(t_logits)
    n, c, h, w = s.shape
    num = den = 0.0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                den += m[i][y][x]
                for ch in range(c):
                    num += m[i][y][x] * (float(t[i, ch, y, x]) - float(s[i, ch, y, x]))**2
    return weight * num / den


def _loop_cls_loss(s_logits, t_logits, weight):
    m = _loop_mask(t_logits)
    n, a, h, w = s_logits.shape
    num = den = 0.0
    for i in range(n):
        for y in range(h):
            for x in range(w):
                den += m[i][y][x]
                for k in range(a):
                    p = _sig(float(s_logits[i, k, y, x]))
                    q = _sig(float(t_logits[i, k, y, x]))
                    num += m[i][y][x] * -(q * math.log(p) + (1 - q) * math.log(1 - p))
    return weight * num / den


def test_mask_by_hand():
    # one location, anchors with logits 0 and ln 3: sigmoid 0.5 and 0.75 -> mask 0.75
    t = torch.tensor([0.0, math.log(3.0)]).view(1, 2, 1, 1)
    assert feature_richness_mask(t).item() == pytest.approx(0.75)


def test_feature_loss_hand_computed():
    # 1 image, 1 channel, 1x2 map; teacher logits 0 (mask 0.5) and ln 3 (mask 0.75)
    s = torch.tensor([[[[1.0, 2.0]]]])
    t = torch.tensor([[[[3.0, 2.5]]]])
    t_logits = torch.tensor([[[[0.0, math.log(3.0)]]]])
    expected = 0.1 * (0.5 * 4.0 + 0.75 * 0.25) / (0.5 + 0.75)
    loss = FRSFeatureLoss(loss_weight=0.1)(s, t, t_logits)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_feature_loss_golden_loop():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 5, generator=g)
    t = torch.randn(2, 3, 4, 5, generator=g)
    t_logits = torch.randn(2, 3, 4, 5, generator=g) * 2
    loss = FRSFeatureLoss(loss_weight=0.001)(s, t, t_logits)
    assert loss.item() == pytest.approx(_loop_feature_loss(s, t, t_logits, 0.001), rel=1e-5)


def test_cls_loss_golden_loop_and_hand():
    # by hand: one anchor, student logit 0 (p=0.5), teacher ln 3 (q=0.75, mask 0.75):
    # BCE = -(0.75 ln 0.5 + 0.25 ln 0.5) = ln 2; masked mean = ln 2
    loss = FRSClsLoss(loss_weight=2.0)(torch.zeros(1, 1, 1, 1),
                                       torch.full((1, 1, 1, 1), math.log(3.0)))
    assert loss.item() == pytest.approx(2.0 * math.log(2.0), rel=1e-6)
    g = torch.Generator().manual_seed(1)
    s_logits = torch.randn(2, 3, 4, 4, generator=g)
    t_logits = torch.randn(2, 3, 4, 4, generator=g) * 3
    loss = FRSClsLoss(loss_weight=0.1)(s_logits, t_logits)
    assert loss.item() == pytest.approx(_loop_cls_loss(s_logits, t_logits, 0.1), rel=1e-5)


def test_gradients_reach_only_the_student():
    s = torch.randn(1, 2, 3, 3, requires_grad=True)
    t = torch.randn(1, 2, 3, 3, requires_grad=True)
    t_logits = torch.randn(1, 3, 3, 3, requires_grad=True)
    s_logits = torch.randn(1, 3, 3, 3, requires_grad=True)
    (FRSFeatureLoss()(s, t, t_logits) + FRSClsLoss()(s_logits, t_logits)).backward()
    assert s.grad is not None and s_logits.grad is not None
    assert t.grad is None and t_logits.grad is None


def test_cls_loss_is_minimal_when_student_matches_teacher():
    t_logits = torch.randn(1, 3, 2, 2)
    s_logits = t_logits.clone().requires_grad_(True)
    FRSClsLoss()(s_logits, t_logits).backward()
    assert s_logits.grad.abs().max().item() < 1e-6


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match='same level'):
        FRSFeatureLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r'\(N, A, H, W\)'):
        FRSClsLoss()(torch.zeros(1, 4), torch.zeros(1, 4))
