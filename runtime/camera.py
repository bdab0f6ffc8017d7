"""Read handwritten digits in camera frames: ``DigitReader(vae).read(frame)`` (OpenCV).

A frame (BGR or gray, any size and depth, see :mod:`.frame_input`) goes through the image
work of :mod:`.segment` (where the digits are) and :mod:`.crops` (each one normalised as
MNIST was), then *all* crops of the frame go to the model in one batch, and come back as
:class:`Detection` objects in reading order.

    from digitvae.runtime import DigitVAE
    from digitvae.runtime.camera import DigitReader
    reader = DigitReader(DigitVAE.load())
    for d in reader.read(frame):
        print(d.line, d.digit, f"{d.probability:.2f}", d.is_digit, d.box)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np

from . import crops, ink, page, segment
from .frame_input import to_gray
from .model import Assessment
from .novelty import GATES as ALL_GATES, SHAPE_MARGIN, Thresholds, oddness
from .segment import Box
from .spec import IMAGE_SIZE

MAX_SIDE: Final = 1280  # frames larger than this are read shrunk (bounded time)
MIN_HEIGHT: Final = 14  # pixels of the (shrunk) frame: smaller ink is specks or text
MAX_HEIGHT_SHARE: Final = 0.95  # a digit can fill almost the whole frame height
MAX_DIGITS: Final = 64  # candidates per frame sent to the model, largest first
#: The is-digit gates the reader applies: all but the detached-dot one. On camera a dot by
#: a digit is far more often a speck, or a piece the threshold cut off, than punctuation.
GATES: Final = tuple(gate for gate in ALL_GATES if gate != "dot")
#: Stretches of ruled and grid lines that came out as dark as ink (see :func:`_line_stretch`):
#: a candidate's strokes "run on" past one of its sides when, beyond that side and for half
#: the candidate's extent, the columns (or rows) where its own ink touches that side hold ink
#: of at least RUN_SHARE of its core contrast at RUN_ROWS of the steps away from it.
RUN_ASPECT: Final = 3.0  # a thin candidate (this many times as tall as wide) is a line when it runs on above and below
RUN_SHARE: Final = 0.5
RUN_ROWS: Final = 0.9
LINE_SIDES: Final = 3  # any other candidate is a line crossing (a T or a +) when it runs on past this many sides
EDGE_ROWS: Final = 3  # fewer rows of frame than this beyond a box cannot tell whether a line runs on
#: A thin candidate's line may lean up to this slope (a page turned 15 degrees): its run-on
#: is looked for that far to either side of the columns it touches.
LEAN: Final = float(np.tan(np.radians(15)))
#: A piece of ink that touches the frame's edge is cut by it (see :func:`_cut_off`) unless it
#: is at least this share of the frame's height: then the frame is a photo of that digit.
CUT_OFF_SHARE: Final = 0.5
CUT_OFF_PIXELS: Final = 2  # ink this close to the edge touches it (the ink map may lose the last rows)
#: A crop the classifier doubts but whose profile looks like an MNIST digit is read again
#: drawn with a bolder pen (training's thicker pen); if it reads as the same digit, the mean
#: of the two readings judges it. Camera strokes are often thinner than MNIST's.
SECOND_LOOK: Final = True


@dataclass(frozen=True)
class Detection:
    """One candidate digit in a frame.

    ``box`` (x, y, w, h) in frame pixels; ``crop`` float32 (28, 28) in [0, 1], MNIST
    normalised; ``digit`` 0-9 and its ``probability``; ``is_digit`` False when the model
    rejects the crop as not a digit at all; ``line`` the text line, from 0 at the top.
    """

    box: Box
    crop: np.ndarray
    digit: int
    probability: float
    is_digit: bool
    line: int


@dataclass(frozen=True)
class Candidates:
    """The image work's result for one frame, in reading order: boxes in frame pixels,
    crops float32 (N, 28, 28), line numbers, and whether the ink was light on dark."""

    boxes: list[Box]
    crops: np.ndarray
    lines: list[int]
    light_ink: bool


class DigitModel(Protocol):
    """What the reader needs of a model (``DigitVAE`` has it)."""

    def classify(self, images: Any) -> np.ndarray: ...

    def is_digit(self, images: Any) -> np.ndarray: ...


class DigitReader:
    """Finds, normalises and reads every digit in a camera frame."""

    def __init__(self, vae: DigitModel, *, max_side: int = MAX_SIDE, min_height: int = MIN_HEIGHT,
                 max_digits: int = MAX_DIGITS) -> None:
        """``vae``: a ``DigitVAE`` (or anything with ``classify`` and ``is_digit``; an
        ``assess(images, gates=...)`` method, when present, does both in one pass). ``max_side``: frames
        are shrunk to at most this many pixels per side first; ``min_height``: smallest
        digit height in pixels (of the shrunk frame); ``max_digits``: at most this many
        candidates per frame, the largest, go to the model."""
        for name, value in (("max_side", max_side), ("min_height", min_height), ("max_digits", max_digits)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        self.vae, self.max_side, self.min_height, self.max_digits = vae, max_side, min_height, max_digits

    def read(self, frame: Any) -> list[Detection]:
        """A BGR or gray frame -> the digits in it, in reading order (lines top to
        bottom, left to right). An empty page (or a frame too small to hold a digit)
        gives []; a frame that is not an image raises ``TypeError``/``ValueError``."""
        found = self.locate(frame)
        if not found.boxes:
            return []
        probabilities, accepted = self.judge(found.crops)
        return [
            Detection(box=box, crop=crop, digit=int(p.argmax()), probability=float(p.max()),
                      is_digit=bool(ok), line=line)
            for box, crop, p, ok, line in zip(found.boxes, found.crops, probabilities, accepted, found.lines)
        ]

    def locate(self, frame: Any) -> Candidates:
        """The image work alone: where the candidate digits are and their MNIST crops."""
        gray, scale = to_gray(frame, self.max_side)
        empty = Candidates([], np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32), [], False)
        if gray.shape == (IMAGE_SIZE, IMAGE_SIZE):
            return _as_mnist_crop(gray)
        if min(gray.shape) < self.min_height:
            return empty
        corners = page.find_page(gray)
        sheet = None
        if corners is not None:
            gray, sheet = page.flatten(gray, corners)
        inked = ink.ink_map(gray)
        max_height = int(MAX_HEIGHT_SHARE * gray.shape[0])
        strokes = ink.find_strokes(inked.contrast, self.min_height, max_height)
        in_view = [p for p in strokes.pieces if not _cut_off(p.box, gray.shape)]
        groups = segment.group_digits(in_view, self.min_height, max_height)
        kept = self._crops(inked.contrast, strokes.binary, groups)
        if not kept:
            return Candidates([], empty.crops, [], inked.light_ink)
        order = segment.reading_order([box for box, _ in kept])
        boxes = [_to_frame(kept[i][0] if sheet is None else sheet.to_frame(kept[i][0]), scale) for i, _ in order]
        stack = np.stack([kept[i][1] for i, _ in order])
        return Candidates(boxes, stack, [line for _, line in order], inked.light_ink)

    def judge(self, crops_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crops float32 (N, 28, 28) -> (probabilities (N, 10), is_digit (N,) bool), from
        one batch through the model, and one more through the classifier for the crops it
        rejects that look like digits (see ``SECOND_LOOK``), where the model exposes its
        verdict and thresholds."""
        assess = getattr(self.vae, "assess", None)
        if not callable(assess):
            return np.asarray(self.vae.classify(crops_)), np.asarray(self.vae.is_digit(crops_), dtype=bool)
        verdict = assess(crops_, gates=GATES)
        probabilities = np.array(verdict.probabilities)
        accepted = np.array(verdict.is_digit, dtype=bool)
        thresholds = getattr(self.vae, "thresholds", None)
        if SECOND_LOOK and thresholds is not None:
            self._second_look(crops_, verdict, thresholds, probabilities, accepted)
        return probabilities, accepted

    def _second_look(self, crops_: np.ndarray, verdict: Assessment, thresholds: Thresholds,
                     probabilities: np.ndarray, accepted: np.ndarray) -> None:
        """Update ``probabilities`` and ``accepted`` in place for the crops that are read
        again (see ``SECOND_LOOK``): rejected, looking like an MNIST digit (the profile
        passes without the camera's margin), and read as the same digit drawn bolder."""
        rejected = np.flatnonzero(~accepted)
        doubted = rejected[np.asarray(verdict.tests["profile"])[rejected] <= 1.0 / SHAPE_MARGIN]
        if not len(doubted):
            return
        bolder = np.asarray(self.vae.classify(crops.bolder(crops_[doubted])))
        again = bolder.argmax(axis=1) == probabilities[doubted].argmax(axis=1)
        if not again.any():
            return
        confirmed = doubted[again]
        mean = (probabilities[confirmed] + bolder[again]) / 2
        probabilities[confirmed] = mean
        accepted[confirmed] = oddness(thresholds, np.asarray(verdict.score)[confirmed], mean, crops_[confirmed], GATES) <= 1.0

    def _crops(self, contrast: np.ndarray, binary: np.ndarray, groups: list[segment.Group]
               ) -> list[tuple[Box, np.ndarray]]:
        """(tight box, normalised crop) of the groups whose ink is strong enough, at most
        ``max_digits`` of them, the largest first."""
        groups = sorted(groups, key=lambda g: -g.box[2] * g.box[3])
        masks = [segment.group_mask(group, binary) for group in groups]
        regions = [contrast[y:y + h, x:x + w] for (x, y, w, h), _ in masks]
        strengths = [crops.ink_strength(region, strokes) for region, (_, strokes) in zip(regions, masks)]
        least = crops.required_peak([peak for _, peak in strengths])
        out = []
        for (box, strokes), region, (core, peak) in zip(masks, regions, strengths):
            if peak < least or box[3] < self.min_height:
                continue  # faint (a rule, a smudge, a shadow edge), or only specks
            if _line_stretch(contrast, box, strokes, core):
                continue  # a piece of a ruled or grid line
            out.append((box, crops.mnist_crop(crops.ink_levels(region, strokes, core))))
            if len(out) == self.max_digits:
                break
        return out


