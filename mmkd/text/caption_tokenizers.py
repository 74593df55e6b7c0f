"""Text tokenizers for image-caption data and CLIP models.

Two kinds, built from a config dict by :func:`build_tokenizer`:

* ``dict(type='WordTokenizer', vocab=[...], context_length=16)``: a closed word
  vocabulary, for the generated demo captions (a tiny embedding table).
* ``dict(type='OpenCLIPTokenizer', context_length=77)``: open_clip's byte-pair
  ``SimpleTokenizer`` (OpenAI CLIP's vocabulary, 49,408 tokens). Its BPE merges ship
  inside the open_clip package, so nothing is downloaded.

Both return ``LongTensor (N, context_length)`` rows ``[sot, tokens..., eot, 0...]``
where ``eot`` is the largest id, so CLIP's ``argmax`` text pooling picks the
end-of-text position.
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence, Union

import torch

_WORD = re.compile(r"[a-z0-9]+")


class WordTokenizer:
    """Whitespace/punctuation split over a fixed vocabulary, lower-cased.

    Ids: 0 padding, 1 unknown word, 2..V+1 the vocabulary in the given order,
    V+2 start-of-text, V+3 end-of-text (the largest id). ``vocab_size`` = V + 4.

    Args:
        vocab (list[str]): the known words (unique).
        context_length (int): tokens per caption including start/end; longer
            captions are truncated (the end token is kept).
        unknown (str): 'error' (default) raises on a word outside ``vocab``;
            'map' maps it to the unknown id.
    """

    def __init__(self, vocab: Sequence[str], context_length: int = 16, unknown: str = 'error') -> None:
        words = [str(w).lower() for w in vocab]
        if len(set(words)) != len(words):
            dup = sorted({w for w in words if words.count(w) > 1})
            raise ValueError(f'WordTokenizer.vocab has duplicate words: {dup}')
        if context_length < 2:
            raise ValueError(f'WordTokenizer.context_length={context_length} must be >= 2')
        if unknown not in ('error', 'map'):
            raise ValueError(f"WordTokenizer.unknown={unknown!r}; valid: 'error', 'map'")
        self.words = words
        self.index: Dict[str, int] = {w: i + 2 for i, w in enumerate(words)}
        self.sot = len(words) + 2
        self.eot = len(words) + 3
        self.vocab_size = len(words) + 4
        self.context_length = context_length
        self.unknown = unknown

    def encode(self, text: str) -> List[int]:
        ids = []
        for word in _WORD.findall(text.lower()):
            if word in self.index:
                ids.append(self.index[word])
            elif self.unknown == 'map':
                ids.append(1)
            else:
                raise KeyError(f'WordTokenizer: the word {word!r} of {text!r} is not in the '
                               f'vocabulary ({len(self.words)} words: {self.words[:20]}...); add '
                               "it to `vocab` or set unknown='map'")
        return ids

    def __call__(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot] + self.encode(text)[:self.context_length - 2] + [self.eot]
            out[row, :len(ids)] = torch.tensor(ids)
        return out


class OpenCLIPTokenizer:
    """open_clip's BPE ``SimpleTokenizer`` (its vocabulary file ships with open_clip).

    Args:
        context_length (int): tokens per caption (77 for OpenAI/LAION CLIP models).
    """

    def __init__(self, context_length: int = 77) -> None:
        from open_clip.tokenizer import SimpleTokenizer  # optional heavy import
        self._tok = SimpleTokenizer(context_length=context_length)
        self.context_length = context_length
        self.vocab_size = len(self._tok.encoder)

    def __call__(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        return self._tok(texts, context_length=self.context_length)


TOKENIZERS = {'WordTokenizer': WordTokenizer, 'OpenCLIPTokenizer': OpenCLIPTokenizer}


def build_tokenizer(cfg: Union[dict, object], key: str = 'tokenizer'):
    """Build a tokenizer from ``dict(type=..., **kwargs)`` (or return a built one)."""
    if not isinstance(cfg, dict):
        if callable(cfg):
            return cfg
        raise TypeError(f'{key} must be a dict with a "type" key, got {cfg!r}')
    cfg = dict(cfg)
    kind = cfg.pop('type', None)
    if kind not in TOKENIZERS:
        raise KeyError(f'{key}.type={kind!r} is not a tokenizer; valid: {sorted(TOKENIZERS)}')
    try:
        return TOKENIZERS[kind](**cfg)
    except TypeError as err:
        raise TypeError(f'{key}: {err}') from None
