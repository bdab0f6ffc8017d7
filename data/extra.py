"""Extra labelled digits for training: a folder per digit, any image size (``train --extra``).

    DIR/0/*.png  DIR/1/*.jpg  ...  DIR/9/*

Each image is one digit: a 28x28 image is taken as an MNIST crop (white ink on black, or
inverted when it is dark ink on light); a larger one is cropped and normalised by the
camera reader's own image work (:func:`digitvae.runtime.camera.digit_crop`), so that
training sees these digits exactly as the reader will. ``digitvae bench --real DIR
--dump-crops OUT`` writes such a folder from the real photos' train split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.optional import require
from digitvae.runtime.spec import IMAGE_SIZE, NUM_CLASSES

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def load_extra(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) from a folder of digit folders.

    Every problem is found before anything is returned, and named: a missing folder, a
    sub-folder that is not a digit, no images at all, an image OpenCV cannot read, or one
    without a digit in it."""
    cv2 = require("cv2", "reading extra training digits")
    from digitvae.runtime.camera import digit_crop

    root = Path(folder)
    if not root.is_dir():
        raise DigitVAEError(f"--extra {root}: no such folder (expected a folder with one sub-folder per digit, 0-9)")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    wrong = [p.name for p in entries if p.is_dir() and not (p.name.isdigit() and int(p.name) < NUM_CLASSES)]
    if wrong:
        raise DigitVAEError(f"--extra {root}: sub-folders must be named 0-9 (one per digit), got {wrong}")
    files = [(int(d.name), f) for d in entries if d.is_dir() for f in sorted(d.iterdir()) if f.suffix.lower() in SUFFIXES]
    if not files:
        raise DigitVAEError(f"--extra {root}: no images found (expected {root}/<digit>/*.png or .jpg, digits 0-9)")
    images, labels = [], []
    for digit, path in files:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None or image.size == 0:
            raise DigitVAEError(f"--extra: {path} is not an image OpenCV can read (expected PNG, JPEG, ...)")
        crop = _as_crop(image, digit_crop)
        if crop is None:
            raise DigitVAEError(f"--extra: {path} holds no digit the camera reader can find (expected one digit, dark on light or light on dark)")
        images.append(crop)
        labels.append(digit)
    return np.stack(images), np.asarray(labels, np.uint8)


def _as_crop(image: np.ndarray, digit_crop) -> np.ndarray | None:
    """A gray image -> uint8 (28, 28) MNIST crop, or None without a digit."""
    if image.shape == (IMAGE_SIZE, IMAGE_SIZE):
        light_on_dark = float(np.median(image)) < 128
        crop = image if light_on_dark else 255 - image
        return crop.astype(np.uint8) if crop.max() > 0 else None
    found = digit_crop(image)
    return None if found is None else np.round(found * 255).astype(np.uint8)
