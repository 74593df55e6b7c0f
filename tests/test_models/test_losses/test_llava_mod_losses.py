"""Golden values of LLaVA-MoD's losses: mimic KL (with the causal shift), DPO, KTO-pair."""
import math

import pytest
import torch

from mmkd.models.losses import DPOLoss, KTOPairLoss, MimicKLLoss
from mmkd.models.losses.preference_losses import sequence_log_probs


def _log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def _kl(t_row, s_row, tau=1.0):
    lt = _log_softmax([v / tau for v in t_row])
    ls = _log_softmax([v / tau for v in s_row])
    return sum(math.exp(a) * (a - b) for a, b in zip(lt, ls))


S = [[[0.1, 0.2, 0.3], [1.0, -1.0, 0.5], [0.0, 2.0, -2.0], [0.3, 0.3, 0.9]]]
T = [[[0.5, 0.1, 0.0], [2.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]


def test_mimic_kl_response_positions_with_shift():
    labels = torch.tensor([[-100, -100, 2, 0]])  # tokens 2 and 3 are the response
    loss = MimicKLLoss()(torch.tensor(S), torch.tensor(T), labels=labels)
    # logits at t predict token t+1: response tokens 2, 3 are predicted at positions 1, 2
    expected = (_kl(T[0][1], S[0][1]) + _kl(T[0][2], S[0][2])) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    unshifted = (_kl(T[0][2], S[0][2]) + _kl(T[0][3], S[0][3])) / 2
    assert abs(unshifted - expected) > 1e-3  # the shift matters on this example


def test_mimic_kl_all_tokens_temperature_and_weight():
    attn = torch.tensor([[1, 1, 1, 0]])  # last token is padding
    loss = MimicKLLoss(positions='all', tau=2.0, loss_weight=0.5)(
        torch.tensor(S), torch.tensor(T), labels=torch.full((1, 4), -100), attention_mask=attn)
    expected = 0.5 * 4.0 * (_kl(T[0][0], S[0][0], 2.0) + _kl(T[0][1], S[0][1], 2.0)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_mimic_kl_is_zero_on_equal_logits_and_grad_only_to_student():
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(S, requires_grad=True)
    loss = MimicKLLoss(positions='all')(s, t)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    (MimicKLLoss(positions='all')(s, torch.tensor(T).requires_grad_()) ).backward()
    assert s.grad is not None and t.grad is None
    empty = MimicKLLoss()(s, torch.tensor(T), labels=torch.full((1, 4), -100))
    assert empty.item() == 0.0 and empty.requires_grad


def test_mimic_kl_vocab_checks():
    s, t = torch.randn(1, 3, 5), torch.randn(1, 3, 7)
    with pytest.raises(ValueError, match='share a tokenizer'):
        MimicKLLoss(positions='all')(s, t)
    trimmed = MimicKLLoss(positions='all', vocab_size=5)(s, t)
    assert trimmed.item() == pytest.approx(MimicKLLoss(positions='all')(s, t[..., :5]).item())
    with pytest.raises(ValueError, match='positions'):
        MimicKLLoss(positions='image')


def test_sequence_log_probs_golden():
    logits = torch.tensor(S)
    labels = torch.tensor([[-100, -100, 2, 0]])
    lp = [_log_softmax(r) for r in S[0]]
    expected = lp[1][2] + lp[2][0]
    assert sequence_log_probs(logits, labels).item() == pytest.approx(expected, abs=1e-6)
    assert sequence_log_probs(logits, labels, average=True).item() == pytest.approx(expected / 2, abs=1e-6)


PC, PR = [-1.0, -4.0], [-3.0, -2.5]   # policy (student) chosen / rejected sequence log-probs
RC, RR = [-2.0, -3.0], [-2.0, -3.5]   # reference (teacher)


def test_dpo_golden():
    beta = 0.1
    # pair 0: h = (-1 + 3) - (-2 + 2) = 2 ; pair 1: h = (-4 + 2.5) - (-3 + 3.5) = -2
    expected = (math.log(1 + math.exp(-beta * 2)) + math.log(1 + math.exp(beta * 2))) / 2
    args = [torch.tensor(v) for v in (PC, PR, RC, RR)]
    assert DPOLoss(beta=beta)(*args).item() == pytest.approx(expected, abs=1e-6)
    eps = 0.2
    smooth = sum((1 - eps) * math.log(1 + math.exp(-beta * h)) + eps * math.log(1 + math.exp(beta * h))
                 for h in (2.0, -2.0)) / 2
    assert DPOLoss(beta=beta, label_smoothing=eps, loss_weight=3.0)(*args).item() == \
        pytest.approx(3.0 * smooth, abs=1e-6)
    # one pair with h = (-1 + 2.5) - (-2 + 2) = 1.5: swapping chosen and rejected (or
    # policy and reference) flips the sign of h and changes the value
    one = [torch.tensor([v]) for v in (-1.0, -2.5, -2.0, -2.0)]
    assert DPOLoss(beta=beta)(*one).item() == pytest.approx(math.log(1 + math.exp(-beta * 1.5)), abs=1e-6)
    assert DPOLoss(beta=beta)(one[1], one[0], one[3], one[2]).item() == \
        pytest.approx(math.log(1 + math.exp(beta * 1.5)), abs=1e-6)
    with pytest.raises(ValueError, match='equal shapes'):
        DPOLoss()(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2))


def test_kto_pair_golden():
    beta = 0.5
    sig = lambda x: 1 / (1 + math.exp(-x))
    rw = [p - r for p, r in zip(PC, RC)]  # [1, -1]
    rl = [p - r for p, r in zip(PR, RR)]  # [-1, 1]
    zw = max(0.0, sum(rw) / 2)            # 0
    zl = max(0.0, sum(rl) / 2)            # 0
    terms = [1 - sig(beta * (x - zl)) for x in rw] + [1 - sig(beta * (zw - x)) for x in rl]
    expected = sum(terms) / len(terms)
    got = KTOPairLoss(beta=beta)(*[torch.tensor(v) for v in (PC, PR, RC, RR)])
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # A case where the clamped reference points are positive.
    pc, pr = [0.0, 1.0], [-1.0, 2.0]
    rc, rr = [-1.0, -1.0], [-2.0, -2.0]
    rw = [1.0, 2.0]
    rl = [1.0, 4.0]
    zw, zl = 1.5, 2.5
    terms = [1 - sig(beta * (x - zl)) for x in rw] + [1 - sig(beta * (zw - x)) for x in rl]
    got = KTOPairLoss(beta=beta)(*[torch.tensor(v) for v in (pc, pr, rc, rr)])
    assert got.item() == pytest.approx(sum(terms) / 4, abs=1e-6)


def test_kto_pair_keeps_tiny_terms_of_large_log_ratios():
    # beta * (r_w - z_l) = 30: 1 - sigmoid(30) rounds to 0 in float32; sigmoid(-30) does not.
    beta = 1.0
    pc, rc = torch.tensor([30.0, 30.0], requires_grad=True), torch.zeros(2)
    pr, rr = torch.tensor([-30.0, -30.0]), torch.zeros(2)
    # r_w = [30, 30], r_l = [-30, -30], z_w = 30, z_l = 0
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = (2 * sig(-30.0) + 2 * sig(-60.0)) / 4
    assert expected == pytest.approx(4.678e-14, rel=1e-3)
    got = KTOPairLoss(beta=beta)(pc, pr, rc, rr)
    assert got.item() == pytest.approx(expected, rel=1e-4)
    got.backward()
    # d/dpc_i of sigmoid(-(pc_i - z_l)) / 4 (the z_w path is of order sigmoid(-60))
    grad = -sig(-30.0) * (1 - sig(-30.0)) / 4
    assert pc.grad.tolist() == pytest.approx([grad, grad], rel=1e-3)
