"""The strokes of an ink map (:mod:`.ink`): its ink pixels and their connected pieces.

:func:`find_strokes`: Otsu's threshold on the ink map (kept above a floor, so that an empty
page stays empty), lowered tile by tile where a tile's own ink is fainter (pencil beside
print), followed down to ``HYSTERESIS`` of it along strokes that reach it (soft pencil),
connected components (found at half resolution, where they cost a quarter), and a
second, higher threshold inside any component that cannot be one digit (too large, too
wide, or a mesh with many holes): rules or grid lines that touch the digits; and inside a
piece far taller than the frame's other digits (a digit that touches a long line).

:mod:`.segment` groups the strokes into digits and lines.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .ink import INK_FLOOR, quantiles
from .optional import require
from .order import Box, median

cv2 = require("cv2", "finding digits in camera frames")

INK_CEILING: Final = 110  # Otsu above this splits thick from thin ink: cap it
#: Otsu's level is also taken per tile of about this many pixels, and a tile whose own level
#: is lower uses it: one level for a frame of bold print (or grid lines) and faint pencil
#: sits between paper and the print, above the pencil. A frame no larger than a tile (a
#: sudoku cell) keeps its one level.
TILE: Final = 160
#: A stroke goes on, fainter, down to this share of the ink threshold where it touches ink
#: above it (hysteresis): soft pencil is faint along much of its length, and broke in pieces.
HYSTERESIS: Final = 0.7
NOISE_LEVELS: Final = 4.0  # ... but not below this many times the frame's pixel noise
NOISE_QUANTILE: Final = 0.9  # of the pixels' differences from their 3x3 median: the noise level
NOISE_SAMPLE: Final = 120  # rows (and columns) on the shorter side that it is measured on, at least
HALF_RES_MIN_SIDE: Final = 200  # frames at least this size find components at half size
MAX_HOLES: Final = 3  # enclosed background regions a digit can have ("8": 2, plus one spare)
MIN_AREA: Final = 3  # pixels at detection size; smaller components are specks

#: Pieces far taller than the frame's digit height (OVERTALL times it, when TYPICAL_COUNT
#: pieces agree on that height) are re-thresholded: a digit that touches a line runs on with it.
#: Twice, not less: a sudoku's printed digits stand 1.5 times its pencil ones, and split,
#: a printed 5 lost its bar (read 2) and a 2 its base (read 7).
OVERTALL: Final = 2.0
TYPICAL_COUNT: Final = 3  # fewer pieces than this: one digit among marks, no typical height
#: Where re-thresholding cannot part an over-tall piece, a stretch of line is cut off its
#: ends: rows no wider than LINE_SHARE of the piece's widest row (median over LINE_ROWS
#: rows, as a line's width flickers), at least LINE_RUN of the digit height long.
LINE_SHARE: Final = 0.2
LINE_ROWS: Final = 5
LINE_RUN: Final = 0.25
MAX_ASPECT: Final = 2.0  # a digit is at most this many times as wide as tall (a tilted, wide "2": 1.6)
#: A piece that spans SPAN of the tallest a digit can be (the frame's height) is a line
#: across the frame, re-thresholded apart from the digits it touches, unless it is as wide
#: as a digit (MIN_SPAN_WIDTH of its height) and as full (its ink blocks cover MIN_SPAN_FILL
#: of its box; lines that cross or meet cover little of theirs): then it is a digit that
#: fills a tight crop from its top row to its bottom (a form field's), read whole.
SPAN: Final = 0.95
MIN_SPAN_WIDTH: Final = 0.3
MIN_SPAN_FILL: Final = 0.1
MAX_PIECES: Final = 400  # strokes considered per frame: bounds time on a page of text


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


def ink_threshold(contrast: np.ndarray) -> int:
    """Otsu's threshold on the contrast map, kept within [INK_FLOOR, INK_CEILING]."""
    return _level(_sample(contrast))


