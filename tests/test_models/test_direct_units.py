"""Direct unit tests of small algorithm-side classes, each against its documented contract.

Covers BaseAlgorithm, DistillDataPreprocessor, MaskSpec, Way, ConvEncoder3d, MLPEncoder,
MultiTeacherDataPreprocessor and BaseTeacherCombiner. Expected values are computed by
hand in the test (plain tensor formulas), not by calling the code under test twice.
"""
import pytest
import torch
from mmengine.model import BaseDataPreprocessor, BaseModel, ImgDataPreprocessor
from torch import nn

from mmkd.models.algorithms.base_algorithm import BaseAlgorithm
from mmkd.models.algorithms.masked_image_distill import MaskSpec, random_masking
from mmkd.models.algorithms.multi_teacher_distill import Way
from mmkd.models.combiners.teacher_combiners import BaseTeacherCombiner
from mmkd.models.preprocessors.distill_data_preprocessor import DistillDataPreprocessor
from mmkd.models.preprocessors.multimodal_data_preprocessor import (
    MultiModalDataPreprocessor,
    MultiTeacherDataPreprocessor,
)
from mmkd.models.task_models.multimodal_classifier import ConvEncoder3d, MLPEncoder
from mmkd.registry import MODELS

from .test_algorithms.helpers import tiny_classifier


