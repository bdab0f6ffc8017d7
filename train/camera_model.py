"""A camera model for training: what a photo does to a digit after the reader's crop.

The reader normalises every crop as MNIST was (20x20 box, centre of mass, stroke cores at
1, a pen at least MNIST's width), so what is left of the camera is what that cannot undo:

* a digit photographed small is seen at low resolution, then enlarged (``LOW_RES``);
* blur (focus, motion) that rounds corners and fills small loops (``BLUR_SIGMA``);
* a sheet seen at an angle: shear and unequal scale (``SHEAR``, ``SQUASH``);
* pencil and dry markers: strokes with gaps and uneven grey (``BROKEN``);
* the ends of grid and ruled lines that the crop keeps along its edges (``EDGE_LINE``);
* specks of dirt or paper grain near the digit (``SPECKS``).

Each effect hits a random share of the images it is given, drawn on the training device
with the run's generator, so a run stays reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOW_RES = (0.4, 0.5, (8, 16))  # share; chance of the coarsest; the digit box's side in pixels when captured
BLUR_SIGMA = (0.4, (0.5, 1.2))  # share; Gaussian sigma in pixels of the 28x28 crop
SHEAR = (0.4, 0.35)  # share; largest shear (a sheet turned about 20 degrees off the camera's axis)
SQUASH = (0.3, (0.8, 1.0))  # share; one axis scaled by this (foreshortening)
BROKEN = (0.3, (0.25, 0.5))  # share; fraction of the stroke that a low-frequency mask dims
EDGE_LINE = (0.15, (0.5, 1.0))  # share; its brightness (a grid line is often fainter than the ink)
SPECKS = (0.15, 3)  # share; most specks added


def _rand(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device)


def _pick(images: torch.Tensor, share: float, g: torch.Generator) -> torch.Tensor:
    return (_rand(images.shape[0], g, images.device) < share).view(-1, 1, 1, 1)


def low_resolution(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Shrink each picked image so its 20-px box becomes 8-16 px, and enlarge it back."""
    share, _, (lo, hi) = LOW_RES
    side = int(torch.randint(lo, hi + 1, (1,), generator=g, device=images.device).item())
    small = F.interpolate(images, scale_factor=side / 20, mode="area")
    back = F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return torch.where(_pick(images, share, g), back, images)


def blur(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    share, (lo, hi) = BLUR_SIGMA
    sigma = lo + (hi - lo) * float(_rand(1, g, images.device))
    r = torch.arange(-3, 4, device=images.device, dtype=images.dtype)
    k = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    out = F.conv2d(images, k.view(1, 1, 1, 7), padding=(0, 3))
    out = F.conv2d(out, k.view(1, 1, 7, 1), padding=(3, 0))
    out = out / out.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)  # the reader scales cores to 1
    return torch.where(_pick(images, share, g), out, images)


def perspective(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Shear and squash each image by its own random amount (an affine stand-in for a tilted sheet)."""
    n = images.shape[0]
    device = images.device
    shear = (_rand(n, g, device) * 2 - 1) * SHEAR[1] * (_rand(n, g, device) < SHEAR[0])
    lo, hi = SQUASH[1]
    squash = torch.where(_rand(n, g, device) < SQUASH[0], lo + (hi - lo) * _rand(n, g, device), torch.ones(n, device=device))
    horizontal = _rand(n, g, device) < 0.5
    sx, sy = torch.where(horizontal, 1 / squash, torch.ones_like(squash)), torch.where(horizontal, torch.ones_like(squash), 1 / squash)
    zero = torch.zeros(n, device=device)
    theta = torch.stack([torch.stack([sx, shear, zero], 1), torch.stack([zero, sy, zero], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def broken_strokes(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Dim the strokes under a random low-frequency mask: pencil grain, a drying marker."""
    share, (lo, hi) = BROKEN
    n = images.shape[0]
    coarse = torch.rand(n, 1, 7, 7, generator=g, device=images.device)
    mask = F.interpolate(coarse, size=images.shape[-2:], mode="bilinear", align_corners=False)
    depth = lo + (hi - lo) * _rand(n, g, images.device).view(n, 1, 1, 1)
    dimmed = images * (1 - depth * (mask > 0.6).to(images.dtype))
    return torch.where(_pick(images, share, g), dimmed, images)


def edge_lines(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A straight line along one edge of the picked images, one or two pixels in."""
    share, (lo, hi) = EDGE_LINE
    n, _, h, w = images.shape
    device = images.device
    side = torch.randint(0, 4, (n,), generator=g, device=device)
    offset = torch.randint(0, 3, (n,), generator=g, device=device)
    level = (lo + (hi - lo) * _rand(n, g, device)).view(n, 1, 1, 1)
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    o = offset.view(n, 1, 1)
    line = torch.where(side.view(n, 1, 1) == 0, rows == o, torch.where(side.view(n, 1, 1) == 1, rows == h - 1 - o,
                       torch.where(side.view(n, 1, 1) == 2, cols == o, cols == w - 1 - o)))
    drawn = torch.maximum(images, level * line.unsqueeze(1).to(images.dtype))
    return torch.where(_pick(images, share, g), drawn, images)


def specks(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    share, most = SPECKS
    n, _, h, w = images.shape
    dots = torch.zeros_like(images)
    for _ in range(most):
        y = torch.randint(0, h, (n,), generator=g, device=images.device)
        x = torch.randint(0, w, (n,), generator=g, device=images.device)
        dots[torch.arange(n, device=images.device), 0, y, x] = _rand(n, g, images.device)
    dots = F.max_pool2d(dots, 2, stride=1, padding=1)[..., :h, :w]
    return torch.where(_pick(images, share, g), torch.maximum(images, dots), images)


def camera(images: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Pass a random ``share`` of the batch (N, 1, 28, 28) through the camera model."""
    if share <= 0:
        return images
    pick = _rand(images.shape[0], generator, images.device) < share
    if not pick.any():
        return images
    x = images[pick]
    for effect in (perspective, low_resolution, blur, broken_strokes, edge_lines, specks):
        x = effect(x, generator)
    out = images.clone()
    out[pick] = x.clamp(0.0, 1.0)
    return out
