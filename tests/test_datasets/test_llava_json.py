"""LlavaJsonDataset reads LLaVA-format conversations and RLAIF-V preference pairs."""
import json

import mmcv
import numpy as np
import pytest

from mmkd.datasets.llava_json import LlavaJsonDataset

TOKENIZER = dict(type='ChatWordTokenizer', unknown='map')


def _write(tmp_path, records):
    (tmp_path / 'images').mkdir()
    img = np.zeros((20, 40, 3), np.uint8)
    img[..., 0] = 255  # red, wider than tall: padded to a square
    mmcv.imwrite(img[..., ::-1], str(tmp_path / 'images' / 'a.png'))
    (tmp_path / 'ann.json').write_text(json.dumps(records))


def test_conversations_and_preference_pairs(tmp_path):
    conv = [{'from': 'human', 'value': '<image>\nis there a circle ?'}, {'from': 'gpt', 'value': 'yes'},
            {'from': 'human', 'value': 'what colour ?'}, {'from': 'gpt', 'value': 'red'}]
    _write(tmp_path, [{'id': 'x', 'image': 'a.png', 'conversations': conv},
                      {'id': 'text-only', 'conversations': conv}])
    ds = LlavaJsonDataset('ann.json', data_root=str(tmp_path), image_root='images', img_size=16,
                          pipeline=[dict(type='PackVQAInputs', tokenizer=TOKENIZER, num_image_tokens=4)])
    assert len(ds) == 1  # the text-only record is skipped
    info = ds.get_data_info(0)
    assert (info['question'], info['answer'], info['rejected']) == ('is there a circle ?', 'yes', None)
    assert info['img'].shape == (16, 16, 3)
    assert info['img'][8, 8, 0] > 200 and info['img'][8, 8, 1] < 50  # RGB order kept
    packed = ds[0]
    assert packed['inputs']['input_ids'].tolist().count(4) == 4  # <image> x num_image_tokens
    assert 'rejected_input_ids' not in packed['inputs']

    pref = [{'id': 'p', 'image': 'a.png',
             'chosen': [{'from': 'human', 'value': '<image> how many circles ?'},
                        {'from': 'gpt', 'value': 'two'}],
             'rejected': [{'from': 'human', 'value': '<image> how many circles ?'},
                          {'from': 'gpt', 'value': 'three'}]}]
    (tmp_path / 'pref.json').write_text(json.dumps(pref))
    ds = LlavaJsonDataset('pref.json', data_root=str(tmp_path), image_root='images', img_size=16,
                          preference=True,
                          pipeline=[dict(type='PackVQAInputs', tokenizer=TOKENIZER, num_image_tokens=4)])
    assert (ds.get_data_info(0)['answer'], ds.get_data_info(0)['rejected']) == ('two', 'three')
    assert 'rejected_input_ids' in ds[0]['inputs']
    with pytest.raises(FileNotFoundError, match='ann_file'):
        LlavaJsonDataset('missing.json', data_root=str(tmp_path))
