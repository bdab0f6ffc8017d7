"""Read handwritten digits in camera frames: ``DigitReader(vae).read(frame)`` (OpenCV).

A frame (BGR or gray, any size and depth, see :mod:`.frame_input`) goes through the
stages of the image work, each taking the last one's output: :mod:`.page` (the sheet
found and flattened), :mod:`.ink` (the ink map), :mod:`.strokes` (its strokes),
:mod:`.segment` (strokes in view grouped into candidate digits) and :mod:`.crops` (the
candidates that are ink and not a stretch of line, each normalised as MNIST was). Where the
candidates' lines run at a slant, :mod:`.orient` turns the page level and those stages run
again on it. Then *all* crops of the frame go to the model in one batch, and come back as
:class:`Detection` objects in reading order; a candidate far taller than the digits the
model accepts on the page (a sheet's edge, a grid's frame) is rejected. Where the
candidates lie on their sides (a page a quarter turn off), the page is read a quarter turn
either way as well, and the model's clearly better reading is kept; so is the page's
reading unturned, where it was turned level and the model reads it clearly better as it is.

    from digitvae.runtime import DigitVAE
    from digitvae.runtime.camera import DigitReader
    reader = DigitReader(DigitVAE.load())
    for d in reader.read(frame):
        print(d.line, d.digit, f"{d.probability:.2f}", d.is_digit, d.box)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import numpy as np

from . import crops, ink, orient, page, segment, strokes
from .frame_input import to_gray
from .model import Assessment
from .novelty import GATES as ALL_GATES, SHAPE_MARGIN, Thresholds, oddness
from .segment import Box
from .spec import IMAGE_SIZE, NUM_CLASSES

MAX_SIDE: Final = 1280  # frames larger than this are read shrunk (bounded time)
MIN_HEIGHT: Final = 14  # pixels of the (shrunk) frame: smaller ink is specks or text
MAX_HEIGHT_SHARE: Final = 1.0  # a digit can fill the frame's height (a form field's tight crop)
MAX_DIGITS: Final = 128  # candidates per frame sent to the model, largest first: a whole sudoku and more
#: The is-digit gates the reader applies: all but the detached-dot one. On camera a dot by
#: a digit is far more often a speck, or a piece the threshold cut off, than punctuation.
GATES: Final = tuple(gate for gate in ALL_GATES if gate != "dot")
#: A crop the classifier doubts but whose profile looks like an MNIST digit is read again
#: drawn with a bolder pen (training's thicker pen); if it reads as the same digit, the mean
#: of the two readings judges it. Camera strokes are often thinner than MNIST's.
SECOND_LOOK: Final = True
#: A page whose candidates lie on their sides is read a quarter turn either way as well, and
#: taken turned where the model reads at least this many times the digit evidence there. A
#: page turned level is taken unturned after all on the same terms (scattered digits can
#: line up on a slant by chance, and a wrong turn loses the page), and levelled the other
#: way round, a quarter turn apart, too.
QUARTER_MARGIN: Final = 1.5
#: ... and so is a page whose candidates the model mostly rejects (it accepts under this
#: share of them): digits on their sides are mostly rejected, and where a textured surface
#: beside the page gives more candidates than the page, their shapes do not say sideways.
POOR_SHARE: Final = 0.5
#: Digits on one page are of a size: a candidate more than this many times as tall as the
#: median of the digits the model accepts in the frame (where it accepts at least
#: ``strokes.TYPICAL_COUNT``) is a sheet's edge, a box or a grid's frame, not a digit ...
MAX_SIZE_RATIO: Final = 3.0
#: ... and one less than this share as tall is a fragment of a stroke or the grain of the
#: surface beside the page (a sudoku's pencil digits stand two thirds of its printed ones).
MIN_SIZE_RATIO: Final = 0.4


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
    crops float32 (N, 28, 28), line numbers, heights as read (in pixels of the page turned
    upright and level, where a frame box's height can be a digit's width), whether the ink
    was light on dark, and whether the candidates lie on their sides
    (:func:`.orient.sideways`: the page may be a quarter turn off, which only the model can
    settle), and where the page was turned level, its candidates unturned (``unturned``:
    the model settles that too)."""

    boxes: list[Box]
    crops: np.ndarray
    lines: list[int]
    heights: list[int]
    light_ink: bool
    sideways: bool = False
    #: Where the lines were read turned level (:func:`.orient.level_turn`): the page's
    #: candidates as it is, for the model to weigh against the turned reading ...
    unturned: Candidates | None = None
    #: ... and turned level the other way, a quarter turn apart (:meth:`.orient.Turn.quarter`):
    #: lines are found modulo a quarter turn, and the shape of the candidates that chose
    #: between the two (:func:`.orient.sideways`) is outvoted where a textured surface beside
    #: the page gives more candidates than the page.
    crosswise: Candidates | None = None

    @classmethod
    def none(cls, light_ink: bool = False) -> Candidates:
        """No candidate at all."""
        return cls([], np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.float32), [], [], light_ink)


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
        probabilities, accepted = self._judge_page(found) if found.boxes else _NOTHING
        for other in (found.crosswise, found.unturned):  # a wrong turn loses the page: the model checks it
            if other is not None and other.boxes:
                reading = self._judge_page(other)
                if _clearer(reading, (probabilities, accepted)):
                    found, (probabilities, accepted) = other, reading
        if not found.boxes:
            return []
        if found.sideways or _poorly_read(accepted):  # read a quarter turn either way too: the model decides
            turned = [(other, self._judge_page(other)) for other in (self.locate(frame, q) for q in (1, -1))
                      if other.boxes]
            best = max(turned, key=lambda pair: _evidence(*pair[1]), default=None)
            if best is not None and _clearer(best[1], (probabilities, accepted)):
                found, (probabilities, accepted) = best
        return [
            Detection(box=box, crop=crop, digit=int(p.argmax()), probability=float(p.max()),
                      is_digit=bool(ok), line=line)
            for box, crop, p, ok, line in zip(found.boxes, found.crops, probabilities, accepted, found.lines)
        ]

    def locate(self, frame: Any, quarter: int = 0) -> Candidates:
        """The image work alone: where the candidate digits are and their MNIST crops.
        ``quarter``: a quarter turn of the page first, 1 counter-clockwise or -1 clockwise."""
        if quarter not in (-1, 0, 1) or isinstance(quarter, bool):
            raise ValueError(f"quarter: expected -1, 0 or 1 (quarter turns of the page), got {quarter!r}")
        gray, scale = to_gray(frame, self.max_side)
        if gray.shape == (IMAGE_SIZE, IMAGE_SIZE):
            return _as_mnist_crop(gray)
        if min(gray.shape) < self.min_height:
            return Candidates.none()
        corners = page.find_page(gray)
        sheet = None
        if corners is not None:
            gray, sheet = page.flatten(gray, corners)
        turns = [orient.Turn(gray.shape, 90.0 * quarter)] if quarter else []
        if turns:
            gray = turns[0].apply(gray)
        light, kept = self._candidates(gray)
        turn = orient.level_turn([box for box, _ in kept], gray.shape)
        as_it_is = _ordered(kept, light, turns, sheet, scale, quarter)
        if turn is None:
            return as_it_is
        # Lines at a slant: read again with the page turned level, both ways.
        light, kept = self._candidates(turn.apply(gray), light)
        other = turn.quarter()
        _, crosswise = self._candidates(other.apply(gray), light)
        if orient.sideways([box for box, _ in kept]):  # level, but the digits on their sides
            (turn, kept), (other, crosswise) = (other, crosswise), (turn, kept)
        return replace(_ordered(kept, light, [turn, *turns], sheet, scale, quarter), unturned=as_it_is,
                       crosswise=_ordered(crosswise, light, [other, *turns], sheet, scale, quarter))

    def _candidates(self, gray: np.ndarray,
                    light_ink: bool | None = None) -> tuple[bool, list[tuple[Box, np.ndarray]]]:
        """A gray page (and its ink's polarity, where known) -> (whether its ink is light on
        dark, the (box, crop) of each candidate digit): the ink, strokes, segment and crops stages."""
        inked = ink.ink_map(gray, light_ink)
        max_height = int(MAX_HEIGHT_SHARE * gray.shape[0])
        found = strokes.find_strokes(inked.contrast, self.min_height, max_height)
        groups = segment.group_digits(segment.in_view(found.pieces, gray.shape), self.min_height, max_height)
        return inked.light_ink, crops.candidate_crops(inked.contrast, found.binary, groups, self.min_height,
                                                      self.max_digits, solid_cores=not inked.light_ink)

    def _judge_page(self, found: Candidates) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`judge` of a page's crops, then the candidates out of proportion with the
        page's accepted digits rejected (see ``MAX_SIZE_RATIO`` and ``MIN_SIZE_RATIO``)."""
        probabilities, accepted = self.judge(found.crops)
        return probabilities, accepted & in_proportion(found.heights, accepted)

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


