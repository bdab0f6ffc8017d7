"""Paper, board, light and camera effects for the synthetic camera frames (OpenCV).

The building blocks of :mod:`digitvae.data.frames`: every function takes a numpy
``Generator`` so that a frame is a pure function of its seed. Images here are float32
BGR ``(H, W, 3)`` in [0, 255] until :func:`to_camera_bytes` quantises them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from digitvae.runtime.optional import require

cv2 = require("cv2", "rendering synthetic camera frames")

Box = tuple[int, int, int, int]  # x, y, w, h in pixels

# Ink and paper are kept at least this far apart in brightness (a ratio of paper
# luminance): below it even a person squints, and the issue asks for frames a camera
# would plausibly see of ink on paper.
MIN_INK_CONTRAST: Final = 0.45


@dataclass(frozen=True)
class Surface:
    """What the digits are written on and with: BGR colours in [0, 255]."""

    background: np.ndarray  # float32 (3,): paper or board colour
    ink: np.ndarray  # float32 (3,): pen, pencil or chalk colour
    light_ink: bool  # True for light ink on a dark surface (chalkboard)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Low-frequency noise of roughly ``cell`` pixels per blob: float32 ``shape``, mean 0,
    std about 1. Drawn on a coarse grid and resized, so it costs little for any cell."""
    h, w = shape
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return field / max(float(field.std()), 1e-6)


def paper_surface(rng: np.random.Generator) -> Surface:
    """White-ish paper and a dark pen (black, blue or pencil grey)."""
    paper = rng.uniform(200, 250) * np.array([1.0, 1.0, 1.0], np.float32)
    paper *= rng.uniform(0.93, 1.0, 3).astype(np.float32)  # a warm or cool tint
    kind = rng.integers(3)
    if kind == 0:  # black ballpoint or felt tip
        ink = rng.uniform(15, 60) * np.ones(3, np.float32)
    elif kind == 1:  # blue ballpoint (BGR: strong blue channel)
        ink = np.array([rng.uniform(90, 140), rng.uniform(30, 60), rng.uniform(10, 40)], np.float32)
    else:  # pencil: grey, the faintest ink we draw
        ink = rng.uniform(60, 100) * np.ones(3, np.float32)
    ink = np.minimum(ink, paper * (1.0 - MIN_INK_CONTRAST))
    return Surface(background=paper, ink=ink.astype(np.float32), light_ink=False)


def board_surface(rng: np.random.Generator) -> Surface:
    """A dark green or black chalkboard and white or pale yellow chalk."""
    if rng.random() < 0.5:
        board = np.array([rng.uniform(40, 60), rng.uniform(60, 80), rng.uniform(30, 45)], np.float32)
    else:
        board = rng.uniform(25, 50) * np.ones(3, np.float32)
    chalk = np.array([rng.uniform(180, 230), rng.uniform(210, 240), rng.uniform(215, 245)], np.float32)
    return Surface(background=board, ink=chalk, light_ink=True)


def blank_page(rng: np.random.Generator, shape: tuple[int, int], surface: Surface) -> np.ndarray:
    """The surface with texture: paper grain and fibres, or chalk smudges on a board.
    Returns float32 BGR ``shape + (3,)``."""
    h, w = shape
    page = np.empty((h, w, 3), np.float32)
    page[:] = surface.background
    # Large soft variations (paper not perfectly flat, board wiped unevenly) ...
    blotch = smooth_noise(rng, shape, cell=rng.uniform(40, 120)) * rng.uniform(1.5, 5.0)
    # ... and fine grain (paper fibres, chalk dust); scaled to the surface's brightness.
    grain = rng.standard_normal(shape).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 0.7) * rng.uniform(1.0, 4.0)
    page += (blotch + grain)[..., None]
    if surface.light_ink:  # erased chalk leaves pale clouds on a board
        smudge = np.clip(smooth_noise(rng, shape, cell=rng.uniform(60, 150)), 0, None)
        page += (smudge * rng.uniform(4, 14))[..., None]
    return page


