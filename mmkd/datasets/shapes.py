"""The embedded "shapes" data set: a small, deterministic dense-prediction data set.

Nothing may be downloaded here, so detection and segmentation demos train on images
that this module draws: coloured shapes (circle, rectangle, triangle, star) of varied
size, colour and rotation, partly occluding each other, on textured noisy backgrounds.
The files are written in the standard on-disk formats, so that the standard loaders
read them with no custom data set class:

.. code-block:: text

    out_dir/
      images/{train,val}/00000.png          RGB, img_size x img_size
      annotations/instances_{train,val}.json COCO: mmdet ``CocoDataset`` + ``CocoMetric``
      seg_masks/{train,val}/00000.png       uint8, 0 background, 1..K the classes:
                                             mmseg ``BaseSegDataset`` + ``IoUMetric``
      meta.json                              classes, palettes, parameters, counts

Instance masks are stored as uncompressed COCO RLE (``{'size': [h, w], 'counts':
[...]}``), not as polygons: an occluded shape's visible part can have holes or
several pieces, which polygons cannot hold, and RLE decodes to exactly the pixels the
generator drew, so instance masks, boxes and the semantic masks agree pixel for pixel.
mmdet's ``LoadAnnotations`` decodes RLE with its default ``poly2mask=True``.

Occlusion: shapes are drawn one after another, later ones on top. The bbox, area and
mask of an instance are those of its *visible* pixels (the COCO convention). A shape
is placed only if every shape under it keeps at least ``min_visible`` of its area
(and ``min_area`` pixels); otherwise it is re-drawn elsewhere (a few tries) or left
out. So no almost fully occluded instance exists, and no pixel shows a shape without
an annotation.

Determinism: image ``i`` of a split depends only on ``(seed, split, i)`` and the
drawing parameters, so the same call writes the same bytes, and growing ``num_train``
keeps the first images unchanged.
"""
from __future__ import annotations

import glob
import inspect
import json
import math
import os
import os.path as osp
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    'SHAPES_CLASSES', 'SHAPES_PALETTE', 'SHAPES_SEG_CLASSES', 'SHAPES_SEG_PALETTE',
    'GENERATOR_VERSION', 'generate_shapes', 'ensure_shapes', 'mask_to_rle', 'rle_to_mask'
]

#: version of the drawing code; a change makes :func:`ensure_shapes` regenerate.
GENERATOR_VERSION = 1

#: the K shape classes; COCO category ids are 1..K in this order, and the
#: semantic masks use the same values 1..K (0 is background).
SHAPES_CLASSES: Tuple[str, ...] = ('circle', 'rectangle', 'triangle', 'star')
#: one RGB colour per class, for visualisation (mmdet ``metainfo['palette']``).
SHAPES_PALETTE: List[Tuple[int, int, int]] = [(220, 20, 60), (0, 130, 200), (60, 180, 75),
                                              (255, 200, 0)]
#: classes of the semantic masks (mmseg): background first, value 0.
SHAPES_SEG_CLASSES: Tuple[str, ...] = ('background', ) + SHAPES_CLASSES
SHAPES_SEG_PALETTE: List[Tuple[int, int, int]] = [(0, 0, 0)] + SHAPES_PALETTE

_SPLIT_IDS = {'train': 0, 'val': 1}


