"""AffinityMimickingLoss (TinyCLIP) against golden values written with plain loops."""
import math

import pytest
import torch

from mmkd.models.losses.affinity_mimicking import AffinityMimickingLoss, clip_contrastive_loss


def _unit(rows):
    out = []
    for r in rows:
        n = math.sqrt(sum(x * x for x in r))
        out.append([x / n for x in r])
    return out


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def _log_softmax(row):
    m = max(row)
    z = math.log(sum(math.exp(x - m) for x in row)) + m
    return [x - z for x in row]


def _soft_ce(queries_s, keys_s, scale_s, queries_t, keys_t, scale_t):
    """-1/N sum_i sum_j softmax_j(s_T q_T.k_T) log softmax_j(s_S q_S.k_S), by hand."""
    qs, ks, qt, kt = _unit(queries_s), _unit(keys_s), _unit(queries_t), _unit(keys_t)
    total = 0.0
    for i in range(len(qs)):
        log_ps = _log_softmax([scale_s * _dot(qs[i], k) for k in ks])
        log_pt = _log_softmax([scale_t * _dot(qt[i], k) for k in kt])
        total -= sum(math.exp(lt) * ls for lt, ls in zip(log_pt, log_ps))
    return total / len(qs)


def _hard_ce(img, text, scale):
    """CLIP's symmetric InfoNCE with targets on the diagonal, by hand."""
    i, t = _unit(img), _unit(text)
    n = len(i)
    i2t = -sum(_log_softmax([scale * _dot(i[r], t[c]) for c in range(n)])[r] for r in range(n)) / n
    t2i = -sum(_log_softmax([scale * _dot(t[r], i[c]) for c in range(n)])[r] for r in range(n)) / n
    return 0.5 * (i2t + t2i)


@pytest.fixture
def feats():
    g = torch.Generator().manual_seed(3)
    # student width 4, teacher width 6: only the N x N affinities are compared
    return (torch.randn(3, 4, generator=g, dtype=torch.float64),
            torch.randn(3, 4, generator=g, dtype=torch.float64),
            torch.randn(3, 6, generator=g, dtype=torch.float64),
            torch.randn(3, 6, generator=g, dtype=torch.float64))


def test_both_directions_with_different_scales_and_widths(feats):
    img_s, text_s, img_t, text_t = feats
    s_s, s_t = 7.0, 13.0
    loss = AffinityMimickingLoss()
    i2t, t2i = loss.affinity_losses(img_s, text_s, img_t, text_t, s_s, s_t)
    L = lambda x: x.tolist()  # noqa: E731
    want_i2t = _soft_ce(L(img_s), L(text_s), s_s, L(img_t), L(text_t), s_t)
    want_t2i = _soft_ce(L(text_s), L(img_s), s_s, L(text_t), L(img_t), s_t)
    assert i2t.item() == pytest.approx(want_i2t, rel=1e-9)
    assert t2i.item() == pytest.approx(want_t2i, rel=1e-9)
    assert want_i2t != pytest.approx(want_t2i)  # the two directions really differ
    # forward: scales taken from the forwarded tensors, the two directions averaged
    out = AffinityMimickingLoss(loss_weight=2.0)(img_s, text_s, img_t, text_t,
                                                 torch.tensor(s_s), torch.tensor(s_t))
    assert out.item() == pytest.approx(2.0 * 0.5 * (want_i2t + want_t2i), rel=1e-9)


def test_fixed_scales_override_forwarded_ones(feats):
    img_s, text_s, img_t, text_t = feats
    L = lambda x: x.tolist()  # noqa: E731
    want = 0.5 * (_soft_ce(L(img_s), L(text_s), 50.0, L(img_t), L(text_t), 50.0)
                  + _soft_ce(L(text_s), L(img_s), 50.0, L(text_t), L(img_t), 50.0))
    loss = AffinityMimickingLoss(student_logit_scale=50.0, teacher_logit_scale=50.0)
    out = loss(img_s, text_s, img_t, text_t, torch.tensor(3.0), torch.tensor(4.0))
    assert out.item() == pytest.approx(want, rel=1e-9)


