#!/usr/bin/env python
"""Turn an MAE encoder (DMAE/G2SD-distilled or plain MAE) into a ViT backbone checkpoint.

Input: an mmkd ``MaskedImageDistill`` checkpoint (student under
``architecture.backbone.``) or an mmpretrain ``MAE`` checkpoint (``backbone.``).
Output: only the encoder, for fine-tuning as

* ``--format mmpretrain`` (default): keys of mmpretrain's ``VisionTransformer``
  (or ``DistilledVisionTransformer`` with ``--distilled``) under ``backbone.``; use
  ``init_cfg=dict(type='Pretrained', checkpoint=OUT, prefix='backbone.')`` in an
  mmpretrain classifier, or with ``type='mmpretrain.VisionTransformer'`` as an
  mmdet/mmseg backbone. Without the prefix the tensors load with ``strict=True``.
* ``--format mmseg``: keys of mmseg's own ``VisionTransformer`` (no prefix, what its
  ``init_cfg=dict(type='Pretrained', ...)`` reads; build it with ``patch_bias=True``,
  ``qkv_bias=True``, ``norm_cfg=dict(type='LN', eps=1e-6)``).

Key mapping (MAEViT -> target):

==========================================  =============================================
MAEViT (mmpretrain)                         mmseg VisionTransformer (``--format mmseg``)
==========================================  =============================================
``cls_token``, ``pos_embed``                same
``patch_embed.projection.{weight,bias}``    same
``layers.i.ln1/ln2.*``, ``layers.i.ffn.*``  same
``layers.i.attn.qkv.{weight,bias}``         ``layers.i.attn.attn.in_proj_{weight,bias}``
``layers.i.attn.proj.*``                    ``layers.i.attn.attn.out_proj.*``
``ln1.*`` (final norm)                      ``ln1.*`` (with ``final_norm=True``)
==========================================  =============================================

Tensors the encoder does not have are written explicitly so that loading is strict:

* ``--no-final-norm`` (MAE's fine-tuning recipe, ``final_norm=False``) drops ``ln1``;
* ``--out-type avg_featmap`` adds ``ln2`` as a fresh LayerNorm (weight 1, bias 0,
  exactly what the model's own initialisation gives);
* ``--distilled`` (DeiT layout, G2SD's specific stage) adds ``dist_token`` drawn from
  a truncated normal (std 0.02, ``--seed``; DeiT/G2SD initialise it that way) and a
  position-embedding row for it, set to zero (G2SD adds the token without a position
  embedding), so ``pos_embed`` becomes (1, 2 + L, C) in mmpretrain's order
  [cls, dist, patches].

Usage::

    python tools/model_converters/mae_distill_to_vit.py IN.pth OUT.pth \
        [--no-final-norm] [--out-type avg_featmap] [--distilled] [--format mmseg]
"""
import argparse
import os.path as osp
import re
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # convert_kd_ckpt_to_student

PREFIXES = ('architecture.backbone.', 'backbone.')
OUT_TYPES = ('cls_token', 'avg_featmap', 'featmap', 'raw')


def extract_encoder(state_dict: dict) -> dict:
    """The MAE encoder's tensors, prefix removed (mmkd or plain MAE checkpoint)."""
    for prefix in PREFIXES:
        enc = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if enc:
            break
    else:
        tops = sorted({k.split('.', 1)[0] for k in state_dict})
        raise ValueError(f'no key starts with {PREFIXES}; top-level prefixes are {tops}. '
                         'Is this a MaskedImageDistill or an mmpretrain MAE checkpoint?')
    for required in ('cls_token', 'pos_embed', 'patch_embed.projection.weight'):
        if required not in enc:
            raise ValueError(f'{prefix!r} holds no {required!r}: not a ViT/MAE encoder '
                             f'(keys: {sorted(enc)[:8]}...)')
    return enc


