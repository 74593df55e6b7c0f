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
        [f'{s}.{t}' for s in ('cnn', 'vit') for t in
         ('distill.loss_hfd', 'distill.loss_region_bsd', 'distill.loss_pixel_bsd', 'decode.loss_ce')]
        + ['cnn.aux.loss_ce'])
    for key in terms:
        learner = key.split('.')[0]
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
    assert sorted(k for k in losses if 'distill' in k) == ['cnn.distill.loss_pixel_bsd',
                                                         'vit.distill.loss_pixel_bsd']
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward(retain_graph=True)
    vit_grads = {n: p.grad.clone() for n, p in model.named_parameters() if owner(n) == 'vit'}
    model.zero_grad(set_to_none=True)
    (losses['vit.decode.loss_ce'] + losses['vit.distill.loss_pixel_bsd']).backward()
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
    sum(v for k, v in ref_losses.items() if k.startswith('vit.') and 'loss' in k).backward()
    lr = 0.1
    expected = {n: p.detach() - lr * p.grad for n, p in ref.named_parameters() if owner(n) == 'vit'}

    optim = _optim(model, 0.0, lr)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(11)
    log = model.train_step(data, optim)
    assert {'loss', 'cnn.loss', 'vit.loss', 'vit.distill.loss_pixel_bsd'} <= set(log)
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