def test_alpha_mixes_the_hard_contrastive_loss(feats):
    img_s, text_s, img_t, text_t = feats
    L = lambda x: x.tolist()  # noqa: E731
    soft = 0.5 * (_soft_ce(L(img_s), L(text_s), 5.0, L(img_t), L(text_t), 9.0)
                  + _soft_ce(L(text_s), L(img_s), 5.0, L(text_t), L(img_t), 9.0))
    hard = _hard_ce(L(img_s), L(text_s), 5.0)
    out = AffinityMimickingLoss(alpha=0.3)(img_s, text_s, img_t, text_t,
                                           torch.tensor(5.0), torch.tensor(9.0))
    assert out.item() == pytest.approx(0.3 * soft + 0.7 * hard, rel=1e-9)
    assert clip_contrastive_loss(img_s, text_s, 5.0).item() == pytest.approx(hard, rel=1e-9)
    only_hard = AffinityMimickingLoss(alpha=0.0)(img_s, text_s, img_t, text_t,
                                                 torch.tensor(5.0), torch.tensor(9.0))
    assert only_hard.item() == pytest.approx(hard, rel=1e-9)


def test_teacher_is_a_constant_and_student_gets_gradients(feats):
    img_s, text_s, img_t, text_t = (f.clone().requires_grad_(True) for f in feats)
    scale_s = torch.tensor(6.0, dtype=torch.float64, requires_grad=True)
    scale_t = torch.tensor(8.0, dtype=torch.float64, requires_grad=True)
    AffinityMimickingLoss()(img_s, text_s, img_t, text_t, scale_s, scale_t).backward()
    assert img_t.grad is None and text_t.grad is None and scale_t.grad is None
    assert img_s.grad.abs().sum() > 0 and text_s.grad.abs().sum() > 0 and scale_s.grad is not None


def test_a_student_equal_to_the_teacher_is_at_the_minimum(feats):
    img, text, _, _ = feats
    img = img.clone().requires_grad_(True)
    loss = AffinityMimickingLoss()(img, text, img.detach(), text, torch.tensor(4.0), torch.tensor(4.0))
    loss.backward()
    # d CE(p_T, softmax(z)) / dz = softmax(z) - p_T = 0 when the affinities agree
    assert img.grad.abs().max() < 1e-12
    assert loss.item() > 0  # the teacher's entropy remains


def test_errors_name_the_argument(feats):
    img_s, text_s, img_t, text_t = feats
    with pytest.raises(ValueError, match='alpha'):
        AffinityMimickingLoss(alpha=1.5)
    with pytest.raises(ValueError, match='teacher_logit_scale'):
        AffinityMimickingLoss(teacher_logit_scale=-1.0)
    with pytest.raises(ValueError, match='student_logit_scale'):
        AffinityMimickingLoss()(img_s, text_s, img_t, text_t)
    with pytest.raises(ValueError, match='pair up'):
        AffinityMimickingLoss()(img_s, text_s[:2], img_t, text_t, torch.tensor(1.), torch.tensor(1.))


def _dist_worker(rank, world, port, glob, scales, out_dir):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world)
    try:
        n = glob[0].shape[0] // world
        local = [g[rank * n:(rank + 1) * n].clone() for g in glob]
        img_s = local[0].requires_grad_(True)
        text_s = local[1].requires_grad_(True)
        loss = AffinityMimickingLoss(alpha=0.5, student_logit_scale=scales[0],
                                     teacher_logit_scale=scales[1])(img_s, text_s, local[2], local[3])
        loss.backward()
        torch.save((loss.detach(), img_s.grad.clone(), text_s.grad.clone()), f'{out_dir}/{rank}.pt')
    finally:
        dist.destroy_process_group()


