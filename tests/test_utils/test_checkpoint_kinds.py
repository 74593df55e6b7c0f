"""mmkd.utils.checkpoint_kinds: what a checkpoint is, how it fits a model (no runner)."""
import pytest
import torch
from torch import nn

from mmkd.utils.checkpoint import CheckpointFileError, UnsafeCheckpointError, safe_torch_load
from mmkd.utils.checkpoint_kinds import (
    CheckpointMismatchError,
    check_resumable,
    classify,
    fit_checkpoint,
    read_checkpoint,
)


class Algo(nn.Module):
    """The layout of an mmkd algorithm: the student under ``architecture``."""

    def __init__(self, width=3):
        super().__init__()
        self.architecture = nn.Linear(2, width)
        self.distiller = nn.Linear(width, width)


def test_classify_the_four_kinds():
    t = torch.zeros(1)
    assert classify({'architecture.w': t, 'distiller.c': t}) == ('distillation', [])
    assert classify({'students.cnn.w': t, 'students.vit.w': t}) == ('multi_student', ['cnn', 'vit'])
    assert classify({'w': t}, {'converted_from': 'iter_4.pth'}) == ('converted_student', [])
    assert classify({'backbone.w': t}) == ('task_model', [])


def test_legacy_format_and_bare_state_dicts_load(tmp_path):
    """The sniffing that names empty/text files must not refuse torch's older format."""
    path = tmp_path / 'legacy.pth'
    torch.save({'weight': torch.ones(3, 2), 'bias': torch.zeros(3)}, path,
               _use_new_zipfile_serialization=False)
    info = read_checkpoint(str(path), 'load_from')
    assert info.kind == 'task_model' and sorted(info.state) == ['bias', 'weight']
    assert 'state_dict' in info.checkpoint  # a bare state dict is wrapped for mmengine
    fit = fit_checkpoint(info, Algo())
    assert sorted(fit.state) == ['architecture.bias', 'architecture.weight']
    assert fit.fresh == ['distiller.weight', 'distiller.bias'] and fit.matched == 2


def test_module_prefix_of_ddp_checkpoints_is_dropped(tmp_path):
    path = tmp_path / 'ddp.pth'
    torch.save({'state_dict': {f'module.{k}': v for k, v in Algo().state_dict().items()}}, path)
    info = read_checkpoint(str(path), 'load_from')
    assert info.kind == 'distillation' and all(not k.startswith('module.') for k in info.state)


def test_corrupt_pickle_inside_a_valid_zip_is_refused_without_running(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save({'state_dict': {'w': torch.ones(3)}}, path)
    data = bytearray(path.read_bytes())
    start = data.index(b'data.pkl') + 40  # inside the pickle stream of the archive
    for i in range(start, start + 30):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises((UnsafeCheckpointError, CheckpointFileError)) as err:
        safe_torch_load(str(path), key='load_from')
    assert f"load_from={str(path)!r}" in str(err.value)
    assert 'weights_only=False' not in str(err.value)


def test_resume_needs_the_run_state_and_the_same_model(tmp_path):
    model = Algo()
    full = {'state_dict': model.state_dict(), 'meta': {'iter': 4, 'epoch': 0},
            'message_hub': {}, 'optimizer': {}}
    torch.save(full, tmp_path / 'run.pth')
    check_resumable(read_checkpoint(str(tmp_path / 'run.pth'), '--resume'), model)  # fine
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'weights.pth')
    with pytest.raises(CheckpointMismatchError, match='holds weights only'):
        check_resumable(read_checkpoint(str(tmp_path / 'weights.pth'), '--resume'), model)
    with pytest.raises(CheckpointMismatchError, match='have other shapes'):
        check_resumable(read_checkpoint(str(tmp_path / 'run.pth'), '--resume'), Algo(width=4))


def test_resume_of_a_checkpoint_saved_before_distillation_stopped_existed(tmp_path):
    """Every algorithm got the ``distillation_stopped`` buffer on 2026-12-03; an older run
    of an algorithm that had none resumes (the buffer keeps False), any other missing
    tensor still refuses."""
    model = Algo()
    old = {'state_dict': model.state_dict(), 'meta': {'iter': 4, 'epoch': 0},
           'message_hub': {}, 'optimizer': {}}
    torch.save(old, tmp_path / 'old.pth')
    model.register_buffer('distillation_stopped', torch.tensor(False))
    check_resumable(read_checkpoint(str(tmp_path / 'old.pth'), '--resume'), model)
    model.register_buffer('other_buffer', torch.tensor(0.0))
    with pytest.raises(CheckpointMismatchError, match=r"1 tensors of this model are not in the "
                       r"file.*other_buffer"):
        check_resumable(read_checkpoint(str(tmp_path / 'old.pth'), '--resume'), model)


def test_load_from_does_not_carry_the_stop_decision_of_the_saving_run(tmp_path):
    """A run whose StopDistillHook fired, given as load_from to a new distillation run,
    must not switch that run's distillation off: the buffer keeps its initial False
    (only --resume continues the old run's decision)."""
    saved = Algo()
    saved.register_buffer('distillation_stopped', torch.tensor(True))
    torch.save({'state_dict': saved.state_dict(), 'meta': {}}, tmp_path / 'stopped.pth')
    new = Algo()
    new.register_buffer('distillation_stopped', torch.tensor(False))
    fit = fit_checkpoint(read_checkpoint(str(tmp_path / 'stopped.pth'), 'load_from'), new)
    assert 'distillation_stopped' not in fit.state
    assert 'distillation_stopped' in fit.fresh  # reported as keeping its initial value
    assert torch.equal(fit.state['architecture.weight'], saved.architecture.weight)
    new.load_state_dict(fit.state, strict=False)
    assert not bool(new.distillation_stopped)
