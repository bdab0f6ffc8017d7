"""Where the ink is in a gray frame: the ink map (OpenCV + numpy).

:func:`ink_map`: the ink's polarity (dark on paper, or chalk on a board) is decided
first; then the surface's own brightness is estimated by a morphological closing (an
opening for chalk) at low resolution, which erases strokes but keeps shadows and light
gradients, and ink is what stands out from its local surface, as a *ratio* of that
surface's brightness, so that a digit in shadow reads like one in light. Ruled and grid
lines that cross the whole frame are erased from it (:mod:`.lines`).

:mod:`.strokes` finds the strokes in it; :mod:`.segment` groups them into digits and lines.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np

from .frame_input import halve
from .lines import without_lines
from .optional import require

cv2 = require("cv2", "finding digits in camera frames")

CLOSING_SHARE: Final = 0.25  # paper kernel, share of the frame's shorter side: wider than
# the strokes of the largest digit a frame can hold, narrower than a shadow's extent.
SMALL_KERNEL: Final = 9  # that kernel in pixels of the reduced image the closing runs on
MIN_KERNEL: Final = 7.0  # pixels: wider than the strokes of a digit filling a 28x28 image
POLARITY_SIDE: Final = 120  # least pixels on the shorter side where polarity is judged:
# small digits (24 px in a 480 px frame) must still be a few pixels tall there.
#: ... but where no strokes stand out there, at most this reduction: a pen 2-3 pixels wide
#: stands out reduced 4 times and fades into the paper reduced 8 times.
FINE_REDUCTION: Final = 4
POLARITY_TAILS: Final = (0.995, 0.999)  # quantiles of the responses that decide polarity
BOARD_MAX: Final = 128  # with no strokes, a board's typical (median) pixel is darker than this
BOARD_RANGE: Final = (0.01, 0.5, 0.999)  # quantiles: a frame's darkest, typical and brightest (sparse chalk too)
#: Tails (summed) below this share of the frame's typical brightness on both sides: no
#: strokes at all. A share, not levels: a dim photo's strokes differ less in levels.
POLARITY_WEAK: Final = 0.45
POLARITY_COARSE: Final = 60  # pixels on the shorter side where the surface is estimated
POLARITY_WINDOW: Final = 2  # median over (that side / this) pixels: wider than strokes
MIN_PAPER: Final = 48  # contrast denominator floor: a black frame's noise is not ink
MIN_BOARD: Final = 32  # the same for a board, dark by nature
CHALK_RATIO: Final = 3.0  # chalk as bright as this many boards above the board = contrast 255
#: Pixels where polarity is judged: strokes are narrower than this; paper beside a dark desk is not.
STROKE_WIDTH: Final = 3
_STROKE: Final = cv2.getStructuringElement(cv2.MORPH_RECT, (STROKE_WIDTH, STROKE_WIDTH))
THIN_SHARE: Final = 0.25  # of the dark tail a top-hat keeps where the ink is pen or pencil (0.49 and up)
INK_FLOOR: Final = 50  # lowest ink threshold, contrast 0..255 (~20% darker than paper): soft pencil passes


@dataclass(frozen=True)
class InkMap:
    """``contrast`` uint8 (H, W): how much each pixel stands out from its local surface
    as ink (0 none; 255 black on white paper, or chalk ``CHALK_RATIO`` boards brighter
    than its board); ``light_ink`` says whether the frame was light ink on a dark surface."""

    contrast: np.ndarray
    light_ink: bool


def ink_map(gray: np.ndarray, light_ink: bool | None = None) -> InkMap:
    """Gray uint8 (H, W) -> :class:`InkMap` (see the module docstring). ``light_ink``:
    the ink's polarity where it is known already (the same page, turned), else judged here."""
    h, w = gray.shape
    # One reduction by halvings (OpenCV's fast path) serves the polarity test and,
    # reduced further, the surface estimate.
    small = halve(gray, POLARITY_SIDE)
    light = _light_ink(gray, small) if light_ink is None else light_ink
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
    return InkMap(contrast=without_lines(contrast, INK_FLOOR), light_ink=light)


