"""What a crop's shape says about it: the measures the is-digit rule tests (numpy only).

* :func:`features`: the six numbers of a crop's *profile* (score, doubt, ink, stroke
  width, edge-orientation entropy, quarter-turn overlap);
* :func:`half_turn`: how much a crop looks like itself turned half a turn (crosses, plus
  signs and stars do; handwritten 2-7 and 9 do not);
* :func:`spokes`: how much its strokes run like spokes from its centre (stars);
* :func:`detached_dot`: a small mark cut off above or below the rest ("?", "!", "i").

:mod:`.novelty` turns them into the verdict.
"""

from __future__ import annotations

from typing import Final

import numpy as np

#: Pixels this close to the centre of mass do not count in :func:`spokes`: at the hub every
#: direction is a radius.
HUB_RADIUS: Final = 3.0
#: What :func:`detached_dot` calls a dot: the crop's top or bottom band of ink rows, cut off
#: from the rest by empty rows, holding more than DOT_SHARE[0] and less than DOT_SHARE[1] of
#: the ink (a mark, not a speck of anti-aliasing, and smaller than the body) and at most
#: DOT_MAX_ROWS x DOT_MAX_COLUMNS pixels of the 20x20 box a crop's ink fills. Ink is what
#: reaches DOT_LEVEL of the crop's brightest pixel.
DOT_LEVEL: Final = 0.5
DOT_SHARE: Final = (0.05, 0.45)
DOT_MAX_ROWS: Final = 6
DOT_MAX_COLUMNS: Final = 7
#: The profile's features, in order (see :func:`features`).
FEATURES: Final = ("log_score", "log_doubt", "log_ink", "log_width", "edge_entropy", "quarter_turn")
_EPS = 1e-6
_ORIENTATION_BINS = 16  # edge orientations over half a turn: 11.25 degrees a bin


def features(score: np.ndarray, probabilities: np.ndarray, images: np.ndarray) -> np.ndarray:
    """The profile of each crop: (N,) score, (N, 10) probabilities and (N, 28, 28) or
    (N, 1, 28, 28) images in [0, 1] -> float64 (N, 6), columns as in :data:`FEATURES`:

    ``log_score``     log of the negative ELBO (nats)
    ``log_doubt``     log of 1 - the top class probability
    ``log_ink``       log of the mean pixel
    ``log_width``     log of the mean stroke width in pixels, 2 * ink / total variation
                      (a bar w pixels wide gives w)
    ``edge_entropy``  entropy (nats) of the edge orientations, a 16-bin histogram of the
                      gradient's orientation weighted by its magnitude: low for shapes made of
                      a few straight edges, high for curves
    ``quarter_turn``  the crop's overlap with itself turned 90 degrees about the centre (where
                      MNIST puts the centre of mass), over its overlap with itself: 1 for a
                      plus sign or an x, about 0.3 for a typical digit
    """
    # Pixel work in float32 (the camera path runs this on every crop); sums in float64.
    x = images.reshape(len(images), images.shape[-2], images.shape[-1]).astype(np.float32)
    n = len(x)
    total = x.reshape(n, -1).sum(axis=1, dtype=np.float64)
    variation = (np.abs(np.diff(x, axis=1)).sum(axis=(1, 2), dtype=np.float64)
                 + np.abs(np.diff(x, axis=2)).sum(axis=(1, 2), dtype=np.float64))
    gy, gx = _gradient(x, 1), _gradient(x, 2)
    magnitude = np.sqrt(gx * gx + gy * gy)  # np.hypot's care for overflow costs 4x, needless in [-1, 1]
    # Orientations only where there is an edge (most of a crop is flat black, and arctan2
    # is the costliest step); flat pixels would add weight 0 anyway. A boolean mask picks
    # them in image order, so each one's image is its image's index repeated.
    edge = magnitude > 0
    image = np.repeat(np.arange(n), np.count_nonzero(edge.reshape(n, -1), axis=1))
    angle = np.arctan2(gy[edge], gx[edge]) % np.pi
    bins = np.minimum((angle * (_ORIENTATION_BINS / np.pi)).astype(np.int64), _ORIENTATION_BINS - 1)
    # One weighted bincount over (image, bin) pairs: the per-image histograms at once.
    histogram = np.bincount(image * _ORIENTATION_BINS + bins, weights=magnitude[edge],
                            minlength=n * _ORIENTATION_BINS).reshape(n, _ORIENTATION_BINS)
    share = histogram / np.maximum(histogram.sum(axis=1, keepdims=True), 1e-12)
    entropy = -(share * np.log(np.maximum(share, 1e-12))).sum(axis=1)
    turned = np.rot90(x, 1, axes=(1, 2))
    overlap = (x * turned).sum(axis=(1, 2), dtype=np.float64)
    quarter_turn = overlap / np.maximum((x * x).sum(axis=(1, 2), dtype=np.float64), 1e-12)
    return np.stack([
        np.log(np.maximum(np.asarray(score, np.float64), _EPS)),
        np.log(np.maximum(1.0 - np.asarray(probabilities, np.float64).max(axis=1), _EPS)),
        np.log(np.maximum(total / (x.shape[1] * x.shape[2]), _EPS)),
        np.log(np.maximum(2.0 * total / np.maximum(variation, 1e-3), _EPS)),
        entropy,
        quarter_turn,
    ], axis=1)


