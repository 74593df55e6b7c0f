"""Tests of MGDLoss / MGDConnector (Yang et al., ECCV 2022, arXiv:2205.01529).

Golden values are recomputed here from the paper's formulas with plain Python
floats and explicit loops over the module's parameters (1x1 align, 3x3 convs with
zero padding, ReLU, sum of squares / N, times alpha); nothing of the
implementation other than reading its parameters is reused."""
import pytest
import torch

from mmkd.models.connectors.mgd_connector import MGDConnector, mgd_random_mask
from mmkd.models.losses.mgd_loss import MGDLoss
from mmkd.registry import MODELS


def to_lists(t):
    return t.detach().double().tolist()


def conv1x1(x, weight, bias):
    """x: [C_in][H][W] lists; weight: [C_out][C_in]; bias: [C_out]."""
    c_in, h, w = len(x), len(x[0]), len(x[0][0])
    return [[[bias[o] + sum(weight[o][i] * x[i][r][c] for i in range(c_in)) for c in range(w)]
             for r in range(h)] for o in range(len(weight))]


def conv3x3(x, weight, bias):
    """Zero-padded 3x3 cross-correlation; weight: [C_out][C_in][3][3]."""
    c_in, h, w = len(x), len(x[0]), len(x[0][0])
    out = []
    for o in range(len(weight)):
        plane = []
        for r in range(h):
            row = []
            for c in range(w):
                acc = bias[o]
                for i in range(c_in):
                    for dr in range(3):
                        for dc in range(3):
                            rr, cc = r + dr - 1, c + dc - 1
                            if 0 <= rr < h and 0 <= cc < w:
                                acc += weight[o][i][dr][dc] * x[i][rr][cc]
                row.append(acc)
            plane.append(row)
        out.append(plane)
    return out


def golden_mgd(connector, s, t, mask, alpha, loss_weight=1.0):
    """w * alpha * sum_{n,k,i,j} (T - W2(ReLU(W1(align(S) * M))))^2 / N, loop by loop."""
    n = s.shape[0]
    ct = t.shape[1]
    S, T = to_lists(s), to_lists(t)
    M = to_lists(mask.expand(n, ct, s.shape[2], s.shape[3]))
    w1, b1 = to_lists(connector.generation[0].weight), to_lists(connector.generation[0].bias)
    w2, b2 = to_lists(connector.generation[2].weight), to_lists(connector.generation[2].bias)
    if isinstance(connector.align, torch.nn.Conv2d):
        wa = [[row[0][0] for row in out_c] for out_c in to_lists(connector.align.weight)]
        ba = to_lists(connector.align.bias)
    total = 0.0
    for b in range(n):
        x = conv1x1(S[b], wa, ba) if isinstance(connector.align, torch.nn.Conv2d) else S[b]
        x = [[[x[k][r][c] * M[b][k][r][c] for c in range(len(x[0][0]))] for r in range(len(x[0]))]
             for k in range(ct)]
        hidden = conv3x3(x, w1, b1)
        hidden = [[[max(v, 0.0) for v in row] for row in plane] for plane in hidden]
        gen = conv3x3(hidden, w2, b2)
        for k in range(ct):
            for r in range(len(gen[0])):
                for c in range(len(gen[0][0])):
                    total += (T[b][k][r][c] - gen[k][r][c])**2
    return loss_weight * alpha * total / n


def small_inputs(cs=3, ct=4, n=2, h=4, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, cs, h, w, generator=g, dtype=torch.float64)
    t = torch.randn(n, ct, h, w, generator=g, dtype=torch.float64)
    return s, t


def test_hand_computed_value():
    """1 channel, delta kernels, no bias: G = ReLU(S * M); the value is written out."""
    loss = MGDLoss(1, 1, alpha_mgd=0.5, lambda_mgd=0.5, loss_weight=2.0)
    with torch.no_grad():
        for conv in (loss.connector.generation[0], loss.connector.generation[2]):
            conv.weight.zero_()
            conv.weight[0, 0, 1, 1] = 1.0
            conv.bias.zero_()
    s = torch.tensor([[[[1.0, -2.0], [3.0, 4.0]]]])
    t = torch.tensor([[[[0.5, 1.0], [0.0, 2.0]]]])
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]]])
    # G = [[1, 0], [0, 4]]; squared errors 0.25 + 1 + 0 + 4 = 5.25; N = 1
    expected = 2.0 * 0.5 * 5.25
    assert loss(s, t, mask=mask).item() == pytest.approx(expected)


