"""CollaborativeDistill (HFD + BSD, Zhu et al., ICCV 2023): gradient routing between
the two students, one optimizer per student, eval_student, config errors."""
import copy

import pytest
import torch
from mmengine.config import Config

CFG = 'configs/hfd_bsd/hfd-bsd_deeplabv3plus-r18-w16_segformer-mit-tiny_shapes_demo.py'
SIZE = 64


@pytest.fixture(scope='module')
def model_cfg():
    cfg = Config.fromfile(CFG).model.to_dict()
    # The demo models pad to 128 px; the test images are SIZE px. Padding writes label
    # 255, and mmseg 1.2.2's CrossEntropyLoss with class_weight indexes the weights with
    # every label, 255 included (IndexError), so the tests use unpadded inputs.
    for student in cfg['students'].values():
        student['model_override'] = dict(data_preprocessor=dict(size=(SIZE, SIZE)))
    return cfg


def build(cfg):
    from mmkd.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return model


def batch(n=2, seed=0):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        s = SegDataSample()
        # blocky labels so that the region/pixel selections are not trivial
        lab = torch.randint(0, 5, (1, 1, SIZE // 8, SIZE // 8), generator=g).float()
        s.gt_sem_seg = PixelData(data=torch.nn.functional.interpolate(lab, size=(SIZE, SIZE))[0].long())
        s.set_metainfo(dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE)))
        samples.append(s)
    return torch.randn(n, 3, SIZE, SIZE, generator=g), samples


def owner(name):
    for side in ('cnn', 'vit'):
        if name.startswith(f'students.{side}.') or name.startswith(f'connectors.{side}.'):
            return side
    raise AssertionError(name)


def grads_of(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_each_term_reaches_only_its_learner(model_cfg):
    model = build(model_cfg)
    model.train()
    x, samples = batch()
    losses = model.loss(x, samples)
    terms = [k for k in losses if 'loss' in k]
    assert sorted(terms) == sorted(
        [f'distill.{t}_{s}' for s in ('cnn', 'vit') for t in
         ('loss_hfd', 'loss_region_bsd', 'loss_pixel_bsd')]
        + [f'{s}.decode.loss_ce' for s in ('cnn', 'vit')] + ['cnn.aux.loss_ce'])
    for key in terms:
        learner = model.loss_owner(key)
        touched = grads_of(model, losses[key])
        assert touched, f'{key} produced no gradient at all'
        # never a parameter of the student that teaches in this term
        assert {owner(n) for n in touched} == {learner}, (key, sorted(touched)[:5])
        if key.endswith('loss_hfd'):
            # low layers + the learner's HFD connector, nothing behind layer1 / stage 1
            assert any(n.startswith(f'connectors.{learner}.hfd_connector') for n in touched)
            assert not any('decode_head' in n or 'region_bsd' in n for n in touched)
        if key.endswith('loss_region_bsd'):
            assert any(n.startswith(f'connectors.{learner}.region_bsd_connector') for n in touched)
        if key.endswith('loss_pixel_bsd'):
            assert any(n.startswith(f'students.{learner}.decode_head.conv_seg') for n in touched)
            assert not any(n.startswith('connectors.') for n in touched)
        if key.endswith('loss_ce'):  # task losses: only the student itself
            assert not any(n.startswith('connectors.') for n in touched)


def test_only_one_term_on(model_cfg):
    """With every distillation term but pixel-wise BSD switched off, the ViT's parameters
    get exactly the gradient of its own CE + its pixel-BSD term."""
    cfg = copy.deepcopy(model_cfg)
    cfg['hfd'] = None
    cfg['region_bsd'] = None
    model = build(cfg)
    model.train()
    x, samples = batch(seed=3)
    losses = model.loss(x, samples)
    assert sorted(k for k in losses if 'distill' in k) == ['distill.loss_pixel_bsd_cnn',
                                                         'distill.loss_pixel_bsd_vit']
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward(retain_graph=True)
    vit_grads = {n: p.grad.clone() for n, p in model.named_parameters() if owner(n) == 'vit'}
    model.zero_grad(set_to_none=True)
    (losses['vit.decode.loss_ce'] + losses['distill.loss_pixel_bsd_vit']).backward()
    for n, p in model.named_parameters():
        if owner(n) == 'vit':
            assert torch.allclose(p.grad, vit_grads[n], atol=1e-7), n
    assert not any(n.startswith('connectors') for n, _ in model.named_parameters())


def _optim(model, lr_cnn, lr_vit):
    from mmengine.optim import build_optim_wrapper
    return build_optim_wrapper(model, dict(
        constructor='mmkd.CollaborativeOptimWrapperConstructor',
        cnn=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=lr_cnn)),
        vit=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=lr_vit))))


