"""Golden values for HFD, region-wise BSD and pixel-wise BSD (Zhu et al., ICCV 2023).

Every expected value is computed here with plain Python loops over the tensors'
entries (math.exp/log), independently of the implementation."""
import math

import pytest
import torch

from mmkd.models.losses import HFDLoss, PixelBSDLoss, RegionBSDLoss
from mmkd.models.losses.bsd_loss import pixel_selection, region_directions

IGN = 255


def softmax(values, tau=1.0):
    m = max(v / tau for v in values)
    e = [math.exp(v / tau - m) for v in values]
    return [x / sum(e) for x in e]


def test_hfd_golden_and_target_detached():
    torch.manual_seed(0)
    pred = torch.randn(2, 3, 2, 2, requires_grad=True)
    target = torch.randn(2, 3, 2, 2, requires_grad=True)
    total, count = 0.0, 0
    for n in range(2):
        for c in range(3):
            for h in range(2):
                for w in range(2):
                    total += (pred[n, c, h, w].item() - target[n, c, h, w].item()) ** 2
                    count += 1
    loss = HFDLoss(loss_weight=0.5)(pred, target)
    assert loss.item() == pytest.approx(0.5 * total / count, rel=1e-6)
    loss.backward()
    assert pred.grad is not None and target.grad is None


def test_hfd_shape_mismatch_names_connector():
    with pytest.raises(ValueError, match='connector'):
        HFDLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))


# Region-wise BSD ------------------------------------------------------------------
# 8x8 label map in 4x4-pixel regions (a 2x2 grid); two classes; logits at label size.
#   region (0,0): teacher right (+3), learner wrong            -> teacher more reliable
#   region (0,1): learner right (+3), teacher weakly right (+1) -> learner more reliable
#   region (1,0): both give the same logits (tie)              -> no transfer either way
#   region (1,1): every pixel ignored                          -> no transfer either way
def _region_case():
    gt = torch.zeros(1, 8, 8, dtype=torch.long)
    gt[0, :4, 4:] = 1
    gt[0, 4:, 4:] = IGN
    learner = torch.zeros(1, 2, 8, 8)
    teacher = torch.zeros(1, 2, 8, 8)

    def put(logits, rows, cols, margin):  # margin for the true class of each pixel
        for i in rows:
            for j in cols:
                y = int(gt[0, i, j]) if gt[0, i, j] != IGN else 0
                logits[0, y, i, j] = margin
    put(teacher, range(4), range(4), 3.0)
    put(learner, range(4), range(4), -2.0)
    put(teacher, range(4), range(4, 8), 1.0)
    put(learner, range(4), range(4, 8), 3.0)
    put(teacher, range(4, 8), range(4), 0.5)
    put(learner, range(4, 8), range(4), 0.5)
    return gt, learner, teacher


def _naive_region_ce(logits, gt, r0, c0, size):
    total, count = 0.0, 0
    for i in range(r0, r0 + size):
        for j in range(c0, c0 + size):
            y = int(gt[0, i, j])
            if y == IGN:
                continue
            p = softmax([logits[0, k, i, j].item() for k in range(logits.shape[1])])
            total -= math.log(p[y])
            count += 1
    return total / count if count else None


def test_region_directions_golden():
    gt, learner, teacher = _region_case()
    expected = torch.zeros(1, 2, 2, dtype=torch.bool)
    expected_rev = torch.zeros(1, 2, 2, dtype=torch.bool)
    for gi in range(2):
        for gj in range(2):
            ce_l = _naive_region_ce(learner, gt, 4 * gi, 4 * gj, 4)
            ce_t = _naive_region_ce(teacher, gt, 4 * gi, 4 * gj, 4)
            if ce_l is not None:
                expected[0, gi, gj] = ce_t < ce_l
                expected_rev[0, gi, gj] = ce_l < ce_t
    # the hand-made case: (0,0) teacher -> learner, (0,1) learner -> teacher, rest none
    assert expected.tolist() == [[[True, False], [False, False]]]
    assert expected_rev.tolist() == [[[False, True], [False, False]]]
    assert torch.equal(region_directions(learner, teacher, gt, (4, 4), IGN), expected)
    assert torch.equal(region_directions(teacher, learner, gt, (4, 4), IGN), expected_rev)