def test_distributed_columns_are_gathered_with_local_gradient(tmp_path):
    """Two gloo processes: each rank's loss has its rows and every rank's columns; the
    gradient reaches the local features through rows and local columns."""
    import socket

    import torch.multiprocessing as mp
    g = torch.Generator().manual_seed(0)
    glob = [torch.randn(4, 5, generator=g, dtype=torch.float64),
            torch.randn(4, 5, generator=g, dtype=torch.float64),
            torch.randn(4, 7, generator=g, dtype=torch.float64),
            torch.randn(4, 7, generator=g, dtype=torch.float64)]
    scales = (6.0, 11.0)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # 'spawn': forked children of a process that already ran OpenMP kernels can hang
    mp.start_processes(_dist_worker, args=(2, port, glob, scales, str(tmp_path)), nprocs=2,
                       join=True, start_method='spawn')
    out = {rank: torch.load(tmp_path / f'{rank}.pt', weights_only=True) for rank in range(2)}
    L = lambda x: x.tolist()  # noqa: E731
    for rank in range(2):
        rows = slice(2 * rank, 2 * rank + 2)
        # golden: rank's rows against all columns, by hand
        soft = 0.5 * (_soft_ce(L(glob[0][rows]), L(glob[1]), 6.0, L(glob[2][rows]), L(glob[3]), 11.0)
                      + _soft_ce(L(glob[1][rows]), L(glob[0]), 6.0, L(glob[3][rows]), L(glob[2]), 11.0))
        i, t = _unit(L(glob[0])), _unit(L(glob[1]))
        hard_i2t = -sum(_log_softmax([6.0 * _dot(i[r], t[c]) for c in range(4)])[r]
                        for r in range(2 * rank, 2 * rank + 2)) / 2
        hard_t2i = -sum(_log_softmax([6.0 * _dot(t[r], i[c]) for c in range(4)])[r]
                        for r in range(2 * rank, 2 * rank + 2)) / 2
        want = 0.5 * soft + 0.5 * 0.5 * (hard_i2t + hard_t2i)
        loss, g_img, g_text = out[rank]
        assert loss.item() == pytest.approx(want, rel=1e-9)
        # gradient reference: the same local loss on one process, w.r.t. the local slice
        img = glob[0].clone().requires_grad_(True)
        text = glob[1].clone().requires_grad_(True)
        ref = AffinityMimickingLoss(alpha=0.5)
        soft_i2t, soft_t2i = ref._soft_ce(6.0 * torch.nn.functional.normalize(img[rows], dim=-1)
                                          @ torch.nn.functional.normalize(text, dim=-1).t(),
                                          11.0 * torch.nn.functional.normalize(glob[2][rows], dim=-1)
                                          @ torch.nn.functional.normalize(glob[3], dim=-1).t()), \
            ref._soft_ce(6.0 * torch.nn.functional.normalize(text[rows], dim=-1)
                         @ torch.nn.functional.normalize(img, dim=-1).t(),
                         11.0 * torch.nn.functional.normalize(glob[3][rows], dim=-1)
                         @ torch.nn.functional.normalize(glob[2], dim=-1).t())
        ni, nt = torch.nn.functional.normalize(img, dim=-1), torch.nn.functional.normalize(text, dim=-1)
        labels = torch.arange(2) + 2 * rank
        hard = 0.5 * (torch.nn.functional.cross_entropy(6.0 * ni[rows] @ nt.t(), labels)
                      + torch.nn.functional.cross_entropy(6.0 * nt[rows] @ ni.t(), labels))
        (0.5 * 0.5 * (soft_i2t + soft_t2i) + 0.5 * hard).backward()
        assert torch.allclose(g_img, img.grad[rows], atol=1e-12)
        assert torch.allclose(g_text, text.grad[rows], atol=1e-12)