def _as_mnist_crop(gray: np.ndarray) -> Candidates:
    """A 28x28 frame is an MNIST-style crop already: taken as it is (white ink on black,
    inverted when it is dark ink on light), not normalised a second time, which would
    only blur it. A crop without ink gives no candidate."""
    light = ink.ink_map(gray).light_ink
    crop = (gray if light else 255 - gray).astype(np.float32) / 255.0
    if crop.max() < crops.MIN_PEAK / 255.0:
        return Candidates([], np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32), [], light)
    return Candidates([(0, 0, IMAGE_SIZE, IMAGE_SIZE)], crop[None], [0], light)


def _line_stretch(contrast: np.ndarray, box: Box, strokes: np.ndarray, core: float) -> bool:
    """A stretch of a grid's or margin's lines that came out darker than the rest: its
    strokes run on, fainter, past both ends of a thin upright stroke (a "1" ends where it
    ends), or past three sides of a T or a + where lines cross (a digit's strokes seldom run
    on past more than two)."""
    x, y, w, h = box
    level = RUN_SHARE * core
    if h >= RUN_ASPECT * w and all(_runs_past(contrast, strokes, box, side, level, LEAN) for side in (True, False)):
        return True
    above, below = _runs_past(contrast, strokes, box, True, level), _runs_past(contrast, strokes, box, False, level)
    if above + below + 2 < LINE_SIDES:
        return False  # the left and right sides cannot make up the count
    across = (contrast.T, strokes.T, (y, x, h, w))
    return above + below + _runs_past(*across, True, level) + _runs_past(*across, False, level) >= LINE_SIDES


