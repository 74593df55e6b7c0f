"""Shapes and structure of MST-Distill's MaskNets and GateNets (official sizes)."""
import pytest
import torch

from mmkd.models.combiners import DenseGateNet, GateNet
from mmkd.models.connectors import MaskNet1d, MaskNet2d


@pytest.mark.parametrize('feat_dim,heads,hidden', [(64, 3, 30), (298, 3, 147), (84, 3, 42),
                                                   (120, 4, 60)])
def test_masknet1d_shapes_and_official_hidden_dim(feat_dim, heads, hidden):
    torch.manual_seed(0)
    net = MaskNet1d(feat_dim, num_heads=heads)
    # official: hidden_dim = feat_dim // (2 * heads) * heads
    assert hidden == feat_dim // (2 * heads) * heads
    assert net.token_mask.hidden_dim == hidden
    assert net.token_mask.embed.out_features == hidden * feat_dim
    assert net.token_mask.attn.embed_dim == hidden and net.token_mask.attn.num_heads == heads
    x = torch.randn(5, feat_dim)
    mask = net.mask(x)
    assert mask.shape == (5, feat_dim)
    assert bool(((mask > 0) & (mask < 1)).all())
    assert torch.allclose(net(x), x * mask)
    # (N, D, 1, 1) vectors (e.g. after global pooling) keep their shape
    x4 = x[:, :, None, None]
    assert net.mask(x4).shape == (5, feat_dim, 1, 1)
    assert net(x4).shape == x4.shape


def test_masknet1d_mask_depends_on_each_sample():
    torch.manual_seed(0)
    net = MaskNet1d(16, num_heads=2).eval()
    x = torch.randn(3, 16)
    single = net.mask(x[1:2])
    assert torch.allclose(net.mask(x)[1:2], single, atol=1e-6)  # no mixing across the batch
    assert not torch.allclose(net.mask(x)[0], net.mask(x)[1])


def test_masknet2d_channel_mask_shapes():
    torch.manual_seed(0)
    net = MaskNet2d(12, num_heads=3)
    assert net.token_mask.hidden_dim == 12 // 6 * 3
    x = torch.randn(2, 12, 7, 9)
    mask = net.mask(x)
    assert mask.shape == (2, 12, 1, 1)
    out = net(x)
    assert out.shape == x.shape and torch.allclose(out, x * mask)
    convs = [m for m in net.reduce if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].groups == 12 and convs[0].stride == (2, 2) and convs[1].kernel_size == (1, 1)


def test_masknet_errors():
    with pytest.raises(ValueError, match=r'MaskNet1d\(feat_dim=8\)'):
        MaskNet1d(8, num_heads=2)(torch.randn(2, 9))
    with pytest.raises(ValueError, match='MaskNet2d'):
        MaskNet2d(4, num_heads=2)(torch.randn(2, 4))
    with pytest.raises(ValueError, match='hidden_dim'):
        MaskNet1d(4, num_heads=3)  # 4 // 6 * 3 = 0


def test_gatenet_is_two_linear_layers_without_activation():
    torch.manual_seed(0)
    gate = GateNet(num_classes=10, num_ways=4)
    assert (gate.fc1.in_features, gate.fc1.out_features) == (10, 20)
    assert (gate.fc2.in_features, gate.fc2.out_features) == (20, 4)
    x = torch.randn(6, 10)
    expected = (x @ gate.fc1.weight.T + gate.fc1.bias) @ gate.fc2.weight.T + gate.fc2.bias
    assert torch.allclose(gate(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match='DenseGateNet'):
        gate(torch.randn(2, 10, 3, 3))


def test_dense_gatenet_shapes():
    gate = DenseGateNet(num_classes=5, num_ways=3)
    assert gate(torch.randn(2, 5, 8, 6)).shape == (2, 3)
    assert gate.depthwise.groups == 10 and gate.depthwise.stride == (2, 2)
