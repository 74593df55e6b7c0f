"""Golden values of LLaVA-KD's MDist and RDist, computed independently with plain loops."""
import math

import pytest
import torch

from mmkd.models.losses import MDistLoss, RDistLoss
from mmkd.models.losses.llava_kd_losses import select_visual_tokens


def kl(p_logits, q_logits):
    """KL(softmax(p) || softmax(q)) with python floats."""
    def softmax(z):
        m = max(z)
        e = [math.exp(x - m) for x in z]
        s = sum(e)
        return [x / s for x in e]
    p, q = softmax(p_logits), softmax(q_logits)
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


def example():
    torch.manual_seed(0)
    B, T, V = 2, 7, 5
    s = torch.randn(B, T, V)
    t = torch.randn(B, T, V) * 2
    # sequence: <s> user <img> <img> <img> q | answer </s>, the second sample one shorter
    image = torch.zeros(B, T, dtype=torch.bool)
    image[:, 2:5] = True
    labels = torch.full((B, T), -100)
    labels[0, 5:7] = torch.tensor([1, 2])
    labels[1, 5] = 3  # one response token, then padding
    return s, t, labels, image


def test_mdist_golden_response_and_visual_positions_with_label_shift():
    s, t, labels, image = example()
    # positions chosen by hand: logits at t predict token t + 1
    res_pos = {(0, 4), (0, 5), (1, 4)}           # next token is a response token
    vis_pos = {(b, p) for b in range(2) for p in (1, 2, 3)}  # next token is an image token
    res = sum(kl(t[b, p].tolist(), s[b, p].tolist()) for b, p in res_pos) / len(res_pos)
    vis = sum(kl(t[b, p].tolist(), s[b, p].tolist()) for b, p in vis_pos) / len(vis_pos)
    loss = MDistLoss(loss_weight=0.5, response_weight=1.0, visual_weight=2.0)
    parts = loss(s, t, labels, image, return_parts=True)
    assert parts['res'].item() == pytest.approx(0.5 * res, rel=1e-5)
    assert parts['vis'].item() == pytest.approx(0.5 * 2.0 * vis, rel=1e-5)
    assert loss(s, t, labels, image).item() == pytest.approx(0.5 * res + vis, rel=1e-5)
    # the unshifted visual positions (the image tokens themselves) are another choice
    vis_at = {(b, p) for b in range(2) for p in (2, 3, 4)}
    vis2 = sum(kl(t[b, p].tolist(), s[b, p].tolist()) for b, p in vis_at) / len(vis_at)
    unshifted = MDistLoss(visual_shift=False)(s, t, labels, image, return_parts=True)['vis']
    assert unshifted.item() == pytest.approx(vis2, rel=1e-5)
    assert abs(vis2 - vis) > 1e-3  # the shift matters on this example


def test_mdist_temperature_direction_and_gradients():
    s, t, labels, image = example()
    s.requires_grad_(True)
    tau = 2.0
    pos = [(0, 4), (0, 5), (1, 4)]
    rev = sum(kl((s[b, p] / tau).tolist(), (t[b, p] / tau).tolist()) for b, p in pos) / 3 * tau**2
    loss = MDistLoss(visual_weight=0.0, tau=tau, direction='reverse')(s, t, labels, image)
    assert loss.item() == pytest.approx(rev, rel=1e-5)
    loss.backward()
    assert s.grad is not None and s.grad[1, 0].abs().sum() == 0  # unselected positions get none
    # identical distributions: zero loss
    assert MDistLoss()(t, t, labels, image).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match='direction'):
        MDistLoss(direction='both')
    with pytest.raises(ValueError, match='vocabulary'):
        MDistLoss()(s[..., :4], t, labels, image)


def test_rdist_golden():
    torch.manual_seed(1)
    s = torch.randn(2, 3, 4)
    t = torch.randn(2, 3, 6)  # another width: only K x K relations are compared

    def gram(x):
        return [[sum(a * b for a, b in zip(x[i], x[j])) for j in range(len(x))] for i in range(len(x))]

    expected = 0.0
    for b in range(2):
        rs = sum(gram(s[b].tolist()), [])
        rt = sum(gram(t[b].tolist()), [])
        dot = sum(a * c for a, c in zip(rs, rt))
        cos = dot / (math.sqrt(sum(a * a for a in rs)) * math.sqrt(sum(c * c for c in rt)))
        expected += (1 - cos) / 2
    assert RDistLoss(loss_weight=3.0)(s, t).item() == pytest.approx(3.0 * expected, rel=1e-5)
    # a scaled copy has the same relations: zero loss
    assert RDistLoss()(t * 5.0, t).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match='same batch and number of visual tokens'):
        RDistLoss()(s[:, :2], t)


def test_select_visual_tokens():
    x = torch.arange(2 * 7 * 1).view(2, 7, 1).float()
    image = torch.zeros(2, 7, dtype=torch.bool)
    image[:, 2:5] = True
    assert select_visual_tokens(x, image, shift=True)[0, :, 0].tolist() == [1.0, 2.0, 3.0]
    assert select_visual_tokens(x, image, shift=False)[1, :, 0].tolist() == [9.0, 10.0, 11.0]