# --------------------------------------------------------------------------- BaseAlgorithm
class ToyStudent(BaseModel):
    """A minimal mmengine task model: tensor = logits, loss = mean square, predict = argmax."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(inputs)
        if mode == 'loss':
            return {'loss_task': out.pow(2).mean()}
        if mode == 'predict':
            return out.argmax(dim=1)
        return out


class ToyAlgorithm(BaseAlgorithm):
    """BaseAlgorithm plus a trainable connector (a distillation parameter)."""

    def __init__(self, architecture):
        super().__init__(architecture)
        self.connector = nn.Linear(2, 2)


def test_base_algorithm_delegates_inference_and_preprocessing_to_the_student():
    torch.manual_seed(0)
    student = ToyStudent()
    algo = BaseAlgorithm(architecture=student)
    assert algo.student is student
    assert algo.data_preprocessor is student.data_preprocessor
    x = torch.randn(4, 3)
    expected = x @ student.fc.weight.T + student.fc.bias
    torch.testing.assert_close(algo(x, mode='tensor'), expected)
    assert torch.equal(algo(x, mode='predict'), expected.argmax(dim=1))
    loss = algo(x, mode='loss')
    assert list(loss) == ['loss_task']
    torch.testing.assert_close(loss['loss_task'], expected.pow(2).mean())
    with pytest.raises(ValueError, match=r"mode='train'"):
        algo(x, mode='train')


def test_base_algorithm_touch_adds_an_exact_zero_with_zero_grads_even_for_nan_params():
    torch.manual_seed(0)
    algo = ToyAlgorithm(ToyStudent())
    assert {id(p) for p in algo.distillation_parameters()} == \
        {id(algo.connector.weight), id(algo.connector.bias)}
    with torch.no_grad():
        algo.connector.weight.fill_(float('nan'))  # the docstring: stays 0 whatever they hold
    x = torch.randn(4, 3)
    reference = (algo.student.fc(x)).pow(2).mean()
    ref_grad = torch.autograd.grad(reference, algo.student.fc.weight)[0]

    losses = algo.touch_distillation_parameters({'acc': torch.tensor(0.5), **algo.loss(x)})
    assert list(losses) == ['acc', 'loss_task']
    assert torch.equal(losses['acc'], torch.tensor(0.5))
    assert torch.equal(losses['loss_task'].detach(), reference.detach())
    losses['loss_task'].backward()
    assert torch.equal(algo.connector.weight.grad, torch.zeros(2, 2))
    assert torch.equal(algo.connector.bias.grad, torch.zeros(2))
    torch.testing.assert_close(algo.student.fc.weight.grad, ref_grad)

    with pytest.raises(RuntimeError, match='calculate_student_loss'):
        algo.touch_distillation_parameters({'acc': torch.tensor(1.0)})


# ------------------------------------------------------------------ DistillDataPreprocessor
def test_distill_data_preprocessor_normalises_for_each_model_and_only_trains_the_teacher():
    student = ImgDataPreprocessor(mean=[0.0] * 3, std=[255.0] * 3)
    teacher = ImgDataPreprocessor(mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True)
    prep = DistillDataPreprocessor(student, teacher)
    g = torch.Generator().manual_seed(0)
    imgs = [torch.randint(0, 256, (3, 4, 5), generator=g, dtype=torch.uint8) for _ in range(2)]
    raw = torch.stack(imgs).float()

    out = prep(dict(inputs=list(imgs), data_samples=None), training=True)
    assert set(out) == {'inputs', 'data_samples', 'teacher_inputs'}
    torch.testing.assert_close(out['inputs'], raw / 255.0)
    torch.testing.assert_close(out['teacher_inputs'], (raw[:, [2, 1, 0]] - 127.5) / 127.5)

    evaluated = prep(dict(inputs=list(imgs), data_samples=None), training=False)
    assert 'teacher_inputs' not in evaluated
    torch.testing.assert_close(evaluated['inputs'], raw / 255.0)


# ----------------------------------------------------------------------------- MaskSpec
def test_mask_spec_fields_are_consistent_for_mae_random_masking():
    batch, length, ratio = 3, 10, 0.75
    keep = int(length * (1 - ratio))  # 2 visible patches per sample
    spec = random_masking(batch, length, ratio, generator=torch.Generator().manual_seed(0))
    assert isinstance(spec, MaskSpec)
    assert MaskSpec._fields == ('ids_keep', 'ids_restore', 'mask')
    ids_keep, ids_restore, mask = spec
    assert ids_keep.shape == (batch, keep)
    assert ids_restore.shape == mask.shape == (batch, length)
    # mask: 0 visible, 1 masked; the visible ones are exactly ids_keep
    assert torch.equal(mask.sum(dim=1), torch.full((batch, ), float(length - keep)))
    for b in range(batch):
        assert sorted(ids_keep[b].tolist()) == sorted(torch.nonzero(mask[b] == 0).flatten().tolist())
        # ids_restore is a permutation that sends the j-th visible patch back to slot j
        assert sorted(ids_restore[b].tolist()) == list(range(length))
        for j, patch in enumerate(ids_keep[b].tolist()):
            assert ids_restore[b, patch].item() == j
    again = random_masking(batch, length, ratio, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(spec, again))


# ---------------------------------------------------------------------------------- Way
@pytest.mark.filterwarnings('ignore:MultiTeacherDistill. teachers.*ckpt is not given')
def test_way_names_a_teacher_and_optionally_its_masknet():
    way = Way('mm@fc1', 'mm', 'mm_0')
    assert Way._fields == ('name', 'teacher', 'masknet')
    assert (way.name, way.teacher, way.masknet) == ('mm@fc1', 'mm', 'mm_0')
    with pytest.raises(AttributeError):
        way.name = 'other'  # immutable

    def teacher(keys):
        encoders = dict(img=dict(type='ConvEncoder2d', in_channels=3, width=2, out_dim=4),
                        audio=dict(type='MLPEncoder', in_dim=8, hidden_dims=(4, )))
        return dict(type='mmkd.MultiModalClassifier', num_classes=4, hidden_dim=8,
                    encoders={k: encoders[k] for k in keys},
                    data_preprocessor=dict(type='mmkd.MultiModalDataPreprocessor',
                                           modalities={k: dict() for k in keys}))

    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='MultiTeacherDistill', architecture=tiny_classifier(width=4, num_classes=4),
        teachers=dict(
            mm=dict(model=teacher(('img', 'audio')), input_key=['img', 'audio'],
                    masknets=[dict(layer='fc1', type='MaskNet1d', feat_dim=8, num_heads=2),
                              dict(layer='fusion', type='MaskNet1d', feat_dim=8, num_heads=2,
                                   name='fused')]),
            audio=dict(model=teacher(('audio', )), input_key=['audio'])),
        combiner=dict(type='AverageTeachers'), student_logits='head.fc',
        student_input_key='img'))
    # teachers in config order, their masknets in list order; a plain teacher has None
    assert model.ways == [Way('mm@fc1', 'mm', 'mm_0'), Way('fused', 'mm', 'mm_1'),
                          Way('audio', 'audio', None)]
    for w in model.ways:
        assert w.teacher in model.teachers
        assert w.masknet is None or w.masknet in model.masknets


# ------------------------------------------------------------------------- ConvEncoder3d
@pytest.mark.parametrize('shape', [(2, 2, 5, 7, 3), (1, 2, 1, 4, 4)])
def test_conv_encoder3d_maps_any_clip_size_to_out_dim(shape):
    torch.manual_seed(0)
    enc = ConvEncoder3d(in_channels=2, width=4, out_dim=6).eval()
    assert enc.out_dim == 6
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv3d)]
    # three 3x3x3 blocks, width doubled twice
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == \
        [(2, 4, (3, 3, 3)), (4, 8, (3, 3, 3)), (8, 16, (3, 3, 3))]
    assert sum(isinstance(m, nn.MaxPool3d) for m in enc.modules()) == 2
    out = enc(torch.randn(*shape))
    assert out.shape == (shape[0], 6)
    assert (out >= 0).all()  # linear then ReLU


# ---------------------------------------------------------------------------- MLPEncoder
def test_mlp_encoder_flattens_then_applies_linear_relu_layers():
    torch.manual_seed(0)
    enc = MLPEncoder(in_dim=4, hidden_dims=(3, 2))
    assert enc.out_dim == 2
    linears = [m for m in enc.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(4, 3), (3, 2)]
    x = torch.randn(5, 2, 2)
    flat = x.reshape(5, 4)
    hidden = torch.clamp(flat @ linears[0].weight.T + linears[0].bias, min=0)
    expected = torch.clamp(hidden @ linears[1].weight.T + linears[1].bias, min=0)
    torch.testing.assert_close(enc(x), expected)


def test_mlp_encoder_without_hidden_layers_is_a_flatten():
    enc = MLPEncoder(in_dim=6, hidden_dims=())
    assert enc.out_dim == 6
    x = torch.randn(2, 3, 2)
    assert torch.equal(enc(x), x.reshape(2, 6))


# ------------------------------------------------------------------ MultiTeacherDataPreprocessor
def _mm_batch():
    g = torch.Generator().manual_seed(0)
    img = [torch.randint(0, 256, (3, 4, 4), generator=g, dtype=torch.uint8) for _ in range(2)]
    audio = [torch.randn(1, 6, generator=g) for _ in range(2)]
    return dict(inputs=dict(img=img, audio=audio), data_samples=None), img, audio


def test_multi_teacher_preprocessor_gives_each_model_its_modality_and_normalisation():
    student = ImgDataPreprocessor(mean=[0.0] * 3, std=[255.0] * 3)
    t_img = ImgDataPreprocessor(mean=[127.5] * 3, std=[127.5] * 3)
    t_audio = MultiModalDataPreprocessor(modalities=dict(audio=dict(mean=1.0, std=2.0)))
    prep = MultiTeacherDataPreprocessor(student, 'img',
                                        dict(vis=(t_img, 'img'), aud=(t_audio, ['audio'])))
    # the teachers' preprocessors stay outside the module tree, the student's is inside
    assert [name for name, _ in prep.named_children()] == ['student']
    data, img, audio = _mm_batch()
    raw_img, raw_audio = torch.stack(img).float(), torch.stack(audio)

    out = prep(data, training=True)
    assert set(out) == {'inputs', 'data_samples', 'teacher_inputs'}
    torch.testing.assert_close(out['inputs'], raw_img / 255.0)
    assert set(out['teacher_inputs']) == {'vis', 'aud'}
    torch.testing.assert_close(out['teacher_inputs']['vis'], (raw_img - 127.5) / 127.5)
    assert set(out['teacher_inputs']['aud']) == {'audio'}
    torch.testing.assert_close(out['teacher_inputs']['aud']['audio'], (raw_audio - 1.0) / 2.0)

    evaluated = prep(_mm_batch()[0], training=False)
    assert 'teacher_inputs' not in evaluated
    torch.testing.assert_close(evaluated['inputs'], raw_img / 255.0)


def test_multi_teacher_preprocessor_error_names_the_teachers_input_key():
    prep = MultiTeacherDataPreprocessor(BaseDataPreprocessor(), 'img',
                                        dict(depth_t=(BaseDataPreprocessor(), 'depth')))
    with pytest.raises(KeyError, match=r'teachers\.depth_t\.input_key.*depth'):
        prep(_mm_batch()[0], training=True)


# ------------------------------------------------------------------------ BaseTeacherCombiner
def test_base_teacher_combiner_contract():
    base = BaseTeacherCombiner()
    with pytest.raises(NotImplementedError):
        base(torch.zeros(2, 3), torch.zeros(2, 1, 3))

    class MeanSquare(BaseTeacherCombiner):
        def forward(self, student_logits, teacher_logits):
            target = teacher_logits.mean(dim=1)
            return {'loss_mse': (student_logits - target).pow(2).mean()}

    combiner = MeanSquare()
    assert combiner.way_names == []
    with pytest.raises(ValueError, match='MeanSquare: no teacher'):
        combiner.setup([])
    combiner.setup(('a', 'b'))
    assert combiner.way_names == ['a', 'b']
    student = torch.tensor([[1.0, 2.0]])
    teachers = torch.tensor([[[0.0, 0.0], [2.0, 4.0]]])  # (N=1, E=2, C=2): mean (1, 2)
    assert combiner(student, teachers)['loss_mse'].item() == pytest.approx(0.0)
    assert combiner(student + 1.0, teachers)['loss_mse'].item() == pytest.approx(1.0)
