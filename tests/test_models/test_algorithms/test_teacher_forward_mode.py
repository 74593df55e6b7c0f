"""A teacher whose 'tensor' forward needs the data samples (mmseg's Mask2Former, DETR
heads) is run in 'predict' mode instead, once, with a log line naming the option; when
'predict' fails too, the error names ``teacher_forward_mode`` and its values."""
import logging
import warnings

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from torch import nn

from mmkd.models.algorithms import SingleTeacherDistill

from .helpers import batch, logit_distiller, tiny_classifier


class NeedsSamplesTeacher(BaseModel):
    """'tensor' mode fails as heads that read ``batch_img_metas`` do; 'predict' works."""

    def __init__(self, predict_fails=False):
        super().__init__()
        self.head = nn.Module()
        self.head.fc = nn.Linear(3, 4)
        self.predict_fails = predict_fails
        self.modes = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.modes.append(mode)
        if mode == 'tensor':
            raise TypeError("forward() missing 1 required positional argument: 'batch_data_samples'")
        if self.predict_fails:
            raise AttributeError("'NoneType' object has no attribute 'metainfo'")
        return self.head.fc(inputs.float().mean(dim=(2, 3)))


def build(teacher):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return SingleTeacherDistill(architecture=tiny_classifier(), teacher=teacher,
                                    distiller=logit_distiller())


def test_tensor_failure_falls_back_to_predict_and_says_so():
    teacher = NeedsSamplesTeacher()
    model = build(teacher)
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        data = model.data_preprocessor(batch(n=4), True)
        losses = model(**data, mode='loss')
        losses2 = model(**data, mode='loss')
    finally:
        logger.removeHandler(handler)
    # the distillation term is KL(teacher || student) on the predict-mode teacher logits
    with torch.no_grad():
        t = teacher.head.fc(data['inputs'].float().mean(dim=(2, 3))) / 2.0
        s = model.architecture(data['inputs'], mode='tensor') / 2.0
        golden = 4.0 * (t.softmax(1) * (t.log_softmax(1) - s.log_softmax(1))).sum() / t.shape[0]
    assert torch.allclose(losses['distill.loss_kd'], golden, rtol=1e-5)
    assert torch.allclose(losses['distill.loss_kd'], losses2['distill.loss_kd'])
    assert model.teacher_forward_mode == 'predict'
    assert teacher.modes == ['tensor', 'predict', 'predict']  # tried once, then predict only
    text = ' '.join(r.getMessage() for r in records)
    assert "teacher_forward_mode='tensor' failed" in text and 'NeedsSamplesTeacher' in text
    assert "teacher_forward_mode='predict'" in text


def test_both_modes_failing_names_the_option():
    model = build(NeedsSamplesTeacher(predict_fails=True))
    data = model.data_preprocessor(batch(n=4), True)
    with pytest.raises(RuntimeError, match=r"teacher_forward_mode='tensor'.*and in 'predict'.*"
                                           r"Set teacher_forward_mode to one of"):
        model(**data, mode='loss')


def test_an_explicit_mode_is_never_changed():
    teacher = NeedsSamplesTeacher(predict_fails=True)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = SingleTeacherDistill(architecture=tiny_classifier(), teacher=teacher,
                                     distiller=logit_distiller(), teacher_forward_mode='predict')
    data = model.data_preprocessor(batch(n=4), True)
    with pytest.raises(AttributeError, match='metainfo'):
        model(**data, mode='loss')
    assert model.teacher_forward_mode == 'predict' and teacher.modes == ['predict']
