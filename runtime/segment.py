"""Where the digits are in a gray frame: ink map, strokes, digits, lines (OpenCV + numpy).

The steps, each robust to what a webcam sees:

1. :func:`ink_map`: the ink's polarity (dark on paper, or chalk on a board) is decided
   first; then the surface's own brightness is estimated by a morphological closing (an
   opening for chalk) at low resolution, which erases strokes but keeps shadows and
   light gradients, and ink is what stands out from its local surface, as a *ratio* of
   that surface's brightness, so that a digit in shadow reads like one in light.
2. :func:`find_strokes`: Otsu's threshold on the ink map (kept above a floor, so that an
   empty page stays empty), connected components (found at half resolution, where they
   cost a quarter), and a second, higher threshold inside any component that cannot be
   one digit (too large, too wide, a mesh with many holes, or faint on average): rules,
   grid lines or a shadow's narrow tip that touch the digits; and inside a piece far taller
   than the frame's other digits (a digit that touches a long line).
3. :func:`group_digits`: strokes of one digit are merged (a "5" whose bar came loose, a
   "4" in two pieces): pieces that share a column range and sit close above one another;
   then pieces of a digit broken in halves, judged by the frame's own digit height.
   Groups are kept by size and aspect.
4. :func:`reading_order`: boxes clustered into lines by vertical overlap, lines top to
   bottom, boxes left to right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .optional import require

cv2 = require("cv2", "finding digits in camera frames")

Box = tuple[int, int, int, int]  # x, y, w, h

CLOSING_SHARE: Final = 0.15  # paper kernel, share of the frame's shorter side: wider than
# the strokes of the largest digit a frame can hold, narrower than a shadow's extent.
SMALL_KERNEL: Final = 9  # that kernel in pixels of the reduced image the closing runs on
MIN_KERNEL: Final = 7.0  # pixels: wider than the strokes of a digit filling a 28x28 image
POLARITY_SIDE: Final = 120  # least pixels on the shorter side where polarity is judged:
# small digits (24 px in a 480 px frame) must still be a few pixels tall there.
POLARITY_TAILS: Final = (0.995, 0.999)  # quantiles of the responses that decide polarity
POLARITY_WEAK: Final = 45  # tails (summed) below this on both sides: no strokes at all
POLARITY_COARSE: Final = 60  # pixels on the shorter side where the surface is estimated
POLARITY_WINDOW: Final = 2  # median over (that side / this) pixels: wider than strokes
MIN_PAPER: Final = 48  # contrast denominator floor: a black frame's noise is not ink
MIN_BOARD: Final = 32  # the same for a board, dark by nature
CHALK_RATIO: Final = 3.0  # chalk as bright as this many boards above the board = contrast 255
INK_FLOOR: Final = 60  # lowest ink threshold, contrast 0..255 (~24% darker than paper)
INK_CEILING: Final = 110  # Otsu above this splits thick from thin ink: cap it
HALF_RES_MIN_SIDE: Final = 200  # frames at least this size find components at half size
WEAK_MEAN: Final = 85  # mean contrast (at label resolution) below which a large piece
# is re-thresholded (digits' own pieces average 92 and up on generated frames) ...
WEAK_PEAK: Final = 110  # ... or whose strong end (90th percentile) stays below this (a
# shadow's core is flat; digits' pieces reach 122 and up)
MAX_HOLES: Final = 3  # enclosed background regions a digit can have ("8": 2, plus one spare)
MIN_AREA: Final = 3  # pixels at detection size; smaller components are specks
#: Pieces join only across a vertical gap of at most this share of the taller one's height:
#: a digit's loose bar sits close; a dash or dot a mark's width away is not part of it. At
#: 0.3 (before), dashes and dots 0.26-0.28 of a digit's height above or below joined it and
#: shrank it in its crop; 0.25 took read-right on generated frames from 97.60% to 97.72%
#: (seed 2) and 98.57% to 98.61% (seed 3), seeds 0, 1 and chalk unchanged, false digits
#: per 100 blank frames 1.0 -> 0.7 (seed 4), others unchanged; 0.2 read 0.06 points more
#: on seed 1 and doubled seed 2's false digits on blank frames (0.5 -> 1.0)
#: (``python benchmarks/bench_camera.py --accuracy-only --seed 2``).
MAX_GAP: Final = 0.25
MAX_STACK: Final = 1.6  # a group of strokes is at most this many times its tallest piece's
# height: a digit's loose bar or dot fits, two digits one above the other never do
#: A piece smaller (in its longer side) than this share of the taller piece's height never
#: joins it: a dot, a speck or a dash beside a digit is not part of it, while a digit's own
#: loose pieces (a "5"'s bar, a "4"'s arm) are larger. At 0.12, specks, dots and dashes
#: near small digits joined them, which then read wrong. 0.25, chosen on frame seed 1 among
#: 0.12-0.4, took read-right on generated frames from 97.86% to 98.11% (seed 1) and from
#: 96.93% to 97.15% (seed 2), 98.07% unchanged on seed 0
#: (``python benchmarks/bench_camera.py --accuracy-only --seed 1 --frames 300 --blank 300``).
SPECK_SHARE: Final = 0.25
#: Broken digits (see :func:`_join_broken`): groups shorter than BROKEN_SHORT of the frame's
#: median digit height join when together they make at most BROKEN_STACK of it and at least
#: BROKEN_MIN times the least digit height. On generated frames: read-right 97.34% -> 97.49%
#: and spurious detections 0.12% -> 0.00% (seed 2), seeds 0, 1, 3 and chalk unchanged, false
#: digits on blank frames unchanged on seeds 0-5; without BROKEN_MIN, 0.3 -> 0.7 and 1.0 ->
#: 1.5 per 100 blank frames (seeds 1, 2); BROKEN_STACK 1.3 read 0.06 points fewer on seed 1
#: (``python benchmarks/bench_camera.py --accuracy-only --seed 2``).
BROKEN_SHORT: Final = 0.85
BROKEN_STACK: Final = 1.15
BROKEN_MIN: Final = 1.5
#: A piece more than OVERTALL times the frame's digit height is re-thresholded (see
#: :func:`_split_overtall`), when TYPICAL_COUNT pieces agree on that height. On generated
#: frames: read-right 98.10% -> 98.24% (seed 0), 97.49% -> 97.53% (seed 2), 98.42% -> 98.53%
#: (seed 3), seed 1 and chalk unchanged; false digits per 100 blank frames 1.0 -> 0.5 (seed 2),
#: others unchanged. With TYPICAL_COUNT 2, a single large chalk "9" among three marks was
#: cut to its loop (``python benchmarks/bench_camera.py --accuracy-only --light-ink``).
OVERTALL: Final = 1.5
TYPICAL_COUNT: Final = 3
#: Where re-thresholding cannot part an over-tall piece, a stretch of line is cut off its
#: ends (:func:`_trim_line`): rows no wider than LINE_SHARE of the piece's widest, at least
#: LINE_RUN of the digit height long. On generated frames: read-right 97.53% -> 97.60%
#: (seed 2), 98.50% -> 98.57% (seed 3), seeds 0, 1, chalk and blank frames (seeds 0-7)
#: unchanged; with the 90th percentile instead of the widest row, a 9 on a line as dark as
#: its ink kept the line (``python benchmarks/bench_camera.py --accuracy-only --seed 2``).
LINE_SHARE: Final = 0.2
LINE_ROWS: Final = 5
LINE_RUN: Final = 0.25
MAX_ASPECT: Final = 2.0  # a digit is at most this many times as wide as tall (a tilted, wide "2": 1.6)
MAX_PIECES: Final = 400  # strokes considered per frame: bounds time on a page of text


@dataclass(frozen=True)
class InkMap:
    """``contrast`` uint8 (H, W): how much each pixel stands out from its local surface
    as ink (0 none; 255 black on white paper, or chalk ``CHALK_RATIO`` boards brighter
    than its board); ``light_ink`` says whether the frame was light ink on a dark surface."""

    contrast: np.ndarray
    light_ink: bool


@dataclass(frozen=True)
class Piece:
    """A connected stroke. ``box`` (x, y, w, h) is in frame pixels; its pixels are
    ``labels == label`` in a label image at detection size (``factor`` frame pixels per
    label pixel) whose [0, 0] sits at ``origin`` (detection pixels)."""

    box: Box
    area: int
    labels: np.ndarray
    label: int
    origin: tuple[int, int]
    factor: int


@dataclass(frozen=True)
class Strokes:
    """The ink pixels of a frame: ``binary`` uint8 (H, W), 255 = ink, and its pieces."""

    binary: np.ndarray
    pieces: list[Piece]


@dataclass(frozen=True)
class Group:
    """The strokes of one candidate digit and their joint box (frame pixels)."""

    box: Box
    pieces: tuple[Piece, ...]


# --- 1. ink map ------------------------------------------------------------------------


def ink_map(gray: np.ndarray) -> InkMap:
    """Gray uint8 (H, W) -> :class:`InkMap` (see the module docstring, step 1)."""
    h, w = gray.shape
    # One reduction by halvings (OpenCV's fast path) serves the polarity test and,
    # reduced further, the surface estimate.
    small = _halve(gray, POLARITY_SIDE)
    light = _light_ink(small)
    side = max(MIN_KERNEL, CLOSING_SHARE * min(h, w)) * small.shape[0] / h  # kernel, small's px
    smaller = _shrink(small, SMALL_KERNEL / side)
    k = max(3, int(round(side * smaller.shape[0] / small.shape[0])) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    # The surface without the strokes: a closing erases dark strokes, an opening light ones.
    surface_small = cv2.morphologyEx(smaller, cv2.MORPH_OPEN if light else cv2.MORPH_CLOSE, kernel)
    surface = surface_small if surface_small.shape == gray.shape else cv2.resize(
        surface_small, (w, h), interpolation=cv2.INTER_LINEAR)
    if light:
        # Chalk on a board: how much brighter than the board, as a multiple of the board's
        # own brightness (invariant to the light, as the ratio for paper is; inverting the
        # frame and taking paper's ratio would make chalk in shadow fade), scaled so that
        # chalk lands where dark ink on paper does.
        brighter = cv2.subtract(gray, surface)
        contrast = cv2.divide(brighter, cv2.max(surface, MIN_BOARD), scale=255.0 / CHALK_RATIO)
    else:
        darker = cv2.subtract(surface, gray)
        contrast = cv2.divide(darker, cv2.max(surface, MIN_PAPER), scale=255.0)
    return InkMap(contrast=contrast, light_ink=light)


def _halve(gray: np.ndarray, min_side: int) -> np.ndarray:
    """Area-averaged halvings while the shorter side stays at least ``min_side``."""
    while min(gray.shape) // 2 >= min_side:
        h, w = (gray.shape[0] // 2) * 2, (gray.shape[1] // 2) * 2
        gray = cv2.resize(gray[:h, :w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return gray


def _shrink(gray: np.ndarray, scale: float) -> np.ndarray:
    """Area-averaged copy at ``scale`` (never enlarged)."""
    if scale >= 1.0:
        return gray
    h, w = gray.shape
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _light_ink(small: np.ndarray) -> bool:
    """True when the frame's strokes are brighter than their surroundings (chalk on a
    board), False for dark ink on paper.

    The surface is most of every neighbourhood, so a median filter (at a coarse scale,
    where it is cheap) gives its brightness, and keeps shadow edges sharp; strokes stand
    out from it on one side, strongly, while noise and texture spread to both sides
    about equally; the strongest responses (a high percentile) on each side decide.
    (A morphological top-hat would not do: the paper *between* dark strokes is itself a
    thin bright feature; nor would a local mean, which smears shadow edges.)"""
    coarse = _shrink(small, POLARITY_COARSE / min(small.shape))
    k = max(3, (min(coarse.shape) // POLARITY_WINDOW) | 1)
    surface = cv2.medianBlur(coarse, min(k, 255))
    if surface.shape != small.shape:
        surface = cv2.resize(surface, small.shape[::-1], interpolation=cv2.INTER_LINEAR)
    darker, brighter = cv2.subtract(surface, small), cv2.subtract(small, surface)
    # Two tails: the broader one holds when ink is plentiful, the thinner one when a few
    # small digits share the frame with a shadow's edge (whose responses are broad, weak).
    dark, bright = _tails(darker, POLARITY_TAILS), _tails(brighter, POLARITY_TAILS)
    if max(dark, bright) < POLARITY_WEAK:
        # No strokes stand out (a blank page or board): the surface's own brightness
        # decides, so that its texture is never mistaken for ink of the other polarity.
        return _tails(small, (0.5,)) < 128
    return bright > dark


def _quantile(values: np.ndarray, q: float) -> float:
    """The q-quantile (nearest rank) of an array: np.partition, far cheaper than
    np.percentile on the small arrays here."""
    flat = values.reshape(-1)
    k = min(len(flat) - 1, max(0, int(q * len(flat))))
    return float(np.partition(flat, k)[k])


def _tails(values: np.ndarray, qs: tuple[float, ...]) -> float:
    """Sum of the q-quantiles of a uint8 image, from its histogram (one pass)."""
    hist = cv2.calcHist([values], [0], None, [256], [0, 256]).ravel()
    cdf = np.cumsum(hist) / max(float(hist.sum()), 1.0)
    return float(sum(int(np.searchsorted(cdf, q)) for q in qs))


# --- 2. strokes -----------------------------------------------------------------------


def ink_threshold(contrast: np.ndarray) -> int:
    """Otsu's threshold on the contrast map, kept within [INK_FLOOR, INK_CEILING]."""
    # Every other pixel gives the same histogram shape at a quarter of the cost.
    sample = np.ascontiguousarray(contrast[::2, ::2]) if min(contrast.shape) >= 64 else contrast
    otsu, _ = cv2.threshold(sample, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return int(min(max(otsu, INK_FLOOR), INK_CEILING))


def find_strokes(contrast: np.ndarray, min_height: int, max_height: int) -> Strokes:
    """The ink pixels and their connected components (see step 2)."""
    threshold = ink_threshold(contrast)
    _, binary = cv2.threshold(contrast, threshold, 255, cv2.THRESH_BINARY)
    factor = 2 if min(binary.shape) >= HALF_RES_MIN_SIDE else 1
    coarse = _shrink(contrast, 1.0 / factor)  # the contrast at label resolution
    pieces: list[Piece] = []
    for piece in _components(binary, (0, 0), factor):
        if (_oversize(piece.box, max_height, min_height) or _too_wide(piece.box, min_height)
                or _netlike(piece, min_height) or _weak(piece, coarse, min_height)):
            pieces.extend(_split_kept(contrast, binary, piece, threshold, coarse, min_height, max_height))
        else:
            pieces.append(piece)
    pieces = _split_overtall(contrast, binary, pieces, threshold, min_height, max_height, coarse)
    if len(pieces) > MAX_PIECES:  # keep the largest strokes; the rest is texture
        pieces = sorted(pieces, key=lambda p: -p.area)[:MAX_PIECES]
    return Strokes(binary=binary, pieces=pieces)


def _components(binary: np.ndarray, origin: tuple[int, int], factor: int) -> list[Piece]:
    """8-connected components of ``binary`` (frame pixels, its [0, 0] at frame pixel
    ``origin``), labelled at 1/``factor`` size; an ink pixel anywhere in a block marks
    the block, so thin strokes stay connected."""
    h, w = binary.shape
    if factor > 1:
        hd, wd = h // factor, w // factor
        if hd == 0 or wd == 0:
            return []
        small = cv2.resize(binary[: hd * factor, : wd * factor], (wd, hd), interpolation=cv2.INTER_AREA)
        _, small = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY)
    else:
        small = binary
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(small, 8, cv2.CV_32S, cv2.CCL_BBDT)
    if n <= 1:
        return []
    keep = np.nonzero(stats[1:, cv2.CC_STAT_AREA] >= MIN_AREA)[0] + 1
    ox, oy = origin
    dx, dy = ox // factor, oy // factor
    return [Piece(box=(int(s[0]) * factor + ox, int(s[1]) * factor + oy, int(s[2]) * factor, int(s[3]) * factor),
                  area=int(s[4]), labels=labels, label=int(i), origin=(dx, dy), factor=factor)
            for i, s in zip(keep, stats[keep])]