def in_proportion(heights: list[int], accepted: np.ndarray) -> np.ndarray:
    """(N,) bool: is each candidate's height (as read, see :class:`Candidates`) at least
    ``MIN_SIZE_RATIO`` and at most ``MAX_SIZE_RATIO`` times the median of the ``accepted``
    ones' (all True where fewer than ``strokes.TYPICAL_COUNT`` are accepted: one digit among
    marks has no page of digits to compare with)?"""
    tall = np.asarray(heights, np.float64)
    accepted = np.asarray(accepted, bool)
    if int(accepted.sum()) < strokes.TYPICAL_COUNT:
        return np.ones(len(tall), bool)
    typical = float(np.median(tall[accepted]))
    return (tall >= MIN_SIZE_RATIO * typical) & (tall <= MAX_SIZE_RATIO * typical)


def _as_mnist_crop(gray: np.ndarray) -> Candidates:
    """A 28x28 frame is an MNIST-style crop already: taken as it is (white ink on black,
    inverted when it is dark ink on light), not normalised a second time, which would
    only blur it. A crop without ink gives no candidate."""
    light = ink.ink_map(gray).light_ink
    crop = (gray if light else 255 - gray).astype(np.float32) / 255.0
    if crop.max() < crops.MIN_PEAK / 255.0:
        return Candidates.none(light)
    return Candidates([(0, 0, IMAGE_SIZE, IMAGE_SIZE)], crop[None], [0], [IMAGE_SIZE], light)