def _gradient(x: np.ndarray, axis: int) -> np.ndarray:
    """``np.gradient(x, axis=axis)`` for a (N, H, W) stack (central differences inside,
    one-sided at the edges), without its per-call overhead: the camera runs it per frame."""
    def at(index: slice | int) -> tuple[slice | int, ...]:  # ``index`` along ``axis``, all of the others
        return (slice(None),) * axis + (index,)

    out = np.empty_like(x)
    out[at(slice(1, -1))] = (x[at(slice(2, None))] - x[at(slice(None, -2))]) * np.float32(0.5)
    out[at(0)], out[at(-1)] = x[at(1)] - x[at(0)], x[at(-1)] - x[at(-2)]
    return out


def half_turn(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 1, 28, 28) images in [0, 1] -> (N,) float64: each crop's overlap
    with itself turned half a turn about its own centre of mass (bilinear), over its overlap
    with itself. 1 for a plus sign, an x, a star or a bar; a 0, 1 or 8 comes close, but a
    handwritten 2, 3, 4, 6, 7 or 9 seldom passes 0.8."""
    x = images.reshape(len(images), images.shape[-2], images.shape[-1]).astype(np.float32)
    n, rows, cols = x.shape
    r, c = np.arange(rows), np.arange(cols)
    centre_y, centre_x = _centre_of_mass(x)
    # The turned crop at (i, j) is the crop at (2 cy - i, 2 cx - j), read between pixels:
    # bilinear reading is separable, so it is two matrix products with tent weights
    # max(0, 1 - |source - k|) for pixel k (a source outside the crop reads paper).
    rows_from = _tent(2 * centre_y[:, None] - r, rows)  # (N, rows, rows)
    cols_from = _tent(2 * centre_x[:, None] - c, cols)  # (N, cols, cols)
    turned = rows_from @ x @ cols_from.transpose(0, 2, 1)
    return (x * turned).sum(axis=(1, 2), dtype=np.float64) / np.maximum((x * x).sum(axis=(1, 2), dtype=np.float64), 1e-12)


def spokes(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 1, 28, 28) images in [0, 1] -> (N,) float64 in [0, 1]: how much
    the strokes run like spokes from the crop's centre of mass. The share of the edges'
    squared gradient that lies *across* the line to the centre (a stroke along that line has
    its gradient across it), over the pixels beyond ``HUB_RADIUS``. About 0.8 for a star, 1
    for a bar through the centre (a 1), about 0.5 for a typical 4, 0 for a ring."""
    x = images.reshape(len(images), images.shape[-2], images.shape[-1]).astype(np.float32)
    n, rows, cols = x.shape
    centre_y, centre_x = _centre_of_mass(x)
    dy = (np.arange(rows)[None, :] - centre_y[:, None]).astype(np.float32)
    dx = (np.arange(cols)[None, :] - centre_x[:, None]).astype(np.float32)
    distance = np.hypot(dy[:, :, None], dx[:, None, :])
    gy, gx = _gradient(x, 1), _gradient(x, 2)
    along = (gy * dy[:, :, None] + gx * dx[:, None, :]) / np.maximum(distance, 1e-6)  # the gradient along the radius
    beyond = distance > HUB_RADIUS
    energy = ((gx * gx + gy * gy) * beyond).sum(axis=(1, 2), dtype=np.float64)
    radial = ((along * along) * beyond).sum(axis=(1, 2), dtype=np.float64)
    return np.where(energy > 0, 1.0 - radial / np.maximum(energy, 1e-12), 0.0)


