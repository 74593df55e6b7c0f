"""Loading teacher_ckpt says which file (and its sha256 prefix) went into the teacher and
how many tensors matched."""
import hashlib
import logging

import torch
from mmengine.logging import MMLogger
from torch import nn

from mmkd.utils.checkpoint import load_teacher_weights


def test_teacher_load_logs_file_hash_and_matched_tensors(tmp_path):
    teacher = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    source = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    path = tmp_path / 'teacher.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        load_teacher_weights(teacher, str(path))
    finally:
        logger.removeHandler(handler)
    assert torch.equal(teacher[1].weight, source[1].weight)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    text = [r.getMessage() for r in records if 'teacher_ckpt: loaded' in r.getMessage()]
    assert text == [f"teacher_ckpt: loaded {str(path)!r} (sha256 {sha}) into the teacher "
                    'Sequential: 4 of 4 tensors matched']
