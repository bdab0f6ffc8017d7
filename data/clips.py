"""Generated clips of sheets held up to a webcam, with the truth for every frame (issue 21).

For the tracker's tests and benchmark. Each clip shows sheets drawn by
:class:`~digitvae.data.frames.FrameGenerator` (MNIST **test** digits), moved frame by frame
as a sheet in a hand moves, with fresh sensor noise in every frame:

* ``drift``: the sheet wanders slowly (up to ``DRIFT`` pixels and ``DRIFT_DEG`` degrees), with a tremor;
* ``shake``: a shaky hand: up to ``SHAKE`` pixels and ``SHAKE_DEG`` degrees, every frame anew;
* ``hand``: a tremor, and a hand passing in front of the sheet once, hiding digits as it goes;
* ``cut``: a tremor, and a new sheet every ``hold`` frames (a scene cut; every fourth a chalkboard);
* ``sample``: the demo's sample clip (:func:`~digitvae.data.frames.sample_clip`), frame for frame.

The truth of a frame: every digit of its sheet, its box moved with the sheet, and its view:
``SEEN`` (inside the frame and uncovered), ``PARTLY`` (partly under the hand or cut by the
frame's edge: a reader may read it or not) or ``HIDDEN`` (under the hand, or out of view).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from .frames import Frame, FrameGenerator
from .paper import Box, cv2, smooth_noise

KINDS: Final = ("drift", "shake", "hand", "cut", "sample")
SEEN: Final = "seen"
PARTLY: Final = "partly"
HIDDEN: Final = "hidden"
DRIFT: Final = 12.0  # pixels: how far a slowly drifting sheet wanders from where it started
DRIFT_DEG: Final = 1.0
SHAKE: Final = 3.5  # pixels, each frame: a trembling hand
SHAKE_DEG: Final = 1.0
TREMOR: Final = 1.0  # pixels, each frame, in every kind but shake
NOISE: Final = 2.0  # sensor noise added to every frame (standard deviation, grey levels)
HOLD: Final = 25  # frames per sheet in the ``cut`` kind
EDGE: Final = 2  # pixels: a box this close to the frame's edge is cut by it
#: Shares of a digit's box under the hand: up to COVER_SEEN it is seen, from COVER_HIDDEN
#: on hidden (nothing of it left to read), in between partly seen.
COVER_SEEN: Final = 0.02
COVER_HIDDEN: Final = 0.9
SKIN: Final = ((150, 180, 225), (95, 125, 175), (60, 80, 120))  # BGR: light, medium, dark skin
SAMPLE_HOLD: Final = 20  # frames per sheet of the sample clip (frames.sample_clip's default)


@dataclass(frozen=True)
class ClipFrame:
    """One frame of a clip and its truth, in the sheet's reading order: ``image`` uint8
    BGR; ``boxes`` (x, y, w, h) frame pixels; ``views`` SEEN, PARTLY or HIDDEN per digit;
    ``sheet`` counts the sheets shown so far (it changes at a scene cut)."""

    image: np.ndarray
    digits: tuple[int, ...]
    boxes: tuple[Box, ...]
    lines: tuple[int, ...]
    views: tuple[str, ...]
    sheet: int

    @property
    def truth(self) -> tuple[int, tuple[str, ...]]:
        """What a steady reading should follow: the sheet and what of it is in view."""
        return self.sheet, self.views


def held_clip(kind: str, n_frames: int, seed: int = 0, *, generator: FrameGenerator | None = None,
              hold: int = HOLD) -> Iterator[ClipFrame]:
    """``n_frames`` frames of a held sheet of the given ``kind`` (see :data:`KINDS`), seeded.
    Sheets come from ``generator`` when given, else from MNIST's test set with ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    for name, value in (("n_frames", n_frames), ("hold", hold)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    gen = generator if generator is not None else FrameGenerator.from_mnist(seed)
    if kind == "sample":
        return _sample(gen, n_frames, seed)
    return _held(gen, kind, n_frames, seed, hold)


def _held(gen: FrameGenerator, kind: str, n_frames: int, seed: int, hold: int) -> Iterator[ClipFrame]:
    rng = np.random.default_rng([seed, 21, KINDS.index(kind)])
    first = 1000 * (KINDS.index(kind) + 1)  # each kind its own sheets
    w, h = gen.size
    path = _drift_path(rng, n_frames) if kind == "drift" else None
    hand = _Hand(rng, (h, w), n_frames) if kind == "hand" else None
    sheet, page = 0, gen.frame(index=first)
    for k in range(n_frames):
        if kind == "cut" and k and k % hold == 0:
            sheet += 1
            page = gen.frame(index=first + sheet, light_ink=sheet % 4 == 3)
        if kind == "shake":
            angle, shift = rng.uniform(-SHAKE_DEG, SHAKE_DEG), rng.uniform(-SHAKE, SHAKE, 2)
        else:
            angle, shift = rng.uniform(-0.2, 0.2), rng.uniform(-TREMOR, TREMOR, 2)
            if path is not None:
                angle, shift = angle + path[k, 2], shift + path[k, :2]
        m = _motion((h, w), angle, shift)
        cover = hand.draw(k) if hand is not None else None
        image = _move(rng, page.image, m, cover)
        yield _truth(image, page, m, cover[0] if cover is not None else None, sheet)