def test_train_step_updates_each_student_from_its_own_losses(model_cfg):
    model = build(model_cfg)
    model.train()
    x, samples = batch(seed=5)
    data = dict(inputs=[img for img in (x * 50 + 120).clamp(0, 255).to(torch.uint8)], data_samples=samples)
    # reference: the ViT's gradient from its own losses only, on the same batch
    ref = build(model_cfg)
    ref.train()
    prep = ref.data_preprocessor(copy.deepcopy(data), True)
    torch.manual_seed(11)  # same dropout masks in both runs
    ref_losses = ref.loss(prep['inputs'], prep['data_samples'])
    sum(v for k, v in ref_losses.items() if ref.loss_owner(k) == 'vit' and 'loss' in k).backward()
    lr = 0.1
    expected = {n: p.detach() - lr * p.grad for n, p in ref.named_parameters() if owner(n) == 'vit'}

    optim = _optim(model, 0.0, lr)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(11)
    log = model.train_step(data, optim)
    assert {'loss', 'cnn.loss', 'vit.loss', 'distill.loss_pixel_bsd_vit'} <= set(log)
    for n, p in model.named_parameters():
        if owner(n) == 'cnn':
            assert torch.equal(p, before[n]), n  # lr 0 for the CNN
        else:
            assert torch.allclose(p, expected[n], atol=1e-6), n
    # optimizer groups: every trainable parameter in exactly one student's optimizer
    ids = {side: {id(p) for g in optim[side].optimizer.param_groups for p in g['params']}
           for side in ('cnn', 'vit')}
    assert not ids['cnn'] & ids['vit']
    for n, p in model.named_parameters():
        assert id(p) in ids[owner(n)], n


