"""CutMix with random boxes for semi-supervised segmentation (batch level, on tensors).

The box masks follow the generator of French et al. (*Semi-supervised semantic
segmentation needs strong, varied perturbations*, BMVC 2020) as configured by
MGD's official code (``cutmix_mask_prop_range=(0.25, 0.5)``, 3 boxes, random
aspect ratio, area-proportional, within bounds, inverted). Per image, each box
covers a fraction ``prop / n_boxes`` of the image, ``prop ~ U(prop_range)``; the
aspect ratio is drawn log-uniformly; the boxes lie inside the image. Inverted masks
start at 0 and each box flips its pixels (so overlapping boxes cancel out); mask
value 1 takes the pixel from the *second* image:

    mixed = a * (1 - mask) + b * mask

Random numbers come from torch (optionally a ``torch.Generator``), so runs seeded
through mmengine are reproducible.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch


class BoxMaskGenerator:
    """Draw CutMix box masks.

    Args:
        prop_range (tuple[float, float]): range of the fraction of the image that the
            boxes together cover (before overlaps).
        n_boxes (int): boxes per mask.
        random_aspect_ratio (bool): log-uniform aspect ratio (else square boxes).
        prop_by_area (bool): ``prop`` is an area fraction (else a side fraction).
        within_bounds (bool): boxes lie inside the image (else centred anywhere and
            clipped).
        invert (bool): masks start at 0 and boxes set 1 (else the reverse).
    """

    def __init__(self,
                 prop_range: Sequence[float] = (0.25, 0.5),
                 n_boxes: int = 3,
                 random_aspect_ratio: bool = True,
                 prop_by_area: bool = True,
                 within_bounds: bool = True,
                 invert: bool = True) -> None:
        if isinstance(prop_range, (int, float)):
            prop_range = (float(prop_range), float(prop_range))
        if len(prop_range) != 2 or not 0.0 <= prop_range[0] <= prop_range[1] <= 1.0:
            raise ValueError(f'cutmix.prop_range must be (lo, hi) with 0 <= lo <= hi <= 1, '
                             f'got {prop_range}')
        if int(n_boxes) < 1:
            raise ValueError(f'cutmix.n_boxes must be >= 1, got {n_boxes}')
        self.prop_range = (float(prop_range[0]), float(prop_range[1]))
        self.n_boxes = int(n_boxes)
        self.random_aspect_ratio = random_aspect_ratio
        self.prop_by_area = prop_by_area
        self.within_bounds = within_bounds
        self.invert = invert

    def boxes(self, n: int, shape: Tuple[int, int],
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(n, n_boxes, 4) integer boxes ``(y0, x0, y1, x1)``, end exclusive, clipped."""
        lo, hi = self.prop_range
        size = (n, self.n_boxes)
        props = lo + (hi - lo) * torch.rand(size, generator=generator, dtype=torch.float64)
        fac = math.sqrt(1.0 / self.n_boxes)
        if self.prop_by_area:
            if self.random_aspect_ratio:
                u = torch.rand(size, generator=generator, dtype=torch.float64)
                y_props = torch.exp(u * torch.log(props.clamp_min(1e-12)))
                x_props = props / y_props
            else:
                y_props = x_props = props.sqrt()
            zero = props == 0
            y_props = torch.where(zero, torch.zeros_like(y_props), y_props)
            x_props = torch.where(zero, torch.zeros_like(x_props), x_props)
        elif self.random_aspect_ratio:
            y_props = props
            x_props = lo + (hi - lo) * torch.rand(size, generator=generator, dtype=torch.float64)
        else:
            y_props = x_props = props
        dims = torch.tensor(shape, dtype=torch.float64)
        sizes = torch.round(torch.stack([y_props * fac, x_props * fac], dim=2) * dims)
        u = torch.rand(sizes.shape, generator=generator, dtype=torch.float64)
        if self.within_bounds:
            start = torch.round((dims - sizes) * u)
            end = start + sizes
        else:
            centre = torch.round(dims * u)
            start, end = centre - sizes * 0.5, centre + sizes * 0.5
        start = torch.maximum(start, torch.zeros_like(start))
        end = torch.minimum(end, dims.expand_as(end))
        return torch.cat([start, end], dim=2).long()

    def masks_from_boxes(self, boxes: torch.Tensor, shape: Tuple[int, int],
                         device=None) -> torch.Tensor:
        """(n, n_boxes, 4) boxes -> (n, 1, H, W) float masks of 0/1."""
        n = boxes.shape[0]
        masks = torch.full((n, 1, *shape), 0.0 if self.invert else 1.0, device=device)
        for i in range(n):
            for y0, x0, y1, x1 in boxes[i].tolist():
                if y1 > y0 and x1 > x0:
                    region = masks[i, 0, y0:y1, x0:x1]
                    masks[i, 0, y0:y1, x0:x1] = 1.0 - region
        return masks

    def __call__(self, n: int, shape: Tuple[int, int], device=None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(n, 1, H, W) float 0/1 masks for images of ``shape`` = (H, W)."""
        shape = (int(shape[0]), int(shape[1]))
        return self.masks_from_boxes(self.boxes(n, shape, generator), shape, device)


def cutmix(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mix two (N, C, H, W) batches: ``a`` where ``mask`` is 0, ``b`` where it is 1.

    ``mask`` is (N, 1, H, W) (broadcast over channels). The same mask mixes images,
    logits or probabilities; for 0/1 masks the result at each pixel is exactly one
    of the two sources.
    """
    if a.shape != b.shape:
        raise ValueError(f'cutmix: the two batches differ in shape {tuple(a.shape)} vs '
                         f'{tuple(b.shape)}')
    if mask.dim() != 4 or mask.shape[0] != a.shape[0] or mask.shape[1] != 1 \
            or mask.shape[-2:] != a.shape[-2:]:
        raise ValueError(f'cutmix: mask {tuple(mask.shape)} must be (N, 1, H, W) for batches '
                         f'{tuple(a.shape)}')
    mask = mask.to(a.dtype)
    return a * (1 - mask) + b * mask
