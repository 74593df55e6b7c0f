"""Shapes VQA: a generated visual question-answering set for LLaVA-style models.

Everything is built in memory, offline, deterministically:

* :class:`ShapesVQADataset` draws small RGB images (default 32x32) holding one to
  ``max_shapes`` shapes (circle, square, triangle) in one of four colours (red, green,
  blue, yellow), one shape per cell of a 2x2 grid, on a noisy grey background, and asks
  questions about them with one-word answers:

  ========  ==============================  ==========================
  type      question                        answers
  ========  ==============================  ==========================
  count     ``how many circles ?``          zero, one, two, three, four
  colour    ``what colour is the square ?`` red, green, blue, yellow
  exist     ``is there a triangle ?``       yes, no
  ========  ==============================  ==========================

  (``colour`` is asked only about a shape that occurs exactly once.) Every sample
  also carries a preference pair: ``chosen`` = the correct answer, ``rejected`` = a
  wrong answer of the same type. Image ``i`` of a split depends only on
  ``(seed, split, i)``; train and val use different streams.
* The questions use the words of :data:`SHAPES_VQA_WORDS`, the default vocabulary of
  :class:`mmkd.text.chat_tokenizers.ChatWordTokenizer` (the models build the same
  tokenizer, so it lives in :mod:`mmkd.text`).
* :class:`PackVQAInputs` renders the conversation

  ``<s> user : <image> x N  {question} assistant : | {answer} </s>``

  where ``N`` is the number of visual tokens the vision tower produces (the
  ``<image>`` token is repeated ``N`` times, as transformers' LLaVA expects) and
  ``|`` marks the end of the prompt. ``labels`` equal ``input_ids`` on the response
  (answer + ``</s>``) and -100 everywhere else. The unshifted convention of
  transformers holds: the logits at position ``t`` predict ``input_ids[t + 1]``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.structures import BaseDataElement

from mmkd.registry import DATASETS, TRANSFORMS
from mmkd.text.chat_tokenizers import (
    SHAPES_VQA_WORDS,
    VQA_COLOURS,
    VQA_NUMBERS,
    VQA_SHAPES,
    build_chat_tokenizer,
)
from mmkd.text.chat_tokenizers import VQA_PLURALS as _PLURAL

__all__ = [
    'VQA_SHAPES', 'VQA_COLOURS', 'VQA_NUMBERS', 'SHAPES_VQA_WORDS', 'ShapesVQADataset',
    'PackVQAInputs', 'build_conversation', 'render_shapes_vqa_image'
]

IGNORE_INDEX = -100

QUESTION_TYPES: Tuple[str, ...] = ('count', 'colour', 'exist')

_SPLITS = {'train': 0, 'val': 1, 'test': 2}


def build_conversation(tokenizer, question: str, answer: Optional[str],
                       num_image_tokens: int) -> Tuple[List[int], List[int], int]:
    """Token ids and labels of one turn ``<s> user : <image>*N question assistant : answer </s>``.

    Returns:
        (input_ids, labels, prompt_len): ``labels`` is -100 on the prompt (the first
        ``prompt_len`` tokens) and equals ``input_ids`` on ``answer </s>``. With
        ``answer=None`` only the prompt is returned.
    """
    if num_image_tokens < 1:
        raise ValueError(f'num_image_tokens={num_image_tokens} must be >= 1')
    prompt = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prompt += tokenizer.encode('user :') + [tokenizer.image_token_id] * num_image_tokens
    prompt += tokenizer.encode(f'{question} assistant :')
    if answer is None:
        return prompt, [IGNORE_INDEX] * len(prompt), len(prompt)
    response = tokenizer.encode(answer) + [tokenizer.eos_token_id]
    return prompt + response, [IGNORE_INDEX] * len(prompt) + response, len(prompt)


# ----------------------------------------------------------------------------- drawing
def _shape_mask(size: int, shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if shape == 'circle':
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == 'square':
        h = r * 0.85
        return (np.abs(xx - cx) <= h) & (np.abs(yy - cy) <= h)
    if shape == 'triangle':  # apex up, base at cy + r * 0.75
        top, bottom = cy - r, cy + 0.75 * r
        frac = np.clip((yy - top) / (bottom - top), 0, 1)
        return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= frac * r)
    raise ValueError(f'unknown shape {shape!r}; valid: {VQA_SHAPES}')


def render_shapes_vqa_image(rng: np.random.Generator, img_size: int, max_shapes: int,
                            jitter: float = 0.1, radius: Tuple[float, float] = (0.36, 0.42)
                            ) -> Tuple[np.ndarray, List[Tuple[str, str]]]:
    """Draw 1..max_shapes shapes, one per cell of a 2x2 grid, on a noisy grey background.

    A shape's radius is ``radius`` (a range, fraction of the cell side) and its centre
    moves at most ``jitter`` x the free space around it from the cell centre: small
    values keep the shapes aligned with a ViT's patch grid, which tiny models trained
    from scratch need to tell the shapes apart in a few minutes.

    Returns the HxWx3 uint8 image and the (shape, colour) of each drawn object.
    """
    img = np.full((img_size, img_size, 3), 128.0, np.float32)
    img += rng.normal(0, 12.0, size=(1, 1, 3))  # background tint
    num = int(rng.integers(1, max_shapes + 1))
    cells = rng.permutation(4)[:num]
    cell = img_size / 2
    objects = []
    colours = list(VQA_COLOURS)
    for c in cells.tolist():
        shape = VQA_SHAPES[int(rng.integers(len(VQA_SHAPES)))]
        colour = colours[int(rng.integers(len(colours)))]
        r = cell * rng.uniform(*radius)
        free = max(cell / 2 - r - 0.5, 0.0)
        cx = (c % 2) * cell + cell / 2 + rng.uniform(-1.0, 1.0) * jitter * free
        cy = (c // 2) * cell + cell / 2 + rng.uniform(-1.0, 1.0) * jitter * free
        rgb = np.asarray(VQA_COLOURS[colour], np.float32) * rng.uniform(0.85, 1.1)
        img[_shape_mask(img_size, shape, cx, cy, r)] = rgb
        objects.append((shape, colour))
    img += rng.normal(0, 6.0, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), objects


def _questions(rng: np.random.Generator, objects: List[Tuple[str, str]], num: int
               ) -> List[Tuple[str, str, str, str]]:
    """``num`` (type, question, answer, rejected answer) about one image."""
    counts = {s: sum(1 for o in objects if o[0] == s) for s in VQA_SHAPES}
    unique = [s for s in VQA_SHAPES if counts[s] == 1]
    out = []
    for k in range(num):
        kind = QUESTION_TYPES[k % len(QUESTION_TYPES)]
        if kind == 'colour' and not unique:
            kind = 'count'
        if kind == 'count':
            shape = VQA_SHAPES[int(rng.integers(len(VQA_SHAPES)))]
            question, answer = f'how many {_PLURAL[shape]} ?', VQA_NUMBERS[counts[shape]]
            choices = VQA_NUMBERS
        elif kind == 'colour':
            shape = unique[int(rng.integers(len(unique)))]
            answer = next(c for s, c in objects if s == shape)
            question, choices = f'what colour is the {shape} ?', tuple(VQA_COLOURS)
        else:
            # present and absent shapes equally often (when both exist)
            present = [s for s in VQA_SHAPES if counts[s]]
            absent = [s for s in VQA_SHAPES if not counts[s]]
            pool = present if (not absent or (present and rng.random() < 0.5)) else absent
            shape = pool[int(rng.integers(len(pool)))]
            question, answer = f'is there a {shape} ?', 'yes' if counts[shape] else 'no'
            choices = ('yes', 'no')
        wrong = [c for c in choices if c != answer]
        out.append((kind, question, answer, wrong[int(rng.integers(len(wrong)))]))
    return out


@DATASETS.register_module()
class ShapesVQADataset(BaseDataset):
    """Generated visual question answering about drawn shapes (see the module doc).

    Each data item: ``img`` (HxWx3 uint8, RGB), ``question``, ``answer`` (= the
    chosen answer of the preference pair), ``rejected`` (a wrong answer),
    ``question_type`` ('count' | 'colour' | 'exist'), ``image_idx``, ``sample_idx``.

    Args:
        split (str): 'train', 'val' or 'test' (independent random streams).
        num_images (int | dict): images in the split (a dict maps split -> count).
        questions_per_image (int): questions per image (cycling count, colour, exist).
        img_size (int): side of the square images (>= 16).
        max_shapes (int): most shapes per image (1..4).
        jitter (float): how far shapes move from their cell centre (0..1 of the free
            space; see :func:`render_shapes_vqa_image`).
        seed (int): seed of the generator.
        pipeline (list): data transforms, usually ``[dict(type='PackVQAInputs', ...)]``.
    """

    METAINFO = dict(question_types=QUESTION_TYPES)

    def __init__(self,
                 split: str = 'train',
                 num_images: Union[int, Dict[str, int]] = None,
                 questions_per_image: int = 3,
                 img_size: int = 32,
                 max_shapes: int = 3,
                 jitter: float = 0.1,
                 seed: int = 0,
                 pipeline: Sequence = (),
                 **kwargs) -> None:
        if split not in _SPLITS:
            raise ValueError(f'ShapesVQADataset split={split!r}; valid: {sorted(_SPLITS)}')
        if num_images is None:
            num_images = dict(train=2000, val=200, test=200)
        if isinstance(num_images, dict):
            if split not in num_images:
                raise KeyError(f'ShapesVQADataset.num_images has no count for split {split!r}: '
                               f'{num_images}')
            num_images = num_images[split]
        if int(num_images) < 1:
            raise ValueError(f'ShapesVQADataset.num_images={num_images} must be >= 1')
        if img_size < 16:
            raise ValueError(f'ShapesVQADataset.img_size={img_size} must be >= 16')
        if not 1 <= max_shapes <= 4:
            raise ValueError(f'ShapesVQADataset.max_shapes={max_shapes} must be in 1..4')
        if questions_per_image < 1:
            raise ValueError(f'ShapesVQADataset.questions_per_image={questions_per_image} must be >= 1')
        self.split, self.num_images, self.img_size = split, int(num_images), img_size
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f'ShapesVQADataset.jitter={jitter} must be in [0, 1]')
        self.questions_per_image, self.max_shapes, self.seed = questions_per_image, max_shapes, seed
        self.jitter = jitter
        kwargs.setdefault('serialize_data', False)
        super().__init__(ann_file='', pipeline=list(pipeline), **kwargs)

    def load_data_list(self) -> List[dict]:
        data = []
        for i in range(self.num_images):
            rng = np.random.default_rng([self.seed, _SPLITS[self.split], i])
            img, objects = render_shapes_vqa_image(rng, self.img_size, self.max_shapes, self.jitter)
            for kind, question, answer, rejected in _questions(rng, objects, self.questions_per_image):
                data.append(dict(img=img, question=question, answer=answer, rejected=rejected,
                                 question_type=kind, image_idx=i, sample_idx=len(data),
                                 objects=objects, img_shape=img.shape[:2], ori_shape=img.shape[:2]))
        return data


@TRANSFORMS.register_module()
class PackVQAInputs(BaseTransform):
    """Tokenize one VQA turn and pack ``inputs`` + a data sample for LLaVA models.

    ``inputs``: ``pixel_values`` (uint8 CxHxW), ``input_ids`` and ``labels`` of the
    chosen conversation (see :func:`build_conversation`), ``prompt_len`` (int), and
    with ``with_preference`` (and a ``rejected`` answer) ``rejected_input_ids`` /
    ``rejected_labels`` of the same prompt with the wrong answer.

    The data sample's metainfo: ``question``, ``gt_answer``, ``rejected_answer``,
    ``question_type`` and the ``meta_keys`` present.

    Args:
        tokenizer (dict): see :func:`build_chat_tokenizer`.
        num_image_tokens (int): visual tokens per image (``(img_size / patch)^2``
            for SigLIP / CLIP with the CLS token dropped); the ``<image>`` token is
            repeated that many times. ``LlavaModel`` checks it against its tower.
        with_preference (bool): also pack the rejected sequence.
    """

    def __init__(self, tokenizer: Optional[dict] = None, num_image_tokens: int = 16,
                 with_preference: bool = True,
                 meta_keys: Sequence[str] = ('sample_idx', 'image_idx', 'img_shape')) -> None:
        self.tokenizer = build_chat_tokenizer(tokenizer, 'PackVQAInputs.tokenizer')
        if int(num_image_tokens) < 1:
            raise ValueError(f'PackVQAInputs.num_image_tokens={num_image_tokens} must be >= 1')
        self.num_image_tokens = int(num_image_tokens)
        self.with_preference = with_preference
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        for key in ('img', 'question', 'answer'):
            if key not in results:
                raise KeyError(f'PackVQAInputs: the sample has no {key!r}; keys: {sorted(results)}')
        img = np.ascontiguousarray(results['img'])
        ids, labels, prompt_len = build_conversation(self.tokenizer, results['question'],
                                                     results['answer'], self.num_image_tokens)
        inputs = dict(pixel_values=torch.from_numpy(img).permute(2, 0, 1).contiguous(),
                      input_ids=torch.tensor(ids, dtype=torch.long),
                      labels=torch.tensor(labels, dtype=torch.long), prompt_len=prompt_len)
        if self.with_preference and results.get('rejected') is not None:
            r_ids, r_labels, _ = build_conversation(self.tokenizer, results['question'],
                                                    results['rejected'], self.num_image_tokens)
            inputs['rejected_input_ids'] = torch.tensor(r_ids, dtype=torch.long)
            inputs['rejected_labels'] = torch.tensor(r_labels, dtype=torch.long)
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        sample.set_metainfo(dict(question=str(results['question']),
                                 gt_answer=str(results['answer']),
                                 rejected_answer=str(results.get('rejected', '')),
                                 question_type=str(results.get('question_type', ''))))
        return dict(inputs=inputs, data_samples=sample)
