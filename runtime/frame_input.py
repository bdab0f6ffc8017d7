"""Camera frames of any kind -> one gray uint8 image the reader works on (OpenCV).

What comes in: BGR or gray, 8- or 16-bit or float, with or without alpha, any layout in
memory. What goes out: a C-contiguous uint8 (H, W) gray image, at most ``max_side``
pixels on its longer side, and the factor that maps its pixels back to the frame's.
Anything that cannot be a picture is refused with a message saying what was expected.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from .optional import require

cv2 = require("cv2", "reading camera frames")

EXPECTED: Final = "a numpy array (H, W) gray or (H, W, 3) BGR, uint8 (also uint16, float in [0, 1], or BGRA)"


def to_gray(frame: Any, max_side: int) -> tuple[np.ndarray, float]:
    """``frame`` -> (gray uint8 (h, w) C-contiguous, scale) where frame pixel coordinates
    = gray coordinates / scale (scale <= 1: frames larger than ``max_side`` are shrunk,
    with area averaging, so that huge frames cost bounded time)."""
    array = _check_array(frame)
    gray = _gray_uint8(array)
    h, w = gray.shape
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray), scale


def _check_array(frame: Any) -> np.ndarray:
    if frame is None:
        raise TypeError(f"frame: expected {EXPECTED}, got None (did the camera deliver no image?)")
    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame: expected {EXPECTED}, got {type(frame).__name__}")
    if frame.ndim == 3 and frame.shape[2] not in (1, 3, 4) and frame.shape[0] in (1, 3, 4):
        raise ValueError(f"frame: expected channels last (H, W, 3), got shape {frame.shape}; "
                         "transpose it with frame.transpose(1, 2, 0)")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise ValueError(f"frame: expected {EXPECTED}, got shape {frame.shape}")
    if frame.size == 0:
        raise ValueError(f"frame: expected a non-empty image, got shape {frame.shape}")
    kind = frame.dtype.kind
    if kind not in "buif":
        raise TypeError(f"frame: expected {EXPECTED}, got dtype {frame.dtype}")
    return frame


def _gray_uint8(frame: np.ndarray) -> np.ndarray:
    """Any accepted frame -> gray uint8 (H, W): alpha composited over white paper,
    brightness rescaled for other bit depths."""
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    alpha = None
    if frame.ndim == 3 and frame.shape[2] == 4:
        alpha, frame = frame[:, :, 3], frame[:, :, :3]
    if frame.dtype != np.uint8:
        frame = _to_uint8(frame)
    if frame.ndim == 3:
        # cvtColor wants contiguous pixels; slices and flips are copied once, here.
        frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2GRAY)
    if alpha is not None:
        frame = _over_white(frame, alpha)
    return frame


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    """uint16, other integers, bool and floats -> uint8 with the same picture.

    Floats in [0, 1] are OpenCV's convention; values up to 255 are taken as 8-bit values;
    anything larger (10-, 12-, 16-bit, raw floats) is scaled by its own peak: reading
    depends on contrast, not on absolute brightness, so nothing is lost by that."""
    if frame.dtype == np.bool_:
        return frame.view(np.uint8) * np.uint8(255)
    if frame.dtype.name not in _OPENCV_DEPTHS:  # uint32, int64, float16 ...: widen once
        frame = frame.astype(np.float64 if frame.dtype.itemsize > 4 else np.float32)
    low, high = float(frame.min()), float(frame.max())  # NaN and infinity propagate here
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("frame: expected finite pixel values, got NaN or infinity")
    if low < 0:
        raise ValueError(f"frame: expected pixel values >= 0, got a minimum of {low:g} ({frame.dtype})")
    if frame.dtype.kind == "f" and high <= 1.0:
        factor = 255.0
    elif high <= 255.0:
        factor = 1.0
    else:
        factor = 255.0 / high
    # Scale, round and saturate in one OpenCV pass (numpy would take four).
    return cv2.convertScaleAbs(np.ascontiguousarray(frame), alpha=factor)


# Pixel types OpenCV converts natively.
_OPENCV_DEPTHS: Final = frozenset({"uint8", "int8", "uint16", "int16", "int32", "float32", "float64"})


def _over_white(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite gray uint8 over white paper by alpha (same size, any integer or float
    depth): a transparent PNG of ink shows its ink, as it would printed."""
    # Alpha spans its dtype's full range (or [0, 1] for floats), whatever the colours do.
    full = float(np.iinfo(alpha.dtype).max) if alpha.dtype.kind in "ui" else 1.0
    af = np.clip(alpha.astype(np.float32) / full, 0.0, 1.0)
    if af.min() >= 1.0:  # an opaque frame: nothing to composite
        return gray
    return (gray.astype(np.float32) * af + 255.0 * (1.0 - af) + 0.5).astype(np.uint8)


def display_image(frame: Any) -> np.ndarray:
    """Any accepted frame -> uint8 BGR (H, W, 3) for showing and annotating (a copy)."""
    array = _check_array(frame)
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array).copy()
    return cv2.cvtColor(_gray_uint8(array), cv2.COLOR_GRAY2BGR)


def halve(gray: np.ndarray, min_side: int) -> np.ndarray:
    """Area-averaged halvings while the shorter side stays at least ``min_side``: OpenCV's
    fast path (a 640x480 frame reaches 160x120 in a fifth of the time of one direct resize)."""
    while min(gray.shape) // 2 >= min_side:
        h, w = (gray.shape[0] // 2) * 2, (gray.shape[1] // 2) * 2
        gray = cv2.resize(gray[:h, :w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return gray
