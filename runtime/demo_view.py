"""What the demo window shows (OpenCV drawing; no model calls except in :func:`panel_images`).

The canvas: the frame (scaled to ``WIDTH``) with a box and "digit probability" on every
digit (a thin box where a tracked digit is held through a frame the reader missed it in),
a red "not a digit" box on what the model rejects, and the frames per second (the
camera's and the reader's); under it, one strip per read digit (the first few): the crop
the model saw, its reconstruction, and the same handwriting re-drawn as 0-9 (a tracked
digit keeps its handwriting while its track lives); last, a row of 0-9 in a random style
(key g draws a new one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Sequence

import numpy as np

from .frame_input import display_image
from .optional import require
from .spec import IMAGE_SIZE, NUM_CLASSES

cv2 = require("cv2", "drawing the demo window")

WIDTH: Final = 640  # pixels: frames are shown at this width
TILE: Final = 44  # pixels per 28x28 image in the strips
LABEL: Final = 64  # pixels of text left of each strip
GAP: Final = 4
GREEN: Final = (60, 200, 60)
RED: Final = (40, 40, 230)
WHITE: Final = (255, 255, 255)
FONT: Final = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Panel:
    """The model's pictures for the strips: float32 images in [0, 1], shapes (K, 28, 28)
    crops and reconstructions, (K, 10, 28, 28) restyles, (10, 28, 28) random style."""

    digits: list[int]
    crops: np.ndarray
    reconstructions: np.ndarray
    restyles: np.ndarray
    random_style: np.ndarray


def strip_digits(detections: Sequence[Any], strips: int) -> list[Any]:
    """The digits that get a strip: the ``strips`` most confident ones, in reading order."""
    read = [d for d in detections if d.is_digit]
    best = sorted(range(len(read)), key=lambda i: -read[i].probability)[:strips]
    return [read[i] for i in sorted(best)]


def panel_images(vae: Any, detections: Sequence[Any], strips: int, style_seed: int,
                 styles: dict[int, np.ndarray] | None = None) -> Panel:
    """One encoder call and one decoder call for all strips: reconstructions (with the
    digit as read), each handwriting as 0-9, and 0-9 in a random style. ``styles``: track
    id -> latent style; a tracked digit is re-drawn in the style kept there (the one of its
    first strip, added here), so that its re-drawing does not change from frame to frame."""
    read = strip_digits(detections, strips)
    z_random = vae.sample_latents(1, style_seed)
    ten = np.arange(NUM_CLASSES)
    if not read:
        return Panel([], np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32),
                     np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32),
                     np.zeros((0, NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE), np.float32),
                     vae.decode(np.repeat(z_random, NUM_CLASSES, axis=0), ten))
    crops = np.stack([d.crop for d in read]).astype(np.float32)
    digits = [d.digit for d in read]
    mu, _ = vae.encode(crops)
    k = len(read)
    style = _kept_styles(read, mu, styles)
    z = np.concatenate([mu, np.repeat(style, NUM_CLASSES, axis=0), np.repeat(z_random, NUM_CLASSES, axis=0)])
    wanted = np.concatenate([np.array(digits), np.tile(ten, k), ten])
    images = vae.decode(z.astype(np.float32), wanted)
    return Panel(digits, crops, images[:k], images[k:k + k * NUM_CLASSES].reshape(k, NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE),
                 images[k + k * NUM_CLASSES:])


def _kept_styles(read: Sequence[Any], mu: np.ndarray, styles: dict[int, np.ndarray] | None) -> np.ndarray:
    """Each strip's style: its track's kept one where it has one (a new track keeps this
    frame's), else this frame's encoding."""
    if styles is None:
        return mu
    out = mu.copy()
    for i, d in enumerate(read):
        track = getattr(d, "track_id", None)
        if track is not None:
            out[i] = styles.setdefault(track, mu[i].copy())
    return out


def render(frame: np.ndarray, detections: Sequence[Any], panel: Panel | None, fps: float | None,
           note: str = "", strips: int = 3, camera_fps: float | None = None) -> np.ndarray:
    """The whole window as one uint8 BGR image: the annotated frame over the strips.
    ``fps``: frames read per second; ``camera_fps``: frames a camera delivers per second."""
    view, scale = _scaled(display_image(frame))
    for d in detections:
        _draw_detection(view, d, scale)
    for k, d in enumerate(strip_digits(detections, strips)):  # tie boxes to their strips
        x, y, w, h = (int(round(v * scale)) for v in d.box)
        _label(view, f"#{k + 1}", (x + w + 3, y + h), WHITE, 0.4)
    _draw_status(view, fps, camera_fps, note, sum(1 for d in detections if d.is_digit), len(detections))
    return np.vstack([view, _strips(panel, strips)])


def _scaled(image: np.ndarray) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = WIDTH / w
    if scale == 1.0:
        return image.copy(), 1.0
    size = (WIDTH, max(1, round(h * scale)))
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=method), scale


def _draw_detection(view: np.ndarray, d: Any, scale: float) -> None:
    x, y, w, h = (int(round(v * scale)) for v in d.box)
    colour = GREEN if d.is_digit else RED
    cv2.rectangle(view, (x, y), (x + w, y + h), colour, 1 if getattr(d, "missed", 0) else 2)
    # Small boxes sit close together: their labels keep to the digit, so as not to overlap.
    wide = w >= 36
    text = (f"{d.digit} {d.probability:.0%}" if wide else str(d.digit)) if d.is_digit else \
        ("not a digit" if wide else "?")
    if not d.is_digit:  # a cross through what the model rejects
        cv2.line(view, (x, y), (x + w, y + h), colour, 1, cv2.LINE_AA)
        cv2.line(view, (x + w, y), (x, y + h), colour, 1, cv2.LINE_AA)
    _label(view, text, (x, max(14, y - 5)), colour, 0.42)


def _label(view: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int],
           size: float = 0.5) -> None:
    """Text with a dark backing, readable on any frame."""
    (tw, th), base = cv2.getTextSize(text, FONT, size, 1)
    x, y = origin
    cv2.rectangle(view, (x - 1, y - th - 3), (x + tw + 2, y + base - 1), (0, 0, 0), -1)
    cv2.putText(view, text, (x, y - 1), FONT, size, colour, 1, cv2.LINE_AA)


def _draw_status(view: np.ndarray, fps: float | None, camera_fps: float | None, note: str, digits: int,
                 candidates: int) -> None:
    status = f"camera {camera_fps:4.1f} fps  " if camera_fps else ""
    status += (f"read {fps:4.1f} fps  " if camera_fps else f"{fps:4.1f} fps  ") if fps else ""
    status += f"{digits} digit{'s' if digits != 1 else ''}"
    if candidates > digits:
        status += f", {candidates - digits} rejected"
    _label(view, status, (6, 20), WHITE, 0.55)
    if note:
        _label(view, note[:90], (6, view.shape[0] - 8), (0, 200, 255), 0.45)


def _strips(panel: Panel | None, strips: int) -> np.ndarray:
    """Rows of tiles: "#k d | crop | reconstruction | 0 ... 9", then the random style."""
    row_h = TILE + GAP
    out = np.full((GAP + (strips + 1) * row_h + 18, WIDTH, 3), 32, np.uint8)
    header = "digit   seen  recon   re-drawn as 0-9 in the same handwriting"
    cv2.putText(out, header, (6, 13), FONT, 0.4, WHITE, 1, cv2.LINE_AA)
    top = 18
    if panel is not None:
        for k in range(min(strips, len(panel.digits))):
            tiles = [panel.crops[k], panel.reconstructions[k], *panel.restyles[k]]
            _row(out, top + k * row_h, f"#{k + 1}: {panel.digits[k]}", tiles)
        _row(out, top + strips * row_h, "a random style (key g)", [None, None, *panel.random_style])
    return out


def _row(out: np.ndarray, y: int, label: str, tiles: list[np.ndarray | None]) -> None:
    """Label, then the tiles; a None tile is left empty (keeps the 0-9 columns aligned)."""
    cv2.putText(out, label, (6, y + TILE // 2 + 5), FONT, 0.45, WHITE, 1, cv2.LINE_AA)
    x = LABEL
    for i, image in enumerate(tiles):
        if x + TILE > out.shape[1]:
            break
        if image is None:
            x += TILE + 1
            continue
        tile = cv2.resize(np.clip(image, 0, 1), (TILE, TILE), interpolation=cv2.INTER_LINEAR)
        out[y:y + TILE, x:x + TILE] = (tile * 255 + 0.5).astype(np.uint8)[..., None]
        x += TILE + (GAP * 2 if i == 1 else 1)  # a wider seam after the reconstruction
