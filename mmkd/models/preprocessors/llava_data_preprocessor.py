"""Data preprocessor of LLaVA conversation batches (packed by ``mmkd.PackVQAInputs``)."""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from mmkd.registry import MODELS

IGNORE_INDEX = -100


def pad_sequences(seqs: Sequence[torch.Tensor], value: int, side: str = 'right',
                  length: Optional[int] = None) -> torch.Tensor:
    """Stack 1-D tensors into (N, L) padded with ``value`` on the ``side`` given."""
    length = max(int(s.numel()) for s in seqs) if length is None else length
    out = torch.full((len(seqs), length), value, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        n = int(s.numel())
        if side == 'right':
            out[i, :n] = s
        else:
            out[i, length - n:] = s
    return out


@MODELS.register_module()
class LlavaDataPreprocessor(BaseDataPreprocessor):
    """Pad token sequences, build attention masks, stack and normalise images.

    Input (``inputs`` collated from :class:`~mmkd.datasets.shapes_vqa.PackVQAInputs`):
    lists of ``pixel_values`` (uint8 CxHxW), ``input_ids``, ``labels``, ``prompt_len``
    and optionally ``rejected_input_ids`` / ``rejected_labels``.

    Output ``inputs`` (a dict of tensors on the model's device):

    * ``pixel_values`` (N, C, H, W) float, ``(x - mean) / std``;
    * ``input_ids`` (N, T) right-padded with ``pad_token_id``, ``attention_mask``
      (N, T) 1 on real tokens, ``labels`` (N, T) padded with -100;
    * ``prompt_input_ids`` / ``prompt_attention_mask`` (N, P): the prompts alone,
      **left**-padded, for generation;
    * with rejected sequences: ``chosen_input_ids``, ``chosen_attention_mask``,
      ``chosen_labels``, ``rejected_input_ids``, ``rejected_attention_mask``,
      ``rejected_labels``, all right-padded to one common length (so chosen and
      rejected can be concatenated into one batch for preference losses).

    Args:
        mean (sequence[float]): per-channel mean on the 0..255 scale (default 127.5:
            SigLIP's [-1, 1] range).
        std (sequence[float]): per-channel std on the 0..255 scale.
        pad_token_id (int): padding id of ``input_ids`` (the tokenizer's ``<pad>``).
        non_blocking (bool): asynchronous host-to-device copies.
    """

    def __init__(self, mean: Sequence[float] = (127.5, 127.5, 127.5),
                 std: Sequence[float] = (127.5, 127.5, 127.5), pad_token_id: int = 0,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f'LlavaDataPreprocessor: mean {mean} and std {std} need one positive '
                             'std per mean')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False)
        self.pad_token_id = int(pad_token_id)

    @staticmethod
    def _list(value) -> List[torch.Tensor]:
        if torch.is_tensor(value):
            return list(value.unbind(0)) if value.dim() > 1 else [value]
        return [torch.as_tensor(v) for v in value]

    def collate_text(self, inputs: dict) -> dict:
        """The token part of :meth:`forward`, on CPU lists (also used by tests)."""
        for key in ('input_ids', 'labels'):
            if key not in inputs:
                raise KeyError(f'LlavaDataPreprocessor: inputs have no {key!r} (keys: '
                               f"{sorted(inputs)}); pack the data with dict(type='PackVQAInputs')")
        ids, labels = self._list(inputs['input_ids']), self._list(inputs['labels'])
        out = dict(input_ids=pad_sequences(ids, self.pad_token_id),
                   labels=pad_sequences(labels, IGNORE_INDEX))
        out['attention_mask'] = pad_sequences([torch.ones_like(i) for i in ids], 0)
        if 'prompt_len' in inputs:
            lens = [int(n) for n in (inputs['prompt_len'].tolist() if torch.is_tensor(inputs['prompt_len'])
                                     else inputs['prompt_len'])]
            prompts = [i[:n] for i, n in zip(ids, lens)]
            out['prompt_input_ids'] = pad_sequences(prompts, self.pad_token_id, side='left')
            out['prompt_attention_mask'] = pad_sequences([torch.ones_like(p) for p in prompts], 0,
                                                         side='left')
        if 'rejected_input_ids' in inputs:
            rej, rej_labels = self._list(inputs['rejected_input_ids']), self._list(inputs['rejected_labels'])
            if len(rej) != len(ids):
                raise ValueError('LlavaDataPreprocessor: only part of the batch has rejected '
                                 'answers; pack every sample with the same with_preference')
            length = max(max(int(s.numel()) for s in ids), max(int(s.numel()) for s in rej))
            for name, seqs, lab in (('chosen', ids, labels), ('rejected', rej, rej_labels)):
                out[f'{name}_input_ids'] = pad_sequences(seqs, self.pad_token_id, length=length)
                out[f'{name}_labels'] = pad_sequences(lab, IGNORE_INDEX, length=length)
                out[f'{name}_attention_mask'] = pad_sequences([torch.ones_like(s) for s in seqs], 0,
                                                              length=length)
        return out

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if not isinstance(inputs, dict):
            raise TypeError('LlavaDataPreprocessor expects inputs = dict(pixel_values=..., '
                            "input_ids=..., labels=...) (pack with dict(type='PackVQAInputs')), got "
                            f'{type(inputs).__name__}')
        pix = inputs.get('pixel_values')
        if 'attention_mask' in inputs and torch.is_tensor(pix) and pix.is_floating_point():
            # already preprocessed (e.g. a distiller that feeds the same batch twice)
            return dict(inputs=self.cast_data(inputs), data_samples=data.get('data_samples'))
        out = self.collate_text(inputs)
        if 'pixel_values' in inputs:
            pix = inputs['pixel_values']
            pix = pix if torch.is_tensor(pix) else torch.stack(list(pix))
            out['pixel_values'] = pix
        out = self.cast_data(out)
        if 'pixel_values' in out:
            out['pixel_values'] = (out['pixel_values'].float() - self.mean) / self.std
        return dict(inputs=out, data_samples=data.get('data_samples'))