def _oversize(box: Box, max_height: int, min_height: int) -> bool:
    """Too tall, or much wider than tall and wide: rules, grids, or digits joined by one."""
    _, _, w, h = box
    return h > max_height or (w > 2.5 * max(h, min_height))


def _split_overtall(contrast: np.ndarray, binary: np.ndarray, pieces: list[Piece], threshold: int,
                    min_height: int, max_height: int, coarse: np.ndarray) -> list[Piece]:
    """Re-threshold (:func:`_split`) the pieces far taller than the frame's digits: a digit
    that touches a grid's or margin's line runs on with it, and as one piece is read as
    neither. The frame's digit height is the median height of its pieces that could be
    digits, trusted only when at least ``TYPICAL_COUNT`` of them are within a third of it
    (a line of digits; not one digit among a few marks). The split is kept when it leaves
    a piece of about that height; what is still over-tall then has any stretch of bare
    line cut off its ends (:func:`_trim_line`)."""
    heights = [p.box[3] for p in pieces if p.box[3] >= min_height and p.box[2] <= MAX_ASPECT * p.box[3]]
    typical = _typical_height(heights)
    if typical is None or sum(0.75 * typical <= h <= 1.33 * typical for h in heights) < TYPICAL_COUNT:
        return pieces
    out = []
    for piece in pieces:
        if piece.box[3] > OVERTALL * typical:
            parts = _split_kept(contrast, binary, piece, threshold, coarse, min_height, max_height)
            if not any(0.6 * typical <= p.box[3] <= 1.4 * typical for p in parts):
                parts = [piece]
            out.extend(q for part in parts for q in
                       (_trim_line(binary, part, typical, min_height) if part.box[3] > OVERTALL * typical else [part]))
        else:
            out.append(piece)
    return out


