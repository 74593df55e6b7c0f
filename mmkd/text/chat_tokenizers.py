"""Chat tokenizers of the LLaVA models and their data (built by :func:`build_chat_tokenizer`).

* :class:`ChatWordTokenizer` is a word-level tokenizer over a fixed vocabulary with
  the special tokens ``<pad> <unk> <s> </s> <image>``; teacher and student share it.
  :meth:`ChatWordTokenizer.identity` names the vocabulary (used to refuse distilling
  between models with different tokenizers). Its default vocabulary is every word of
  the generated shapes VQA data (:mod:`mmkd.datasets.shapes_vqa`, which asks its
  questions with the words defined here).
* :class:`HFChatTokenizer` is a local Hugging Face tokenizer with an ``<image>`` token.

Both the models (:class:`mmkd.models.task_models.llava.LlavaModel`) and the data
transforms (:class:`mmkd.datasets.shapes_vqa.PackVQAInputs`) build them, so they live
outside both packages.
"""
from __future__ import annotations

import hashlib
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

__all__ = [
    'VQA_SHAPES', 'VQA_PLURALS', 'VQA_COLOURS', 'VQA_NUMBERS', 'SHAPES_VQA_WORDS',
    'ChatWordTokenizer', 'HFChatTokenizer', 'CHAT_TOKENIZERS', 'build_chat_tokenizer'
]


#: shape classes and their plural forms (the question words).
VQA_SHAPES: Tuple[str, ...] = ('circle', 'square', 'triangle')
VQA_PLURALS: Dict[str, str] = {'circle': 'circles', 'square': 'squares', 'triangle': 'triangles'}
#: colour names -> RGB.
VQA_COLOURS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 170, 60),
    'blue': (45, 80, 220),
    'yellow': (235, 205, 35),
}
VQA_NUMBERS: Tuple[str, ...] = ('zero', 'one', 'two', 'three', 'four')
#: every word a conversation of the data set uses (the tokenizer's vocabulary).
SHAPES_VQA_WORDS: Tuple[str, ...] = (
    ('user', 'assistant', ':', '?', 'how', 'many', 'what', 'colour', 'is', 'the', 'there', 'a',
     'yes', 'no') + VQA_SHAPES + tuple(VQA_PLURALS[s] for s in VQA_SHAPES) + tuple(VQA_COLOURS)
    + VQA_NUMBERS)

_TOKEN = re.compile(r'<[^<>\s]+>|[a-z0-9]+|[^\sa-z0-9]')


