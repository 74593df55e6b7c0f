import pytest
import torch
from torch import nn

from mmkd.models.recorders import FunctionOutputs, MethodOutputs, ModuleInputs, ModuleOutputs, RecorderManager


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Linear(3, 3)
        self.head = nn.Linear(3, 2)

    def helper(self, x):
        return x * 2

    def forward(self, x):
        y = self.block(x)
        y = self.block(y)  # called twice: both calls are kept, in order
        return self.head(self.helper(y))


def test_module_outputs_records_only_inside_context_in_order():
    model = Toy()
    rec = ModuleOutputs('block')
    rec.prepare_from_model(model)
    x = torch.randn(2, 3)
    model(x)
    assert rec.data_buffer == []  # outside the context nothing is kept
    with rec:
        model(x)
    first = model.block(x)
    assert len(rec.data_buffer) == 2
    assert torch.allclose(rec.get_record_data(0), first)
    assert torch.allclose(rec.get_record_data(1), model.block(first))
    with rec:  # a new step starts clean
        model(x)
    assert len(rec.data_buffer) == 2
    with pytest.raises(IndexError, match='record_idx=5'):
        rec.get_record_data(5)


def test_module_inputs_and_data_idx():
    model = Toy()
    rec = ModuleInputs('head')
    rec.prepare_from_model(model)
    x = torch.randn(2, 3)
    with rec:
        model(x)
    expected = model.helper(model.block(model.block(x)))
    assert torch.allclose(rec.get_record_data(0, data_idx=0), expected)
    with pytest.raises(IndexError, match='data_idx=3'):
        rec.get_record_data(0, data_idx=3)


def test_bad_module_path_lists_close_names():
    with pytest.raises(ValueError, match=r"'head'"):
        ModuleOutputs('heat').prepare_from_model(Toy())


def test_method_outputs_patch_does_not_outlive_context():
    model = Toy()
    rec = MethodOutputs(f'{__name__}.Toy.helper')
    rec.prepare_from_model(model)
    original = Toy.helper
    with rec:
        assert Toy.helper is not original
        model(torch.randn(2, 3))
    assert Toy.helper is original
    assert len(rec.data_buffer) == 1 and rec.data_buffer[0].shape == (2, 3)


def test_function_outputs():
    rec = FunctionOutputs('torch.nn.functional.relu')
    rec.prepare_from_model()
    original = torch.nn.functional.relu
    with rec:
        torch.nn.functional.relu(torch.tensor([-1.0, 2.0]))
    assert torch.nn.functional.relu is original
    assert torch.equal(rec.get_record_data(), torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match='no attribute'):
        FunctionOutputs('torch.nn.functional.relux').prepare_from_model()


def test_manager_errors_name_the_side():
    with pytest.raises(ValueError, match='teacher_recorders.f'):
        RecorderManager(dict(f=dict(type='ModuleOutputs', source='nope')),
                        side='teacher').prepare_from_model(Toy())
    mgr = RecorderManager(dict(f=dict(type='ModuleOutputs', source='head')))
    with pytest.raises(KeyError, match="declared: \\['f'\\]"):
        mgr.get_recorder('g')