def to_vit(enc: dict, final_norm: bool = True, out_type: str = 'cls_token',
           distilled: bool = False, seed: int = 0) -> dict:
    """mmpretrain ``VisionTransformer`` / ``DistilledVisionTransformer`` tensors."""
    import torch
    if out_type not in OUT_TYPES:
        raise ValueError(f'out_type={out_type!r}; valid: {OUT_TYPES}')
    out = {k: v for k, v in enc.items() if final_norm or not k.startswith('ln1.')}
    if final_norm and 'ln1.weight' not in enc:
        raise ValueError('the encoder has no final norm (ln1); use --no-final-norm')
    embed = enc['cls_token'].shape[-1]
    if out_type == 'avg_featmap':
        out['ln2.weight'] = torch.ones(embed)
        out['ln2.bias'] = torch.zeros(embed)
    if distilled:
        gen = torch.Generator().manual_seed(seed)
        # the bounds -2..2 are absolute, as in timm/mmengine's trunc_normal_(std=.02)
        token = torch.nn.init.trunc_normal_(torch.empty(1, 1, embed), std=0.02, generator=gen)
        out['dist_token'] = token
        pos = enc['pos_embed']
        out['pos_embed'] = torch.cat([pos[:, :1], torch.zeros_like(pos[:, :1]), pos[:, 1:]], 1)
    return out


_MMSEG_RULES = [
    (re.compile(r'^layers\.(\d+)\.attn\.qkv\.(weight|bias)$'), r'layers.\1.attn.attn.in_proj_\2'),
    (re.compile(r'^layers\.(\d+)\.attn\.proj\.(weight|bias)$'), r'layers.\1.attn.attn.out_proj.\2'),
]


def to_mmseg(vit: dict) -> dict:
    """Rename mmpretrain ViT keys to mmseg's ``VisionTransformer`` (see the table)."""
    if 'dist_token' in vit:
        raise ValueError('mmseg has no distilled ViT: drop --distilled with --format mmseg')
    out = {}
    for key, value in vit.items():
        for pattern, repl in _MMSEG_RULES:
            if pattern.match(key):
                key = pattern.sub(repl, key)
                break
        out[key] = value
    return out


def convert(state_dict: dict, final_norm: bool = True, out_type: str = 'cls_token',
            distilled: bool = False, fmt: str = 'mmpretrain', seed: int = 0) -> dict:
    """The full conversion; returns the output ``state_dict``."""
    if fmt not in ('mmpretrain', 'mmseg'):
        raise ValueError(f"format={fmt!r}; valid: 'mmpretrain', 'mmseg'")
    vit = to_vit(extract_encoder(state_dict), final_norm, out_type, distilled, seed)
    if fmt == 'mmseg':
        return to_mmseg(vit)
    return {'backbone.' + k: v for k, v in vit.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='MaskedImageDistill or mmpretrain MAE checkpoint')
    parser.add_argument('dst', help='output backbone checkpoint')
    parser.add_argument('--no-final-norm', action='store_true',
                        help="drop the encoder's final norm (ViT built with final_norm=False)")
    parser.add_argument('--out-type', default='cls_token', choices=OUT_TYPES,
                        help="the target ViT's out_type ('avg_featmap' adds ln2)")
    parser.add_argument('--distilled', action='store_true',
                        help='DistilledVisionTransformer layout (adds dist_token)')
    parser.add_argument('--format', default='mmpretrain', choices=('mmpretrain', 'mmseg'))
    parser.add_argument('--seed', type=int, default=0, help='seed of the new dist_token')
    args = parser.parse_args(argv)
    from convert_kd_ckpt_to_student import atomic_torch_save  # same folder

    from mmkd.utils.checkpoint import CheckpointFileError, UnsafeCheckpointError
    from mmkd.utils.checkpoint_kinds import read_checkpoint
    try:
        info = read_checkpoint(args.src, 'src')
    except (FileNotFoundError, CheckpointFileError, UnsafeCheckpointError) as err:
        raise SystemExit(f'error: {err}') from None
    try:
        out = convert(info.state, final_norm=not args.no_final_norm, out_type=args.out_type,
                      distilled=args.distilled, fmt=args.format, seed=args.seed)
    except ValueError as err:
        raise SystemExit(f'error: src={args.src!r}: {err}') from None
    meta = {'converted_from': osp.basename(args.src), 'format': args.format,
            'final_norm': not args.no_final_norm, 'out_type': args.out_type,
            'distilled': args.distilled}
    atomic_torch_save({'state_dict': out, 'meta': meta}, args.dst)
    print(f'wrote {len(out)} tensors ({args.format} ViT backbone) to {args.dst}')


if __name__ == '__main__':
    from mmkd.engine.runner_checkpoints import run_cli
    run_cli(main)