class ChatWordTokenizer:
    """A word-level tokenizer with chat special tokens, over a fixed vocabulary.

    Ids: 0 ``<pad>``, 1 ``<unk>``, 2 ``<s>``, 3 ``</s>``, 4 ``<image>``, then the
    words in the given order. Text is lower-cased and split into words and single
    punctuation marks; ``<...>`` special tokens are kept whole.

    Args:
        words (sequence[str], optional): the vocabulary (default: every word of
            :class:`ShapesVQADataset`, :data:`SHAPES_VQA_WORDS`).
        name (str): a name that is part of :attr:`identity`.
        unknown (str): 'error' (default) raises on a word outside the vocabulary,
            'map' maps it to ``<unk>``.
    """

    SPECIALS: Tuple[str, ...] = ('<pad>', '<unk>', '<s>', '</s>', '<image>')

    def __init__(self, words: Optional[Sequence[str]] = None, name: str = 'shapes-vqa',
                 unknown: str = 'error') -> None:
        words = [str(w).lower() for w in (SHAPES_VQA_WORDS if words is None else words)]
        clash = sorted({w for w in words if words.count(w) > 1 or w in self.SPECIALS})
        if clash:
            raise ValueError(f'ChatWordTokenizer.words has duplicate or special words: {clash}')
        if unknown not in ('error', 'map'):
            raise ValueError(f"ChatWordTokenizer.unknown={unknown!r}; valid: 'error', 'map'")
        self.name, self.unknown = name, unknown
        self.tokens: List[str] = list(self.SPECIALS) + words
        self.index: Dict[str, int] = {t: i for i, t in enumerate(self.tokens)}
        self.pad_token_id, self.unk_token_id = 0, 1
        self.bos_token_id, self.eos_token_id, self.image_token_id = 2, 3, 4

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def identity(self) -> str:
        """``name:sha1(vocabulary)[:12]``: equal iff two tokenizers map text alike."""
        digest = hashlib.sha1('\n'.join(self.tokens).encode()).hexdigest()[:12]
        return f'{self.name}:{digest}'

    def encode(self, text: str) -> List[int]:
        ids = []
        for tok in _TOKEN.findall(text.lower()):
            if tok in self.index:
                ids.append(self.index[tok])
            elif self.unknown == 'map':
                ids.append(self.unk_token_id)
            else:
                raise KeyError(f'ChatWordTokenizer({self.name}): {tok!r} of {text!r} is not in '
                               f'the vocabulary {self.tokens}; add it to `words` or set '
                               "unknown='map'")
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        out = []
        for i in (ids.tolist() if torch.is_tensor(ids) else ids):
            i = int(i)
            if i == self.eos_token_id and skip_special_tokens:
                break
            if skip_special_tokens and i < len(self.SPECIALS):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else '<unk>')
        return ' '.join(out)


class HFChatTokenizer:
    """A local Hugging Face tokenizer (``AutoTokenizer.from_pretrained(path)``, no
    download) with an added ``<image>`` token, for real-scale LLaVA data.

    Args:
        path (str): a local tokenizer folder (e.g. the Qwen2 checkpoint folder).
        image_token (str): the image placeholder, added as a special token if missing.
    """

    def __init__(self, path: str, image_token: str = '<image>') -> None:
        from transformers import AutoTokenizer  # optional heavy import
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if image_token not in tok.get_vocab():
            tok.add_special_tokens({'additional_special_tokens': [image_token]})
        self._tok, self.name = tok, path
        self.image_token_id = tok.convert_tokens_to_ids(image_token)
        self.eos_token_id = tok.eos_token_id
        self.bos_token_id = tok.bos_token_id
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    @property
    def identity(self) -> str:
        vocab = sorted(self._tok.get_vocab().items(), key=lambda kv: kv[1])
        digest = hashlib.sha1('\n'.join(k for k, _ in vocab).encode()).hexdigest()[:12]
        return f'hf:{digest}'

    def encode(self, text: str) -> List[int]:
        return self._tok.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        ids = ids.tolist() if torch.is_tensor(ids) else list(ids)
        if skip_special_tokens and self.eos_token_id in ids:
            ids = ids[:ids.index(self.eos_token_id)]
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens).strip()


CHAT_TOKENIZERS = {'ChatWordTokenizer': ChatWordTokenizer, 'HFChatTokenizer': HFChatTokenizer}


def build_chat_tokenizer(cfg: Union[dict, object, None], key: str = 'tokenizer'):
    """Build a chat tokenizer from ``dict(type=..., **kwargs)`` (None: the default
    :class:`ChatWordTokenizer`); a built tokenizer is returned as it is."""
    if cfg is None:
        return ChatWordTokenizer()
    if not isinstance(cfg, dict):
        if hasattr(cfg, 'encode') and hasattr(cfg, 'identity'):
            return cfg
        raise TypeError(f'{key} must be a dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    kind = cfg.pop('type', 'ChatWordTokenizer')
    if kind not in CHAT_TOKENIZERS:
        raise KeyError(f'{key}.type={kind!r} is not a chat tokenizer; valid: {sorted(CHAT_TOKENIZERS)}')
    try:
        return CHAT_TOKENIZERS[kind](**cfg)
    except TypeError as err:
        raise TypeError(f'{key}: {err}') from None