def _runs_past(contrast: np.ndarray, strokes: np.ndarray, box: Box, above: bool, level: float,
               lean: float = 0.0) -> bool:
    """Does ink of at least ``level`` run on above (or below) the box, from its edge and for
    half its height (or to the frame's edge), over the columns where the candidate's own
    strokes (bool mask of the box) touch its top (or bottom) row? Right at the frame's edge
    there is nothing to tell: no."""
    x, y, _, h = box
    # Half the box's height, or up to the frame's edge where that comes first: a line cut
    # by the edge runs on as far as the frame shows it.
    start = max(0, y - max(3, h // 2)) if above else y + h
    reach = y - start if above else min(max(3, h // 2), contrast.shape[0] - start)
    if reach < EDGE_ROWS:
        return False  # nothing to tell
    touching = np.flatnonzero(strokes[0] if above else strokes[-1])  # never empty: the box is tight
    # A line that runs on may lean (``lean``: its slope off the box's axis), and a thin one
    # soon leaves the columns it touches: look as far to either side as it can go.
    aside = int(np.ceil(lean * reach))
    first, last = max(0, x + int(touching[0]) - aside), x + int(touching[-1]) + 1 + aside
    # Most candidates end in paper: the row next to the edge tells, before the strip, at its
    # middle column (or anywhere a leaning line may be).
    near = contrast[start + reach - 1 if above else start]
    if (near[first:last].max() if aside else near[x + (int(touching[0]) + int(touching[-1])) // 2]) < level:
        return False
    strip = contrast[start:start + reach, first:last]
    return int(np.count_nonzero(strip.max(axis=1) >= level)) >= RUN_ROWS * reach


def _cut_off(box: Box, shape: tuple[int, ...]) -> bool:
    """Is this piece of ink (a connected stroke) cut by the frame's edge? Then part of it is
    out of view and what is left may read as another digit (half an 8 is a 0, the end of a
    grid line a 1): it is not read until it is in view. Pieces, not grouped digits, are
    tested, so that a digit whose group would take in a stub at the edge is still read.
    One that fills much of the frame is what the photo shows."""
    x, y, w, h = box
    near = CUT_OFF_PIXELS
    touches = min(x, y) <= near or x + w >= shape[1] - near or y + h >= shape[0] - near
    return touches and h < CUT_OFF_SHARE * shape[0]


def _to_frame(box: Box, scale: float) -> Box:
    """A box in (possibly shrunk) working pixels -> frame pixels."""
    if scale == 1.0:
        return box
    x, y, w, h = box
    return (int(round(x / scale)), int(round(y / scale)), max(1, int(round(w / scale))),
            max(1, int(round(h / scale))))


class _NoModel:
    """Stands in for a model where only the image work is wanted."""

    def classify(self, images: Any) -> np.ndarray:
        raise TypeError("this reader has no model: it only locates digits")

    is_digit = classify


def digit_crop(image: Any) -> np.ndarray | None:
    """An image of one digit (BGR or gray, any size) -> its MNIST-normalised float32
    (28, 28) crop, as the reader would crop it: the candidate nearest the image's centre.
    None when the image holds no ink the reader takes for a candidate."""
    found = DigitReader(_NoModel()).locate(image)
    if not found.boxes:
        return None
    h, w = np.asarray(image).shape[:2]
    nearest = min(range(len(found.boxes)), key=lambda i: (found.boxes[i][0] + found.boxes[i][2] / 2 - w / 2) ** 2
                  + (found.boxes[i][1] + found.boxes[i][3] / 2 - h / 2) ** 2)
    return found.crops[nearest]
