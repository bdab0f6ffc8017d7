"""Ruled and grid lines (OpenCV + numpy): erased from the ink map, and told from digits.

* :func:`without_lines`, the ink stage's first step: a line is ink that runs straight
  across (nearly) the whole frame, in rows or in columns. Its contrast would set the ink
  threshold above soft pencil, and its stretches would be read as 1s and 7s; erased, with
  its rim, it leaves the digits on their own. Where a digit's stroke crosses a line, the
  stroke is mended across the erased band.
* :func:`line_stretch`, at the crops stage: a candidate that is a stretch of a shorter
  line (a grid's or margin's, darker than the rest of it), told by its strokes running on
  past its sides, with paper beside the run (ink all around is a shadow, not a line).
"""

from typing import Final

import numpy as np

from .optional import require
from .order import Box

cv2 = require("cv2", "finding digits in camera frames")

#: A ruled or grid line: ink running straight over at least this share of the frame's width
#: (or height); a digit, even one photographed alone, ends short of the frame's edges.
LINE_REACH: Final = 0.95
LINE_BAND: Final = 3  # pixels across in which a line's run is followed (it may lean a little)
#: A line's run is followed where its contrast reaches this share of the ink floor: noise
#: in a dim photo, blur or a lighter stretch takes parts of a faint line under the floor,
#: and the parts left would be read as 1s and 7s. Straight across the frame, it is no digit.
LINE_LEVEL: Final = 0.5
_RIM: Final = np.ones((3, 3), np.uint8)  # a line's anti-aliased rim goes with it
#: A stroke crossing an erased line is mended across gaps up to this many pixels (a line's
#: width plus its rim).
MEND_GAP: Final = 9
_CROSSING_V: Final = np.ones((MEND_GAP, 1), np.uint8)
_CROSSING_H: Final = np.ones((1, MEND_GAP), np.uint8)
#: Stretches of ruled and grid lines that came out as dark as ink (see :func:`line_stretch`):
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


def without_lines(contrast: np.ndarray, floor: int) -> np.ndarray:
    """The contrast map with ruled and grid lines erased: ink that runs straight across
    (nearly) the whole frame, rows or columns (see ``LINE_REACH``), and its rim. A digit
    with any margin around it never spans a frame edge to edge; a line does, and its contrast
    would otherwise set the ink threshold above faint pencil and leave stretches of line to
    be read as 1s and 7s. (A crop cut tight to a digit loses a 7's bar: it has no margin.)
    Ink is what reaches ``floor`` (contrast 0..255); a line is followed down to ``LINE_LEVEL``
    of it."""
    inked = cv2.threshold(contrast, int(LINE_LEVEL * floor) - 1, 1, cv2.THRESH_BINARY)[1]
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
    length = inked.shape[1] if rows else inked.shape[0]
    n = max(3, int(LINE_REACH * length))
    if n > length:
        return None  # a frame too small to tell
    # A run needs that much ink in LINE_BAND neighbouring rows (columns): most frames have
    # none, and are done with one cheap sum.
    sums = cv2.reduce(inked, 1 if rows else 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    if np.convolve(sums, np.ones(LINE_BAND, np.int32)).max() < n:
        return None
    band = cv2.dilate(inked, np.ones((LINE_BAND, 1) if rows else (1, LINE_BAND), np.uint8))
    # A run of n inside the frame covers its middle, [length - n, n): only the rows (columns)
    # inked all along it can hold one. Textured paper passes the sum above; few rows pass this.
    middle = band[:, length - n:n] if rows else band[length - n:n]
    # (A sum, not REDUCE_MIN, which takes a millisecond on a 640x480 frame.)
    inked_middle = cv2.reduce(middle, 1 if rows else 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    candidates = np.flatnonzero(inked_middle == 2 * n - length)
    if not len(candidates):
        return None
    # Rows (columns) are independent: the windows run along them, so only the candidates are
    # filtered. The first sum is anchored at each window's first pixel (is the window from here
    # all ink?), the second at its last (does a full window reach here?): the run's own pixels.
    window, first, last = ((n, 1), (0, 0), (n - 1, 0)) if rows else ((1, n), (0, 0), (0, n - 1))  # (x, y)
    lane = np.ascontiguousarray(band[candidates] if rows else band[:, candidates])
    full = cv2.boxFilter(lane, cv2.CV_16U, window, anchor=first, normalize=False,
                         borderType=cv2.BORDER_CONSTANT) >= n
    if not full.any():
        return None
    covered = cv2.boxFilter(full.view(np.uint8), cv2.CV_16U, window, anchor=last, normalize=False,
                            borderType=cv2.BORDER_CONSTANT) > 0
    out = np.zeros(inked.shape, bool)
    if rows:
        out[candidates] = covered
    else:
        out[:, candidates] = covered
    return out


def line_stretch(contrast: np.ndarray, box: Box, strokes: np.ndarray, core: float) -> bool:
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
    rows = slice(start, start + reach)
    strip = contrast[rows, first:last]
    return (int(np.count_nonzero(strip.max(axis=1) >= level)) >= RUN_ROWS * reach
            and not _flooded(contrast, rows, first, last, level))


def _flooded(contrast: np.ndarray, rows: slice, first: int, last: int, level: float) -> bool:
    """Is the ink that runs on in columns ``first:last`` of these rows part of a dark region
    rather than a line: ink of at least ``level`` also on both sides of it, in bands as wide
    as it and as far from it, at ``RUN_ROWS`` of the rows? A line is narrow, with paper
    beside it; a shadow that the ink map took for ink (a band narrower than its paper
    kernel) covers the digits in it and everything around them. At the frame's edge: no."""
    width = max(3, last - first)
    left = contrast[rows, max(0, first - 2 * width):max(0, first - width)]
    right = contrast[rows, last + width:last + 2 * width]
    if left.shape[1] == 0 or right.shape[1] == 0:
        return False
    both = (left.min(axis=1) >= level) & (right.min(axis=1) >= level)
    return int(np.count_nonzero(both)) >= RUN_ROWS * len(both)