#: The model's reading of a page without candidates: (probabilities, accepted).
_NOTHING: Final = (np.zeros((0, NUM_CLASSES), np.float32), np.zeros(0, bool))


def _ordered(kept: list[tuple[Box, np.ndarray]], light: bool, turns: list[orient.Turn], sheet: page.Page | None,
             scale: float, quarter: int) -> Candidates:
    """A page's (box, crop) candidates -> :class:`Candidates` in reading order, boxes in
    frame pixels (see :func:`_to_frame`); ``quarter``: the page was turned a quarter first."""
    if not kept:
        return Candidates.none(light)
    order = segment.reading_order([box for box, _ in kept])
    boxes = [_to_frame(kept[i][0], turns, sheet, scale) for i, _ in order]
    stack = np.stack([kept[i][1] for i, _ in order])
    heights = [kept[i][0][3] for i, _ in order]
    return Candidates(boxes, stack, [line for _, line in order], heights, light,
                      sideways=not quarter and orient.sideways([box for box, _ in kept]))


def _clearer(other: tuple[np.ndarray, np.ndarray], first: tuple[np.ndarray, np.ndarray]) -> bool:
    """Does the model read the page another way round (``other``: probabilities, accepted;
    turned a quarter, or not turned level) clearly better than as it was first read: at
    least ``orient.MIN_LINKS`` digits, and ``QUARTER_MARGIN`` times the first reading's
    evidence (a few marks read either way, among specks that lie wide, are no reason to
    turn the page)?"""
    return (int(other[1].sum()) >= orient.MIN_LINKS
            and _evidence(*other) > QUARTER_MARGIN * _evidence(*first))


def _poorly_read(accepted: np.ndarray) -> bool:
    """Does the model accept under ``POOR_SHARE`` of a page's candidates (at least
    ``orient.MIN_LINKS`` of them)? Then the page may lie on its side, whatever their shapes say."""
    return len(accepted) >= orient.MIN_LINKS and float(accepted.mean()) < POOR_SHARE


def _evidence(probabilities: np.ndarray, accepted: np.ndarray) -> float:
    """How much digit the model reads in a frame's crops: the summed probability of the
    digits it accepts (more digits, and surer ones, than the same page read on its side)."""
    return float((probabilities.max(axis=1) * accepted).sum())


def _to_frame(box: Box, turns: list[orient.Turn], sheet: page.Page | None, scale: float) -> Box:
    """A box read on the (turned, flattened, shrunk) page -> frame pixels; ``turns``: the
    page's turns, the last one applied first."""
    for turn in turns:
        box = turn.to_page(box)
    if sheet is not None:
        box = sheet.to_frame(box)
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
