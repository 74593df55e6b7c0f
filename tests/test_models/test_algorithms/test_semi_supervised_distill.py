"""MultiGranularityDistill (MGD): CutMix pseudo labels, frozen hidden teachers, losses."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmkd.models.algorithms import MultiGranularityDistill
from mmkd.models.utils import BoxMaskGenerator, cutmix

SIZE = 32


def tiny_seg(width=8, depth=18, num_classes=3, mean=0.0):
    norm = dict(type='BN', requires_grad=True)
    return dict(
        _scope_='mmseg',
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[mean] * 3, std=[255.0] * 3,
                               size=(SIZE, SIZE)),
        backbone=dict(type='ResNetV1c', depth=depth, base_channels=width, stem_channels=width,
                      num_stages=4, out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4),
                      strides=(1, 2, 1, 1), norm_cfg=norm, contract_dilation=True),
        decode_head=dict(type='FCNHead', in_channels=width * 8, in_index=3, channels=8,
                         num_convs=1, concat_input=True, dropout_ratio=0.1,
                         num_classes=num_classes, norm_cfg=norm, align_corners=False,
                         loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))


def build(**kwargs):
    torch.manual_seed(0)
    cfg = dict(architecture=tiny_seg(4), wide_teacher=tiny_seg(8), deep_teacher=tiny_seg(4, 34),
               student_feat_source='decode_head.conv_cat')
    cfg.update(kwargs)
    with pytest.warns(UserWarning, match='no .*_teacher_ckpt'):
        return MultiGranularityDistill(**cfg)


def samples(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, SIZE, SIZE), generator=g))
        s.set_metainfo(dict(img_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
                            ori_shape=(SIZE, SIZE)))
        out.append(s)
    return out


def images(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, SIZE, SIZE, generator=g)


def raw_batch(n=2, seed=0):
    """What SemiSupervisedSegDataset + pseudo_collate give."""
    def part(k, labelled):
        g = torch.Generator().manual_seed(seed * 10 + k)
        inputs = [torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
                  for _ in range(n)]
        data_samples = samples(n, seed + k) if labelled else [
            SegDataSample(metainfo=dict(img_shape=(SIZE, SIZE))) for _ in range(n)]
        return dict(inputs=inputs, data_samples=data_samples)
    return dict(labelled=part(0, True), unlabelled=[part(1, False), part(2, False)])


def teacher_argmax(model, name, x):
    with torch.no_grad():
        logits = model.teachers[name](x, None, mode='tensor')
    return F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False).argmax(1)


# ------------------------------------------------------------------------------ CutMix
def test_box_masks():
    gen = BoxMaskGenerator(prop_range=(0.25, 0.5), n_boxes=3)
    g = torch.Generator().manual_seed(0)
    masks = gen(64, (40, 60), generator=g)
    assert masks.shape == (64, 1, 40, 60)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    frac = masks.mean(dim=(1, 2, 3))
    assert (frac > 0).all() and (frac <= 0.5 + 0.05).all()  # boxes cover prop (rounded)
    again = gen(64, (40, 60), generator=torch.Generator().manual_seed(0))
    assert torch.equal(masks, again)
    # inverted masks: boxes set 1 and overlapping boxes cancel (XOR)
    boxes = torch.tensor([[[0, 0, 2, 2], [1, 1, 3, 3]]])
    mask = BoxMaskGenerator(n_boxes=2).masks_from_boxes(boxes, (4, 4))[0, 0]
    expected = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]).float()
    assert torch.equal(mask, expected)
    assert torch.equal(BoxMaskGenerator(n_boxes=2, invert=False).masks_from_boxes(boxes, (4, 4))[0, 0],
                       1 - expected)
    with pytest.raises(ValueError, match='prop_range'):
        BoxMaskGenerator(prop_range=(0.6, 0.2))


def test_cutmix_takes_each_pixel_from_one_source():
    a, b = images(2, 1), images(2, 2)
    mask = BoxMaskGenerator()(2, (SIZE, SIZE), generator=torch.Generator().manual_seed(3))
    mixed = cutmix(a, b, mask)
    m = mask.bool().expand_as(a)
    assert torch.equal(mixed[m], b[m]) and torch.equal(mixed[~m], a[~m])


def test_pseudo_labels_equal_the_mix_of_the_teachers_predictions():
    model = build()
    u0, u1, lab = images(2, 1), images(2, 2), images(2, 3)
    mask = BoxMaskGenerator()(2, (SIZE, SIZE), generator=torch.Generator().manual_seed(4))
    assert 0 < mask.mean() < 1
    mixed = cutmix(u0, u1, mask)
    targets = model.teacher_targets(u0, u1, mixed, mask, lab)
    m = mask[:, 0].bool()
    for name in ('wide', 'deep'):
        p0, p1 = teacher_argmax(model, name, u0), teacher_argmax(model, name, u1)
        # the two sources disagree inside and outside the boxes, so a swapped or
        # ignored mask would fail
        assert (p0 != p1)[m].any() and (p0 != p1)[~m].any()
        expected = torch.where(m, p1, p0)
        assert torch.equal(targets['pseudo'][name], expected), name
        assert torch.equal(targets['labelled'][name].argmax(1), teacher_argmax(model, name, lab))
    assert targets['mixed']['wide']['feat'].shape[0] == 2
    assert targets['mixed']['deep']['feat'] is None  # only the wide teacher's feature is used


def test_unlabelled_pixel_loss_uses_the_mixed_pseudo_labels(monkeypatch):
    model = build(labelled_consistency=False)
    model.eval()  # deterministic student (no dropout, BN running stats)
    u0, u1, lab = images(2, 1), images(2, 2), images(2, 3)
    mask = BoxMaskGenerator()(2, (SIZE, SIZE), generator=torch.Generator().manual_seed(5))
    monkeypatch.setattr(model, 'mask_generator', lambda n, size, device=None: mask)
    losses = model.loss(lab, samples(), unlabelled_inputs=[u0, u1])
    mixed = cutmix(u0, u1, mask)
    with torch.no_grad():
        s = model.architecture(mixed, None, mode='tensor')
    s = F.interpolate(s, size=(SIZE, SIZE), mode='bilinear', align_corners=False)
    for name in ('wide', 'deep'):
        pseudo = torch.where(mask[:, 0].bool(), teacher_argmax(model, name, u1),
                             teacher_argmax(model, name, u0))
        expected = F.cross_entropy(s, pseudo)
        assert losses[f'distill.loss_pixel_unlab_{name}'].item() == pytest.approx(expected.item(),
                                                                              rel=1e-5)
    assert 'distill.loss_pixel_lab_wide' not in losses
    assert {'distill.loss_semantic', 'distill.loss_content', 'decode.loss_ce'} <= set(losses)


# ---------------------------------------------------------------------- frozen teachers
def test_teachers_frozen_hidden_in_eval_and_untouched_by_training():
    model = build()
    teacher_params = {id(p) for t in model.teachers.values() for p in t.parameters()}
    assert teacher_params
    assert all(not p.requires_grad for t in model.teachers.values() for p in t.parameters())
    assert not teacher_params & {id(p) for p in model.parameters()}
    state = model.state_dict()
    assert not any('teacher' in k for k in state)
    teacher_tensors = {t.data_ptr() for tt in model.teachers.values() for t in tt.state_dict().values()}
    assert not teacher_tensors & {v.data_ptr() for v in state.values()}
    optim = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.1)))
    in_optim = {id(p) for group in optim.optimizer.param_groups for p in group['params']}
    assert not teacher_params & in_optim and in_optim

    model.train()
    for teacher in model.teachers.values():
        assert not any(m.training for m in teacher.modules())
    before = {n: copy.deepcopy(t.state_dict()) for n, t in model.teachers.items()}
    student_before = copy.deepcopy(model.architecture.state_dict())
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    for step in range(2):
        log_vars = model.train_step(raw_batch(seed=step), optim)
    assert 'distill.loss_content' in log_vars and 'distill.loss_pixel_lab_deep' in log_vars
    for name, teacher in model.teachers.items():
        assert not any(m.training for m in teacher.modules())
        for k, v in teacher.state_dict().items():  # BN running stats included
            assert torch.equal(v, before[name][k]), (name, k)
        assert all(p.grad is None for p in teacher.parameters())
    changed = [k for k, v in model.architecture.state_dict().items()
               if not torch.equal(v, student_before[k])]
    assert changed
    out = model.teacher_outputs('wide', [images(1)], feat_of=0)
    assert out['logits'][0].grad_fn is None and out['feat'].grad_fn is None


def test_teachers_load_checkpoints_and_predict_is_the_students(tmp_path):
    torch.manual_seed(1)
    from mmkd.utils import build_task_model
    wide, _ = build_task_model(tiny_seg(8))
    path = tmp_path / 'wide.pth'
    torch.save({'state_dict': wide.state_dict(), 'meta': {}}, path)
    with pytest.warns(UserWarning, match='deep_teacher_ckpt'):
        model = MultiGranularityDistill(architecture=tiny_seg(4), wide_teacher=tiny_seg(8),
                                      deep_teacher=tiny_seg(4), wide_teacher_ckpt=str(path),
                                      student_feat_source='decode_head.conv_cat')
    for k, v in wide.state_dict().items():
        assert torch.equal(model.teachers['wide'].state_dict()[k], v)
    model.eval()
    data = model.data_preprocessor(raw_batch()['labelled'], False)
    preds = model(**data, mode='predict')
    assert len(preds) == 2 and 'pred_sem_seg' in preds[0]


# ------------------------------------------------------------------------------ options
def test_ohem_supervised_loss_and_ablations():
    model = build(sup_loss=dict(type='OhemCrossEntropyLoss', thresh=0.7, min_kept=10),
                  loss_content=None, loss_semantic=None)
    assert model.student_feat is None and model.wide_feat is None
    model.train()
    losses = model.loss(images(2), samples(), unlabelled_inputs=[images(2, 1), images(2, 2)])
    assert 'loss_seg' in losses and 'decode.loss_ce' not in losses
    assert 'distill.loss_content' not in losses and 'distill.loss_semantic' not in losses
    assert {'distill.loss_pixel_unlab_wide', 'distill.loss_pixel_lab_deep'} <= set(losses)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match='student_feat_source'):
        build(student_feat_source='decode_head.nope')
    with pytest.raises(ValueError, match='teacher_feat_source'):
        build(teacher_feat_source='decode_head.convz')
    with pytest.raises(KeyError, match='cutmix: unknown keys'):
        build(cutmix=dict(n_box=3))
    with pytest.raises(TypeError, match='loss_pixel'):
        build(loss_pixel=dict(loss_weight=1.0))
    with pytest.raises(ValueError, match='wide_teacher normalises'):
        build(wide_teacher=tiny_seg(8, mean=10.0))
    model = build()
    with pytest.raises(ValueError, match='two unlabelled batches'):
        model.loss(images(2), samples(), unlabelled_inputs=[images(2)])


# ------------------------------------------------------------------------ teacher wiring
def _cos_self_similarity(feat):
    """(N, C, H, W) -> (N, 49, 49) cosine similarity of the 7x7 average-pooled regions."""
    q = F.normalize(F.adaptive_avg_pool2d(feat, 7).flatten(2), dim=1)
    return q.transpose(1, 2) @ q


def _head_feature_and_logits(segmenter, x):
    """The decoder feature (input of the classifier) and the input-size logits, computed
    through the model's own layers, not through the algorithm's recorders."""
    with torch.no_grad():
        head = segmenter.decode_head
        feat = head._forward_feature(segmenter.extract_feat(x))
        logits = head.conv_seg(feat)  # eval mode: the head's dropout is the identity
        assert torch.equal(logits, segmenter(x, None, mode='tensor'))
    return feat, F.interpolate(logits, size=x.shape[-2:], mode='bilinear', align_corners=False)


def test_each_term_uses_the_right_teacher(monkeypatch):
    """Semantic loss from the DEEP teacher's logits on the mixed image, content loss from
    the WIDE teacher's decoder feature, each pixel term from the teacher it is named
    after: every value recomputed from formulas on tensors forwarded here, and the value a
    swapped teacher would give is shown to differ."""
    from mmkd.utils import build_task_model
    nets = {}
    for name, seed, cfg in (('student', 0, tiny_seg(4)), ('wide', 101, tiny_seg(16)),
                            ('deep', 202, tiny_seg(4, 34))):
        torch.manual_seed(seed)
        nets[name], _ = build_task_model(cfg)
        nets[name].init_weights()
    with torch.no_grad():
        # confident models: initial logits are near 0, so every cross-entropy would be
        # close to log 3 whatever the target and every pooled logit close to 0, and a
        # swapped teacher would hardly show
        for net in nets.values():
            net.decode_head.conv_seg.weight.mul_(100.0)
    with pytest.warns(UserWarning, match='no .*_teacher_ckpt'):
        model = MultiGranularityDistill(architecture=nets['student'], wide_teacher=nets['wide'],
                                      deep_teacher=nets['deep'],
                                      student_feat_source='decode_head.conv_cat')
    assert model.teachers['wide'] is nets['wide'] and model.teachers['deep'] is nets['deep']
    model.eval()  # deterministic student (no dropout, BN running stats)
    u0, u1, lab = images(2, 11), images(2, 12), images(2, 13)
    # fixed CutMix boxes: a different box in each image
    mask = torch.zeros(2, 1, SIZE, SIZE)
    mask[0, :, 4:20, 8:30] = 1
    mask[1, :, 12:32, 0:14] = 1
    monkeypatch.setattr(model, 'mask_generator', lambda n, size, device=None: mask)
    losses = model.loss(lab, samples(), unlabelled_inputs=[u0, u1])

    mixed = u0 * (1 - mask) + u1 * mask
    s_feat, s_mix = _head_feature_and_logits(nets['student'], mixed)
    with torch.no_grad():
        s_lab = F.interpolate(nets['student'](lab, None, mode='tensor'), size=(SIZE, SIZE),
                              mode='bilinear', align_corners=False)
    t = {}
    for name in ('wide', 'deep'):
        feat, logits = _head_feature_and_logits(nets[name], mixed)
        _, lg0 = _head_feature_and_logits(nets[name], u0)
        _, lg1 = _head_feature_and_logits(nets[name], u1)
        _, lg_lab = _head_feature_and_logits(nets[name], lab)
        pseudo = torch.where(mask[:, 0].bool(), lg1.argmax(1), lg0.argmax(1))
        t[name] = dict(feat=feat, logits=logits, pseudo=pseudo, lab=lg_lab.argmax(1))
    # the two teachers really disagree, so a swap cannot go unnoticed
    assert (t['wide']['pseudo'] != t['deep']['pseudo']).float().mean() > 0.1
    assert (t['wide']['lab'] != t['deep']['lab']).float().mean() > 0.1
    assert t['wide']['feat'].shape[1] != t['deep']['feat'].shape[1] or \
        not torch.allclose(t['wide']['feat'], t['deep']['feat'])

    def semantic(teacher):  # lambda_1 = 0.001, official sum over batch and classes
        return 0.001 * (s_mix.mean(dim=(2, 3)) - t[teacher]['logits'].mean(dim=(2, 3))).abs().sum()

    def content(teacher):  # lambda_2 = 100, MSE of the 49x49 self-similarities
        return 100.0 * (_cos_self_similarity(s_feat) - _cos_self_similarity(t[teacher]['feat'])
                        ).pow(2).mean()

    def close(a, b):
        a, b = float(a.detach()), float(b)
        return abs(a - b) <= 1e-5 * abs(b) + 1e-8

    def check(key, right, wrong):
        got = losses[key]
        assert close(got, right), (key, float(got.detach()), float(right))
        # a clear margin: the swapped value is not within float noise of the right one
        assert abs(float(right) - float(wrong)) > 1e-2 * abs(float(right)), (key, float(right))

    check('distill.loss_semantic', semantic('deep'), semantic('wide'))
    check('distill.loss_content', content('wide'), content('deep'))
    for name, other in (('wide', 'deep'), ('deep', 'wide')):
        check(f'distill.loss_pixel_unlab_{name}', F.cross_entropy(s_mix, t[name]['pseudo']),
              F.cross_entropy(s_mix, t[other]['pseudo']))
        check(f'distill.loss_pixel_lab_{name}', F.cross_entropy(s_lab, t[name]['lab']),
              F.cross_entropy(s_lab, t[other]['lab']))
