"""Text lines that do not run level: how far they are turned, and the page turned back.

A sheet whose edges are in view is flattened upright by :mod:`.page`. Where the paper fills
the frame, or a note is written askew on it, the lines of digits can still run at a slant,
and a digit turned 20 degrees or more reads as another digit, or as none. The digits of a
line are each other's nearest neighbours: :func:`line_angle` takes the direction from each
candidate to its nearest neighbour of about its height, modulo a quarter turn (a link down a
column says how far the column leans, so a grid's rows and columns agree), and where most of
those directions agree, and the page turned by that much lines the candidates up at least as
well as upright, that is the lines' angle; where they are too far apart to link (a strip
with wide gaps), the axis that all the centres of a size lie on is. :class:`Turn` turns the
page back by it, onto a canvas that keeps every pixel in view, and maps the boxes read there
back to the page. Where the digits of the page turned level lie on their sides
(:func:`sideways`: a line turned past 45 degrees was taken for a column), it is turned a
quarter turn the other way instead; the reader's model weighs the page levelled both ways
(:mod:`.camera`), as the shapes can be outvoted by the grain of a surface beside the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np

from .optional import require
from .order import Box, median

cv2 = require("cv2", "reading turned lines of digits")

#: Lines within this many degrees of level are read as they are: handwriting climbs or falls
#: that much on its own, and digits turned that far still read (see BENCHMARKS.md).
MIN_TURN: Final = 8.0
#: Digits stand taller than wide: where the candidates of a page turned level lie wider than
#: tall (their median width over height above this), its lines run a quarter turn the other way.
SIDEWAYS: Final = 1.0
#: Neighbours in a line: centres at most this many digit heights apart, heights within this ratio.
REACH: Final = 2.5
HEIGHT_RATIO: Final = 1.6
#: The lines' angle needs at least MIN_LINKS links, AGREE_SHARE of them within AGREE degrees
#: of their middle (:func:`_middle`), and more than chance puts there: scattered digits,
#: and the grain of a cloth beside a page, point every way, and a few line up by chance.
MIN_LINKS: Final = 3
AGREE: Final = 10.0
AGREE_SHARE: Final = 0.45
CHANCE_SIGMAS: Final = 2.5  # standard deviations over the links a uniform scatter puts within AGREE
ALIGN: Final = 0.3  # of a digit's height: the centres of one line's digits lie within it of its axis
#: Digits spaced too widely to link (a strip with gaps between its digits) still make a line
#: where the centres of all those of about the same height lie within ALIGN of one axis,
#: none more than SPREAD of their median height from the next along it.
SPREAD: Final = 2.0 * REACH
#: ... at least this many of them: where such a line is wrong (two digits and a mark, lined
#: up by chance), the model can undo the turn only on a page that holds MIN_LINKS digits.
MIN_LINE: Final = MIN_LINKS + 1
CORNER_BLUR: Final = 8  # the opened corners are the canvas at 1/8 size, blurred: smooth paper


def level_turn(boxes: Sequence[Box], shape: tuple[int, int]) -> Turn | None:
    """The :class:`Turn` of a page of ``shape`` (h, w) that levels the lines of these
    candidate boxes, or None where they run level enough to read as they are."""
    angle = line_angle(boxes)
    return Turn(shape, angle) if angle is not None and abs(angle) >= MIN_TURN else None


def line_angle(boxes: Sequence[Box]) -> float | None:
    """The angle in degrees by which the text lines of these candidate boxes run off level
    (positive: falling to the right, as image rows grow downwards), or their columns off
    upright, or None where too few candidates link up, their links disagree, or the page
    turned by it lines them up no better than upright."""
    if len(boxes) < MIN_LINKS:
        return None
    x, y, w, h = np.asarray(boxes, np.float64).T
    cx, cy = x + w / 2, y + h / 2
    linked_angle = _linked_angle(cx, cy, h)
    return linked_angle if linked_angle is not None else _one_line(cx, cy, h)


def _linked_angle(cx: np.ndarray, cy: np.ndarray, h: np.ndarray) -> float | None:
    """:func:`line_angle` from the candidates' links to their nearest neighbours."""
    dx, dy = cx[None, :] - cx[:, None], cy[None, :] - cy[:, None]
    distance = np.hypot(dx, dy)
    taller, shorter = np.maximum(h[:, None], h[None, :]), np.minimum(h[:, None], h[None, :])
    near = (taller <= HEIGHT_RATIO * shorter) & (distance <= REACH * taller) & ~np.eye(len(h), dtype=bool)
    # Each candidate's link to its nearest neighbour of about its height.
    nearest = np.where(near, distance, np.inf).argmin(axis=1)
    linked = near[np.arange(len(h)), nearest]
    ldx, ldy = dx[linked, nearest[linked]], dy[linked, nearest[linked]]
    angles = _quarter_folded(np.degrees(np.arctan2(ldy, ldx)))
    if len(angles) < MIN_LINKS:
        return None
    middle = _middle(angles)
    if np.count_nonzero(np.abs(angles - middle) <= AGREE) < _links_needed(len(angles)):
        return None
    # Two level lines set off by half a digit, or a staircase of marks, link on the slant;
    # a turned page's candidates line up better turned back than as they are.
    if _aligned(cx, cy, shorter, near, middle) < _aligned(cx, cy, shorter, near, 0.0):
        return None
    return middle


