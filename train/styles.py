"""Handwriting styles that MNIST's writers seldom used, drawn onto MNIST digits.

MNIST was written by American census staff and students: their 1 is a bare stroke. Many
writers elsewhere start a 1 with an up-stroke, a *flag* from the top down to the left;
an MNIST-only classifier reads such a 1 as a 7 (a webcam sheet of the real photos:
two of its three 1s). ``flagged_ones`` gives a share of the 1s that flag, drawn with the
digit's own pen, so that the classifier learns that a 7 is told by its bar, not by
having something at the top left.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FLAG_LENGTH = (0.25, 0.5)  # the flag's length, as a share of the 1's height
FLAG_ANGLE_DEG = (25.0, 65.0)  # below the horizontal, going down to the left
PEN_RANGE = (1.5, 4.0)  # pixels: the 1's own stroke width, measured, kept within this
MAX_LEFT_LEAN = 1.0  # pixels the top end may lie left of the bottom end: a flagged 1 that leans left is a 7
INK_LEVEL = 0.5  # a pixel is ink from this brightness (the top end and the width)
ONE = 1


def flagged_ones(images: torch.Tensor, labels: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """(N, 1, 28, 28) in [0, 1] and labels (N,) -> a copy where a random ``share`` of the
    1s has a flag from its top end, re-centred by centre of mass as the reader centres crops."""
    if share <= 0:
        return images
    draw = torch.rand(len(labels), generator=generator, device=labels.device) < share
    pick = draw & (labels == ONE)
    if not pick.any():
        return images
    out = images.clone()
    out[pick] = _recentre(torch.maximum(images[pick], _flags(images[pick], generator)))
    return out


def _flags(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The flag alone, (n, 1, H, W) soft strokes, one per image."""
    n, _, h, w = images.shape
    device = images.device
    ink = images[:, 0] > INK_LEVEL
    rows_inked = ink.any(dim=2)
    top = rows_inked.float().argmax(dim=1)  # first inked row
    bottom = h - 1 - rows_inked.flip(1).float().argmax(dim=1)
    cols = torch.arange(w, device=device, dtype=images.dtype)
    x0, x_bottom = _mean_column(ink, top, cols), _mean_column(ink, bottom, cols)
    y0 = top.to(images.dtype) + 0.5
    # A mostly upright stroke: its width is its ink per inked row.
    pen = (images[:, 0].sum(dim=(1, 2)) / rows_inked.sum(1).clamp_min(1)).clamp(*PEN_RANGE)
    height = (bottom - top + 1).to(images.dtype)
    length = height * _uniform(n, FLAG_LENGTH, generator, device)
    angle = torch.deg2rad(_uniform(n, FLAG_ANGLE_DEG, generator, device))
    x1, y1 = x0 - length * torch.cos(angle), y0 + length * torch.sin(angle)
    distance = _segment_distance(h, w, x0, y0, x1, y1)
    flag = (pen.view(n, 1, 1) / 2 + 0.5 - distance).clamp(0.0, 1.0).unsqueeze(1)
    # Only upright and right-leaning 1s get a flag: with one, a 1 leaning left is a 7.
    upright = (x0 - x_bottom >= -MAX_LEFT_LEAN).view(n, 1, 1, 1)
    return flag * upright


def _mean_column(ink: torch.Tensor, row: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(n,) mean column of each image's ink in its given row."""
    picked = ink[torch.arange(len(row), device=ink.device), row].to(cols.dtype)  # (n, W)
    return (picked * cols).sum(1) / picked.sum(1).clamp_min(1)


def _segment_distance(h: int, w: int, x0: torch.Tensor, y0: torch.Tensor, x1: torch.Tensor, y1: torch.Tensor) -> torch.Tensor:
    """(n, H, W): each pixel centre's distance to each image's segment (x0, y0)-(x1, y1)."""
    device = x0.device
    py = torch.arange(h, device=device, dtype=x0.dtype).view(1, h, 1) + 0.5
    px = torch.arange(w, device=device, dtype=x0.dtype).view(1, 1, w) + 0.5
    dx, dy = (x1 - x0).view(-1, 1, 1), (y1 - y0).view(-1, 1, 1)
    t = (((px - x0.view(-1, 1, 1)) * dx + (py - y0.view(-1, 1, 1)) * dy) / (dx * dx + dy * dy).clamp_min(1e-6)).clamp(0, 1)
    return torch.hypot(px - x0.view(-1, 1, 1) - t * dx, py - y0.view(-1, 1, 1) - t * dy)


def _recentre(images: torch.Tensor) -> torch.Tensor:
    """Shift each image so its centre of mass sits at pixel (H / 2, W / 2), where MNIST's
    and the reader's crops (``digitvae.runtime.crops``) have theirs (bilinear)."""
    n, _, h, w = images.shape
    mass = images.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    ys = torch.arange(h, device=images.device, dtype=images.dtype)
    xs = torch.arange(w, device=images.device, dtype=images.dtype)
    cy = (images.sum(dim=(1, 3)) * ys).sum(1) / mass
    cx = (images.sum(dim=(1, 2)) * xs).sum(1) / mass
    # affine_grid reads the output at input + shift, in units of half the frame.
    shift_x, shift_y = (cx - w / 2) * 2 / w, (cy - h / 2) * 2 / h
    one, zero = torch.ones(n, device=images.device), torch.zeros(n, device=images.device)
    theta = torch.stack([torch.stack([one, zero, shift_x], 1), torch.stack([zero, one, shift_y], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=device)
