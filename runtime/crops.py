"""The crops stage: candidate digits -> 28x28 crops normalised as MNIST was (SPEC section 3).

:func:`candidate_crops` keeps the groups of strokes whose ink is strong enough and that are
not a stretch of line (:func:`.lines.line_stretch`), and crops each one. MNIST's recipe:
white ink on black, the digit scaled (aspect kept, anti-aliased) to fit a 20x20 box, then
placed in the 28x28 frame so that its centre of mass is at the centre. The ink values
come from the frame's ink-contrast map, restricted to the digit's own strokes (so a
neighbour's edge or a rule inside the box does not come along) and scaled so that the
stroke cores are 1, as MNIST's are.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np

from .lines import line_stretch
from .optional import require
from .order import Box
from .segment import Group, group_mask
from .spec import DIGIT_BOX, IMAGE_SIZE, PEN_CHANGE

cv2 = require("cv2", "normalising digit crops")

# Measured against MNIST (whose strokes are mostly saturated, with a thin grey rim) on
# generated frames: a median core and a high floor give crops whose ink, stroke width and
# crispness match MNIST's, and a quarter of the is-digit rejections of real digits.
CORE_QUANTILE: Final = 0.5  # of the stroke pixels' contrast: the level that becomes 1
PEAK_QUANTILE: Final = 0.9  # of the same: how strong the ink is ...
MIN_PEAK: Final = 80  # ... which must reach this (contrast 0..255) for written ink; rules,
# smudges and shadow edges that slip through the threshold are fainter ...
FAINT_PEAK: Final = 45  # ... unless the frame's writing is faint itself (soft pencil, a blurred or
PEAK_SHARE: Final = 0.6  # washed-out photo): then this share of its strongest peak, but never below FAINT_PEAK
EDGE_SHARE: Final = 0.5  # contrast below this share of the core level becomes 0
#: MNIST's pen: strokes thinner than this (pixels of the 28x28 crop, measured as 2 x ink /
#: total variation) are drawn bolder before the crop is shrunk. MNIST's median is 1.86 and
#: its 5th percentile 1.3; a thin pen on a large digit shrinks to a hair the classifier never saw.
MIN_PEN: Final = 1.6
_DILATE: Final = np.ones((3, 3), np.uint8)


def candidate_crops(contrast: np.ndarray, binary: np.ndarray, groups: list[Group], min_height: int,
                    max_digits: int, *, solid_cores: bool) -> list[tuple[Box, np.ndarray]]:
    """The ink map (contrast uint8), its ink pixels (uint8, 255 = ink) and the frame's
    groups of strokes -> (tight box, normalised crop) of the groups whose ink is strong
    enough and which are not a stretch of line, at most ``max_digits`` of them, the largest
    first. ``solid_cores``: see :func:`ink_levels` (pen and pencil; chalk's grain is its own)."""
    groups = sorted(groups, key=lambda g: -g.box[2] * g.box[3])
    masks = [group_mask(group, binary) for group in groups]
    regions = [contrast[y:y + h, x:x + w] for (x, y, w, h), _ in masks]
    strengths = [ink_strength(region, strokes) for region, (_, strokes) in zip(regions, masks)]
    least = required_peak([peak for _, peak in strengths])
    out = []
    for (box, strokes), region, (core, peak) in zip(masks, regions, strengths):
        if peak < least or box[3] < min_height:
            continue  # faint (a rule, a smudge, a shadow edge), or only specks
        if line_stretch(contrast, box, strokes, core):
            continue  # a piece of a ruled or grid line
        out.append((box, mnist_crop(ink_levels(region, strokes, core, solid_cores=solid_cores))))
        if len(out) == max_digits:
            break
    return out


def required_peak(peaks: list[float]) -> float:
    """The peak a candidate's ink must reach, given every candidate's of the frame: MIN_PEAK,
    lowered (to PEAK_SHARE of the strongest, at least FAINT_PEAK) where all the writing is faint."""
    return min(MIN_PEAK, max(FAINT_PEAK, PEAK_SHARE * max(peaks, default=0.0)))


def ink_strength(contrast: np.ndarray, strokes: np.ndarray) -> tuple[float, float]:
    """(core, peak): the ``CORE_QUANTILE`` and ``PEAK_QUANTILE`` of the contrast (uint8
    (h, w)) over the stroke pixels (bool (h, w)); (0, 0) without strokes."""
    values = contrast[strokes]
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    kth = [min(n - 1, int(CORE_QUANTILE * n)), min(n - 1, int(PEAK_QUANTILE * n))]
    part = np.partition(values, kth)  # nearest-rank quantiles, cheaper than np.percentile
    return float(part[kth[0]]), float(part[kth[1]])


def ink_levels(contrast: np.ndarray, strokes: np.ndarray, core: float, *, solid_cores: bool) -> np.ndarray:
    """Contrast uint8 (h, w), the digit's stroke mask bool (h, w) and its core contrast
    -> float32 ink in [0, 1]: the strokes plus a one-pixel rim (their anti-aliased
    edge), scaled so that stroke cores are 1 and the paper around them 0. With
    ``solid_cores``, a stroke pixel off the mask's edge is core whatever its contrast: a
    wide pen photographed sharpened, or a ballpoint's track, leaves a paler line along the
    middle of its strokes, which would read as two thin strokes (a 1 as an 8). Chalk's
    grain lies all through its strokes, no pale middle: it is left as it is."""
    mask = strokes.view(np.uint8)
    kept = contrast * cv2.dilate(mask, _DILATE)  # the strokes and their rim; the rest is paper
    if solid_cores:
        kept[cv2.erode(mask, _DILATE, borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)] = 255
    return cv2.LUT(kept, _level_table(max(core, 1.0)))


@functools.lru_cache(maxsize=256)
def _level_table(core: float) -> np.ndarray:
    """The scaling of :func:`ink_levels` as a table of the 256 contrast levels: one lookup
    per pixel instead of float arithmetic (0 stays 0 and 255 becomes 1, as core <= 255).
    Cached: a core is a contrast level, so a frame's crops share a few hundred tables at most."""
    low = EDGE_SHARE * core
    levels = (np.arange(256, dtype=np.float32) - low) / max(core - low, 1.0)
    np.minimum(np.maximum(levels, 0.0, out=levels), 1.0, out=levels)  # np.clip's overhead is larger
    levels.flags.writeable = False  # shared by every call
    return levels


def mnist_crop(ink: np.ndarray, min_pen: float | None = None) -> np.ndarray:
    """Float32 ink (h, w) in [0, 1], the digit's box -> float32 (28, 28) in [0, 1]: fitted
    into the 20x20 box with its aspect kept, centred by centre of mass, its strokes made
    at least ``min_pen`` pixels wide there (default ``MIN_PEN``; 0: as they are)."""
    ink = _trim(ink)
    h, w = ink.shape
    scale = DIGIT_BOX / max(h, w)
    ink = _widen(ink, (MIN_PEN if min_pen is None else min_pen) / scale)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Area averaging anti-aliases when shrinking, as MNIST's own resampling did; the
    # rare digit smaller than the box is enlarged smoothly instead.
    method = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    small = cv2.resize(ink, size, interpolation=method)
    return _centre(np.minimum(small, 1.0, out=small))  # resampling may overshoot 1 slightly


def bolder(crops: np.ndarray) -> np.ndarray:
    """Float32 crops (N, 28, 28) -> the same digits drawn with a bolder pen, ``PEN_CHANGE``
    of the way to their 3x3 dilation: the thicker pen of training's augmentation."""
    return np.stack([(1.0 - PEN_CHANGE) * c + PEN_CHANGE * cv2.dilate(c, _DILATE) for c in crops])


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: 2 x ink / total variation (a bar w pixels wide gives w)."""
    ink = np.asarray(ink, np.float32)
    # cv2.norm of two shifted views: the L1 of the differences without numpy's temporaries.
    variation = cv2.norm(ink[1:], ink[:-1], cv2.NORM_L1) + cv2.norm(ink[:, 1:], ink[:, :-1], cv2.NORM_L1)
    return 2.0 * float(cv2.sumElems(ink)[0]) / max(variation, 1e-6)


def _widen(ink: np.ndarray, least: float) -> np.ndarray:
    """``ink`` with its strokes dilated to at least ``least`` pixels wide (a round pen)."""
    grow = int(round((least - stroke_width(ink)) / 2))
    if grow <= 0:
        return ink
    pen = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    padded = cv2.copyMakeBorder(ink, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0)
    return cv2.dilate(padded, pen)


def _trim(ink: np.ndarray) -> np.ndarray:
    """The tight box around the ink that is left: MNIST fitted the box of the digit's own
    pixels, and a faint piece the stroke mask kept but :func:`ink_levels` zeroed (a rule's
    stub, a shadow edge) would otherwise shrink the digit and pull it off-centre."""
    x, y, w, h = cv2.boundingRect((ink > 0).view(np.uint8))  # ink is never negative
    if w == 0:
        return ink
    return ink[y:y + h, x:x + w]


def _centre(small: np.ndarray) -> np.ndarray:
    """Place (h, w) <= (20, 20) in a 28x28 frame with its centre of mass at the centre,
    shifted back inside the frame where a lopsided digit would leave it."""
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    h, w = small.shape
    m = cv2.moments(small)
    if m["m00"] > 1e-6:
        cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    else:
        cx, cy = (w - 1) / 2, (h - 1) / 2
    # MNIST's centres of mass sit at pixel (14, 14), within half a pixel (measured on the
    # test set: mean 14.01, 13.99), i.e. at IMAGE_SIZE / 2 in pixel-index coordinates.
    centre = IMAGE_SIZE / 2
    x = min(max(round(centre - cx), 0), IMAGE_SIZE - w)
    y = min(max(round(centre - cy), 0), IMAGE_SIZE - h)
    out[y:y + h, x:x + w] = small
    return out