# --------------------------------------------------------------------------- RLE
def mask_to_rle(mask: np.ndarray) -> Dict[str, list]:
    """Encode a binary HxW mask as uncompressed COCO RLE.

    COCO RLE runs over the column-major (Fortran-order) flattened mask and starts
    with a run of zeros (possibly of length 0).
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    flat = mask.ravel(order='F')
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {'size': [int(h), int(w)], 'counts': [int(c) for c in counts]}


def rle_to_mask(rle: Dict[str, list]) -> np.ndarray:
    """Decode uncompressed COCO RLE (as written by :func:`mask_to_rle`) to a bool mask."""
    h, w = rle['size']
    values = np.arange(len(rle['counts'])) % 2 == 1
    flat = np.repeat(values, rle['counts'])
    if flat.size != h * w:
        raise ValueError(f'RLE counts sum to {flat.size}, expected {h}*{w}={h * w}')
    return flat.reshape((h, w), order='F')


# ----------------------------------------------------------------------- drawing
def _default_size_range(img_size: int) -> Tuple[int, int]:
    # 12..60 px at 128 px: from small objects to half the image.
    return max(4, round(img_size * 12 / 128)), max(6, round(img_size * 60 / 128))


def _shape_polygon(cls_name: str, cx: float, cy: float, radius: float, angle: float,
                   rng: np.random.Generator) -> Optional[List[Tuple[float, float]]]:
    """Vertices of a shape inscribed in the circle (cx, cy, radius); None for a circle."""
    if cls_name == 'circle':
        return None
    if cls_name == 'rectangle':
        aspect = rng.uniform(1.0, 2.2)  # long side / short side; 1 is a square
        half = math.atan(1.0 / aspect)  # corner angle seen from the centre
        corners = [half, math.pi - half, math.pi + half, 2 * math.pi - half]
    elif cls_name == 'triangle':
        # an equilateral triangle with jittered corners: varied but never degenerate
        corners = [k * 2 * math.pi / 3 + rng.uniform(-0.3, 0.3) for k in range(3)]
    elif cls_name == 'star':
        points = int(rng.integers(5, 7))
        inner = rng.uniform(0.38, 0.5)
        verts = []
        for k in range(2 * points):
            r = radius if k % 2 == 0 else radius * inner
            a = angle + k * math.pi / points
            verts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
        return verts
    else:
        raise ValueError(f'unknown shape class {cls_name!r}; valid: {SHAPES_CLASSES}')
    return [(cx + radius * math.cos(angle + a), cy + radius * math.sin(angle + a))
            for a in corners]


def _draw_mask(img_size: int, cls_name: str, cx: float, cy: float, radius: float,
               angle: float, rng: np.random.Generator) -> np.ndarray:
    canvas = Image.new('L', (img_size, img_size), 0)
    draw = ImageDraw.Draw(canvas)
    poly = _shape_polygon(cls_name, cx, cy, radius, angle, rng)
    if poly is None:
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=1)
    else:
        draw.polygon(poly, fill=1)
    return np.asarray(canvas, dtype=bool)


def _smooth_noise(rng: np.random.Generator, img_size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a random cells x cells grid, bilinearly upsampled."""
    grid = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
    return np.asarray(
        Image.fromarray(grid).resize((img_size, img_size), Image.BILINEAR),
        dtype=np.float32)


def _background(rng: np.random.Generator, img_size: int) -> np.ndarray:
    """A textured background: colour gradient + blotches + (often) stripes, float HxWx3."""
    yy, xx = np.mgrid[0:img_size, 0:img_size].astype(np.float32) / max(img_size - 1, 1)
    theta = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(theta) + yy * math.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = rng.uniform(30, 225, size=(2, 3)).astype(np.float32)
    img = c0 + (c1 - c0) * t[..., None]
    blotch = _smooth_noise(rng, img_size, int(rng.integers(3, 9)))
    img += rng.uniform(10, 30) * blotch[..., None] * rng.uniform(0.5, 1.0, size=3)
    if rng.random() < 0.6:
        phi = rng.uniform(0, math.pi)
        period = rng.uniform(5, 24) * img_size / 128 / img_size  # in units of the side
        wave = np.sin(2 * math.pi * (xx * math.cos(phi) + yy * math.sin(phi)) / period +
                      rng.uniform(0, 2 * math.pi))
        img += rng.uniform(8, 30) * wave[..., None] * rng.uniform(-1, 1, size=3)
    return img