def _sample(gen: FrameGenerator, n_frames: int, seed: int) -> Iterator[ClipFrame]:
    """frames.sample_clip with its truth: the same random draws in the same order."""
    rng = np.random.default_rng([seed, 1 << 20])
    w, h = gen.size
    page = None
    for k in range(n_frames):
        if k % SAMPLE_HOLD == 0:
            page = gen.frame(index=k // SAMPLE_HOLD, light_ink=(k // SAMPLE_HOLD) % 4 == 3)
        assert page is not None
        m = _motion((h, w), rng.uniform(-0.8, 0.8), rng.uniform(-2.5, 2.5, 2))
        yield _truth(_move(rng, page.image, m, None), page, m, None, k // SAMPLE_HOLD)


def _drift_path(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """(n_frames, 3) x shift, y shift (pixels) and turn (degrees): two slow waves each,
    of random phase, periods of 3 to 8 seconds at 20 frames a second."""
    t = np.arange(n_frames, dtype=np.float64)[:, None]
    periods = rng.uniform(60, 160, (2, 3))
    phases = rng.uniform(0, 2 * np.pi, (2, 3))
    waves = np.sin(2 * np.pi * t / periods[0] + phases[0]) + np.sin(2 * np.pi * t / periods[1] + phases[1])
    return waves / 2 * np.array([DRIFT, DRIFT, DRIFT_DEG])


def _motion(shape: tuple[int, int], angle: float, shift: np.ndarray) -> np.ndarray:
    """The sheet's move as a 2x3 affine map: turned about the frame's centre, then shifted."""
    h, w = shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(angle), 1.0)
    m[:, 2] += shift
    return m


def _move(rng: np.random.Generator, image: np.ndarray, m: np.ndarray,
          cover: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """The sheet moved by ``m``, the hand (alpha, colour) over it, fresh noise: uint8 BGR."""
    h, w = image.shape[:2]
    moved = cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT101)
    if cover is not None:
        alpha, colour = cover
        moved = (moved * (1 - alpha[..., None]) + colour * alpha[..., None]).astype(np.float32)
    noise = rng.normal(0, NOISE, moved.shape).astype(np.float32)
    return np.clip(moved.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _truth(image: np.ndarray, page: Frame, m: np.ndarray, alpha: np.ndarray | None, sheet: int) -> ClipFrame:
    boxes = tuple(_moved_box(b, m) for b in page.boxes)
    views = tuple(_view(b, image.shape[:2], alpha) for b in boxes)
    return ClipFrame(image, page.digits, boxes, page.lines, views, sheet)


def _moved_box(box: Box, m: np.ndarray) -> Box:
    """The box around a box's four corners moved by the affine map ``m``."""
    x, y, w, h = box
    corners = np.array([[x, y, 1], [x + w, y, 1], [x + w, y + h, 1], [x, y + h, 1]], np.float64) @ m.T
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _view(box: Box, shape: tuple[int, ...], alpha: np.ndarray | None) -> str:
    x, y, w, h = box
    inside = (max(x, 0), max(y, 0), min(x + w, shape[1]), min(y + h, shape[0]))
    if inside[2] <= inside[0] or inside[3] <= inside[1]:
        return HIDDEN
    cut = x < EDGE or y < EDGE or x + w > shape[1] - EDGE or y + h > shape[0] - EDGE
    covered = 0.0
    if alpha is not None:
        covered = float((alpha[inside[1]:inside[3], inside[0]:inside[2]] > 0.5).sum()) / max(w * h, 1)
    if covered >= COVER_HIDDEN:
        return HIDDEN
    return PARTLY if cut or covered > COVER_SEEN else SEEN


class _Hand:
    """A hand (palm, four fingers and a thumb, the forearm out of view) that crosses the
    frame once, in a straight line from one side to the other, during the clip's middle."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], n_frames: int) -> None:
        h, w = shape
        self.shape = shape
        self.colour = np.array(SKIN[int(rng.integers(len(SKIN)))], np.float32) * rng.uniform(0.85, 1.1)
        self.shade = 1.0 + 0.06 * smooth_noise(rng, shape, cell=40.0)
        self.size = rng.uniform(0.8, 1.15) * h / 480
        from_left = rng.random() < 0.5
        y = rng.uniform(0.3, 0.7) * h
        self.start = np.array([-0.25 * w if from_left else 1.25 * w, y + rng.uniform(-60, 60)])
        self.end = np.array([1.25 * w if from_left else -0.25 * w, y + rng.uniform(-60, 60)])
        self.first, self.frames = n_frames // 4, max(n_frames // 2, 1)
        self.arm = -1.0 if from_left else 1.0  # the forearm trails behind, out of the frame

    def draw(self, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(alpha float32 (h, w) in [0, 1], colour per pixel (h, w, 3)) at frame ``k``, or
        None while the hand is out of view."""
        t = (k - self.first) / self.frames
        if not 0.0 <= t <= 1.0:
            return None
        cx, cy = self.start + t * (self.end - self.start)
        s = self.size
        mask = np.zeros(self.shape, np.float32)
        palm = (int(cx), int(cy))
        cv2.ellipse(mask, palm, (int(55 * s), int(65 * s)), 0, 0, 360, 1.0, -1)
        for i, angle in enumerate((-30, -10, 10, 30)):  # fingers fan out ahead of the palm
            a = np.radians(angle)
            tip = (int(cx - self.arm * 120 * s * np.cos(a)), int(cy + 120 * s * np.sin(a) - 15 * s))
            cv2.line(mask, palm, tip, 1.0, int((24 - 2 * i) * s))
        thumb = (int(cx - self.arm * 40 * s), int(cy + 85 * s))
        cv2.line(mask, palm, thumb, 1.0, int(26 * s))
        cv2.line(mask, palm, (int(cx + self.arm * 600 * s), int(cy + 60 * s)), 1.0, int(100 * s))
        alpha = cv2.GaussianBlur(mask, (0, 0), 1.5)
        return alpha, self.colour * self.shade[..., None]
