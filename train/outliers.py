"""Outlier exposure: non-digits the classifier learns to be unsure about.

Hendrycks, Mazeika & Dietterich, "Deep Anomaly Detection with Outlier Exposure" (ICLR 2019):
besides its cross-entropy on digits, the classifier is trained towards the *uniform*
distribution on images that are not digits, so that its confidence tells digits from
anything else, including shapes it never saw. Without it, a classifier trained on digits
alone reads a "B" as an 8, or a stroke as a 1, with full confidence.

The outliers are drawn here, procedurally, on the fly: random strokes and scribbles,
strokes that cross, filled blobs, speckle, and MNIST training digits mirrored or turned on
their side (which are not digits any more). No letters, fonts or symbols: the benchmark of
non-digits keeps those for itself, so the figures measure what the classifier generalises to.
"""

from __future__ import annotations

import math

import torch

from digitvae.runtime.spec import IMAGE_SIZE

SIDE = IMAGE_SIZE
BOX = (4.0, 24.0)  # shapes are drawn inside the 20x20 box a normalised digit occupies
#: Digits that stay digits when mirrored left-right or turned a quarter (0 and 8 look the
#: same mirrored, 1 too; 0 turned is still 0): they are never used as outliers that way.
MIRROR_SAFE = torch.tensor([0, 1, 8])
TURN_SAFE = torch.tensor([0])