def _trim_line(binary: np.ndarray, piece: Piece, typical: float, min_height: int) -> list[Piece]:
    """The piece without the stretch of line it runs on with, above or below: rows where
    its ink is no wider than ``LINE_SHARE`` of its widest rows (a line beside a digit's
    body; median over ``LINE_ROWS`` rows, as a line's width flickers), in a run of at
    least ``LINE_RUN`` of the digit height at either end. Where the line is as dark as the
    ink (in a shadow), re-thresholding cannot part them. The piece as it is when there is
    no such run, or when what is left is short of a digit."""
    x, y, _, h = piece.box
    mask = _own_ink(piece, binary)
    counts = mask.sum(axis=1)
    half = LINE_ROWS // 2
    smooth = np.median(sliding_window_view(np.pad(counts, half, mode="edge"), LINE_ROWS), axis=1)
    wide = np.flatnonzero(smooth > max(2.0, LINE_SHARE * float(counts.max())))
    if not len(wide):
        return [piece]
    run = LINE_RUN * typical
    top = int(wide[0]) if wide[0] >= run else 0
    bottom = int(wide[-1]) + 1 if h - wide[-1] - 1 >= run else h
    if (top, bottom) == (0, h) or bottom - top < max(min_height, 0.6 * typical):
        return [piece]
    kept = np.zeros_like(mask)
    kept[top:bottom] = mask[top:bottom]
    return _components(kept.view(np.uint8) * np.uint8(255), (x, y), piece.factor)