def test_region_bsd_golden_value_and_gradients():
    gt, learner_logits, teacher_logits = _region_case()
    torch.manual_seed(1)
    pred = torch.randn(1, 3, 4, 4, requires_grad=True)      # 2x2 feature cells per region
    target = torch.randn(1, 3, 4, 4, requires_grad=True)
    learner_logits.requires_grad_(True)
    teacher_logits.requires_grad_(True)

    def region_mse(a, b, gi, gj):
        vals = [(a[0, c, i, j].item() - b[0, c, i, j].item()) ** 2
                for c in range(3) for i in range(2 * gi, 2 * gi + 2) for j in range(2 * gj, 2 * gj + 2)]
        return sum(vals) / len(vals)

    loss_fn = RegionBSDLoss(region_size=4, loss_weight=2.0)
    # learner <- teacher: only region (0,0); normalised by all N * 4 regions
    expected = 2.0 * region_mse(pred, target, 0, 0) / 4
    loss = loss_fn(pred, target, learner_logits, teacher_logits, gt)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # reverse direction: only region (0,1)
    expected_rev = 2.0 * region_mse(pred, target, 0, 1) / 4
    rev = loss_fn(pred, target, teacher_logits, learner_logits, gt)
    assert rev.item() == pytest.approx(expected_rev, rel=1e-6)
    loss.backward()
    assert target.grad is None and learner_logits.grad is None and teacher_logits.grad is None
    # gradient only inside the selected region (0,0) of the learner's feature
    g = pred.grad.abs().sum(1)[0]
    assert (g[:2, :2] > 0).all() and g[:2, 2:].sum() == 0 and g[2:].sum() == 0


def test_region_bsd_resizes_target_and_checks_channels():
    gt, learner_logits, teacher_logits = _region_case()
    pred = torch.randn(1, 3, 4, 4)
    target_small = torch.randn(1, 3, 2, 2)
    up = torch.nn.functional.interpolate(target_small, size=(4, 4), mode='bilinear', align_corners=False)
    loss_fn = RegionBSDLoss(region_size=4)
    assert loss_fn(pred, target_small, learner_logits, teacher_logits, gt).item() == pytest.approx(
        loss_fn(pred, up, learner_logits, teacher_logits, gt).item(), rel=1e-6)
    with pytest.raises(ValueError, match='connector'):
        loss_fn(torch.randn(1, 2, 4, 4), target_small, learner_logits, teacher_logits, gt)
    with pytest.raises(ValueError, match='region_size'):
        RegionBSDLoss(region_size=0)


# Pixel-wise BSD -------------------------------------------------------------------
# 3 classes, a 1x5 label row plus nothing else; logits per pixel (learner, teacher):
#   p0: teacher right, learner wrong              -> selected
#   p1: both right, teacher more confident        -> selected
#   p2: both right, learner more confident        -> not selected
#   p3: teacher wrong, learner right              -> not selected
#   p4: ignored                                   -> not selected
PIX = [  # (gt, learner logits, teacher logits)
    (0, [0.0, 2.0, 0.0], [2.0, 0.0, 0.5]),
    (1, [0.0, 1.0, 0.0], [0.0, 3.0, -1.0]),
    (2, [0.0, 0.0, 4.0], [0.0, 0.5, 1.0]),
    (2, [0.0, 0.0, 1.0], [1.5, 0.0, 1.0]),
    (IGN, [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]),
]


def _pixel_case():
    gt = torch.tensor([[[p[0] for p in PIX]]])
    learner = torch.tensor([p[1] for p in PIX]).T.reshape(1, 3, 1, 5).contiguous()
    teacher = torch.tensor([p[2] for p in PIX]).T.reshape(1, 3, 1, 5).contiguous()
    return gt, learner, teacher


def test_pixel_selection_golden():
    gt, learner, teacher = _pixel_case()
    expected = []
    for y, zl, zt in PIX:
        if y == IGN:
            expected.append(False)
            continue
        pl, pt = softmax(zl), softmax(zt)
        right_t = max(range(3), key=lambda k: pt[k]) == y
        right_l = max(range(3), key=lambda k: pl[k]) == y
        expected.append(right_t and (not right_l or pt[y] > pl[y]))
    assert expected == [True, True, False, False, False]
    assert pixel_selection(learner, teacher, gt, IGN)[0, 0].tolist() == expected
    # the other direction: only p2 (learner right and more confident); p3's "teacher" is right
    assert pixel_selection(teacher, learner, gt, IGN)[0, 0].tolist() == [False, False, True, True, False]


@pytest.mark.parametrize('tau', [1.0, 2.0])
def test_pixel_bsd_golden_value(tau):
    gt, learner, teacher = _pixel_case()
    learner.requires_grad_(True)
    teacher.requires_grad_(True)
    total = 0.0
    for idx in (0, 1):  # the selected pixels
        _, zl, zt = PIX[idx]
        pl, pt = softmax(zl, tau), softmax(zt, tau)
        total += sum(pt[k] * (math.log(pt[k]) - math.log(pl[k])) for k in range(3))
    expected = 0.7 * tau**2 * total / 4  # 4 labelled pixels
    loss = PixelBSDLoss(tau=tau, loss_weight=0.7)(learner, teacher, gt)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert teacher.grad is None
    g = learner.grad.abs().sum(1)[0, 0]
    assert (g[:2] > 0).all() and g[2:].sum() == 0


