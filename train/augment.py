"""Augmentation that prepares the networks for camera crops.

A camera crop, even after MNIST's normalisation (20x20 box, centre of mass), differs from
an MNIST digit by a small residual shift, a tilt, a slightly different size and a pen of
another width. We draw those on the fly, on the training device, for a share of every batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from digitvae.runtime.spec import PEN_CHANGE

MAX_ROTATION_DEG = 15.0  # the reader deskews nothing; digits on paper held by hand tilt (issue 5: 15)
MAX_SHIFT_PX = 2.0  # centre of mass vs. box centre after normalisation
SCALE_RANGE = (0.85, 1.1)  # the 20x20 box is fitted to the longest side, strokes vary
STROKE_CHANGE_P = 0.3  # share of augmented images whose pen is made thicker or thinner


def random_affine(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotate, scale and shift each image of (N, 1, H, W) by its own random amount."""
    n, side = images.shape[0], images.shape[-1]
    angle = (torch.rand(n, generator=generator, device=generator.device) * 2 - 1) * math.radians(MAX_ROTATION_DEG)
    lo, hi = SCALE_RANGE
    scale = lo + torch.rand(n, generator=generator, device=generator.device) * (hi - lo)
    shift = (torch.rand(n, 2, generator=generator, device=generator.device) * 2 - 1) * (2 * MAX_SHIFT_PX / side)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps output coordinates to input coordinates, hence the inverse scale.
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_stroke_width(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Thicken or thin the pen of a random share of images by half a pixel or so."""
    n = images.shape[0]
    dilated = F.max_pool2d(images, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-images, 3, stride=1, padding=1)
    # A full 3x3 dilation doubles a 2-pixel MNIST stroke; halfway is a plausible pen.
    keep = 1.0 - PEN_CHANGE
    thicker, thinner = keep * images + PEN_CHANGE * dilated, keep * images + PEN_CHANGE * eroded
    choice = torch.rand(n, generator=generator, device=generator.device)
    p = STROKE_CHANGE_P / 2
    out = torch.where((choice < p).view(n, 1, 1, 1), thicker, images)
    return torch.where(((choice >= p) & (choice < 2 * p)).view(n, 1, 1, 1), thinner, out)


def augment(images: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Augment a random ``share`` of the batch (N, 1, 28, 28); the rest passes unchanged."""
    if share <= 0:
        return images
    pick = torch.rand(images.shape[0], generator=generator, device=generator.device) < share
    if not pick.any():
        return images
    out = images.clone()
    chosen = random_stroke_width(random_affine(images[pick], generator), generator)
    out[pick] = chosen.clamp(0.0, 1.0)
    return out
