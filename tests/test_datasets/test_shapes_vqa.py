"""ShapesVQADataset, the chat tokenizer, conversation packing and LlavaDataPreprocessor."""
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate

from mmkd.datasets.shapes_vqa import VQA_NUMBERS, PackVQAInputs, ShapesVQADataset, build_conversation
from mmkd.models.preprocessors import LlavaDataPreprocessor
from mmkd.text import ChatWordTokenizer, build_chat_tokenizer

N_IMG = 16


def dataset(split='train', num=12, **kw):
    return ShapesVQADataset(split=split, num_images=num,
                            pipeline=[dict(type='PackVQAInputs', num_image_tokens=N_IMG)], **kw)


def test_tokenizer_roundtrip_specials_and_identity():
    tok = ChatWordTokenizer()
    ids = tok.encode('what colour is the square ?')
    assert tok.decode(ids) == 'what colour is the square ?'
    assert tok.encode('<image>') == [4] and tok.image_token_id == 4
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 2, 3)
    # decoding stops at </s> and hides specials
    assert tok.decode([2] + tok.encode('yes') + [3] + tok.encode('no')) == 'yes'
    with pytest.raises(KeyError, match='elephant'):
        tok.encode('an elephant')
    other = ChatWordTokenizer(words=['yes', 'no'])
    assert other.identity != tok.identity
    assert ChatWordTokenizer().identity == tok.identity
    with pytest.raises(KeyError, match='valid'):
        build_chat_tokenizer(dict(type='Nope'))


def test_conversation_label_masking_and_image_positions():
    tok = ChatWordTokenizer()
    ids, labels, prompt_len = build_conversation(tok, 'how many circles ?', 'two', 5)
    # <s> user : <image>x5 how many circles ? assistant : | two </s>
    expected = ([2] + tok.encode('user :') + [4] * 5 + tok.encode('how many circles ? assistant :')
                + tok.encode('two') + [3])
    assert ids == expected
    assert prompt_len == len(expected) - 2
    assert labels[:prompt_len] == [-100] * prompt_len
    assert labels[prompt_len:] == [tok.encode('two')[0], 3]
    image_pos = [i for i, t in enumerate(ids) if t == 4]
    assert image_pos == list(range(3, 8))  # right after "<s> user :"


def test_dataset_answers_match_the_drawn_objects_and_preferences():
    ds = dataset(num=40)
    assert len(ds) == 40 * 3
    seen_types = set()
    for item in ds.data_list:
        objects, q, a = item['objects'], item['question'], item['answer']
        seen_types.add(item['question_type'])
        assert item['rejected'] != a
        if q.startswith('how many'):
            plural = q.split()[2]
            n = sum(1 for s, _ in objects if s + 's' == plural)
            assert a == VQA_NUMBERS[n] and item['rejected'] in VQA_NUMBERS
        elif q.startswith('what colour'):
            shape = q.split()[-2]
            matches = [c for s, c in objects if s == shape]
            assert matches == [a]
        else:
            shape = q.split()[-2]
            assert a == ('yes' if any(s == shape for s, _ in objects) else 'no')
    assert seen_types == {'count', 'colour', 'exist'}
    img = ds.data_list[0]['img']
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8


def test_dataset_is_deterministic_and_splits_differ():
    a, b = dataset(num=5), dataset(num=5)
    assert all(np.array_equal(x['img'], y['img']) and x['question'] == y['question']
               for x, y in zip(a.data_list, b.data_list))
    v = dataset('val', num=5)
    assert not np.array_equal(a.data_list[0]['img'], v.data_list[0]['img'])
    with pytest.raises(ValueError, match='split'):
        ShapesVQADataset(split='dev', num_images=2)


def test_pack_and_preprocessor_padding():
    ds = dataset(num=4)
    items = [ds[i] for i in range(5)]
    packed = items[0]
    assert packed['inputs']['pixel_values'].shape == (3, 32, 32)
    assert packed['data_samples'].gt_answer == ds.data_list[0]['answer']
    batch = pseudo_collate(items)
    pp = LlavaDataPreprocessor(pad_token_id=0)
    out = pp(batch)['inputs']
    lens = [int(i['inputs']['input_ids'].numel()) for i in items]
    assert out['input_ids'].shape == (5, max(lens))
    for row, n in enumerate(lens):
        assert out['attention_mask'][row].tolist() == [1] * n + [0] * (max(lens) - n)
        assert torch.equal(out['input_ids'][row, :n], items[row]['inputs']['input_ids'])
        assert (out['labels'][row, n:] == -100).all()
        # left-padded prompt ends exactly where the prompt ends
        p = items[row]['inputs']['prompt_len']
        assert torch.equal(out['prompt_input_ids'][row, -p:], items[row]['inputs']['input_ids'][:p])
        assert out['prompt_attention_mask'][row].sum() == p
    # chosen and rejected share one length; rejected labels hold the wrong answer
    assert out['chosen_input_ids'].shape == out['rejected_input_ids'].shape
    tok = ChatWordTokenizer()
    wrong = tok.encode(ds.data_list[0]['rejected'])[0]
    assert wrong in out['rejected_labels'][0].tolist()
    assert -1.0 <= float(out['pixel_values'].min()) and float(out['pixel_values'].max()) <= 1.0
    assert out['pixel_values'].dtype == torch.float32


def test_pack_without_preference_and_bad_input():
    pack = PackVQAInputs(num_image_tokens=4, with_preference=False)
    res = pack(dict(img=np.zeros((16, 16, 3), np.uint8), question='is there a circle ?',
                    answer='no', rejected='yes'))
    assert 'rejected_input_ids' not in res['inputs']
    with pytest.raises(KeyError, match='question'):
        pack(dict(img=np.zeros((16, 16, 3), np.uint8), answer='no'))
