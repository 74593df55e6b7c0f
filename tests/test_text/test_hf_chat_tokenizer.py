"""HFChatTokenizer on a local tokenizer folder written by the test (transformers 4.x and 5.x)."""
import pytest


def write_tokenizer(folder, words):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {w: i for i, w in enumerate(['<unk>', '<s>', '</s>'] + list(words))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token='<unk>'))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token='<unk>', bos_token='<s>',
                                  eos_token='</s>')
    tok.save_pretrained(str(folder))
    return vocab


def test_hf_chat_tokenizer_from_a_local_folder(tmp_path):
    from mmkd.datasets.shapes_vqa import build_conversation
    from mmkd.text import build_chat_tokenizer
    vocab = write_tokenizer(tmp_path / 'tok', ['user', ':', 'assistant', 'red', 'circle', '?'])
    tok = build_chat_tokenizer(dict(type='HFChatTokenizer', path=str(tmp_path / 'tok')))
    # the <image> placeholder is added after the 9 words: id 9, vocabulary of 10
    assert tok.image_token_id == len(vocab) == 9 and tok.vocab_size == 10
    assert (tok.bos_token_id, tok.eos_token_id) == (1, 2)
    assert tok.pad_token_id == 2  # no pad token: the eos id
    assert tok.encode('red circle ?') == [vocab['red'], vocab['circle'], vocab['?']]
    ids, labels, prompt_len = build_conversation(tok, 'circle ?', 'red', num_image_tokens=3)
    assert ids == [1, vocab['user'], vocab[':'], 9, 9, 9, vocab['circle'], vocab['?'],
                   vocab['assistant'], vocab[':'], vocab['red'], 2]
    assert labels == [-100] * prompt_len + [vocab['red'], 2] and prompt_len == 10
    assert tok.decode([vocab['red'], vocab['circle'], 2, vocab['?']]) == 'red circle'
    again = build_chat_tokenizer(dict(type='HFChatTokenizer', path=str(tmp_path / 'tok')))
    assert again.identity == tok.identity and tok.identity.startswith('hf:')
    write_tokenizer(tmp_path / 'other', ['user', ':', 'assistant', 'blue', 'square', '?'])
    other = build_chat_tokenizer(dict(type='HFChatTokenizer', path=str(tmp_path / 'other')))
    assert other.identity != tok.identity


def test_hf_chat_tokenizer_missing_folder(tmp_path):
    from mmkd.text import build_chat_tokenizer
    with pytest.raises((OSError, ValueError)):
        build_chat_tokenizer(dict(type='HFChatTokenizer', path=str(tmp_path / 'none')))
