"""Golden values of MGD's three granularity losses and the OHEM cross-entropy.

Every expected value is computed here with plain Python loops (math module), not
by the code under test."""
import math

import pytest
import torch

from mmkd.models.losses import (
    ContentAwareLoss,
    OhemCrossEntropyLoss,
    PixelConsistencyLoss,
    SemanticSensitiveLoss,
)


def nested(t):
    return t.tolist()


def naive_ce(logits, labels, ignore=255):
    """Mean cross-entropy over non-ignored pixels; logits nested [n][c][h][w]."""
    total, count = 0.0, 0
    n, c = len(logits), len(logits[0])
    h, w = len(logits[0][0]), len(logits[0][0][0])
    for i in range(n):
        for y in range(h):
            for x in range(w):
                lab = labels[i][y][x]
                if lab == ignore:
                    continue
                zs = [logits[i][k][y][x] for k in range(c)]
                lse = math.log(sum(math.exp(z) for z in zs))
                total += lse - zs[lab]
                count += 1
    return total / count


# ----------------------------------------------------------------------- pixel level
def test_pixel_consistency_hand_computed():
    # one image, two pixels, two classes: logits (0, 0) and (2, 0), labels 1 and 0
    s = torch.tensor([[[[0.0, 2.0]], [[0.0, 0.0]]]])
    target = torch.tensor([[[1, 0]]])
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2
    loss = PixelConsistencyLoss(loss_weight=3.0)(s, target)
    assert loss.item() == pytest.approx(3.0 * expected, rel=1e-6)


def test_pixel_consistency_teacher_logits_and_ignore():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 4, 3, 5, generator=g)
    t = torch.randn(2, 4, 3, 5, generator=g)
    t_list = nested(t)
    labels = [[[max(range(4), key=lambda k: t_list[i][k][y][x]) for x in range(5)]
               for y in range(3)] for i in range(2)]
    expected = naive_ce(nested(s), labels)
    assert PixelConsistencyLoss()(s, t).item() == pytest.approx(expected, rel=1e-5)
    labels[0][1][2] = 255
    labels[1][0][0] = 255
    expected = naive_ce(nested(s), labels)
    assert PixelConsistencyLoss()(s, torch.tensor(labels)).item() == pytest.approx(expected, rel=1e-5)


def test_pixel_consistency_no_grad_into_teacher_and_all_ignored():
    s = torch.randn(1, 3, 2, 2, requires_grad=True)
    t = torch.randn(1, 3, 2, 2, requires_grad=True)
    PixelConsistencyLoss()(s, t).backward()
    assert t.grad is None and s.grad is not None
    zero = PixelConsistencyLoss()(s, torch.full((1, 2, 2), 255))
    assert zero.item() == 0.0
    with pytest.raises(ValueError, match='does not match'):
        PixelConsistencyLoss()(s, torch.zeros(1, 3, 3, dtype=torch.long))


# ----------------------------------------------------------------------- image level
def test_semantic_sensitive_hand_computed():
    # N=1, C=2, 2x2 maps. Student means: 2.5 and 0; teacher means: 1 and 1.
    s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    t = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]]]])
    # |2.5 - 1| + |0 - 1| = 2.5
    assert SemanticSensitiveLoss(loss_weight=0.001)(s, t).item() == pytest.approx(0.0025)


@pytest.mark.parametrize('reduction', ['sum', 'batchmean', 'mean'])
def test_semantic_sensitive_reductions(reduction):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(3, 4, 5, 6, generator=g)
    t = torch.randn(3, 4, 2, 3, generator=g)  # another resolution is fine
    s_l, t_l = nested(s), nested(t)
    total = 0.0
    for n in range(3):
        for c in range(4):
            ms = sum(sum(row) for row in s_l[n][c]) / 30
            mt = sum(sum(row) for row in t_l[n][c]) / 6
            total += abs(ms - mt)
    expected = dict(sum=total, batchmean=total / 3, mean=total / 12)[reduction]
    got = SemanticSensitiveLoss(loss_weight=2.0, reduction=reduction)(s, t).item()
    assert got == pytest.approx(2.0 * expected, rel=1e-5)


def test_semantic_sensitive_bad_input():
    with pytest.raises(ValueError, match='reduction'):
        SemanticSensitiveLoss(reduction='avg')
    with pytest.raises(ValueError, match='number of classes'):
        SemanticSensitiveLoss()(torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 2, 2))