def _typical_height(heights: list[int]) -> float | None:
    """The frame's digit height: the median of ``heights``, or None with fewer than
    ``TYPICAL_COUNT`` of them to go by."""
    return _median(heights) if len(heights) >= TYPICAL_COUNT else None


def _split_kept(contrast: np.ndarray, binary: np.ndarray, piece: Piece, threshold: int, coarse: np.ndarray,
                min_height: int, max_height: int) -> list[Piece]:
    """:func:`_split`'s pieces, without what is still oversize (a rule or a frame edge: left
    in, it would swallow the digits it touches when strokes are merged) or still faint (the
    shadow itself)."""
    return [p for p in _split(contrast, binary, piece, threshold)
            if not _oversize(p.box, max_height, min_height) and not _weak(p, coarse, min_height)]


def _too_wide(box: Box, min_height: int) -> bool:
    """Tall enough for a digit but wider than any one digit is: mostly digits joined by the
    ruled or grid line they sit on, which as one piece would be dropped whole. Splitting
    these took read-right on generated frames from 98.04% to 98.23% (seed 1), 97.08% to
    97.34% (seed 2) and 98.03% to 98.14% (seed 0), the other figures unchanged or better
    (``python benchmarks/bench_camera.py --accuracy-only --seed 2``)."""
    _, _, w, h = box
    return h >= min_height and w > MAX_ASPECT * h


