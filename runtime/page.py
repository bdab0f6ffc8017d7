"""The page stage: find the sheet in a frame and flatten it (OpenCV).

A sheet, sticky note or board held up to a camera or lying on a desk is brighter than its
surround and, seen at an angle, a convex quadrilateral. :func:`find_page` looks for the
largest such region at low resolution (Otsu's threshold on the blurred frame, the
outer contour, its convex hull simplified to four corners); :func:`flatten` warps it to an
upright rectangle, turned by at most 45 degrees, so that lines of text written along the
sheet come out horizontal; :meth:`Page.to_frame` maps boxes read on the flat page back to
the frame. Where no such region stands out, or the paper fills the frame, there is no page
and the frame is read as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from .frame_input import halve
from .optional import require
from .order import Box

cv2 = require("cv2", "finding the page in camera frames")


WORK_SIDE: Final = 160  # pixels of the longer side where the page is looked for: a sheet is large
MIN_AREA: Final = 0.12  # a page covers at least this share of the frame (smaller: a card, a label)
MAX_AREA: Final = 0.85  # ... and at most this share: beyond it the paper fills the frame
MIN_CONTRAST: Final = 30  # paper at least this much brighter (0..255) than its surround, on average
MIN_FILL: Final = 0.85  # the region fills at least this share of its four-cornered outline (convex)
EDGE_MARGIN: Final = 2  # work pixels: a corner this close to a frame edge is not in view
#: A sheet in view shows at least three of its corners; a bright region cut off by a shadow
#: crossing the frame has at most two of its own (the rest are the frame's).
MIN_CORNERS_IN_VIEW: Final = 3


@dataclass(frozen=True)
class Page:
    """A found sheet: ``corners`` (4, 2) float32 in frame pixels (TL, TR, BR, BL of the flat
    page), and the homography from the flat page (``size`` = width, height) to the frame."""

    corners: np.ndarray
    size: tuple[int, int]
    to_frame_matrix: np.ndarray

    def to_frame(self, box: Box) -> Box:
        """A box on the flat page -> the frame box that holds its four corners."""
        x, y, w, h = box
        pts = np.float32([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]).reshape(-1, 1, 2)
        mapped = cv2.perspectiveTransform(pts, self.to_frame_matrix).reshape(-1, 2)
        x0, y0 = np.floor(mapped.min(axis=0)).astype(int)
        x1, y1 = np.ceil(mapped.max(axis=0)).astype(int)
        return int(x0), int(y0), max(1, int(x1 - x0)), max(1, int(y1 - y0))


def find_page(gray: np.ndarray) -> np.ndarray | None:
    """Gray uint8 (H, W) -> the sheet's four corners (4, 2) float32 in frame pixels, in
    page order (see :func:`_page_order`), or None where no sheet stands out."""
    h, w = gray.shape
    scale = WORK_SIDE / max(h, w)
    if scale >= 1.0:
        return None  # a frame this small is a crop of the page already
    small = cv2.GaussianBlur(_reduce(gray, (max(1, round(w * scale)), max(1, round(h * scale)))), (5, 5), 0)
    level, bright = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    region = max(contours, key=cv2.contourArea)
    quad = _quadrilateral(region)
    if quad is None or not _stands_out(small, bright, region, quad):
        return None
    return _page_order(quad / scale)


def _reduce(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``gray`` area-averaged down to ``size`` (width, height): halvings first, then one
    resize for the rest."""
    small = halve(gray, min(size[::-1]))
    return small if small.shape[::-1] == size else cv2.resize(small, size, interpolation=cv2.INTER_AREA)


def _quadrilateral(region: np.ndarray) -> np.ndarray | None:
    """The region's convex hull simplified to four corners (float32 (4, 2)), or None."""
    hull = cv2.convexHull(region)
    perimeter = cv2.arcLength(hull, True)
    for tolerance in (0.02, 0.04, 0.06):
        approx = cv2.approxPolyDP(hull, tolerance * perimeter, True)
        if len(approx) == 4:
            return approx.reshape(4, 2).astype(np.float32)
    return None


def _stands_out(small: np.ndarray, bright: np.ndarray, region: np.ndarray, quad: np.ndarray) -> bool:
    """Is the region a sheet: large but not the whole frame, convex, with its corners in
    view, and clearly brighter than its surround?"""
    h, w = small.shape
    quad_area = cv2.contourArea(quad)
    if not MIN_AREA * h * w <= quad_area <= MAX_AREA * h * w:
        return False
    if cv2.contourArea(region) < MIN_FILL * quad_area:
        return False
    inside = ((quad[:, 0] > EDGE_MARGIN) & (quad[:, 0] < w - 1 - EDGE_MARGIN)
              & (quad[:, 1] > EDGE_MARGIN) & (quad[:, 1] < h - 1 - EDGE_MARGIN))
    if int(inside.sum()) < MIN_CORNERS_IN_VIEW:
        return False
    mask = np.zeros_like(bright)
    cv2.fillConvexPoly(mask, quad.astype(np.int32), 255)
    paper, surround = small[mask > 0], small[mask == 0]
    return surround.size > 0 and float(np.median(paper)) - float(np.median(surround)) >= MIN_CONTRAST


def _page_order(quad: np.ndarray) -> np.ndarray:
    """Four corners -> TL, TR, BR, BL of the page turned upright by the smallest turn: the
    side whose direction is nearest the frame's x axis (either way) becomes the top."""
    centre = quad.mean(axis=0)
    angle = np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0])
    ring = quad[np.argsort(angle)]  # clockwise in image coordinates (y down), from the left
    best, best_turn = 0, np.inf
    for k in range(4):  # k: which corner starts the top side
        dx, dy = ring[(k + 1) % 4] - ring[k]
        turn = abs(np.arctan2(dy, dx))  # 0 for a top side running left to right
        if turn < best_turn:
            best, best_turn = k, turn
    return np.roll(ring, -best, axis=0).astype(np.float32)


def flatten(frame: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, Page]:
    """Warp the page inside ``corners`` (TL, TR, BR, BL) to an upright rectangle of its own
    size (the mean lengths of its opposite sides), and the :class:`Page` to map back."""
    tl, tr, br, bl = corners
    width = int(round((np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2))
    height = int(round((np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2))
    width, height = max(width, 1), max(height, 1)
    flat_corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    to_flat = cv2.getPerspectiveTransform(corners.astype(np.float32), flat_corners)
    flat = cv2.warpPerspective(frame, to_flat, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    return flat, Page(corners=corners, size=(width, height), to_frame_matrix=np.linalg.inv(to_flat))