@pytest.mark.parametrize('cs,ct', [(3, 4), (4, 4)])
def test_golden_spatial_mask(cs, ct):
    torch.manual_seed(1)
    loss = MGDLoss(cs, ct, alpha_mgd=2e-5, lambda_mgd=0.65, mask_type='spatial',
                   loss_weight=3.0).double()
    s, t = small_inputs(cs, ct)
    mask = torch.tensor([[[1, 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 0, 0, 1], [0, 1, 1, 1, 1]]],
                        dtype=torch.float64).unsqueeze(0).repeat(2, 1, 1, 1)
    mask[1, 0, 0, 0] = 0.0
    expected = golden_mgd(loss.connector, s, t, mask, alpha=2e-5, loss_weight=3.0)
    assert loss(s, t, mask=mask).item() == pytest.approx(expected, rel=1e-10)
    if cs == ct:
        assert isinstance(loss.connector.align, torch.nn.Identity)
    else:
        assert isinstance(loss.connector.align, torch.nn.Conv2d)
        assert tuple(loss.connector.align.weight.shape) == (ct, cs, 1, 1)


def test_golden_channel_mask():
    torch.manual_seed(2)
    loss = MGDLoss(2, 4, alpha_mgd=7e-5, lambda_mgd=0.15, mask_type='channel').double()
    s, t = small_inputs(2, 4, n=2, h=3, w=3, seed=5)
    mask = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0]], dtype=torch.float64).view(2, 4, 1, 1)
    expected = golden_mgd(loss.connector, s, t, mask, alpha=7e-5)
    assert loss(s, t, mask=mask).item() == pytest.approx(expected, rel=1e-10)


def test_random_mask_matches_formula_and_seed():
    """forward without a mask == forward with M = (rand < lambda ? 0 : 1) drawn from the
    global RNG; the same seed reproduces the loss, another seed changes it."""
    loss = MGDLoss(3, 4, alpha_mgd=1.0, lambda_mgd=0.5).double()
    s, t = small_inputs(3, 4)
    torch.manual_seed(123)
    rand = torch.rand(2, 1, 4, 5)
    manual_mask = (rand >= 0.5).double()
    torch.manual_seed(123)
    value = loss(s, t)
    assert value.item() == pytest.approx(loss(s, t, mask=manual_mask).item(), rel=1e-12)
    torch.manual_seed(123)
    assert loss(s, t).item() == value.item()
    torch.manual_seed(124)
    assert loss(s, t).item() != value.item()


@pytest.mark.parametrize('mask_type,lam', [('spatial', 0.65), ('channel', 0.15), ('spatial', 0.45)])
def test_mask_ratio_and_layout(mask_type, lam):
    torch.manual_seed(0)
    shape = (64, 256, 16, 16)
    mask = mgd_random_mask(shape, lam, mask_type)
    if mask_type == 'spatial':
        assert tuple(mask.shape) == (64, 1, 16, 16)
    else:
        assert tuple(mask.shape) == (64, 256, 1, 1)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    # 16384 Bernoulli(lam) draws: std of the mean < 0.004; allow ~5 sigma
    assert (mask == 0).float().mean().item() == pytest.approx(lam, abs=0.02)
    # the connector's mask for a student feature has the teacher's channel count
    conn = MGDConnector(8, 256, lambda_mgd=lam, mask_type=mask_type)
    m = conn.random_mask(torch.zeros(64, 8, 16, 16))
    assert tuple(m.shape) == tuple(mask.shape)
    assert (m == 0).float().mean().item() == pytest.approx(lam, abs=0.02)


def test_extreme_ratios():
    assert mgd_random_mask((2, 3, 4, 4), 0.0).min().item() == 1.0
    assert mgd_random_mask((2, 3, 4, 4), 1.0).max().item() == 0.0


def test_gradients_reach_student_and_generator_not_teacher():
    loss = MGDLoss(3, 4, alpha_mgd=1.0, lambda_mgd=0.5)
    s = torch.randn(2, 3, 4, 5, requires_grad=True)
    t = torch.randn(2, 4, 4, 5, requires_grad=True)
    mask = torch.ones(2, 1, 4, 5)
    mask[:, :, 0] = 0.0
    loss(s, t, mask=mask).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    # positions masked after alignment carry no gradient back to the student
    assert torch.all(s.grad[:, :, 0] == 0)
    assert t.grad is None
    for name, p in loss.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('s_shape,t_shape', [((2, 3, 4, 5), (2, 4, 8, 10)),
                                              ((2, 3, 4, 5), (3, 4, 4, 5))])
