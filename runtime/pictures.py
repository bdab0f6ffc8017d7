"""Tiling images into grids and writing them as PNG (OpenCV, imported on demand)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .optional import require


def tile(images: np.ndarray, rows: int, cols: int, gap: int = 2) -> np.ndarray:
    """(rows*cols, H, W) floats in [0, 1] -> one uint8 grid image with ``gap`` pixel seams."""
    if images.ndim != 3 or images.shape[0] != rows * cols:
        raise ValueError(f"expected {rows * cols} images of shape (H, W), got array of shape {images.shape}")
    h, w = images.shape[1:]
    grid = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap), 64, dtype=np.uint8)
    pixels = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    for i, image in enumerate(pixels):
        r, c = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        grid[y : y + h, x : x + w] = image
    return grid


def write_png(path: str | os.PathLike[str], image: np.ndarray, scale: int = 1) -> Path:
    """Write a uint8 gray or BGR image as PNG, enlarged ``scale`` times with crisp pixels."""
    cv2 = require("cv2", "writing PNG pictures")
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write the PNG file {path}: check that the folder is writable")
    return path
