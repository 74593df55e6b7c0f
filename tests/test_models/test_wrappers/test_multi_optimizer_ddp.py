"""MultiOptimizerDataParallel on 2 gloo processes: per-optimizer gradient averaging."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

WORLD = 2


class TwoPartModel(nn.Module):
    """Two parts, each updated by its own optimizer from its own loss (as collaborative
    students are); `c` is in part b's optimizer but gets no gradient this step."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(3, 1)
        self.b = nn.Linear(3, 1)
        self.c = nn.Linear(3, 1)
        self.register_buffer('seen', torch.zeros(1))

    def train_step(self, data, optim_wrapper):
        x, y = data
        self.seen += 1
        for name in ('a', 'b'):
            loss = ((getattr(self, name)(x) - y) ** 2).mean()
            optim_wrapper[name].update_params(loss)
        return {}


def build_optims(model):
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    return OptimWrapperDict(
        a=OptimWrapper(torch.optim.SGD(model.a.parameters(), lr=0.1)),
        b=OptimWrapper(torch.optim.SGD(list(model.b.parameters()) + list(model.c.parameters()),
                                       lr=0.1)))


def data(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, generator=g), torch.randn(4, 1, generator=g)


def worker(rank, init_file, out):
    os.environ['OMP_NUM_THREADS'] = '1'
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=WORLD)
    from mmkd.models.wrappers import MultiOptimizerDataParallel
    model = TwoPartModel()
    if rank == 1:  # different start: the wrapper must broadcast rank 0's weights
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    wrapped = MultiOptimizerDataParallel(model, device_ids=None)
    x, y = data(seed=rank)  # each rank its own half of the batch
    wrapped.train_step((x, y), build_optims(model))
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, f'{out}/rank{rank}.pth')
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_match_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / 'init'), str(tmp_path)), nprocs=WORLD, join=True)
    r0 = torch.load(tmp_path / 'rank0.pth', weights_only=True)
    r1 = torch.load(tmp_path / 'rank1.pth', weights_only=True)
    # Reference: one process, the two halves concatenated (mean losses -> mean gradients).
    ref = TwoPartModel()
    (x0, y0), (x1, y1) = data(0), data(1)
    ref.train_step((torch.cat([x0, x1]), torch.cat([y0, y1])), build_optims(ref))
    for key, value in ref.state_dict().items():
        assert torch.allclose(r0[key], r1[key], atol=0), f'{key} differs between ranks'
        assert torch.allclose(r0[key], value, atol=1e-6), f'{key}: 2 ranks != 1 process'
    start = TwoPartModel()
    assert not torch.equal(r0['a.weight'], start.a.weight)  # it did train
    assert torch.equal(r0['c.weight'], start.c.weight)  # zero gradient, no update