def test_size_mismatch_names_both_shapes(s_shape, t_shape):
    loss = MGDLoss(3, 4)
    with pytest.raises(ValueError) as err:
        loss(torch.zeros(s_shape), torch.zeros(t_shape))
    assert str(s_shape) in str(err.value) and str(t_shape) in str(err.value)


def test_channel_mismatch_and_bad_args():
    loss = MGDLoss(3, 4)
    with pytest.raises(ValueError, match='teacher_channels=4'):
        loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match='student_channels=3'):
        loss(torch.zeros(2, 6, 4, 4), torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match='NCHW'):
        loss(torch.zeros(2, 3, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match='mask_type'):
        MGDLoss(3, 4, mask_type='pixel')
    with pytest.raises(ValueError, match='lambda_mgd'):
        MGDLoss(3, 4, lambda_mgd=1.5)
    with pytest.raises(ValueError, match='student_channels'):
        MGDConnector(0, 4)
    assert MGDLoss.paired_inputs == ()


def test_connector_train_masks_eval_does_not():
    conn = MGDConnector(3, 4, lambda_mgd=0.5).double()
    s, _ = small_inputs(3, 4)
    unmasked = conn.generate(s, None)
    conn.eval()
    assert torch.equal(conn(s), unmasked)
    conn.train()
    torch.manual_seed(7)
    out = conn(s)
    torch.manual_seed(7)
    expected = conn.generate(s, (torch.rand(2, 1, 4, 5) >= 0.5).double())
    assert torch.allclose(out, expected)
    assert not torch.allclose(out, unmasked)
    assert out.shape == (2, 4, 4, 5)


def test_loss_equals_connector_plus_batch_summed_l2():
    """MGDLoss == alpha * sum((connector(S) - T)^2) / N with the same RNG state."""
    torch.manual_seed(3)
    loss = MGDLoss(3, 4, alpha_mgd=0.1, lambda_mgd=0.4, mask_type='channel').double()
    s, t = small_inputs(3, 4)
    torch.manual_seed(9)
    value = loss(s, t)
    torch.manual_seed(9)
    generated = loss.connector.train()(s)
    assert value.item() == pytest.approx(0.1 * ((generated - t)**2).sum().item() / 2, rel=1e-12)


def test_loss_masks_in_eval_mode_too():
    loss = MGDLoss(3, 4, alpha_mgd=1.0, lambda_mgd=0.5).double().eval()
    s, t = small_inputs(3, 4)
    torch.manual_seed(11)
    value = loss(s, t)
    torch.manual_seed(11)
    mask = (torch.rand(2, 1, 4, 5) >= 0.5).double()
    assert value.item() == pytest.approx(loss(s, t, mask=mask).item(), rel=1e-12)


def test_registry_build():
    loss = MODELS.build(dict(type='MGDLoss', student_channels=1024, teacher_channels=2048,
                             alpha_mgd=7e-5, lambda_mgd=0.15, mask_type='channel'))
    assert isinstance(loss, MGDLoss) and loss.mask_type == 'channel' and loss.lambda_mgd == 0.15
    conn = MODELS.build(dict(type='MGDConnector', student_channels=256, teacher_channels=256,
                             lambda_mgd=0.65))
    assert isinstance(conn, MGDConnector)


def test_half_precision_sum_does_not_overflow():
    """Sum of squares over a large fp16 map exceeds fp16's max (65504); the loss sums
    in float32 and stays finite and equal to the float32 computation."""
    torch.manual_seed(4)
    loss = MGDLoss(4, 4, alpha_mgd=1e-5).half()
    s = torch.randn(2, 4, 16, 16).half()
    t = (torch.randn(2, 4, 16, 16) * 100).half()
    mask = torch.ones(2, 1, 16, 16, dtype=torch.half)
    value = loss(s, t, mask=mask)
    assert torch.isfinite(value) and value.dtype == torch.float32
    generated = loss.generator_forward(s, mask).float()
    expected = 1e-5 * ((generated - t.float())**2).sum().item() / 2
    assert value.item() == pytest.approx(expected, rel=1e-4)
