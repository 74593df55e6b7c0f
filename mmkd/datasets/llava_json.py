"""LLaVA-format conversation files (and RLAIF-V-format preference files) on disk.

The real-scale LLaVA-MoD configs read the public data in the formats the official
repository documents (github shufangxun/LLaVA-MoD, README "Data Construction"):

* mimic distillation (LLaVA format)::

      [{"id": "...", "image": "COCO2017/train/000000052846.jpg",
        "conversations": [{"from": "human", "value": "<image>\\nWhere is the cat?"},
                          {"from": "gpt", "value": "On the couch."}, ...]}, ...]

* preference distillation (RLAIF-V format): ``"chosen"`` and ``"rejected"``
  conversations with the same human turn.

Each item becomes ``img`` (HxWx3 uint8 RGB, resized to ``img_size``), ``question``
(the first human turn without the ``<image>`` placeholder), ``answer`` (the first
answer; the chosen one for preference data) and ``rejected``, which
``PackVQAInputs`` (with an ``HFChatTokenizer``) turns into model inputs. Only the
first human/assistant turn of a conversation is used: later turns are dropped (the
official code trains on all turns).
"""
from __future__ import annotations

import json
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from mmkd.registry import DATASETS


def _first_turn(conv: Sequence[dict], where: str) -> tuple:
    human = next((t['value'] for t in conv if t.get('from') in ('human', 'user')), None)
    answer = next((t['value'] for t in conv if t.get('from') in ('gpt', 'assistant')), None)
    if human is None or answer is None:
        raise ValueError(f'{where}: a conversation needs a human and a gpt turn, got {conv!r:.200}')
    return human.replace('<image>', '').strip(), answer.strip()


@DATASETS.register_module()
class LlavaJsonDataset(BaseDataset):
    """Single-image conversations in LLaVA json format (or RLAIF-V preference pairs).

    Args:
        ann_file (str): the json file (a list of records).
        data_root (str): prefix of ``ann_file`` and of ``image_root``.
        image_root (str): folder the records' ``image`` paths are relative to.
        img_size (int): images are resized to ``img_size`` x ``img_size`` (the vision
            tower's input; pad-to-square as the official ``image_aspect_ratio=pad``).
        preference (bool): records hold ``chosen``/``rejected`` (RLAIF-V) instead of
            ``conversations``.
        pipeline (list): usually ``[dict(type='PackVQAInputs', tokenizer=dict(
            type='HFChatTokenizer', path=...), num_image_tokens=...)]``.
    """

    def __init__(self, ann_file: str, image_root: str = '', img_size: int = 336, preference: bool = False,
                 data_root: Optional[str] = None, pipeline: Sequence = (), **kwargs) -> None:
        self.image_root, self.img_size, self.preference = image_root, int(img_size), preference
        super().__init__(ann_file=ann_file, data_root=data_root or '', pipeline=list(pipeline), **kwargs)
        if self.data_root and not osp.isabs(self.image_root):
            self.image_root = osp.join(self.data_root, self.image_root)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'LlavaJsonDataset.ann_file={self.ann_file!r} does not exist')
        with open(self.ann_file, encoding='utf-8') as f:
            records = json.load(f)
        data = []
        for i, rec in enumerate(records):
            if 'image' not in rec:
                continue  # text-only records: this loader is for single-image conversations
            where = f'{self.ann_file}[{i}]'
            if self.preference:
                question, answer = _first_turn(rec['chosen'], where)
                _, rejected = _first_turn(rec['rejected'], where)
            else:
                question, answer = _first_turn(rec['conversations'], where)
                rejected = None
            data.append(dict(img_path=rec['image'], question=question, answer=answer, rejected=rejected,
                             sample_idx=len(data), record_id=str(rec.get('id', i))))
        return data

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info['img'] = self._load_image(info['img_path'])
        info['img_shape'] = info['ori_shape'] = (self.img_size, self.img_size)
        return info

    def _load_image(self, rel: str) -> np.ndarray:
        import mmcv
        path = rel if osp.isabs(rel) else osp.join(self.image_root, rel)
        img = mmcv.imread(path, channel_order='rgb')
        if img is None:
            raise FileNotFoundError(f'LlavaJsonDataset: cannot read image {path!r}')
        h, w = img.shape[:2]
        side = max(h, w)  # pad to a square with the mean colour, then resize
        canvas = np.full((side, side, 3), img.reshape(-1, 3).mean(0), dtype=np.uint8)
        canvas[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = img
        return mmcv.imresize(canvas, (self.img_size, self.img_size))
