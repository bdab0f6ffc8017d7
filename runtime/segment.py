"""Which strokes make one digit, and the reading order of digits (numpy; OpenCV boxes a mask).

3. :func:`in_view`: the strokes the frame's edge cuts wait until they are whole;
   :func:`group_digits`: strokes of one digit are merged (a "5" whose bar came loose, a
   "4" in two pieces): pieces that share a column range and sit close above one another
   (a piece far taller than the frame's digits, a grid's lines, joins none).
   Groups are kept by size and aspect.
4. :func:`reading_order`: boxes chained into lines by neighbours that overlap, lines top to
   bottom, boxes left to right.

Steps 1 and 2 (the ink map and its strokes) are in :mod:`.ink`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from .optional import require
from .order import Box, reading_order
from .strokes import MAX_ASPECT, OVERTALL, Piece, digit_height, piece_mask

__all__ = ["Box", "Group", "group_digits", "group_mask", "in_view", "reading_order"]

cv2 = require("cv2", "finding digits in camera frames")

#: Pieces join only across a vertical gap of at most this share of the taller one's
#: height: a digit's loose bar sits close; a dash or dot a mark's width away is not part of it.
MAX_GAP: Final = 0.25
MAX_STACK: Final = 1.6  # a group is at most this many times its tallest piece (two stacked digits are 2)
#: A piece smaller (in its longer side) than this share of the taller piece's height never
#: joins it: a dot, speck or dash beside a digit is smaller than a digit's own loose pieces.
SPECK_SHARE: Final = 0.25
#: A piece of ink that touches the frame's edge is cut by it (see :func:`in_view`) unless it
#: is at least this share of the frame's height: then the frame is a photo of that digit.
CUT_OFF_SHARE: Final = 0.5
CUT_OFF_PIXELS: Final = 2  # ink this close to the edge touches it (the ink map may lose the last rows)


@dataclass(frozen=True)
class Group:
    """The strokes of one candidate digit and their joint box (frame pixels)."""

    box: Box
    pieces: tuple[Piece, ...]


def in_view(pieces: list[Piece], shape: tuple[int, ...]) -> list[Piece]:
    """The pieces not cut by the edge of a frame of ``shape`` (see :func:`_cut_off`)."""
    return [piece for piece in pieces if not _cut_off(piece.box, shape)]


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


def group_digits(pieces: list[Piece], min_height: int, max_height: int) -> list[Group]:
    """Merge strokes of one digit (see step 3) and keep plausible digit boxes."""
    if not pieces:
        return []
    boxes = np.array([p.box for p in pieces], dtype=np.int64)
    # A piece still OVERTALL times the frame's digit height once :mod:`.strokes` tried to part
    # it is a grid's or a frame's lines: joined to the digits it reaches, it would swallow them.
    typical = digit_height(pieces, min_height)
    alone = boxes[:, 3] > OVERTALL * typical if typical is not None else np.zeros(len(boxes), bool)
    members = _members(_merge(boxes, alone))
    unions = [_union(boxes[group]) for group in members]
    return [Group(box=box, pieces=tuple(pieces[i] for i in group))
            for group, box in zip(members, unions) if _plausible(box, min_height, max_height)]


def _members(parent: np.ndarray) -> list[list[int]]:
    """Union-find roots -> the indices of each group."""
    groups: dict[int, list[int]] = {}
    for i, root in enumerate(parent):
        groups.setdefault(int(root), []).append(i)
    return list(groups.values())


def group_mask(group: Group, binary: np.ndarray) -> tuple[Box, np.ndarray]:
    """The group's ink pixels: (tight box in frame pixels, bool mask (h, w) in it)."""
    x, y, w, h = group.box
    if len(group.pieces) == 1:  # most groups: one stroke, whose box is the group's
        mask = piece_mask(group.pieces[0], group.box)
    else:
        mask = np.zeros((h, w), dtype=bool)
        for p in group.pieces:
            px, py, pw, ph = p.box
            mask[py - y:py - y + ph, px - x:px - x + pw] |= piece_mask(p, p.box)
    np.logical_and(mask, binary[y:y + h, x:x + w], out=mask)
    x0, y0, w0, h0 = cv2.boundingRect(mask.view(np.uint8))  # of the nonzero pixels
    if w0 == 0:
        return group.box, mask
    return (x + x0, y + y0, w0, h0), mask[y0:y0 + h0, x0:x0 + w0]


def _merge(boxes: np.ndarray, alone: np.ndarray | None = None) -> np.ndarray:
    """Union-find over pieces: a and b join when they share most of the narrower one's
    column range, the vertical gap between them is small, and the group they make is at
    most ``MAX_STACK`` times its tallest piece's height (two stacked digits never pass that);
    pieces marked ``alone`` (bool) join none."""
    alone = np.zeros(len(boxes), bool) if alone is None else alone
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    w, h = boxes[:, 2], boxes[:, 3]
    overlap_x = np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])
    gap_y = np.maximum(y0[:, None], y0[None]) - np.minimum(y1[:, None], y1[None])
    tall = np.maximum(h[:, None], h[None])
    union_h = np.maximum(y1[:, None], y1[None]) - np.minimum(y0[:, None], y0[None])
    size = np.maximum(w, h)
    join = (
        (overlap_x >= 0.5 * np.minimum(w[:, None], w[None]))
        & (gap_y <= MAX_GAP * tall)
        & (union_h <= MAX_STACK * tall)
        & (np.minimum(size[:, None], size[None]) >= SPECK_SHARE * tall)  # specks stay out
        & ~alone[:, None] & ~alone[None]
    )
    parent = np.arange(len(boxes))
    # The height rule holds for whole groups too, not only for pairs: else small pieces
    # (a grid's bits as dark as the ink) chain two stacked digits into one group. Closest
    # pairs first, so a digit's own pieces join before anything further away.
    top, bottom, tallest = y0.copy(), y1.copy(), h.copy()
    pairs = np.argwhere(np.triu(join, 1))
    for a, b in pairs[np.argsort(gap_y[pairs[:, 0], pairs[:, 1]], kind="stable")]:
        ra, rb = _root(parent, int(a)), _root(parent, int(b))
        if ra == rb:
            continue
        t, btm, tall_ab = min(top[ra], top[rb]), max(bottom[ra], bottom[rb]), max(tallest[ra], tallest[rb])
        if btm - t <= MAX_STACK * tall_ab:
            parent[rb] = ra
            top[ra], bottom[ra], tallest[ra] = t, btm, tall_ab
    return np.array([_root(parent, i) for i in range(len(boxes))])


def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = int(parent[i])
    return i


def _union(boxes: np.ndarray) -> Box:
    if len(boxes) == 1:  # most groups: one stroke
        x, y, w, h = boxes[0]
        return int(x), int(y), int(w), int(h)
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _plausible(box: Box, min_height: int, max_height: int) -> bool:
    """A digit is at least ``min_height`` tall, fits the frame, and is at most about
    twice as wide as tall (a tilted, wide MNIST "2" reaches about 1.6)."""
    _, _, w, h = box
    return min_height <= h <= max_height and w <= MAX_ASPECT * h
