"""Ruled and grid lines erased from an ink map (OpenCV + numpy): the ink stage's first step.

A line is ink that runs straight across (nearly) the whole frame, in rows or in columns.
Its contrast would set the ink threshold above soft pencil, and its stretches would be
read as 1s and 7s; erased, with its rim, it leaves the digits on their own. Where a digit's
stroke crosses a line, the stroke is mended across the erased band.
"""

from typing import Final

import numpy as np

from .optional import require

cv2 = require("cv2", "finding digits in camera frames")

#: A ruled or grid line: ink running straight over at least this share of the frame's width
#: (or height); a digit, even one photographed alone, ends short of the frame's edges.
LINE_REACH: Final = 0.95
LINE_BAND: Final = 3  # pixels across in which a line's run is followed (it may lean a little)
_RIM: Final = np.ones((3, 3), np.uint8)  # a line's anti-aliased rim goes with it
#: A stroke crossing an erased line is mended across gaps up to this many pixels (a line's
#: width plus its rim).
MEND_GAP: Final = 9
_CROSSING_V: Final = np.ones((MEND_GAP, 1), np.uint8)
_CROSSING_H: Final = np.ones((1, MEND_GAP), np.uint8)


def without_lines(contrast: np.ndarray, floor: int) -> np.ndarray:
    """The contrast map with ruled and grid lines erased: ink that runs straight across
    (nearly) the whole frame, rows or columns (see ``LINE_REACH``), and its rim. A digit
    with any margin around it never spans a frame edge to edge; a line does, and its contrast
    would otherwise set the ink threshold above faint pencil and leave stretches of line to
    be read as 1s and 7s. (A crop cut tight to a digit loses a 7's bar: it has no margin.)
    Ink is what reaches ``floor`` (contrast 0..255)."""
    inked = cv2.threshold(contrast, floor - 1, 1, cv2.THRESH_BINARY)[1]
    lines = [run for run in (_full_runs(inked, True), _full_runs(inked, False)) if run is not None]
    if not lines:
        return contrast
    erase = cv2.dilate((lines[0] | lines[-1]).view(np.uint8), _RIM).view(bool)
    out = contrast.copy()
    out[erase] = 0
    # Where a digit's stroke crosses a line, ink is left on both sides of the erased band:
    # the band is mended there (a closing across the line), so the digit stays whole.
    left = (out >= floor).view(np.uint8)
    across = cv2.morphologyEx(left, cv2.MORPH_CLOSE, _CROSSING_V) | cv2.morphologyEx(left, cv2.MORPH_CLOSE, _CROSSING_H)
    mend = erase & across.view(bool)
    out[mend] = contrast[mend]
    return out


def _full_runs(inked: np.ndarray, rows: bool) -> np.ndarray | None:
    """Bool mask of the pixels on straight runs of ink (0/1 uint8) at least ``LINE_REACH`` of
    the frame's width (``rows``) or height long, or None where there is none. Runs are
    looked for in bands ``LINE_BAND`` pixels across, so that a line may lean a little.
    Box filters count the ink in each window: the cost does not grow with the run's length."""
    h, w = inked.shape
    n = max(3, int(LINE_REACH * (w if rows else h)))
    # A run needs that much ink in LINE_BAND neighbouring rows (columns): most frames have
    # none, and are done with one cheap sum.
    sums = cv2.reduce(inked, 1 if rows else 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    if np.convolve(sums, np.ones(LINE_BAND, np.int32)).max() < n:
        return None
    band = cv2.dilate(inked, np.ones((LINE_BAND, 1) if rows else (1, LINE_BAND), np.uint8))
    window = (n, 1) if rows else (1, n)  # (width, height)
    full = cv2.boxFilter(band, cv2.CV_16U, window, normalize=False, borderType=cv2.BORDER_CONSTANT) >= n
    if not full.any():
        return None
    # Each full window's centre back to the whole window: the run's pixels.
    return cv2.boxFilter(full.view(np.uint8), cv2.CV_16U, window, normalize=False, borderType=cv2.BORDER_CONSTANT) > 0