def test_train_step_needs_two_optimizers(model_cfg):
    from mmengine.optim import OptimWrapper
    model = build(model_cfg)
    x, samples = batch()
    with pytest.raises(TypeError, match='CollaborativeOptimWrapperConstructor'):
        model.train_step(dict(inputs=list(x), data_samples=samples),
                         OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    from mmengine.optim import build_optim_wrapper
    with pytest.raises(KeyError, match="exactly the keys"):
        build_optim_wrapper(model, dict(constructor='mmkd.CollaborativeOptimWrapperConstructor',
                                        cnn=dict(optimizer=dict(type='SGD', lr=0.1))))


def test_eval_student_selects_the_predicting_model(model_cfg):
    model = build(model_cfg)
    model.eval()
    x, samples = batch()
    with torch.no_grad():
        for side in ('cnn', 'vit'):
            model.eval_student = side
            out = model(x, samples, mode='tensor')
            assert torch.equal(out, model.students[side](x, samples, mode='tensor'))
        preds = model(x, copy.deepcopy(samples), mode='predict')
    assert preds[0].pred_sem_seg.data.shape[-2:] == (SIZE, SIZE)
    with pytest.raises(ValueError, match="eval_student='both'.*'cnn', 'vit'"):
        model.eval_student = 'both'
    cfg = dict(model_cfg, eval_student='teacher')
    with pytest.raises(ValueError, match='eval_student'):
        build(cfg)


@pytest.mark.parametrize('edit,match', [
    (lambda c: c['hfd']['sources'].update(cnn=dict(source='backbone.layer9')), r'hfd\.sources\.cnn'),
    (lambda c: c['region_bsd']['connectors'].update(teacher=dict(type='ConvConnector', in_channels=1,
                                                                 out_channels=1)),
     r'region_bsd\.connectors: unknown students'),
    (lambda c: c.update(logits=dict(vit='decode_head.conv')), r'logits\.vit'),
    (lambda c: c['students'].pop('vit'), r'students must be dict\(cnn=\.\.\., vit=\.\.\.\)'),
    (lambda c: c['pixel_bsd'].update(tau=2), r'pixel_bsd: unknown keys'),
])
def test_bad_config_names_the_key(model_cfg, edit, match):
    cfg = copy.deepcopy(model_cfg)
    edit(cfg)
    with pytest.raises((KeyError, ValueError), match=match):
        build(cfg)


def test_model_override_builds_a_derived_student():
    from mmkd.models.algorithms.collaborative_distill import build_student
    model, info = build_student(dict(cfg_path='mmkd::hfd_bsd/deeplabv3plus_r18-w16_shapes_alone.py',
                                     model_override=dict(decode_head=dict(num_classes=7))),
                                key='students.cnn')
    assert info['scope'] == 'mmseg' and model.decode_head.conv_seg.out_channels == 7


# ------------------------------------------------------------- learner/teacher order
REGION = 16  # label pixels per region side: a 4x4 grid on the SIZE x SIZE labels


def _record(model):
    """Forward hooks of this test (not the algorithm's recorders) on every tensor a term reads."""
    head = dict(high='decode_head.dropout', logits='decode_head.conv_seg')
    taps = dict(cnn=dict(low='backbone.layer1', **head), vit=dict(low='backbone.layers.0.2', **head))
    seen, handles = {s: {} for s in taps}, []
    for side, paths in taps.items():
        modules = dict(model.students[side].named_modules())
        for what, path in paths.items():
            def hook(module, args, output, side=side, what=what):
                assert what not in seen[side], f'{side}.{what} ran twice'
                # the decoder feature is the input of the head's dropout, the rest outputs
                seen[side][what] = (args[0] if what == 'high' else output).detach()
            handles.append(modules[path].register_forward_hook(hook))
    return seen, handles


def _conv1x1(x, connector):
    conv = connector.layers[0]
    assert len(connector.layers) == 1 and conv.kernel_size == (1, 1)
    return torch.einsum('nchw,oc->nohw', x, conv.weight[:, :, 0, 0]) + conv.bias[None, :, None, None]


def _at_labels(logits):
    return torch.nn.functional.interpolate(logits, size=(SIZE, SIZE), mode='bilinear', align_corners=False)


def _tiles(x, grid):
    """(N, H, W) -> (N, grid, grid) means over equal tiles."""
    n, h, w = x.shape
    return x.reshape(n, grid, h // grid, grid, w // grid).mean(dim=(2, 4))


def _region_bsd(pred, target, logits_l, logits_t, gt):
    grid = SIZE // REGION
    ce_l = _tiles(torch.nn.functional.cross_entropy(_at_labels(logits_l), gt, reduction='none'), grid)
    ce_t = _tiles(torch.nn.functional.cross_entropy(_at_labels(logits_t), gt, reduction='none'), grid)
    take = (ce_t < ce_l).float()  # the teacher of the term is more reliable there
    err = _tiles((pred - target).pow(2).mean(dim=1), grid)
    return (err * take).sum() / take.numel(), take


def _pixel_bsd(logits_l, logits_t, gt):
    p_l, p_t = _at_labels(logits_l).softmax(1), _at_labels(logits_t).softmax(1)
    conf_l, conf_t = p_l.gather(1, gt[:, None])[:, 0], p_t.gather(1, gt[:, None])[:, 0]
    right_l, right_t = p_l.argmax(1) == gt, p_t.argmax(1) == gt
    take = right_t & (~right_l | (conf_t > conf_l))
    kl = (p_t * (p_t.log() - p_l.log())).sum(1)
    return (kl * take).sum() / gt.numel(), take


def test_terms_follow_the_learner_teacher_order(model_cfg):
    """Every distillation term of each learner recomputed from the two students' tensors
    (captured by this test's hooks) and the labels with the formulas of HFD, region-wise
    and pixel-wise BSD; the reversed order (learner and teacher swapped) gives another
    value, so a swap in the algorithm would fail here."""
    cfg = copy.deepcopy(model_cfg)
    cfg['region_bsd']['loss']['region_size'] = REGION
    model = build(cfg)
    # the formulas below leave out the weights and the temperature: all 1 in the demo
    assert [model.losses[t].loss_weight for t in ('hfd', 'region_bsd', 'pixel_bsd')] == [1.0] * 3
    assert model.losses['pixel_bsd'].tau == 1.0
    model.eval()  # no dropout: the hooked tensors are exactly what the terms read
    x, samples = batch(seed=7)
    seen, handles = _record(model)
    try:
        losses = model.loss(x, samples)
    finally:
        for h in handles:
            h.remove()
    gt = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    tokens = seen['vit']['low']  # (N, L, C) MiT stage-1 tokens -> (N, C, h, w)
    side = int(tokens.shape[1] ** 0.5)
    low = dict(cnn=seen['cnn']['low'],
               vit=tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side))
    high = {s: seen[s]['high'] for s in ('cnn', 'vit')}
    logits = {s: seen[s]['logits'] for s in ('cnn', 'vit')}
    conn = {s: model.connectors[s] for s in ('cnn', 'vit')}
    with torch.no_grad():
        hfd = {s: _conv1x1(low[s], conn[s]['hfd_connector']) for s in ('cnn', 'vit')}
        mapped = {s: _conv1x1(high[s], conn[s]['region_bsd_connector']) for s in ('cnn', 'vit')}

    def close(got, want):
        got, want = float(got.detach()), float(want)
        return abs(got - want) <= 1e-5 * abs(want) + 1e-9

    def differs(a, b):
        return abs(float(a) - float(b)) > 1e-2 * max(abs(float(a)), abs(float(b)))

    for learner, teacher in (('cnn', 'vit'), ('vit', 'cnn')):
        def key(term, learner=learner):
            return f'distill.{term}_{learner}'
        # HFD: the learner's low-layer feature through ITS connector mimics the teacher's
        want = (hfd[learner] - low[teacher]).pow(2).mean()
        assert close(losses[key('loss_hfd')], want), (learner, float(losses[key('loss_hfd')]), float(want))
        assert differs(want, (hfd[teacher] - low[learner]).pow(2).mean())  # reversed direction
        assert differs(want, (_conv1x1(low[learner], conn[teacher]['hfd_connector'])
                              - low[teacher]).pow(2).mean())  # the other student's connector

        # region-wise BSD: regions where the TEACHER has the lower loss
        want, take = _region_bsd(mapped[learner], high[teacher], logits[learner], logits[teacher], gt)
        assert 0 < take.mean() < 1, take.mean()  # some regions go each way
        assert close(losses[key('loss_region_bsd')], want), (learner, float(losses[key('loss_region_bsd')]),
                                                              float(want))
        reversed_, _ = _region_bsd(mapped[learner], high[teacher], logits[teacher], logits[learner], gt)
        assert differs(want, reversed_)

        # pixel-wise BSD: KL(teacher || learner) where the TEACHER is right (and more sure)
        want, take = _pixel_bsd(logits[learner], logits[teacher], gt)
        assert take.any() and not take.all()
        assert close(losses[key('loss_pixel_bsd')], want), (learner, float(losses[key('loss_pixel_bsd')]),
                                                             float(want))
        assert differs(want, _pixel_bsd(logits[teacher], logits[learner], gt)[0])


def test_terms_are_losses_of_the_distiller(model_cfg):
    """The six terms are losses of self.distiller on the named students 'student.cnn' and
    'student.vit' (issue 20); connectors stay with their student, nothing is added to the
    checkpoint."""
    model = build(copy.deepcopy(model_cfg))
    d = model.distiller
    assert d.models == ['student', 'teacher', 'student.cnn', 'student.vit']
    assert list(d.distill_losses) == [f'loss_{t}_{s}' for s in ('cnn', 'vit')
                                      for t in ('hfd', 'region_bsd', 'pixel_bsd')]
    assert d.distill_losses['loss_hfd_cnn'] is d.distill_losses['loss_hfd_vit'] \
        is model.losses['hfd']
    assert d.loss_forward_mappings['loss_region_bsd_vit'] == dict(
        pred=dict(from_model='student.vit', recorder='region_bsd_mapped'),
        target=dict(from_model='student.cnn', recorder='region_bsd'),
        learner_logits=dict(from_model='student.vit', recorder='logits'),
        teacher_logits=dict(from_model='student.cnn', recorder='logits'),
        gt=dict(from_data='gt_sem_seg'))
    assert not d.state_dict() and not any(k.startswith('distiller.') for k in model.state_dict())
    assert d.teacher_sources() == []
