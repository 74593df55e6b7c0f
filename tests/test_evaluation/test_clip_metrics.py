"""Retrieval recall and zero-shot accuracy against hand-computed values."""
import pytest
import torch
from mmengine.structures import BaseDataElement

from mmkd.evaluation import ImageTextRetrieval, ZeroShotAccuracy


def sample(img, text, caption, source='shapes', label=-1, score=None):
    s = BaseDataElement(metainfo=dict(caption=caption, source=source))
    s.img_embed = torch.tensor(img, dtype=torch.float32)
    s.text_embed = torch.tensor(text, dtype=torch.float32)
    s.gt_label = torch.tensor(label)
    if score is not None:
        s.pred_score = torch.tensor(score)
    return s


def test_recall_golden():
    # sim = img @ text.T; one-hot-ish embeddings make the ranking readable
    imgs = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    texts = [[0.9, 0.1, 0], [0.8, 0.0, 0.2], [0, 0.2, 0.9]]
    # sim rows: img0 -> [0.9, 0.8, 0.0] (own caption first: hit)
    #           img1 -> [0.1, 0.0, 0.2] (own caption ranks 3rd)
    #           img2 -> [0.0, 0.2, 0.9] (hit)
    # sim cols (t2i): text0 -> imgs [0.9, 0.1, 0.0] hit; text1 -> [0.8, 0.0, 0.2] own (img1) 3rd;
    #                 text2 -> [0.0, 0.2, 0.9] hit
    metric = ImageTextRetrieval(topk=(1, 2, 3))
    metric.process(None, [sample(i, t, f'c{k}') for k, (i, t) in enumerate(zip(imgs, texts))])
    out = metric.compute_metrics(metric.results)
    assert out['i2t_R@1'] == pytest.approx(200 / 3) and out['i2t_R@2'] == pytest.approx(200 / 3)
    assert out['i2t_R@3'] == pytest.approx(100.0)
    assert out['t2i_R@1'] == pytest.approx(200 / 3) and out['t2i_R@3'] == pytest.approx(100.0)
    assert out['mean_R@1'] == pytest.approx(200 / 3)


def test_caption_matching_and_sources():
    # img1's top caption is caption 0, which has the same text as its own
    imgs = [[1, 0], [1, 0.1], [0, 1]]
    texts = [[1, 0], [0.3, 0.9], [0, 1]]
    samples = [sample(imgs[0], texts[0], 'a red star'), sample(imgs[1], texts[1], 'a red star'),
               sample(imgs[2], texts[2], 'a blue circle'),
               sample([1, 0], [1, 0], 'a handwritten digit one', source='digits')]
    by_index, by_caption = ImageTextRetrieval(topk=(1, )), ImageTextRetrieval(
        topk=(1, ), match_by='caption', sources=('shapes', ))
    by_index.process(None, samples[:3])
    by_caption.process(None, samples)
    assert len(by_caption.results) == 3  # the digits sample is left out
    assert by_index.compute_metrics(by_index.results)['i2t_R@1'] == pytest.approx(200 / 3)
    assert by_caption.compute_metrics(by_caption.results)['i2t_R@1'] == pytest.approx(100.0)
    with pytest.raises(ValueError, match='match_by'):
        ImageTextRetrieval(match_by='text')


def test_zero_shot_accuracy():
    metric = ZeroShotAccuracy(topk=(1, 2))
    metric.process(None, [
        sample([1], [1], 'x', 'digits', label=0, score=[0.7, 0.2, 0.1]),   # top1 hit
        sample([1], [1], 'x', 'digits', label=2, score=[0.5, 0.3, 0.2]),   # miss, miss
        sample([1], [1], 'x', 'digits', label=1, score=[0.45, 0.5, 0.05]),  # top1 hit
        sample([1], [1], 'x', 'digits', label=2, score=[0.1, 0.6, 0.3]),   # top2 hit
        sample([1], [1], 'x', 'shapes', label=-1, score=[1.0, 0.0, 0.0]),  # no class: skipped
    ])
    out = metric.compute_metrics(metric.results)
    assert out == {'top1': pytest.approx(50.0), 'top2': pytest.approx(75.0)}
    with pytest.raises(ValueError, match='no labelled sample'):
        metric.compute_metrics([])
