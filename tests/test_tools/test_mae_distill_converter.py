"""tools/model_converters/mae_distill_to_vit.py: the distilled MAE encoder loads strictly
into mmpretrain's VisionTransformer / DistilledVisionTransformer and mmseg's
VisionTransformer, and computes the same function there."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from mmkd.registry import MODELS

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                            'tools', 'model_converters'))
from mae_distill_to_vit import convert, main  # noqa: E402

DMAE_CFG = 'configs/dmae/dmae_vit-d8-w128_vit-d4-w64_p4_digits_demo.py'
ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256)
pytestmark = pytest.mark.filterwarnings('ignore:SingleTeacherDistill')


@pytest.fixture(scope='module')
def distilled():
    """A MaskedImageDistill state dict with a non-trivial student (random weights)."""
    cfg = Config.fromfile(DMAE_CFG).model
    cfg.teacher_ckpt = None
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():  # make the final norm non-trivial, so dropping it would show
        model.architecture.backbone.ln1.weight.normal_()
        model.architecture.backbone.ln1.bias.normal_()
    model.eval()
    return model


def strip(state, prefix='backbone.'):
    assert all(k.startswith(prefix) for k in state)
    return {k[len(prefix):]: v for k, v in state.items()}


def pretrain_vit(**kwargs):
    from mmpretrain.models import VisionTransformer
    vit = VisionTransformer(arch=ARCH, img_size=16, patch_size=4, **kwargs)
    vit.eval()  # mmpretrain backbones' train() returns None: no chaining
    return vit


def test_default_layout_loads_strictly_and_matches_the_mae_encoder(distilled):
    vit = pretrain_vit(out_type='raw')
    vit.load_state_dict(strip(convert(distilled.state_dict())), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = distilled.architecture.backbone(x, mask=None)[0]  # MAEViT unmasked
        out = vit(x)[0]
    assert torch.allclose(out, ref, atol=1e-5)


def test_mae_finetuning_layout_and_pretrained_init(distilled, tmp_path):
    out = convert(distilled.state_dict(), final_norm=False, out_type='avg_featmap')
    assert 'backbone.ln1.weight' not in out
    assert torch.equal(out['backbone.ln2.weight'], torch.ones(64))
    vit = pretrain_vit(out_type='avg_featmap', final_norm=False)
    vit.load_state_dict(strip(out), strict=True)
    # the way the fine-tuning configs use it: init_cfg Pretrained with prefix
    path = str(tmp_path / 'vit.pth')
    torch.save({'state_dict': out}, path)
    cfg = Config.fromfile('configs/dmae/vit-d4-w64_p4_digits-10pct_ft-dmae_demo.py').model
    cfg.backbone.init_cfg.checkpoint = path
    from mmpretrain.registry import MODELS as PRETRAIN
    classifier = PRETRAIN.build(cfg)
    classifier.init_weights()
    student = distilled.architecture.backbone.state_dict()
    for key, value in classifier.backbone.state_dict().items():
        if key.startswith('ln2'):
            continue
        assert torch.equal(value, student[key]), key


def test_distilled_layout_for_deit(distilled):
    from mmpretrain.models import DistilledVisionTransformer
    out = strip(convert(distilled.state_dict(), distilled=True, seed=3))
    deit = DistilledVisionTransformer(arch=ARCH, img_size=16, patch_size=4)
    deit.load_state_dict(out, strict=True)
    pos = distilled.architecture.backbone.pos_embed
    assert out['pos_embed'].shape == (1, 18, 64)
    assert torch.equal(out['pos_embed'][:, :1], pos[:, :1])
    assert torch.equal(out['pos_embed'][:, 1], torch.zeros(1, 64))  # dist token: no position
    assert torch.equal(out['pos_embed'][:, 2:], pos[:, 1:])
    again = strip(convert(distilled.state_dict(), distilled=True, seed=3))
    assert torch.equal(out['dist_token'], again['dist_token'])
    assert 0 < out['dist_token'].std() < 0.05


def test_mmseg_layout_loads_strictly_and_computes_the_same_features(distilled):
    from mmseg.models.backbones import VisionTransformer as SegViT
    out = convert(distilled.state_dict(), fmt='mmseg')
    assert 'layers.0.attn.attn.in_proj_weight' in out and not any('qkv' in k for k in out)
    seg = SegViT(img_size=16, patch_size=4, embed_dims=64, num_layers=4, num_heads=4,
                 mlp_ratio=4, qkv_bias=True, patch_bias=True, final_norm=True,
                 norm_cfg=dict(type='LN', eps=1e-6), out_indices=3)
    seg.eval()
    seg.load_state_dict(out, strict=True)
    vit = pretrain_vit(out_type='featmap')
    vit.load_state_dict(strip(convert(distilled.state_dict())), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(seg(x)[0], vit(x)[0], atol=1e-4)


def test_plain_mae_checkpoint_and_errors(distilled):
    mae_state = {k[len('architecture.'):]: v for k, v in distilled.state_dict().items()
                 if k.startswith('architecture.')}  # what mmpretrain's MAE saves
    assert convert(mae_state).keys() == convert(distilled.state_dict()).keys()
    with pytest.raises(ValueError, match=r"top-level prefixes are \['head'\]"):
        convert({'head.fc.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match="format='timm'"):
        convert(distilled.state_dict(), fmt='timm')
    with pytest.raises(ValueError, match='no final norm'):
        convert(convert(distilled.state_dict(), final_norm=False))
    with pytest.raises(ValueError, match='mmseg has no distilled ViT'):
        convert(distilled.state_dict(), distilled=True, fmt='mmseg')


def test_cli(distilled, tmp_path):
    src = str(tmp_path / 'iter_1.pth')
    torch.save({'state_dict': distilled.state_dict(), 'meta': {}}, src)
    dst = str(tmp_path / 'vit.pth')
    main([src, dst, '--no-final-norm', '--out-type', 'avg_featmap'])
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['out_type'] == 'avg_featmap' and 'backbone.ln2.bias' in saved['state_dict']
    with pytest.raises(SystemExit, match='does not exist'):
        main([str(tmp_path / 'missing.pth'), dst])