def _shape_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random RGB colour that stands out from ``under`` (the mean colour it covers)."""
    best, best_dist = None, -1.0
    for _ in range(8):
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        dist = float(np.linalg.norm(colour - under))
        if dist >= 90:
            return colour
        if dist > best_dist:
            best, best_dist = colour, dist
    return best


def _render_sample(rng: np.random.Generator, img_size: int, min_objects: int,
                   max_objects: int, size_range: Sequence[float], min_visible: float,
                   min_area: int, noise_std: Sequence[float], max_tries: int = 10) -> dict:
    """Draw one image.

    Returns:
        dict: ``img`` (uint8 HxWx3), ``seg`` (uint8 HxW, 0 background, 1..K) and
        ``instances``: a list, bottom to top, of dicts with ``label`` (0-based class
        index), ``full_mask`` (the whole shape) and ``mask`` (its visible pixels).
    """
    img = _background(rng, img_size)
    seg = np.zeros((img_size, img_size), dtype=np.uint8)
    instances: List[dict] = []
    yy, xx = np.mgrid[0:img_size, 0:img_size].astype(np.float32)
    log_lo, log_hi = math.log(size_range[0]), math.log(size_range[1])
    num = int(rng.integers(min_objects, max_objects + 1))
    for _ in range(num):
        for _try in range(max_tries):
            label = int(rng.integers(len(SHAPES_CLASSES)))
            radius = math.exp(rng.uniform(log_lo, log_hi)) / 2  # log-uniform diameter
            # keep the whole shape inside the image (its circumscribed circle)
            lo, hi = radius, img_size - 1 - radius
            if hi <= lo:
                radius = (img_size - 1) / 2
                lo = hi = radius
            cx, cy = rng.uniform(lo, hi), rng.uniform(lo, hi)
            angle = rng.uniform(0, 2 * math.pi)
            full = _draw_mask(img_size, SHAPES_CLASSES[label], cx, cy, radius, angle, rng)
            area = int(full.sum())
            if area < min_area:
                continue
            # placing this shape must leave every shape below it clearly visible
            ok = True
            for inst in instances:
                left = int(np.count_nonzero(inst['mask'] & ~full))
                if left < min_area or left < min_visible * inst['full_area']:
                    ok = False
                    break
            if not ok:
                continue
            for inst in instances:
                inst['mask'] &= ~full
            instances.append(
                dict(label=label, full_mask=full, full_area=area, mask=full.copy()))
            # paint: a colour that contrasts with what it covers, linear shading, grain
            colour = _shape_colour(rng, img[full].mean(axis=0))
            gx, gy = rng.uniform(-1, 1, size=2) * rng.uniform(0, 25) / max(radius, 1.0)
            shade = (xx - cx) * gx + (yy - cy) * gy
            grain = rng.normal(0, rng.uniform(0, 8), size=(img_size, img_size))
            fill = colour + (shade + grain)[..., None].astype(np.float32)
            img[full] = fill[full]
            seg[full] = label + 1
            break
    img += rng.normal(0, rng.uniform(*noise_std), size=img.shape).astype(np.float32)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return dict(img=img, seg=seg, instances=instances)


# ------------------------------------------------------------------------ writing
def _params(num_train: int, num_val: int, img_size: int, seed: int, min_objects: int,
            max_objects: int, size_range: Optional[Sequence[float]], min_visible: float,
            min_area: Optional[int], noise_std: Sequence[float]) -> dict:
    if size_range is None:
        size_range = _default_size_range(img_size)
    if min_area is None:
        min_area = max(4, round(16 * (img_size / 128)**2))
    if not 1 <= min_objects <= max_objects:
        raise ValueError(f'need 1 <= min_objects <= max_objects, got {min_objects}, '
                         f'{max_objects}')
    if not 0 < size_range[0] <= size_range[1]:
        raise ValueError(f'size_range must be (lo, hi) with 0 < lo <= hi, got {size_range}')
    if img_size < 16:
        raise ValueError(f'img_size must be >= 16, got {img_size}')
    if not 0.0 <= min_visible < 1.0:
        raise ValueError(f'min_visible must be in [0, 1), got {min_visible}')
    # the JSON round trip normalises tuples to lists, so stored and requested compare
    return json.loads(json.dumps(dict(
        num_train=int(num_train), num_val=int(num_val), img_size=int(img_size),
        seed=int(seed), min_objects=int(min_objects), max_objects=int(max_objects),
        size_range=[float(s) for s in size_range], min_visible=float(min_visible),
        min_area=int(min_area), noise_std=[float(s) for s in noise_std])))


def _write_split(out_dir: str, split: str, num: int, p: dict) -> dict:
    img_dir = osp.join(out_dir, 'images', split)
    seg_dir = osp.join(out_dir, 'seg_masks', split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(seg_dir, exist_ok=True)
    images, annotations = [], []
    per_class = [0] * len(SHAPES_CLASSES)
    for i in range(num):
        rng = np.random.default_rng([p['seed'], _SPLIT_IDS[split], i])
        sample = _render_sample(
            rng, p['img_size'], p['min_objects'], p['max_objects'], p['size_range'],
            p['min_visible'], p['min_area'], p['noise_std'])
        name = f'{i:05d}.png'
        Image.fromarray(sample['img']).save(osp.join(img_dir, name))
        Image.fromarray(sample['seg']).save(osp.join(seg_dir, name))
        image_id = i + 1
        images.append(dict(id=image_id, file_name=name, width=p['img_size'],
                           height=p['img_size']))
        for inst in sample['instances']:
            mask = inst['mask']
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            x0, y0 = int(cols[0]), int(rows[0])
            bbox = [x0, y0, int(cols[-1]) - x0 + 1, int(rows[-1]) - y0 + 1]
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id,
                category_id=inst['label'] + 1, bbox=bbox, area=int(mask.sum()),
                iscrowd=0, segmentation=mask_to_rle(mask)))
            per_class[inst['label']] += 1
    coco = dict(
        info=dict(description=f'mmkd shapes data set, {split} split',
                  version=str(GENERATOR_VERSION)),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=k + 1, name=c, supercategory='shape')
                    for k, c in enumerate(SHAPES_CLASSES)])
    ann_dir = osp.join(out_dir, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    with open(osp.join(ann_dir, f'instances_{split}.json'), 'w') as f:
        json.dump(coco, f, separators=(',', ':'))
    return dict(images=num, instances=len(annotations),
                instances_per_class={c: per_class[k] for k, c in enumerate(SHAPES_CLASSES)},
                mean_objects_per_image=round(len(annotations) / max(num, 1), 3))


def generate_shapes(out_dir: str,
                    num_train: int = 300,
                    num_val: int = 60,
                    img_size: int = 128,
                    seed: int = 0,
                    min_objects: int = 1,
                    max_objects: int = 6,
                    size_range: Optional[Sequence[float]] = None,
                    min_visible: float = 0.3,
                    min_area: Optional[int] = None,
                    noise_std: Sequence[float] = (2.0, 10.0)) -> dict:
    """Write the shapes data set into ``out_dir`` (created if missing; files overwritten).

    Prefer :func:`ensure_shapes`, which skips the work when the data set exists and
    never leaves a half-written one.

    Args:
        out_dir (str): the data root (e.g. ``data/shapes``).
        num_train (int): images in the train split.
        num_val (int): images in the val split.
        img_size (int): side of the square images, in pixels.
        seed (int): the seed; the same seed and parameters give the same bytes.
        min_objects (int): fewest shapes drawn per image.
        max_objects (int): most shapes drawn per image (fewer are kept when one
            cannot be placed without hiding another).
        size_range (tuple[float]): (min, max) shape diameter in pixels, drawn
            log-uniformly. Defaults to 12..60 px scaled by ``img_size / 128``.
        min_visible (float): share of its area every shape keeps visible.
        min_area (int): fewest visible pixels of a shape. Defaults to 16 px scaled by
            ``(img_size / 128) ** 2``.
        noise_std (tuple[float]): range of the std of the per-image pixel noise.

    Returns:
        dict: the content of ``meta.json`` (classes, palettes, parameters, counts).
    """
    p = _params(num_train, num_val, img_size, seed, min_objects, max_objects, size_range,
                min_visible, min_area, noise_std)
    os.makedirs(out_dir, exist_ok=True)
    splits = {split: _write_split(out_dir, split, p[f'num_{split}'], p)
              for split in ('train', 'val')}
    meta = dict(
        name='mmkd-shapes',
        generator='mmkd.datasets.shapes.generate_shapes',
        version=GENERATOR_VERSION,
        params=p,
        classes=list(SHAPES_CLASSES),
        palette=[list(c) for c in SHAPES_PALETTE],
        seg_classes=list(SHAPES_SEG_CLASSES),
        seg_palette=[list(c) for c in SHAPES_SEG_PALETTE],
        splits=splits)
    # meta.json is written last: its presence marks a complete data set
    with open(osp.join(out_dir, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')
    return meta


def _read_meta(out_dir: str) -> Optional[dict]:
    try:
        with open(osp.join(out_dir, 'meta.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _is_complete(out_dir: str, meta: Optional[dict], params: dict) -> bool:
    if meta is None or meta.get('version') != GENERATOR_VERSION or meta.get('params') != params:
        return False
    return all(
        osp.isfile(osp.join(out_dir, 'annotations', f'instances_{s}.json'))
        and osp.isdir(osp.join(out_dir, 'images', s))
        and osp.isdir(osp.join(out_dir, 'seg_masks', s)) for s in ('train', 'val'))


def _remove_stale_temporaries(parent: str, name: str, age_s: float = 3600) -> None:
    """Remove temporary folders that killed runs left (older than any live run)."""
    now = time.time()
    for path in glob.glob(osp.join(parent, f'.{glob.escape(name)}.tmp-*')) + glob.glob(
            osp.join(parent, f'.{glob.escape(name)}.old-*')):
        try:
            if now - os.stat(path).st_mtime > age_s:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def ensure_shapes(out_dir: str, force: bool = False, **kwargs) -> dict:
    """Make sure ``out_dir`` holds the shapes data set for these parameters.

    Generates only when ``out_dir/meta.json`` is missing or records other parameters
    (or another generator version), or when ``force``. The data set is written into a
    temporary sibling folder and renamed into place, so a killed run never leaves a
    half-written data set at ``out_dir``; an outdated one is replaced. When several
    processes (e.g. the ranks of a distributed run) race, the first complete data set
    stays and the others discard theirs (generation is deterministic, so they hold
    the same bytes). Temporary folders of killed runs are removed after an hour.

    Args:
        out_dir (str): the data root (e.g. ``data/shapes``).
        force (bool): regenerate even if a matching data set exists.
        **kwargs: parameters of :func:`generate_shapes`.

    Returns:
        dict: the content of ``meta.json``.
    """
    out_dir = osp.abspath(out_dir)
    defaults = {k: v.default for k, v in inspect.signature(generate_shapes).parameters.items()
                if k != 'out_dir'}
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f'ensure_shapes got unknown parameters {sorted(unknown)}; '
                        f'valid: {sorted(defaults)}')
    defaults.update(kwargs)
    params = _params(**defaults)
    meta = _read_meta(out_dir)
    if not force and _is_complete(out_dir, meta, params):
        return meta

    parent, name = osp.split(out_dir)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_temporaries(parent, name)
    tmp = tempfile.mkdtemp(prefix=f'.{name}.tmp-', dir=parent)
    try:
        meta = generate_shapes(tmp, **defaults)
        umask = os.umask(0)  # mkdtemp makes it 0o700; follow the umask instead
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if not force and _is_complete(out_dir, _read_meta(out_dir), params):
            return _read_meta(out_dir)  # another process finished first (same bytes)
        old = None
        if osp.lexists(out_dir):
            old = tempfile.mkdtemp(prefix=f'.{name}.old-', dir=parent)
            os.rename(out_dir, osp.join(old, name))
        try:
            os.rename(tmp, out_dir)
        except OSError:
            # another process put a data set there first; keep it if it matches
            if not _is_complete(out_dir, _read_meta(out_dir), params):
                raise
            meta = _read_meta(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return meta