def _sample(contrast: np.ndarray) -> np.ndarray:
    """Every other pixel of a map 64 px or more across: the same histogram shape at a quarter of the cost."""
    return np.ascontiguousarray(contrast[::2, ::2]) if min(contrast.shape) >= 64 else contrast


def _level(pixels: np.ndarray) -> int:
    """Otsu's level of these pixels, kept within [INK_FLOOR, INK_CEILING]."""
    otsu, _ = cv2.threshold(pixels, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return int(min(max(otsu, INK_FLOOR), INK_CEILING))


def find_strokes(contrast: np.ndarray, min_height: int, max_height: int) -> Strokes:
    """The ink pixels and their connected components (see step 2)."""
    binary, seeds, threshold = ink_pixels(contrast)
    factor = 2 if min(binary.shape) >= HALF_RES_MIN_SIDE else 1
    pieces: list[Piece] = []
    for piece in _components(binary, (0, 0), factor, seeds):
        oversize = _oversize(piece, max_height, min_height)
        if oversize and piece.box[3] < min_height:
            continue  # a stretch of rule, too short for a digit: its fragments are shorter still
        if oversize or _too_wide(piece.box, min_height) or _netlike(piece, min_height):
            pieces.extend(_split_kept(contrast, binary, piece, threshold, min_height, max_height))
        else:
            pieces.append(piece)
    pieces = _split_overtall(contrast, binary, pieces, threshold, min_height, max_height)
    if len(pieces) > MAX_PIECES:  # keep the largest strokes; the rest is texture
        pieces = sorted(pieces, key=lambda p: -p.area)[:MAX_PIECES]
    return Strokes(binary=binary, pieces=pieces)


def ink_pixels(contrast: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The contrast map -> (ink pixels uint8, 255 = ink; the seeds of the hysteresis, the
    same, or None; the level that over-large pieces are re-thresholded from, see :func:`_split`)."""
    sample = _sample(contrast)
    threshold = _level(sample)
    noise = pixel_noise(contrast, HYSTERESIS * threshold)
    weak = int(weak_threshold(threshold, noise))
    tiles = tile_thresholds(sample, threshold, contrast.shape)
    if tiles is None:
        _, binary = cv2.threshold(contrast, weak, 255, cv2.THRESH_BINARY)
        # Hysteresis: only the components of the weaker ink that hold some ink above the threshold.
        seeds = cv2.threshold(contrast, threshold, 255, cv2.THRESH_BINARY)[1] if weak < threshold else None
        return binary, seeds, threshold
    # The same against each pixel's level, bilinear between the tiles' centres. Strokes are
    # not followed below the ink floor where a tile lowered the level: grain that the
    # frame's one noise figure misses would join a speck into a stroke there.
    weak_tiles = np.maximum(weak_threshold(tiles, noise), INK_FLOOR)
    binary = cv2.compare(contrast, _spread(weak_tiles, contrast.shape), cv2.CMP_GT)
    return binary, cv2.compare(contrast, _spread(tiles, contrast.shape), cv2.CMP_GT), int(tiles.min())


def tile_thresholds(sample: np.ndarray, threshold: int, shape: tuple[int, ...]) -> np.ndarray | None:
    """Float32 (rows, columns): :func:`ink_threshold` of each tile of about ``TILE`` pixels
    of a contrast map of ``shape``, from its :func:`_sample`, none above the frame's
    ``threshold``; None where no tile's is lower, or the map is one tile."""
    rows, cols = max(1, round(shape[0] / TILE)), max(1, round(shape[1] / TILE))
    if rows * cols == 1:
        return None
    h, w = sample.shape
    ys, xs = [i * h // rows for i in range(rows + 1)], [j * w // cols for j in range(cols + 1)]
    levels = np.array([[_level(sample[y0:y1, x0:x1]) for x0, x1 in zip(xs, xs[1:])]
                       for y0, y1 in zip(ys, ys[1:])], np.float32)
    return np.minimum(levels, threshold) if levels.min() < threshold else None


def _spread(levels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Per-tile levels -> uint8 (H, W), bilinear between the tiles' centres."""
    return cv2.resize(np.rint(levels).astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def weak_threshold(threshold: int | np.ndarray, noise: float) -> np.ndarray:
    """How far down a stroke that reaches ``threshold`` somewhere is followed (hysteresis):
    ``HYSTERESIS`` of it (a soft pencil stroke is faint along much of its length), but never
    down into the frame's pixel noise (``noise``, :func:`pixel_noise`, times ``NOISE_LEVELS``);
    ``threshold`` itself where the noise forbids going lower. Per tile, for an array of levels."""
    return np.minimum(threshold, np.maximum(HYSTERESIS * threshold, NOISE_LEVELS * noise))


def pixel_noise(contrast: np.ndarray, below: float) -> float:
    """The frame's pixel noise in contrast units: the 90th percentile of each pixel's
    difference from its 3x3 median, over the background (pixels under ``below``, the
    weakest a stroke is followed to), on a sample of rows and columns (``NOISE_SAMPLE`` of
    each on the shorter side: the noise is the same everywhere, and a sample costs far
    less). Strokes shrink to single pixels in a sparse sample: counted, they read as noise.
    Without background (a frame all ink) it is 256: no paper to follow strokes into."""
    step = max(1, min(contrast.shape) // NOISE_SAMPLE)
    sample = np.ascontiguousarray(contrast[::step, ::step]) if step > 1 else contrast
    background = cv2.compare(sample, below, cv2.CMP_LT)
    return float(quantiles(cv2.absdiff(sample, cv2.medianBlur(sample, 3)), (NOISE_QUANTILE,), background)[0])


def _components(binary: np.ndarray, origin: tuple[int, int], factor: int,
                seeds: np.ndarray | None = None) -> list[Piece]:
    """8-connected components of ``binary`` (frame pixels, its [0, 0] at frame pixel
    ``origin``), labelled at 1/``factor`` size; an ink pixel anywhere in a block marks
    the block, so thin strokes stay connected. With ``seeds`` (uint8, 255 = ink, the same
    size), only the components that hold a seed pixel."""
    h, w = binary.shape
    if factor > 1 and (h // factor == 0 or w // factor == 0):
        return []
    small = _blocks(binary, factor)
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(small, 8, cv2.CV_32S, cv2.CCL_BBDT)
    if n <= 1:
        return []
    big = stats[:, cv2.CC_STAT_AREA] >= MIN_AREA
    if seeds is not None:
        seeded = np.zeros(n, bool)
        seeded[labels[_blocks(seeds, factor) > 0]] = True
        big &= seeded
    keep = np.nonzero(big[1:])[0] + 1
    ox, oy = origin
    dx, dy = ox // factor, oy // factor
    # Python ints once, by tolist(): a frame of texture has hundreds of components.
    return [Piece(box=(x * factor + ox, y * factor + oy, w * factor, h * factor),
                  area=area, labels=labels, label=i, origin=(dx, dy), factor=factor)
            for i, (x, y, w, h, area) in zip(keep.tolist(), stats[keep].tolist())]


def _blocks(binary: np.ndarray, factor: int) -> np.ndarray:
    """Binary uint8 at 1/``factor`` size: a block is ink where any of its pixels is."""
    if factor == 1:
        return binary
    hd, wd = binary.shape[0] // factor, binary.shape[1] // factor
    small = cv2.resize(binary[: hd * factor, : wd * factor], (wd, hd), interpolation=cv2.INTER_AREA)
    return cv2.threshold(small, 0, 255, cv2.THRESH_BINARY)[1]


def _oversize(piece: Piece, max_height: int, min_height: int) -> bool:
    """Too tall, a line across the frame (see ``SPAN``), or much wider than tall and wide:
    rules, grids, or digits joined by one."""
    _, _, w, h = piece.box
    return h > max_height or (h > SPAN * max_height and not _digit_like(piece)) or w > 2.5 * max(h, min_height)


def _digit_like(piece: Piece) -> bool:
    """As wide and as full as a digit (see ``SPAN``)?"""
    _, _, w, h = piece.box
    return w >= MIN_SPAN_WIDTH * h and piece.area * piece.factor**2 >= MIN_SPAN_FILL * w * h


def _split_overtall(contrast: np.ndarray, binary: np.ndarray, pieces: list[Piece], threshold: int,
                    min_height: int, max_height: int) -> list[Piece]:
    """Re-threshold (:func:`_split`) the pieces far taller than the frame's digits: a digit
    that touches a grid's or margin's line runs on with it, and as one piece is read as
    neither. The frame's digit height: :func:`digit_height`. The split is kept when it leaves
    a piece of about that height; what is still over-tall then has any stretch of bare
    line cut off its ends (:func:`_trim_line`)."""
    typical = digit_height(pieces, min_height)
    if typical is None:
        return pieces
    out = []
    for piece in pieces:
        if piece.box[3] > OVERTALL * typical:
            parts = _split_kept(contrast, binary, piece, threshold, min_height, max_height)
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


def digit_height(pieces: list[Piece], min_height: int) -> float | None:
    """The frame's digit height: the median height of its pieces that could be digits (at
    least ``min_height`` tall, at most ``MAX_ASPECT`` times as wide), trusted only when at
    least ``TYPICAL_COUNT`` of them are within a third of it (a line of digits; not one
    digit among a few marks); else None."""
    heights = [p.box[3] for p in pieces if p.box[3] >= min_height and p.box[2] <= MAX_ASPECT * p.box[3]]
    typical = typical_height(heights)
    if typical is None or sum(0.75 * typical <= h <= 1.33 * typical for h in heights) < TYPICAL_COUNT:
        return None
    return typical


def typical_height(heights: list[int]) -> float | None:
    """The frame's digit height: the median of ``heights``, or None with fewer than
    ``TYPICAL_COUNT`` of them to go by."""
    return median(heights) if len(heights) >= TYPICAL_COUNT else None


def _split_kept(contrast: np.ndarray, binary: np.ndarray, piece: Piece, threshold: int,
                min_height: int, max_height: int) -> list[Piece]:
    """:func:`_split`'s pieces, without what is still oversize (a rule or a frame edge: left
    in, it would swallow the digits it touches when strokes are merged)."""
    return [p for p in _split(contrast, binary, piece, threshold)
            if not _oversize(p, max_height, min_height)]


def _too_wide(box: Box, min_height: int) -> bool:
    """Tall enough for a digit but wider than any one digit is: mostly digits joined by the
    ruled or grid line they sit on, which as one piece would be dropped whole."""
    _, _, w, h = box
    return h >= min_height and w > MAX_ASPECT * h


def _netlike(piece: Piece, min_height: int) -> bool:
    """A mesh rather than a digit: more enclosed holes than any digit has ("8" has two).
    A grid's lines, or digits joined by one, enclose many cells. Holes smaller than
    ``MIN_AREA`` are specks of paper, as such components of ink are specks: pencil's grain
    leaves pinholes in a stroke, which made a pencil 8 a "mesh" that was then re-thresholded
    into a 3."""
    x, y, w, h = piece.box
    if h < 2 * min_height and w < 2 * min_height:
        return False  # too small to enclose more than a digit's holes at this size
    mask = piece_mask(piece, piece.box) if piece.factor == 1 else _block_mask(piece)
    background = cv2.copyMakeBorder((~mask).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    _, _, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=4)
    holes = np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= MIN_AREA) - 1  # label 0 is ink; minus the outside
    return holes > MAX_HOLES


def _block_mask(piece: Piece) -> np.ndarray:
    """The piece's own label blocks (detection pixels), bool."""
    x, y, w, h = piece.box
    f = piece.factor
    bx, by = x // f - piece.origin[0], y // f - piece.origin[1]
    return piece.labels[by:by + h // f, bx:bx + w // f] == piece.label


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
    higher = max(float(otsu), threshold + 10.0, 0.5 * quantiles(values.reshape(1, -1), (0.95,))[0])
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