# ---------------------------------------------------------------------- region level
def naive_selfsim(feat, pool):
    """feat nested [n][c][h][w] with h, w multiples of pool: block means + cosine."""
    n, c = len(feat), len(feat[0])
    h, w = len(feat[0][0]), len(feat[0][0][0])
    bh, bw = h // pool, w // pool
    out = []
    for i in range(n):
        regions = []
        for py in range(pool):
            for px in range(pool):
                vec = []
                for k in range(c):
                    vals = [feat[i][k][y][x] for y in range(py * bh, (py + 1) * bh)
                            for x in range(px * bw, (px + 1) * bw)]
                    vec.append(sum(vals) / len(vals))
                regions.append(vec)
        sim = []
        for a in regions:
            row = []
            for b in regions:
                dot = sum(x * y for x, y in zip(a, b))
                row.append(dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))))
            sim.append(row)
        out.append(sim)
    return out


def test_content_aware_hand_computed():
    # 1x1 "regions": pool_size=2 on a 2x2 map, C=2. Student regions (1,0),(0,1),(1,1),(1,0);
    # teacher: all regions (1,0). Teacher similarity is all ones.
    s = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]])
    t = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    r = 1 / math.sqrt(2)
    sim_s = [[1, 0, r, 1], [0, 1, r, 0], [r, r, 1, r], [1, 0, r, 1]]
    expected = sum((v - 1) ** 2 for row in sim_s for v in row) / 16
    loss = ContentAwareLoss(loss_weight=100.0, pool_size=2)(s, t)
    assert loss.item() == pytest.approx(100.0 * expected, rel=1e-5)


def test_content_aware_7x7_pooling_and_channel_mismatch():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(2, 3, 14, 14, generator=g)
    t = torch.randn(2, 5, 7, 7, generator=g)  # other width and resolution
    sim_s, sim_t = naive_selfsim(nested(s), 7), naive_selfsim(nested(t), 7)
    total = sum((sim_s[n][i][j] - sim_t[n][i][j]) ** 2
                for n in range(2) for i in range(49) for j in range(49))
    expected = total / (2 * 49 * 49)
    got = ContentAwareLoss(loss_weight=1.0, pool_size=7)(s, t).item()
    assert got == pytest.approx(expected, rel=1e-4)


def test_content_aware_gradient_only_to_student():
    s = torch.randn(1, 4, 7, 7, requires_grad=True)
    t = torch.randn(1, 4, 7, 7, requires_grad=True)
    ContentAwareLoss()(s, t).backward()
    assert t.grad is None and s.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- OHEM
def test_ohem_hand_computed():
    # 1 image, 4 pixels, 2 classes, all labels 0. p(class 0) = sigmoid(z0 - z1).
    z = [3.0, 1.0, -1.0, 0.0]  # z0 - z1 per pixel
    logits = torch.tensor([[[[z[0], z[1], z[2], z[3]]], [[0.0, 0.0, 0.0, 0.0]]]])
    labels = torch.zeros(1, 1, 4, dtype=torch.long)
    p = [1 / (1 + math.exp(-v)) for v in z]  # 0.953, 0.731, 0.269, 0.5
    ce = [-math.log(v) for v in p]
    # thresh 0.7, min_kept 1: threshold stays 0.7 -> keep pixels 2 and 3
    loss = OhemCrossEntropyLoss(thresh=0.7, min_kept=1)(logits, labels)
    assert loss.item() == pytest.approx((ce[2] + ce[3]) / 2, rel=1e-6)
    # min_kept 3: 3rd smallest probability 0.731 > 0.7 -> keep pixels 1, 2, 3
    loss = OhemCrossEntropyLoss(thresh=0.7, min_kept=3)(logits, labels)
    assert loss.item() == pytest.approx((ce[1] + ce[2] + ce[3]) / 3, rel=1e-6)
    # min_kept above the valid pixels: no mining, plain CE over all (valid) pixels
    labels_ign = labels.clone()
    labels_ign[0, 0, 2] = 255
    loss = OhemCrossEntropyLoss(thresh=0.7, min_kept=5)(logits, labels_ign)
    assert loss.item() == pytest.approx((ce[0] + ce[1] + ce[3]) / 3, rel=1e-6)
    # min_kept is per image: 2 images x 2 = 4 -> the 4th smallest of 8 probabilities
    two = torch.cat([logits, logits])
    loss = OhemCrossEntropyLoss(thresh=0.7, min_kept=2)(two, torch.zeros(2, 1, 4, dtype=torch.long))
    assert loss.item() == pytest.approx((ce[2] + ce[3]) / 2, rel=1e-6)