def ruled_lines(rng: np.random.Generator, page: np.ndarray, surface: Surface) -> None:
    """Draw notebook rules (and sometimes a margin, or a squared grid) in place.

    Printed rules are faint next to ink: a light blue or grey about 10-30% darker than
    the paper, one or two pixels wide, as on real stationery."""
    h, w = page.shape[:2]
    darker = rng.uniform(0.10, 0.30)
    colour = surface.background * (1.0 - darker)
    colour[0] = min(float(surface.background[0]), float(colour[0]) + 25)  # bluish
    grid = rng.random() < 0.35
    step = rng.uniform(14, 32) if grid else rng.uniform(26, 60)
    offset = rng.uniform(0, step)
    thickness = int(rng.integers(1, 3))
    y = offset
    while y < h:
        cv2.line(page, (0, int(y)), (w, int(y)), colour.tolist(), thickness, cv2.LINE_AA)
        y += step
    if grid:
        x = rng.uniform(0, step)
        while x < w:
            cv2.line(page, (int(x), 0), (int(x), h), colour.tolist(), thickness, cv2.LINE_AA)
            x += step
    elif rng.random() < 0.5:  # a red margin
        x = int(rng.uniform(0.05, 0.2) * w)
        red = surface.background * np.array([0.75, 0.75, 0.98], np.float32)
        cv2.line(page, (x, 0), (x, h), red.tolist(), thickness, cv2.LINE_AA)


def specks(rng: np.random.Generator, page: np.ndarray, surface: Surface, count: int) -> None:
    """Scatter ``count`` dust specks and dots (radius up to 2.5 px) in place."""
    h, w = page.shape[:2]
    for _ in range(count):
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        radius = float(rng.uniform(0.5, 2.5))
        strength = rng.uniform(0.3, 1.0)
        colour = surface.background + strength * (surface.ink - surface.background)
        cv2.circle(page, centre, max(1, round(radius)), colour.tolist(), -1, cv2.LINE_AA)


def lighting(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A multiplicative light field float32 ``shape`` in about [0.35, 1.05]: a gradient
    across the frame (a lamp to one side), vignetting, and often a soft shadow edge (a
    hand or a phone over the page)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx / w - 0.5) + np.sin(angle) * (yy / h - 0.5))
    light = 1.0 - rng.uniform(0.0, 0.4) * (ramp + 0.5)
    r2 = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) / 0.5
    light *= 1.0 - rng.uniform(0.0, 0.25) * r2
    if rng.random() < 0.6:
        light *= shadow(rng, shape)
    return light.astype(np.float32)


def shadow(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A soft-edged shadow covering one side of a random line: float32 in [d, 1]."""
    h, w = shape
    mask = np.zeros(shape, np.float32)
    a, b = rng.uniform(0, 1, 2), rng.uniform(0, 1, 2)
    p1 = (int(a[0] * w), 0) if rng.random() < 0.5 else (0, int(a[1] * h))
    p2 = (int(b[0] * w), h) if rng.random() < 0.5 else (w, int(b[1] * h))
    corner = [(w, h), (w, 0)] if rng.random() < 0.5 else [(0, h), (0, 0)]
    cv2.fillPoly(mask, [np.array([p1, p2, *corner], np.int32)], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(6, 40))
    depth = rng.uniform(0.15, 0.5)
    return 1.0 - depth * mask


def perspective(rng: np.random.Generator, shape: tuple[int, int], amount: float) -> np.ndarray:
    """A homography (3, 3) float64 that moves each frame corner by up to ``amount`` of the
    frame size: a page held a little tilted in front of the camera."""
    h, w = shape
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    jitter = rng.uniform(-amount, amount, (4, 2)) * np.array([w, h], np.float32)
    return cv2.getPerspectiveTransform(src, (src + jitter).astype(np.float32))


def warp_points(points: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Map (K, 2) float32 points through a homography; returns (K, 2) float32."""
    if len(points) == 0:
        return points.reshape(0, 2).astype(np.float32)
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float32), homography).reshape(-1, 2)


def camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Lens blur (sometimes motion blur), sensor noise and JPEG compression: float32 BGR
    in, uint8 BGR out, as a webcam delivers it."""
    sigma = rng.uniform(0.3, 1.3)
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    if rng.random() < 0.2:
        length = int(rng.integers(3, 7))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        image = cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6))
    noise = rng.standard_normal(image.shape).astype(np.float32) * rng.uniform(1.5, 7.0)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    quality = int(rng.integers(35, 92))
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always has a JPEG codec
        return image
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)
