#!/usr/bin/env python
"""The masks of ACAM-KD and MGD laid over an image, as a PNG.

* ACAM-KD (``ACAMKDLoss``, ``mmkd/models/losses/acam_kd_loss.py``): the masks are
  learned. For one image the loss's STCA-FF fusion and ASCM selection units give M
  spatial masks (H x W, drawn over the image) and M channel masks (M x C, drawn as one
  matrix), from the student and teacher tensors the config feeds the loss (connectors
  applied). With ``--checkpoint`` the learned selection units of that run are used.
* MGD (``MGDLoss``, ``mmkd/models/losses/mgd_loss.py``, or an ``MGDConnector``): the mask
  is random, drawn afresh every step with masking ratio lambda. ``--draws`` masks are
  drawn (``--seed`` makes them reproducible): a spatial mask is shown over the image
  (dark = masked positions, whose teacher feature the generator must rebuild from the
  rest), a channel mask as a 1 x C strip (dark = masked channels).

One row per loss (``--losses`` selects; default: every ACAM-KD / MGD loss of the config).

Usage:
    python tools/analysis_tools/visualize_masks.py CONFIG IMAGE [--checkpoint CKPT]
        [--losses NAME ...] [--draws 3] [--seed 0] [--teacher-ckpt PATH|none]
        [--out masks.png] [--cfg-options k=v ...]

IMAGE is a file (run through the config's test pipeline) or SPLIT:INDEX (``val:0``).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import distill_inspect as di  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

PANEL_PX = 200
TITLE_PX = 30


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('image', help='image file, or SPLIT:INDEX such as val:0')
    parser.add_argument('--checkpoint', help='trained algorithm checkpoint (learned ACAM units)')
    parser.add_argument('--teacher-ckpt', help="override model.teacher_ckpt ('none': random)")
    parser.add_argument('--losses', nargs='+', help='loss names (default: every ACAM-KD/MGD loss)')
    parser.add_argument('--draws', type=int, default=3, help='random MGD masks to draw')
    parser.add_argument('--seed', type=int, default=0, help='seed of the MGD masks')
    parser.add_argument('--out', default='masks.png')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def mask_sites(distiller):
    """(name, kind, module, mapping) of every ACAM-KD / MGD site, in config order.

    kind: 'acam' (an ACAMKDLoss), 'mgd' (an MGDLoss) or 'mgd_connector' (an MGDConnector
    named by a loss mapping; the mapping source is then the connector's input).
    """
    from mmkd.models.connectors import MGDConnector
    from mmkd.models.losses import ACAMKDLoss, MGDLoss
    sites = []
    for name, loss in distiller.distill_losses.items():
        mapping = distiller.loss_forward_mappings[name]
        if isinstance(loss, ACAMKDLoss):
            sites.append((name, 'acam', loss, mapping))
        elif isinstance(loss, MGDLoss):
            sites.append((name, 'mgd', loss, mapping))
        else:
            for arg, source in mapping.items():
                conn = source.get('connector')
                if conn and isinstance(distiller.connectors[conn], MGDConnector):
                    sites.append((f'{name}.{arg} ({conn})', 'mgd_connector',
                                  distiller.connectors[conn], source))
    return sites


def draw_acam(row, image, loss, kwargs, name):
    with torch.no_grad():
        masks = loss.compute_masks(kwargs['preds_S'], kwargs['preds_T'])
    spatial = masks['spatial'][0].float().numpy()  # (M, H, W)
    channel = masks['channel'][0].float().numpy()  # (M, C)
    di.show_overlay(row[0], image, None, f'{name}: input')
    for m in range(spatial.shape[0]):
        ax = row[1 + m]
        ax.imshow(image, cmap='gray' if image.ndim == 2 else None, vmin=0, vmax=1)
        # learned masks are in (0, 1): no per-panel rescaling, 1 = fully selected
        ax.imshow(di.resize_to(spatial[m], image.shape[:2]), cmap='jet', alpha=0.55, vmin=0,
                  vmax=1)
        ax.set_title(f'spatial mask {m} (mean {spatial[m].mean():.2f})', fontsize=7)
    ax = row[1 + spatial.shape[0]]
    ax.imshow(channel, cmap='viridis', vmin=0, vmax=1, aspect='auto', interpolation='nearest')
    ax.set_title(f'channel masks {channel.shape[0]} x {channel.shape[1]}', fontsize=7)
    return 2 + spatial.shape[0]


def draw_mgd(row, image, masks, name, lambda_mgd):
    di.show_overlay(row[0], image, None, f'{name}: input')
    for k, mask in enumerate(masks):
        ax = row[1 + k]
        mask = mask[0].float()
        if mask.shape[-1] == 1 and mask.shape[-2] == 1 and mask.shape[0] > 1:  # channel (C,1,1)
            strip = mask.reshape(1, -1).numpy()
            ax.imshow(strip, cmap='gray', vmin=0, vmax=1, aspect='auto', interpolation='nearest')
            kept = strip.mean()
            ax.set_title(f'channel mask {k} ({strip.shape[1]} ch, kept {kept:.2f})', fontsize=7)
        else:  # spatial (1, H, W)
            grid = mask[0].numpy()
            ax.imshow(image, cmap='gray' if image.ndim == 2 else None, vmin=0, vmax=1)
            shade = np.zeros(image.shape[:2] + (4, ), dtype=np.float32)
            shade[..., 3] = 0.75 * (1.0 - _nearest(grid, image.shape[:2]))
            ax.imshow(shade)
            ax.set_title(f'mask {k} {grid.shape[0]}x{grid.shape[1]} (kept {grid.mean():.2f}, '
                         f'lambda {lambda_mgd})', fontsize=7)
    return 1 + len(masks)


def _nearest(grid: np.ndarray, shape) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=tuple(shape), mode='nearest')[0, 0].numpy()


def main(argv=None):
    args = parse_args(argv)
    cfg = di.load_config(args.config, args.cfg_options, args.teacher_ckpt)
    model = di.build_model(cfg, args.checkpoint)
    batch, image = di.image_batch(cfg, args.image)
    _, samples = di.record(model, batch)
    distiller = model.distiller
    sites = mask_sites(distiller)
    if args.losses:
        known = [s[0].split('.')[0] for s in sites]
        unknown = [n for n in args.losses if n not in known]
        if unknown:
            raise SystemExit(f'error: --losses {unknown} are not ACAM-KD/MGD sites of this config; '
                             f'valid: {known}')
        sites = [s for s in sites if s[0].split('.')[0] in args.losses]
    if not sites:
        raise SystemExit('error: the config has no ACAMKDLoss, MGDLoss or MGDConnector '
                         f'(losses: {sorted(distiller.distill_losses)})')

    rows = []  # (name, kind, payload)
    generator_state = torch.get_rng_state()
    torch.manual_seed(args.seed)
    try:
        for name, kind, module, mapping in sites:
            if kind == 'acam':
                rows.append((name, kind, (module, di.loss_inputs(model, name, samples))))
                continue
            if kind == 'mgd':
                feature = di.loss_inputs(model, name, samples)['preds_S']
            else:  # the connector's input: the mapped record without the connector
                source = {k: v for k, v in mapping.items() if k != 'connector'}
                feature = distiller.get_record(source, samples, name)
            masks = [module.random_mask(feature) for _ in range(args.draws)]
            rows.append((name, kind, (masks, module.lambda_mgd)))
    finally:
        torch.set_rng_state(generator_state)

    cols = max(2 + p[0].num_masks if k == 'acam' else 1 + args.draws for _, k, p in rows)
    fig, axes = di.figure(len(rows), cols, PANEL_PX, TITLE_PX)
    fig.suptitle(osp.basename(args.config), fontsize=7)
    for (name, kind, payload), row in zip(rows, axes):
        if kind == 'acam':
            used = draw_acam(row, image, payload[0], payload[1], name)
        else:
            used = draw_mgd(row, image, payload[0], name, payload[1])
        for ax in row[used:]:
            ax.axis('off')
    print(f'wrote {di.save(fig, args.out)} ({len(rows)} rows x {cols} panels)')
    return args.out


if __name__ == '__main__':
    main()
