"""DistillTokenClsHead and G2SD's specific stage (DeiT-style hard / soft distillation)."""
import math

import pytest
import torch
from mmengine.config import Config
from mmpretrain.models.heads import DeiTClsHead
from mmpretrain.structures import DataSample

from mmkd.models.heads import DistillTokenClsHead
from mmkd.registry import MODELS

SPECIFIC = 'configs/g2sd/g2sd-specific_vit-d8-w128_deit-d4-w64_p4_digits-10pct_demo.py'
SOFT = 'configs/g2sd/g2sd-specific-soft_vit-d8-w128_deit-d4-w64_p4_digits-10pct_demo.py'
pytestmark = pytest.mark.filterwarnings('ignore:SingleTeacherDistill')


# Heads build their loss in the current default scope; other tests may leave 'mmkd' set.
CE = dict(_scope_='mmpretrain', type='CrossEntropyLoss')


def head(**kwargs):
    torch.manual_seed(0)
    h = DistillTokenClsHead(num_classes=3, in_channels=4, loss=dict(CE, loss_weight=0.5),
                            **kwargs)
    for p in h.parameters():  # non-trivial weights (the default init is zeros)
        torch.nn.init.normal_(p)
    return h


def ce(logits, label):
    m = max(logits)
    return -(logits[label] - m - math.log(sum(math.exp(x - m) for x in logits)))


def linear(layer, x):
    return [sum(w * v for w, v in zip(row, x)) + b
            for row, b in zip(layer.weight.tolist(), layer.bias.tolist())]


def test_loss_is_class_token_ce_only_and_dist_logits_are_computed():
    h = head()
    cls = torch.randn(2, 4)
    dist = torch.randn(2, 4)
    labels = [2, 0]
    samples = [DataSample().set_gt_label(y) for y in labels]
    dist_seen = []
    h.layers.head_dist.register_forward_hook(lambda m, i, o: dist_seen.append(o))
    losses = h.loss(((cls, dist), ), samples)
    expected = 0.5 * sum(ce(linear(h.layers.head, c), y)
                         for c, y in zip(cls.tolist(), labels)) / 2
    assert losses['loss'].item() == pytest.approx(expected, rel=1e-5)
    assert len(dist_seen) == 1, 'the distiller must be able to record the dist-token logits'


def test_predict_averages_both_heads_or_uses_the_class_token():
    cls, dist = torch.randn(2, 4), torch.randn(2, 4)
    h = head()
    h.eval()
    both = [[(a + b) / 2 for a, b in zip(linear(h.layers.head, c), linear(h.layers.head_dist, d))]
            for c, d in zip(cls.tolist(), dist.tolist())]
    assert torch.allclose(h(((cls, dist), )), torch.tensor(both), atol=1e-5)
    h_cls = head(inference='cls')
    only = [linear(h_cls.layers.head, c) for c in cls.tolist()]
    assert torch.allclose(h_cls(((cls, dist), )), torch.tensor(only), atol=1e-5)


def test_weights_load_strictly_into_mmpretrains_deit_head():
    h = head()
    plain = DeiTClsHead(num_classes=3, in_channels=4, loss=CE)
    plain.load_state_dict(h.state_dict(), strict=True)
    assert set(plain.state_dict()) == set(h.state_dict())


def test_head_errors():
    with pytest.raises(ValueError, match="inference='avg'.*'mean', 'cls'"):
        DistillTokenClsHead(num_classes=3, in_channels=4, inference='avg', loss=CE)
    with pytest.raises(TypeError, match='DistilledVisionTransformer'):
        head()((torch.randn(2, 4), ))  # a plain ViT's class token only


def build_specific(path):
    cfg = Config.fromfile(path).model
    cfg.teacher_ckpt = None
    cfg.architecture.backbone.init_cfg = None
    cfg.architecture.backbone.drop_path_rate = 0.0  # a deterministic training forward
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    for p in model.architecture.head.parameters():  # the default head init is ~0
        torch.nn.init.normal_(p, std=0.5)
    return model


def batch(n=4):
    g = torch.Generator().manual_seed(0)
    return dict(inputs=torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8),
                data_samples=[DataSample().set_gt_label(i % 10) for i in range(n)])


@pytest.mark.parametrize('path', [SPECIFIC, SOFT])
def test_specific_stage_losses_from_an_independent_forward(path):
    model = build_specific(path)
    model.train()
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    student, teacher = model.architecture, model.teacher
    with torch.no_grad():
        s_cls, s_dist = student.backbone(data['inputs'])[-1]
        t_logits = teacher(data['inputs'], mode='tensor')
        cls_logits = student.head.layers.head(s_cls)
        dist_logits = student.head.layers.head_dist(s_dist)
    labels = [i % 10 for i in range(4)]
    gt = 0.5 * sum(ce(c, y) for c, y in zip(cls_logits.tolist(), labels)) / 4
    if path == SPECIFIC:
        t_labels = t_logits.argmax(1).tolist()
        kd = 0.5 * sum(ce(d, y) for d, y in zip(dist_logits.tolist(), t_labels)) / 4
        key = 'distill.loss_hard'
    else:  # KL(p_T || p_S), tau 1, batch mean
        kd = 0.0
        for d, t in zip(dist_logits.tolist(), t_logits.tolist()):
            log_s = [x - max(d) - math.log(sum(math.exp(v - max(d)) for v in d)) for x in d]
            log_t = [x - max(t) - math.log(sum(math.exp(v - max(t)) for v in t)) for x in t]
            kd += sum(math.exp(lt) * (lt - ls) for lt, ls in zip(log_t, log_s))
        kd = 0.5 * kd / 4
        key = 'distill.loss_soft'
    assert set(losses) == {'loss', key}
    assert losses['loss'].item() == pytest.approx(gt, rel=1e-4)
    assert losses[key].item() == pytest.approx(kd, rel=1e-4)


def test_specific_student_predicts_with_the_mean_of_both_heads():
    model = build_specific(SPECIFIC)
    model.eval()
    data = model.data_preprocessor(batch(), False)
    preds = model(**data, mode='predict')
    with torch.no_grad():
        s_cls, s_dist = model.architecture.backbone(data['inputs'])[-1]
        mean = (model.architecture.head.layers.head(s_cls)
                + model.architecture.head.layers.head_dist(s_dist)) / 2
    scores = torch.stack([p.pred_score for p in preds])
    assert torch.allclose(scores, mean.softmax(1), atol=1e-5)