def _one_line(cx: np.ndarray, cy: np.ndarray, h: np.ndarray) -> float | None:
    """The angle of the one line that the candidates of about their median height lie on
    (within ``HEIGHT_RATIO`` of it; marks of other sizes are no digits of the line): at least
    ``MIN_LINE`` of them, every centre within ``ALIGN`` of its axis (their principal axis),
    at most ``SPREAD`` from the next along it; folded to a quarter turn as the links are.
    None where they make no line."""
    typical = median(h.tolist())
    of_size = (h <= HEIGHT_RATIO * typical) & (h >= typical / HEIGHT_RATIO)
    if np.count_nonzero(of_size) < MIN_LINE:
        return None
    x, y = cx[of_size] - cx[of_size].mean(), cy[of_size] - cy[of_size].mean()
    # The principal axis of the centres, in closed form for two dimensions.
    axis = 0.5 * math.atan2(2.0 * float(x @ y), float(x @ x - y @ y))
    cos, sin = math.cos(axis), math.sin(axis)
    along, across = x * cos + y * sin, y * cos - x * sin
    if np.abs(across).max() > ALIGN * typical or np.diff(np.sort(along)).max() > SPREAD * typical:
        return None
    return float(_quarter_folded(np.array([math.degrees(axis)]))[0])


def _middle(angles: np.ndarray) -> float:
    """The links' median, then the median of those within ``AGREE`` of it: links that point
    every way (a cloth's grain beside the page) pull the first off the line's angle."""
    first = float(np.median(angles))
    near = angles[np.abs(angles - first) <= AGREE]
    return float(np.median(near)) if len(near) else first


def _links_needed(links: int) -> float:
    """How many of ``links`` must lie within ``AGREE`` of their middle to make a line:
    ``AGREE_SHARE`` of them, and ``CHANCE_SIGMAS`` standard deviations more than a uniform
    scatter of folded links puts there (binomial, each one with the chance 2 AGREE / 90
    degrees). The second bound holds for a few links, the first for many."""
    chance = 2.0 * AGREE / 90.0
    by_chance = links * chance + CHANCE_SIGMAS * math.sqrt(links * chance * (1.0 - chance))
    return max(MIN_LINKS, AGREE_SHARE * links, by_chance)


def _quarter_folded(angles: np.ndarray) -> np.ndarray:
    """Link angles (degrees) modulo a quarter turn, about their dominant direction: the links
    of a line and of a column (a grid's rows and columns) then agree, and links either side
    of 45 degrees stay together. Which quarter the lines run in is :func:`sideways`'s to say."""
    quarter = np.radians(4.0 * angles)  # a quarter turn is a whole turn of 4 x the angle
    dominant = float(np.degrees(np.arctan2(np.sin(quarter).sum(), np.cos(quarter).sum()))) / 4.0
    return dominant + (angles - dominant + 45.0) % 90.0 - 45.0


