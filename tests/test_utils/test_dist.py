"""mmkd.utils.dist: the tools tear the process group down after a distributed run."""
import torch.distributed as dist

from mmkd.utils.dist import finish_dist


def test_finish_dist_destroys_an_initialised_group(tmp_path):
    # A gloo group left alive at interpreter exit can abort a rank ("terminate called
    # without an active exception"); finish_dist must leave none behind.
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        finish_dist()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_finish_dist_without_a_group_is_a_no_op():
    assert not dist.is_initialized()
    finish_dist()
    assert not dist.is_initialized()