def test_pixel_bsd_resizes_logits_to_labels():
    # constant logits over space: resizing must not change the per-pixel KL
    gt = torch.zeros(1, 4, 4, dtype=torch.long)
    learner = torch.tensor([0.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2).contiguous()
    teacher = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2).contiguous()
    pl, pt = softmax([0.0, 1.0]), softmax([2.0, 0.0])
    kl = sum(pt[k] * math.log(pt[k] / pl[k]) for k in range(2))
    assert PixelBSDLoss()(learner, teacher, gt).item() == pytest.approx(kl, rel=1e-5)


def test_pixel_selection_keeps_order_of_confident_students():
    # Both right with true-class margins 20 (learner) and 25 (teacher): in float32 both
    # softmax probabilities round to 1.0, but the teacher is more confident, so the pixel
    # transfers from it (the comparison runs on log-probabilities).
    def p_true(margin):  # float64: 1 / (1 + 2 exp(-margin)) for logits [margin, 0, 0]
        return 1.0 / (1.0 + 2.0 * math.exp(-margin))
    assert p_true(25.0) > p_true(20.0)
    assert torch.softmax(torch.tensor([25.0, 0, 0]), 0)[0] == torch.softmax(torch.tensor([20.0, 0, 0]), 0)[0]
    gt = torch.zeros(1, 1, 1, dtype=torch.long)
    learner = torch.tensor([20.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    teacher = torch.tensor([25.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    assert pixel_selection(learner, teacher, gt, IGN).item() is True
    assert pixel_selection(teacher, learner, gt, IGN).item() is False
    assert pixel_selection(teacher, teacher.clone(), gt, IGN).item() is False  # a tie: neither
    # the pixel transfers: the learner's non-target logits get dKL/dz = p_l - p_t (tau 1,
    # one labelled pixel), about 2e-9 each (the KL itself, ~4e-9, is below float32's
    # resolution of the target term, a genuinely negligible value)
    learner.requires_grad_()
    PixelBSDLoss()(learner, teacher, gt).backward()
    p_l, p_t = softmax([20.0, 0.0, 0.0]), softmax([25.0, 0.0, 0.0])
    got = learner.grad[0, 1:, 0, 0].tolist()
    assert got == pytest.approx([p_l[k] - p_t[k] for k in (1, 2)], rel=1e-3)


# Ablations of the reliability rules (issue 17): `selection=` -------------------------
def test_pixel_selection_rules_golden():
    gt, learner, teacher = _pixel_case()
    # teacher_correct: p0, p1, p2 (teacher argmax == y); p3 teacher wrong; p4 ignored
    assert pixel_selection(learner, teacher, gt, IGN, rule='teacher_correct')[0, 0].tolist() == \
        [True, True, True, False, False]
    assert pixel_selection(learner, teacher, gt, IGN, rule='all')[0, 0].tolist() == \
        [True, True, True, True, False]


@pytest.mark.parametrize('selection,pixels', [('teacher_correct', (0, 1, 2)),
                                              ('all', (0, 1, 2, 3))])
def test_pixel_bsd_selection_golden_value(selection, pixels):
    gt, learner, teacher = _pixel_case()
    total = 0.0
    for idx in pixels:
        _, zl, zt = PIX[idx]
        pl, pt = softmax(zl), softmax(zt)
        total += sum(pt[k] * (math.log(pt[k]) - math.log(pl[k])) for k in range(3))
    loss = PixelBSDLoss(loss_weight=0.7, selection=selection)(learner, teacher, gt)
    assert loss.item() == pytest.approx(0.7 * total / 4, rel=1e-5)
    with pytest.raises(ValueError, match="selection='some'.*'reliable'"):
        PixelBSDLoss(selection='some')


def test_region_bsd_selection_all_transfers_every_labelled_region():
    gt, learner_logits, teacher_logits = _region_case()
    torch.manual_seed(1)
    pred, target = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)

    def region_mse(gi, gj):
        vals = [(pred[0, c, i, j].item() - target[0, c, i, j].item()) ** 2
                for c in range(3) for i in range(2 * gi, 2 * gi + 2) for j in range(2 * gj, 2 * gj + 2)]
        return sum(vals) / len(vals)
    # region (1,1) is all ignored; the other three transfer, in both directions
    expected = (region_mse(0, 0) + region_mse(0, 1) + region_mse(1, 0)) / 4
    loss_fn = RegionBSDLoss(region_size=4, selection='all')
    assert loss_fn(pred, target, learner_logits, teacher_logits, gt).item() == \
        pytest.approx(expected, rel=1e-6)
    assert loss_fn(pred, target, teacher_logits, learner_logits, gt).item() == \
        pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="selection='reliable_only'"):
        RegionBSDLoss(selection='reliable_only')