def _netlike(piece: Piece, min_height: int) -> bool:
    """A mesh rather than a digit: more enclosed holes than any digit has ("8" has two).
    A grid's lines, or digits joined by one, enclose many cells."""
    x, y, w, h = piece.box
    if h < 2 * min_height and w < 2 * min_height:
        return False  # too small to enclose more than a digit's holes at this size
    mask = piece_mask(piece, piece.box) if piece.factor == 1 else _block_mask(piece)
    background = cv2.copyMakeBorder((~mask).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    n, _ = cv2.connectedComponents(background, connectivity=4)
    return n - 2 > MAX_HOLES  # minus the label 0 (ink) and the outside


def _block_mask(piece: Piece) -> np.ndarray:
    """The piece's own label blocks (detection pixels), bool."""
    x, y, w, h = piece.box
    f = piece.factor
    bx, by = x // f - piece.origin[0], y // f - piece.origin[1]
    return piece.labels[by:by + h // f, bx:bx + w // f] == piece.label


def _weak(piece: Piece, coarse: np.ndarray, min_height: int) -> bool:
    """A large piece whose ink is faint on average: mostly a shadow's narrow tip, or a
    rule, that a few digits touch (a digit's own strokes are dark throughout)."""
    x, y, w, h = piece.box
    if w * h < (3 * min_height) ** 2:
        return False  # small pieces: a rule's stub or a speck, dropped or kept on their own
    own = _block_mask(piece)
    f = piece.factor
    values = coarse[y // f:y // f + own.shape[0], x // f:x // f + own.shape[1]][own[:coarse.shape[0] - y // f]]
    if not values.size:
        return False
    return float(values.mean()) < WEAK_MEAN or _quantile(values, 0.9) < WEAK_PEAK


def _split(contrast: np.ndarray, binary: np.ndarray, piece: Piece, threshold: int) -> list[Piece]:
    """Re-threshold an oversize component's own pixels at Otsu's level among them: ink
    is darker than the rules or grid it touches, so the digits come apart from them."""
    x, y, w, h = piece.box
    own = _own_ink(piece, binary)
    region = contrast[y:y + h, x:x + w]
    values = region[own]
    if values.size == 0:
        return []
    otsu, _ = cv2.threshold(values.reshape(1, -1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    # Many faint rule pixels can pull Otsu down to their own level: never below half of
    # the ink's strong end.
    higher = max(float(otsu), threshold + 10.0, 0.5 * _quantile(values, 0.95))
    sub = ((region > higher) & own).astype(np.uint8) * np.uint8(255)
    return _components(sub, (x, y), piece.factor)


def _own_ink(piece: Piece, binary: np.ndarray) -> np.ndarray:
    """Bool mask of the piece's box: its ink pixels (its label blocks that are ink)."""
    x, y, w, h = piece.box
    return piece_mask(piece, piece.box) & (binary[y:y + h, x:x + w] > 0)


def piece_mask(piece: Piece, box: Box) -> np.ndarray:
    """Bool (h, w) mask, in frame pixels, of the blocks of ``piece`` that fall in ``box``
    (whose corner is on the piece's block grid)."""
    x, y, w, h = box
    f = piece.factor
    ox, oy = piece.origin
    bx, by = x // f - ox, y // f - oy
    sub = piece.labels[by:by + -(-h // f), bx:bx + -(-w // f)] == piece.label
    if f > 1:  # each block to f x f pixels (nearest-neighbour scaling by an integer repeats)
        size = (sub.shape[1] * f, sub.shape[0] * f)
        sub = cv2.resize(sub.view(np.uint8), size, interpolation=cv2.INTER_NEAREST).view(bool)
    if sub.shape == (h, w):
        return sub
    out = np.zeros((h, w), dtype=bool)
    out[: sub.shape[0], : sub.shape[1]] = sub[:h, :w]
    return out


# --- 3. digits --------------------------------------------------------------------------


def group_digits(pieces: list[Piece], min_height: int, max_height: int) -> list[Group]:
    """Merge strokes of one digit (see step 3) and keep plausible digit boxes."""
    if not pieces:
        return []
    boxes = np.array([p.box for p in pieces], dtype=np.int64)
    members = _members(_merge(boxes))
    unions = [_union(boxes[group]) for group in members]
    keep = [_plausible(box, min_height, max_height) for box in unions]
    for join in _join_broken(unions, [u[3] for u, ok in zip(unions, keep) if ok], min_height):
        members[join[0]] = [i for k in join for i in members[k]]
        unions[join[0]] = _union(np.array([unions[k] for k in join]))
        keep[join[0]] = _plausible(unions[join[0]], min_height, max_height)
        for k in join[1:]:
            keep[k] = False
    return [Group(box=box, pieces=tuple(pieces[i] for i in group))
            for group, box, ok in zip(members, unions, keep) if ok]


def _members(parent: np.ndarray) -> list[list[int]]:
    """Union-find roots -> the indices of each group."""
    groups: dict[int, list[int]] = {}
    for i, root in enumerate(parent):
        groups.setdefault(int(root), []).append(i)
    return list(groups.values())


def _join_broken(unions: list[Box], heights: list[int], min_height: int) -> list[list[int]]:
    """Groups (their boxes) that are pieces of one broken digit, judged by the frame's own
    digit height (``heights``: of its plausible groups): lists of two or more indices into
    ``unions``.

    :func:`_merge` judges a pair of pieces by their own heights, so a digit that came apart
    in two halves (faint ink mid-stroke, a "3" or a "5" split across) stays apart: together
    they are twice either's height, as two stacked digits would be. Measured against the
    median height of the frame's plausible groups (its digits, when it holds three or more),
    pieces that are both short of it, share their columns and together make at most
    ``BROKEN_STACK`` of it are one digit. Specks stay out, and so do joins under
    ``BROKEN_MIN`` times the least digit height (on an empty page the "digits" are grid bits).
    """
    typical = _typical_height(heights)
    if typical is None:
        return []
    # Only groups short of a digit, and larger than specks, can be pieces of one: few.
    pick = [k for k, (_, _, w, h) in enumerate(unions)
            if h < BROKEN_SHORT * typical and max(w, h) >= SPECK_SHARE * typical]
    if len(pick) < 2:
        return []
    b = np.array([unions[k] for k in pick], dtype=np.int64)
    x0, y0, w = b[:, 0], b[:, 1], b[:, 2]
    x1, y1 = x0 + w, y0 + b[:, 3]
    overlap_x = np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])
    union_h = np.maximum(y1[:, None], y1[None]) - np.minimum(y0[:, None], y0[None])
    join = ((overlap_x >= 0.5 * np.minimum(w[:, None], w[None]))
            & (union_h <= BROKEN_STACK * typical) & (union_h >= BROKEN_MIN * min_height))
    parent = np.arange(len(pick))
    top, bottom = y0.copy(), y1.copy()
    for a, c in np.argwhere(np.triu(join, 1)):
        ra, rc = _root(parent, int(a)), _root(parent, int(c))
        t, btm = min(top[ra], top[rc]), max(bottom[ra], bottom[rc])
        if ra != rc and btm - t <= BROKEN_STACK * typical:  # the whole group, not only the pair
            parent[rc] = ra
            top[ra], bottom[ra] = t, btm
    roots = np.array([_root(parent, i) for i in range(len(pick))])
    return [[pick[i] for i in group] for group in _members(roots) if len(group) > 1]


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
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(rows) == 0:
        return group.box, mask
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return (x + int(x0), y + int(y0), int(x1 - x0), int(y1 - y0)), mask[y0:y1, x0:x1]


def _merge(boxes: np.ndarray) -> np.ndarray:
    """Union-find over pieces: a and b join when they share most of the narrower one's
    column range, the vertical gap between them is small, and the group they make is at
    most ``MAX_STACK`` times its tallest piece's height (two stacked digits never pass that)."""
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


# --- 4. reading order ---------------------------------------------------------------


def reading_order(boxes: list[Box]) -> list[tuple[int, int]]:
    """(index into ``boxes``, line number) in reading order: lines top to bottom by
    vertical overlap, boxes left to right within a line."""
    lines: list[list[int]] = []
    spans: list[tuple[float, float]] = []
    for i in sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2):
        _, y, _, h = boxes[i]
        best, best_overlap = -1, 0.0
        for k, (top, bottom) in enumerate(spans):
            overlap = min(bottom, y + h) - max(top, y)
            if overlap >= 0.5 * min(h, bottom - top) and overlap > best_overlap:
                best, best_overlap = k, overlap
        if best < 0:
            lines.append([i])
            spans.append((float(y), float(y + h)))
        else:
            lines[best].append(i)
            members = [boxes[j] for j in lines[best]]
            # The line's span follows its members' median top and bottom, so that
            # one tall or low digit does not drag it into the next line.
            spans[best] = (_median([b[1] for b in members]), _median([b[1] + b[3] for b in members]))
    order = sorted(range(len(lines)), key=lambda k: (spans[k][0] + spans[k][1]) / 2)
    return [(i, line) for line, k in enumerate(order)
            for i in sorted(lines[k], key=lambda i: boxes[i][0])]


def _median(values: list[int]) -> float:
    """Median of a short list (np.median costs more than the whole line clustering)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid]) if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0