def sideways(boxes: Sequence[Box]) -> bool:
    """Do these candidates of a page turned level lie on their sides (median width over
    height above ``SIDEWAYS``)? Then its lines run a quarter turn the other way."""
    if len(boxes) < MIN_LINKS:
        return False
    _, _, w, h = np.asarray(boxes, np.float64).T
    return float(np.median(w / h)) > SIDEWAYS


def _aligned(cx: np.ndarray, cy: np.ndarray, shorter: np.ndarray, near: np.ndarray, angle: float) -> int:
    """Pairs of neighbours (``near``) that sit on one line, or in one column, of a page whose
    lines run at ``angle`` degrees: their centres within ALIGN of the shorter one's height."""
    a = np.radians(angle)
    along, across = cx * np.cos(a) + cy * np.sin(a), cy * np.cos(a) - cx * np.sin(a)
    tolerance = ALIGN * shorter
    in_line = np.abs(across[:, None] - across[None, :]) <= tolerance
    in_column = np.abs(along[:, None] - along[None, :]) <= tolerance
    return int(np.count_nonzero(near & (in_line | in_column)))


@dataclass(frozen=True)
class Turn:
    """A page of ``shape`` (h, w) turned by ``angle`` degrees (counter-clockwise as shown,
    which levels lines that fall to the right by that angle) onto a canvas that holds all of it."""

    shape: tuple[int, int]
    angle: float

    @cached_property
    def matrix(self) -> np.ndarray:
        """The 2x3 affine map from page pixels to canvas pixels."""
        h, w = self.shape
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), self.angle, 1.0)
        width, height = self.canvas_size
        matrix[:, 2] += ((width - w) / 2, (height - h) / 2)
        return matrix

    @cached_property
    def canvas_size(self) -> tuple[int, int]:
        """(width, height) of the canvas."""
        h, w = self.shape
        cos, sin = abs(math.cos(math.radians(self.angle))), abs(math.sin(math.radians(self.angle)))
        return int(math.ceil(w * cos + h * sin)), int(math.ceil(w * sin + h * cos))

    @cached_property
    def _to_page(self) -> np.ndarray:
        """The 2x3 affine map from canvas pixels back to page pixels."""
        return cv2.invertAffineTransform(self.matrix)

    def apply(self, gray: np.ndarray) -> np.ndarray:
        """The page turned (uint8). The corners the turn opens continue the page smoothly (its
        edge pixels carried outwards, then blurred), so that they hold neither an edge nor
        the streaks that carrying a noisy edge row outwards would draw."""
        size = self.canvas_size
        turned = cv2.warpAffine(gray, self.matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        inside = cv2.warpAffine(np.full(gray.shape, 255, np.uint8), self.matrix, size, flags=cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        small = cv2.resize(turned, (max(1, size[0] // CORNER_BLUR), max(1, size[1] // CORNER_BLUR)),
                           interpolation=cv2.INTER_AREA)
        smooth = cv2.resize(cv2.blur(small, (3, 3)), size, interpolation=cv2.INTER_LINEAR)
        return np.where(inside > 0, turned, smooth)

    def quarter(self) -> Turn:
        """The turn a quarter turn the other way round (40 degrees -> -50): the one that
        levels the page where this one leaves its digits on their sides (:func:`sideways`)."""
        return Turn(self.shape, self.angle - math.copysign(90.0, self.angle))

    def to_page(self, box: Box) -> Box:
        """A box on the canvas -> the page box that holds its four corners (within the page)."""
        x, y, w, h = box
        corners = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]).reshape(-1, 1, 2)
        mapped = cv2.transform(corners, self._to_page).reshape(-1, 2)
        height, width = self.shape
        x0, y0 = (min(max(int(math.floor(v)), 0), side - 1) for v, side in zip(mapped.min(axis=0), (width, height)))
        x1, y1 = (min(max(int(math.ceil(v)), 1), side) for v, side in zip(mapped.max(axis=0), (width, height)))
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)
