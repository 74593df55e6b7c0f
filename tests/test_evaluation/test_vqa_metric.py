"""VQAAccuracy: exact match after normalisation, overall and per question type."""
import pytest
from mmengine.structures import BaseDataElement

from mmkd.evaluation import VQAAccuracy
from mmkd.evaluation.vqa_metric import normalize_answer


def sample(pred, gt, kind):
    s = BaseDataElement(metainfo=dict(gt_answer=gt, question_type=kind))
    s.pred_text = pred
    return s


def test_accuracy_overall_and_per_type():
    metric = VQAAccuracy()
    metric.process(None, [sample('Two.', 'two', 'count'), sample('one', 'two', 'count'),
                          sample(' yes ', 'yes', 'exist'), sample('red  green', 'red', 'colour')])
    out = metric.evaluate(4)
    assert out['vqa/accuracy'] == pytest.approx(50.0)
    assert out['vqa/acc_count'] == pytest.approx(50.0)
    assert out['vqa/acc_exist'] == pytest.approx(100.0)
    assert out['vqa/acc_colour'] == pytest.approx(0.0)


def test_normalisation_and_missing_fields():
    assert normalize_answer('  Blue?! ') == 'blue'
    assert normalize_answer('a   red\tstar') == 'a red star'
    with pytest.raises(KeyError, match='pred_text'):
        VQAAccuracy().process(None, [BaseDataElement(metainfo=dict(gt_answer='x'))])