def _shrink(gray: np.ndarray, scale: float) -> np.ndarray:
    """Area-averaged copy at ``scale`` (never enlarged)."""
    if scale >= 1.0:
        return gray
    h, w = gray.shape
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _light_ink(gray: np.ndarray, small: np.ndarray) -> bool:
    """True when the frame's strokes (``gray``, reduced to ``small``) are brighter than
    their surroundings (chalk on a board), False for dark ink on paper: :func:`_strokes_light`.
    Where no strokes stand out in ``small`` and it is reduced more than ``FINE_REDUCTION``
    times, thin strokes may have faded in the reduction (a fine pen on a large frame): the
    frame is judged again reduced that many times.
    Where none stand out there either (a blank page or board), the surface's own brightness
    decides, so that its texture is never mistaken for ink of the other polarity."""
    light = _strokes_light(small)
    if light is None and min(gray.shape) > FINE_REDUCTION * min(small.shape):
        small = halve(gray, min(gray.shape) // FINE_REDUCTION)
        light = _strokes_light(small)
    return light if light is not None else quantiles(small, (BOARD_RANGE[1],))[0] < BOARD_MAX


def _strokes_light(small: np.ndarray) -> bool | None:
    """Are the strokes of this (reduced) frame brighter than their surroundings? None where
    no strokes stand out.

    The surface is most of every neighbourhood, so a median filter (at a coarse scale,
    where it is cheap) gives its brightness, and keeps shadow edges sharp; strokes stand
    out from it on one side, strongly, while noise and texture spread to both sides
    about equally; the strongest responses (a high percentile) on each side decide.
    Pen and pencil are thin: a frame taken for a board is paper after all where its dark
    responses are largely thin strokes (narrower than ``STROKE_WIDTH``: they survive a
    top-hat; ``THIN_SHARE``) that outweigh its thin bright ones, so that a sheet of paper
    beside a dark desk, a broad bright response above a surface the desk pulls down, is not
    taken for chalk; thick white digits on black (MNIST's own look) stay chalk.
    (A top-hat of the frame itself would not do: the paper *between* dark strokes is a thin
    bright feature; nor would a local mean, which smears shadow edges.)"""
    coarse = _shrink(small, POLARITY_COARSE / min(small.shape))
    k = max(3, (min(coarse.shape) // POLARITY_WINDOW) | 1)
    surface = cv2.medianBlur(coarse, min(k, 255))
    if surface.shape != small.shape:
        surface = cv2.resize(surface, small.shape[::-1], interpolation=cv2.INTER_LINEAR)
    darker, brighter = cv2.subtract(surface, small), cv2.subtract(small, surface)
    # Two tails: the broader one holds when ink is plentiful, the thinner one when a few
    # small digits share the frame with a shadow's edge (whose responses are broad, weak).
    dark, bright = _tails(darker, POLARITY_TAILS), _tails(brighter, POLARITY_TAILS)
    darkest, typical, brightest = quantiles(small, BOARD_RANGE)
    weak = POLARITY_WEAK * max(typical, MIN_BOARD)
    if max(dark, bright) < weak:
        return None  # no strokes stand out
    # Chalk needs a board: paper with a dark rim (a grid's thick line, the desk beyond a
    # cell) has bright responses beside the rim too, but its typical pixel is nearer its
    # brightest than its darkest; a board's is nearer its darkest (chalk is brighter still).
    if not (bright > dark and typical - darkest < brightest - typical):
        return False
    # ... unless the dark responses are largely thin strokes (THIN_SHARE of them survive a
    # top-hat) that outweigh the thin bright ones: ink on paper beside a dark desk, not chalk.
    thin_dark, thin_bright = (_tails(cv2.morphologyEx(r, cv2.MORPH_TOPHAT, _STROKE), POLARITY_TAILS)
                              for r in (darker, brighter))
    return not (thin_dark > thin_bright and thin_dark >= max(weak, THIN_SHARE * dark))


def _tails(values: np.ndarray, qs: tuple[float, ...]) -> float:
    """Sum of the q-quantiles of a uint8 image."""
    return float(sum(quantiles(values, qs)))


def quantiles(values: np.ndarray, qs: tuple[float, ...], mask: np.ndarray | None = None) -> list[int]:
    """The q-quantiles of a uint8 image (of its pixels where ``mask``, uint8, is not 0), from
    its histogram (one pass, cheaper than a sort)."""
    hist = cv2.calcHist([values], [0], mask, [256], [0, 256]).ravel()
    cdf = np.cumsum(hist) / max(float(hist.sum()), 1.0)
    return [int(v) for v in np.searchsorted(cdf, qs)]