def _grid(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(SIDE, dtype=torch.float32, device=device)
    return coords.view(1, SIDE, 1), coords.view(1, 1, SIDE)  # y, x


def _segment_ink(p0: torch.Tensor, p1: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """Anti-aliased segments from p0 to p1 (N, 2 as x, y) of pen ``width`` (N,) -> (N, 28, 28)."""
    y, x = _grid(p0.device)
    d = p1 - p0
    px, py = x - p0[:, 0, None, None], y - p0[:, 1, None, None]
    length2 = (d**2).sum(1).clamp_min(1e-6)[:, None, None]
    t = ((px * d[:, 0, None, None] + py * d[:, 1, None, None]) / length2).clamp(0, 1)
    dist = torch.sqrt((px - t * d[:, 0, None, None]) ** 2 + (py - t * d[:, 1, None, None]) ** 2)
    return (width[:, None, None] / 2 + 0.5 - dist).clamp(0, 1)


def strokes(n: int, g: torch.Generator) -> torch.Tensor:
    """1 to 4 connected random strokes: lines, angles, zigzags, open scribbles."""
    lo, hi = BOX
    points = lo + torch.rand(n, 5, 2, generator=g, device=g.device) * (hi - lo)
    # A third are lone strokes; the rest zigzags of 3-4 segments (two segments too often
    # make a 7, an L or a 1 with a flag, which *are* digits).
    count = torch.where(torch.rand(n, generator=g, device=g.device) < 1 / 3, 1, torch.randint(3, 5, (n,), generator=g, device=g.device))
    # A lone stroke near vertical *is* a 1 (every MNIST test 1 leans less than 46 degrees):
    # lone strokes lean at least 50 degrees from vertical, drawn towards the centre so
    # that clamping to the box cannot stand them up.
    angle = (torch.rand(n, generator=g, device=g.device) * 2 - 1) * math.radians(40)
    length = 8 + torch.rand(n, generator=g, device=g.device) * 12
    inward = torch.where(points[:, 0, 0] > SIDE / 2, -1.0, 1.0)
    step = torch.stack([inward * torch.cos(angle), torch.sin(angle)], 1)
    lone_end = (points[:, 0] + length[:, None] * step).clamp(lo, hi)
    points[:, 1] = torch.where((count == 1)[:, None], lone_end, points[:, 1])
    width = 1.5 + torch.rand(n, generator=g, device=g.device) * 2.0
    ink = torch.zeros(n, SIDE, SIDE, device=g.device)
    for k in range(4):
        segment = _segment_ink(points[:, k], points[:, k + 1], width)
        ink = torch.maximum(ink, segment * (k < count).float()[:, None, None])
    return ink


def crosses(n: int, g: torch.Generator) -> torch.Tensor:
    """Two or three straight strokes crossing near one point: plus, x, asterisk. Strokes
    that cross are no digit's (a 4's crossing strokes meet a third that joins them at an
    end; the zigzags above join only at their ends)."""
    lo, hi = BOX
    centre = SIDE / 2 + (torch.rand(n, 2, generator=g, device=g.device) * 2 - 1) * 3
    count = torch.randint(2, 4, (n,), generator=g, device=g.device)
    # Arms spread over half a turn, evenly, each jittered by up to a sixth of the gap.
    first = torch.rand(n, generator=g, device=g.device) * math.pi
    # Up to a 5.5-pixel pen: a small mark drawn with a digit's pen is bold once scaled up to
    # the 20x20 box, and bold crosses were what the classifier still read as a 4.
    width = 1.5 + torch.rand(n, generator=g, device=g.device) * 4.0
    ink = torch.zeros(n, SIDE, SIDE, device=g.device)
    for k in range(3):
        jitter = (torch.rand(n, generator=g, device=g.device) * 2 - 1) * math.pi / (6 * count)
        angle = first + k * math.pi / count + jitter
        half = (5 + torch.rand(n, generator=g, device=g.device) * 5)[:, None]
        step = torch.stack([torch.cos(angle), torch.sin(angle)], 1) * half
        along = 0.6 + 0.8 * torch.rand(n, 1, generator=g, device=g.device)  # the crossing need not be mid-stroke
        p0, p1 = (centre - step * along).clamp(lo, hi), (centre + step * (2 - along)).clamp(lo, hi)
        ink = torch.maximum(ink, _segment_ink(p0, p1, width) * (k < count).float()[:, None, None])
    return ink


def blobs(n: int, g: torch.Generator) -> torch.Tensor:
    """Filled ellipses of random size, shape and angle."""
    y, x = _grid(g.device)
    lo, hi = BOX
    centre = 10 + torch.rand(n, 2, generator=g, device=g.device) * 8
    axes = 2 + torch.rand(n, 2, generator=g, device=g.device) * (hi - lo) / 2.5
    angle = torch.rand(n, generator=g, device=g.device) * math.pi
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    dx, dy = x - centre[:, 0, None, None], y - centre[:, 1, None, None]
    u, v = (dx * cos + dy * sin) / axes[:, 0, None, None], (-dx * sin + dy * cos) / axes[:, 1, None, None]
    return ((1 - torch.sqrt(u**2 + v**2)) * 3).clamp(0, 1)


def speckle(n: int, g: torch.Generator) -> torch.Tensor:
    """Sparse, slightly blurred dots: dust, grain, a crop of textured paper."""
    density = 0.02 + torch.rand(n, 1, 1, generator=g, device=g.device) * 0.15
    dots = (torch.rand(n, SIDE, SIDE, generator=g, device=g.device) < density).float()
    blurred = torch.nn.functional.avg_pool2d(dots[:, None], 3, stride=1, padding=1)[:, 0]
    return (blurred * 3).clamp(0, 1)


def turned_digits(images: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Digits mirrored or turned a quarter, skipping those that stay digits that way."""
    picture = images[:, 0]
    mirror = torch.rand(len(images), generator=g, device=g.device) < 0.5
    mirrored, turned = picture.flip(-1), picture.rot90(1, dims=(-2, -1))
    out = torch.where(mirror[:, None, None], mirrored, turned)
    safe = torch.where(mirror, torch.isin(labels, MIRROR_SAFE.to(labels.device)), torch.isin(labels, TURN_SAFE.to(labels.device)))
    return out[~safe]


def outliers(n: int, digits: torch.Tensor, labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Non-digits (N, 1, 28, 28) in [0, 1]: ``n // 8`` each of strokes, crosses, blobs and
    speckle, and up to ``n // 4`` turned digits (fewer where a turned digit stays a digit)."""
    quarter = n // 4
    parts = [strokes(quarter // 2, g), crosses(quarter // 2, g), blobs(quarter // 2, g), speckle(quarter // 2, g),
             turned_digits(digits[:quarter], labels[:quarter], g)]
    return torch.cat(parts)[:, None].clamp(0, 1)
