"""Generated image-caption data, tokenizers and the image-text pipeline end."""
import numpy as np
import pytest
import torch

from mmkd.datasets import CsvCaptionDataset, DigitsShapesCaptions, PackImageText, TokenizeCaption
from mmkd.datasets.image_captions import CAPTION_WORDS, DIGIT_WORDS, SHAPE_COLOURS
from mmkd.text.caption_tokenizers import OpenCLIPTokenizer, WordTokenizer, build_tokenizer


@pytest.fixture(scope='module')
def data():
    return DigitsShapesCaptions(split='val', num_shapes=(10, 30))


def test_captions_describe_the_images(data):
    digits = [d for d in data.data_list if d['source'] == 'digits']
    shapes = [d for d in data.data_list if d['source'] == 'shapes']
    assert len(digits) == 359 and len(shapes) == 30  # DigitsDataset's val split
    for d in digits:
        assert d['caption'] == f"a handwritten digit {DIGIT_WORDS[d['gt_label']]}"
        assert d['img'].shape == (32, 32, 3) and d['img'].dtype == np.uint8
    tok = WordTokenizer(CAPTION_WORDS)
    for d in shapes:
        assert d['gt_label'] == -1
        parts = d['caption'].split(' and ')
        assert 1 <= len(parts) <= 2
        for part in parts:
            _, colour, shape = part.split(' ')
            assert colour in SHAPE_COLOURS and shape in ('circle', 'rectangle', 'triangle', 'star')
            # the named colour is really painted in the image
            rgb = np.asarray(SHAPE_COLOURS[colour], np.float32)
            dist = np.abs(d['img'].astype(np.float32) - rgb).max(axis=2)
            assert (dist < 45).sum() >= 8
        tok(d['caption'])  # every word is in the vocabulary


def test_generation_is_deterministic(data):
    again = DigitsShapesCaptions(split='val', sources=('shapes', ), num_shapes=(10, 30))
    shapes = [d for d in data.data_list if d['source'] == 'shapes']
    assert all(np.array_equal(a['img'], b['img']) and a['caption'] == b['caption']
               for a, b in zip(shapes, again.data_list))
    with pytest.raises(ValueError, match='sources'):
        DigitsShapesCaptions(sources=('faces', ))


def test_word_tokenizer():
    tok = WordTokenizer(['a', 'red', 'star'], context_length=5)
    ids = tok(['a red star', 'A  Star!'])
    assert ids.tolist() == [[5, 2, 3, 4, 6], [5, 2, 4, 6, 0]]  # sot=5, eot=6 is the largest id
    assert tok.vocab_size == 7
    assert tok('a red star red red')[0, -1].item() == tok.eot  # truncated, end kept
    with pytest.raises(KeyError, match="'blue'"):
        tok('a blue star')
    assert WordTokenizer(['a'], unknown='map')('a b').tolist() == [[3, 2, 1, 4] + [0] * 12]


def test_open_clip_tokenizer_needs_no_download():
    tok = build_tokenizer(dict(type='OpenCLIPTokenizer', context_length=77))
    ids = tok('a handwritten digit seven')
    assert isinstance(tok, OpenCLIPTokenizer) and ids.shape == (1, 77)
    assert ids[0, 0].item() == 49406 and ids.max().item() == 49407  # sot ... eot


def test_pipeline_packs_images_and_tokens(data):
    tokenize = TokenizeCaption(dict(type='WordTokenizer', vocab=list(CAPTION_WORDS), context_length=12))
    packed = PackImageText()(tokenize(dict(data.data_list[0])))
    assert packed['inputs']['img'].shape == (3, 32, 32) and packed['inputs']['img'].dtype == torch.uint8
    assert packed['inputs']['text'].shape == (12, )
    assert packed['data_samples'].caption == data.data_list[0]['caption']
    assert int(packed['data_samples'].gt_label) == data.data_list[0]['gt_label']
    assert packed['data_samples'].source == 'digits'


def test_csv_caption_dataset(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'train.tsv').write_text('filepath\ttitle\n0.jpg\ta cat\n1.jpg\ta dog on grass\n')
    ds = CsvCaptionDataset(ann_file='train.tsv', data_root=str(tmp_path),
                           data_prefix=dict(img_path='images'), lazy_init=False)
    assert [ds.get_data_info(i)['caption'] for i in range(len(ds))] == ['a cat', 'a dog on grass']
    assert ds.get_data_info(1)['img_path'].endswith('images/1.jpg')
    with pytest.raises(KeyError, match='caption'):
        CsvCaptionDataset(ann_file='train.tsv', data_root=str(tmp_path), caption_key='caption')