def detached_dot(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 1, 28, 28) images in [0, 1] -> (N,) float64: how many empty rows
    part the crop's body from a dot above or below it (the larger, where both), 0 where it
    has none. A dot is the top or bottom band of ink rows, cut off by empty rows, with more
    than ``DOT_SHARE[0]`` and less than ``DOT_SHARE[1]`` of the ink, at most
    ``DOT_MAX_ROWS`` tall and ``DOT_MAX_COLUMNS`` wide: the dot of a "?", "!", "i", "j" or
    ";". Handwritten digits are one piece, or come apart in large pieces (a "5"'s bar)."""
    x = images.reshape(len(images), images.shape[-2], images.shape[-1]).astype(np.float32)
    peak = x.reshape(len(x), -1).max(axis=1)
    ink = x > DOT_LEVEL * np.maximum(peak, _EPS)[:, None, None]
    mass = np.where(ink, x, 0.0).sum(axis=2, dtype=np.float64)  # (N, rows)
    total = np.maximum(mass.sum(axis=1), 1e-12)
    top = _band_dot(ink, mass / total[:, None])
    bottom = _band_dot(ink[:, ::-1], mass[:, ::-1] / total[:, None])  # rows flipped: the bottom band on top
    return np.maximum(top, bottom)


def _band_dot(ink: np.ndarray, share: np.ndarray) -> np.ndarray:
    """:func:`detached_dot` for the top band: ink bool (N, rows, cols), each row's share of
    the ink (N, rows) -> (N,) the empty rows under the band where it is a dot, else 0."""
    _, rows, cols = ink.shape
    r = np.arange(rows)
    inked = ink.any(axis=2)
    first = inked.argmax(axis=1)  # the band's first row
    after = ~inked & (r > first[:, None])
    end = np.where(after.any(axis=1), after.argmax(axis=1), rows)  # the first empty row under it
    below = inked & (r > end[:, None])
    resume = np.where(below.any(axis=1), below.argmax(axis=1), end)  # the next row with ink
    band = (r >= first[:, None]) & (r < end[:, None])
    columns = (ink & band[:, :, None]).any(axis=1)
    width = cols - columns[:, ::-1].argmax(axis=1) - columns.argmax(axis=1)
    part = (share * band).sum(axis=1)
    dot = ((resume > end) & (part > DOT_SHARE[0]) & (part < DOT_SHARE[1])
           & (end - first <= DOT_MAX_ROWS) & (width <= DOT_MAX_COLUMNS))
    return np.where(dot, resume - end, 0).astype(np.float64)


def _centre_of_mass(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 crops (N, rows, cols) -> each one's centre of mass, float64 (N,) row and
    column (0 for a crop without ink)."""
    mass = np.maximum(x.sum(axis=(1, 2), dtype=np.float64), 1e-12)
    return ((x.sum(axis=2) * np.arange(x.shape[1])).sum(axis=1) / mass,
            (x.sum(axis=1) * np.arange(x.shape[2])).sum(axis=1) / mass)


def _tent(source: np.ndarray, size: int) -> np.ndarray:
    """(N, M) positions to read -> (N, M, size) float32 bilinear weights of each pixel."""
    weights = np.abs(source.astype(np.float32)[:, :, None] - np.arange(size, dtype=np.float32))
    np.subtract(1.0, weights, out=weights)
    return np.maximum(weights, 0.0, out=weights)
