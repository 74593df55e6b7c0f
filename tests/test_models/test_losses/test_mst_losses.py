"""Golden values of MST-Distill's losses, each computed independently with plain
Python arithmetic on small tensors (no torch softmax/KL)."""
import math

import pytest
import torch

from mmkd.models.losses import EnsembleKDLoss, LoadBalanceLoss, RoutedKDLoss


def softmax(row, tau):
    exps = [math.exp(v / tau) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


S = [[1.0, -0.5, 0.2, 2.0], [0.3, 0.1, -1.2, 0.8], [-0.7, 1.5, 0.0, 0.4]]
T = [  # 3 samples x 3 teachers x 4 classes
    [[2.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.0, -1.0], [1.5, 1.5, -0.5, 0.2]],
    [[0.1, 0.9, -0.3, 0.0], [1.2, -0.4, 0.6, 0.3], [-1.0, 0.2, 2.2, 0.1]],
    [[0.0, 0.0, 0.0, 3.0], [0.4, 2.0, -1.0, 0.0], [1.0, -2.0, 0.3, 0.5]],
]
G = [[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.25, 0.35, 0.4]]  # router probabilities


def ranked(row):
    return sorted(range(len(row)), key=lambda e: -row[e])


@pytest.mark.parametrize('k', [1, 2, 3])
def test_routed_kd_golden(k):
    tau = 4.0
    loss = RoutedKDLoss(tau=tau, topk=k, loss_weight=0.5)(
        torch.tensor(S), torch.tensor(T), torch.tensor(G))
    total = 0.0
    for n in range(3):
        for e in ranked(G[n])[:k]:
            total += kl(softmax(T[n][e], tau), softmax(S[n], tau))
    expected = 0.5 * tau**2 * total / (3 * k)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_routed_kd_accepts_a_list_of_teachers():
    stacked = torch.tensor(T)
    as_list = [stacked[:, e] for e in range(3)]
    a = RoutedKDLoss(topk=2)(torch.tensor(S), stacked, torch.tensor(G))
    b = RoutedKDLoss(topk=2)(torch.tensor(S), as_list, torch.tensor(G))
    assert torch.allclose(a, b)


def test_topk_routing_sends_gradient_only_through_selected_targets():
    """Per sample, the loss and the student's gradient are those of KD towards the
    selected teachers alone; unselected teachers' logits do not matter at all."""
    tau, k = 2.0, 2
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(T)
    g = torch.tensor(G)
    RoutedKDLoss(tau=tau, topk=k)(s, t, g).backward()
    selected = [ranked(G[n])[:k] for n in range(3)]
    unselected = [sorted(set(range(3)) - set(sel)) for sel in selected]

    # Reference: KD of each sample towards its selected teachers, written out.
    s_ref = torch.tensor(S, requires_grad=True)
    ref = 0.0
    for n in range(3):
        log_p_s = torch.log_softmax(s_ref[n] / tau, dim=0)
        for e in selected[n]:
            p_t = torch.tensor(softmax(T[n][e], tau))
            ref = ref + (p_t * (p_t.log() - log_p_s)).sum()
    (tau**2 * ref / (3 * k)).backward()
    assert torch.allclose(s.grad, s_ref.grad, atol=1e-7)

    # Changing unselected teachers changes nothing; changing a selected one does.
    base = RoutedKDLoss(tau=tau, topk=k)(torch.tensor(S), t, g)
    moved = t.clone()
    for n in range(3):
        moved[n, unselected[n]] += torch.randn(len(unselected[n]), 4) * 5
    assert torch.equal(RoutedKDLoss(tau=tau, topk=k)(torch.tensor(S), moved, g), base)
    moved = t.clone()
    moved[0, selected[0][0]] += 3.0 * torch.tensor([1.0, -1.0, 0.0, 0.0])
    assert not torch.allclose(RoutedKDLoss(tau=tau, topk=k)(torch.tensor(S), moved, g), base)

    # The teachers' logits are targets and the routing is a hard choice: no gradient.
    t_grad = torch.tensor(T, requires_grad=True)
    g_grad = torch.tensor(G, requires_grad=True)
    out = RoutedKDLoss(tau=tau, topk=k)(torch.tensor(S, requires_grad=True), t_grad, g_grad)
    out.backward()
    assert t_grad.grad is None and g_grad.grad is None


def test_routed_kd_dense_logits_average_pixels():
    torch.manual_seed(0)
    s = torch.randn(2, 3, 2, 2)
    t = torch.randn(2, 2, 3, 2, 2)
    g = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    tau = 3.0
    loss = RoutedKDLoss(tau=tau, topk=1)(s, t, g)
    total = 0.0
    for n, e in ((0, 0), (1, 1)):
        per_pixel = [kl(softmax(t[n, e, :, i, j].tolist(), tau), softmax(s[n, :, i, j].tolist(), tau))
                     for i in range(2) for j in range(2)]
        total += sum(per_pixel) / 4
    assert loss.item() == pytest.approx(tau**2 * total / 2, rel=1e-5)


def test_load_balance_kl_golden():
    loss = LoadBalanceLoss(mode='KL', loss_weight=2.0)(torch.tensor(G, dtype=torch.float64))
    mean = [sum(G[n][e] for n in range(3)) / 3 for e in range(3)]
    u = 1.0 / 3
    expected = 2.0 * sum(u * (math.log(u) - math.log(m)) for m in mean) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # Balanced on average -> zero, even if each sample is confident.
    balanced = torch.tensor([[1.0 - 2e-6, 1e-6, 1e-6], [1e-6, 1.0 - 2e-6, 1e-6],
                             [1e-6, 1e-6, 1.0 - 2e-6]])
    assert LoadBalanceLoss()(balanced).item() == pytest.approx(0.0, abs=1e-6)


def test_load_balance_cv_golden():
    loss = LoadBalanceLoss(mode='CV')(torch.tensor(G))
    imp = [sum(G[n][e] for n in range(3)) for e in range(3)]
    mean = sum(imp) / 3
    std = math.sqrt(sum((v - mean)**2 for v in imp) / 2)  # unbiased, as torch.std
    assert loss.item() == pytest.approx(std / mean, rel=1e-5)


def test_load_balance_gradient_reaches_router():
    logits = torch.randn(5, 4, requires_grad=True)
    LoadBalanceLoss()(torch.softmax(logits, dim=1)).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_ensemble_kd_golden_average_and_weights():
    tau = 2.0
    s, t = torch.tensor(S), torch.tensor(T)
    for weights in (None, [3.0, 1.0, 0.0]):
        loss = EnsembleKDLoss(tau=tau, weights=weights)(s, t)
        w = [1 / 3] * 3 if weights is None else [v / 4.0 for v in weights]
        total = 0.0
        for n in range(3):
            probs = [softmax(T[n][e], tau) for e in range(3)]
            p_t = [sum(w[e] * probs[e][c] for e in range(3)) for c in range(4)]
            total += kl(p_t, softmax(S[n], tau))
        assert loss.item() == pytest.approx(tau**2 * total / 3, rel=1e-5)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match='topk=4'):
        RoutedKDLoss(topk=4)(torch.tensor(S), torch.tensor(T), torch.tensor(G))
    with pytest.raises(ValueError, match="mode='L2'"):
        LoadBalanceLoss(mode='L2')
    with pytest.raises(ValueError, match='gate_probs'):
        RoutedKDLoss()(torch.tensor(S), torch.tensor(T), torch.ones(3, 2))
    with pytest.raises(ValueError, match='2 weights for 3 teachers'):
        EnsembleKDLoss(weights=[1, 1])(torch.tensor(S), torch.tensor(T))


def test_ensemble_kd_with_near_zero_mixture_and_zero_weight():
    # Teacher mixture computed in log space: a class with a mixture probability far
    # below 1e-12 and a teacher of weight 0 give the float64 golden value, finite grads.
    s = torch.tensor([[4.0, 0.0, -3.0]], requires_grad=True)
    t = torch.tensor([[[30.0, 0.0, -10.0], [25.0, 5.0, -12.0], [0.0, 0.0, 50.0]]])
    weights = [1.0, 1.0, 0.0]
    loss = EnsembleKDLoss(tau=1.0, weights=weights)(s, t)
    probs = [softmax(t[0, e].tolist(), 1.0) for e in range(3)]
    p_t = [sum(w / 2 * probs[e][c] for e, w in enumerate(weights)) for c in range(3)]
    assert p_t[2] < 1e-15
    expected = kl(p_t, softmax(s[0].tolist(), 1.0))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    # dL/ds = p_S - p_T (tau = 1, one sample)
    p_s = softmax(s[0].tolist(), 1.0)
    assert s.grad[0].tolist() == pytest.approx([a - b for a, b in zip(p_s, p_t)], abs=1e-6)
