import pytest
import torch

from mmkd.models.connectors import MapToTokens, Resize, TokensToMap


def test_tokens_map_round_trip_drops_cls_token():
    tokens = torch.randn(2, 1 + 12, 8)
    fmap = TokensToMap(in_channels=8, num_extra_tokens=1, hw_shape=(3, 4))(tokens)
    assert fmap.shape == (2, 8, 3, 4)
    # element (n, c, h, w) is patch token h*W + w (after the cls token)
    assert torch.equal(fmap[1, :, 2, 1], tokens[1, 1 + 2 * 4 + 1])
    back = MapToTokens(in_channels=8)(fmap)
    assert torch.equal(back, tokens[:, 1:])


def test_map_to_tokens_resize_and_projection():
    out = MapToTokens(in_channels=4, out_channels=6, out_size=2)(torch.randn(3, 4, 4, 4))
    assert out.shape == (3, 4, 6)
    with pytest.raises(ValueError, match=r'\(N, 4, H, W\)'):
        MapToTokens(in_channels=4)(torch.randn(3, 5, 4, 4))


def test_resize_is_identity_at_target_size_and_nearest_keeps_values():
    x = torch.randn(1, 2, 4, 4)
    assert Resize(4)(x) is x
    up = Resize((8, 8), mode='nearest')(x)
    assert up.shape == (1, 2, 8, 8) and torch.equal(up[:, :, ::2, ::2], x)
