"""Strict checks of everything a caller passes in; nothing reaches onnxruntime unchecked.

Each function returns a fresh, C-contiguous float32 array in the exact shape a graph wants,
or raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape,
size or values) with a message that says what was expected and what came.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import spec

SIDE = spec.IMAGE_SIZE
IMAGE_SHAPES = f"(N, 1, {SIDE}, {SIDE}), (N, {SIDE}, {SIDE}) or ({SIDE}, {SIDE})"
VECTOR_TOLERANCE = 1e-3  # a digit vector's entries must sum to 1 within this


def _as_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{what}: could not make an array from the {type(value).__name__} given ({exc})") from exc
    raise TypeError(f"{what}: expected a numpy array, got {type(value).__name__}")


def _check_batch(n: int, what: str) -> None:
    if n == 0:
        raise ValueError(f"{what}: expected at least one item, got an empty batch")
    if n > spec.MAX_BATCH:
        raise ValueError(f"{what}: batch of {n} is larger than the {spec.MAX_BATCH} allowed per call; split it")


def _finite_float32(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{what}: expected a float or integer array, got dtype {array.dtype}")
    out = np.array(array, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(out).all():
        raise ValueError(f"{what}: expected finite values, got {int((~np.isfinite(out)).sum())} NaN or infinite entries")
    return out


def images(value: Any, what: str = "images") -> np.ndarray:
    """-> float32 (N, 1, 28, 28) in [0, 1]. uint8 is read as 0..255 and scaled."""
    array = _as_array(value, what)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[1:] != (1, SIDE, SIDE):
        raise ValueError(f"{what}: expected shape {IMAGE_SHAPES}, got {array.shape}")
    _check_batch(array.shape[0], what)
    scaled = array.dtype == np.uint8
    out = _finite_float32(array, what)
    if scaled:
        return out / np.float32(255.0)
    low, high = float(out.min()), float(out.max())
    if low < spec.PIXEL_MIN or high > spec.PIXEL_MAX:
        raise ValueError(f"{what}: expected pixel values in [0, 1] (white ink on black), got values in [{low:g}, {high:g}]; "
                         "divide 0-255 images by 255 or pass them as uint8")
    return out


def latents(value: Any, latent_size: int, what: str = "z") -> np.ndarray:
    """-> float32 (N, latent_size). A single vector (latent_size,) is a batch of one."""
    array = _as_array(value, what)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != latent_size:
        raise ValueError(f"{what}: expected shape (N, {latent_size}) or ({latent_size},), got {array.shape}")
    _check_batch(array.shape[0], what)
    return _finite_float32(array, what)


def digit_vectors(value: Any, n: int | None = None, what: str = "digits") -> np.ndarray:
    """Digits as ints 0-9 (N,) or as vectors (N, 10) of probabilities -> float32 (N, 10)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = [value] * (n or 1)
    array = _as_array(value, what)
    if array.ndim == 1 and (np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_):
        return _one_hot(array, n, what)
    if array.ndim == 2:
        return _probability_rows(array, n, what)
    raise ValueError(f"{what}: expected integers 0-9 of shape (N,) or vectors of shape (N, {spec.NUM_CLASSES}), "
                     f"got {array.dtype} array of shape {array.shape}")


def _one_hot(array: np.ndarray, n: int | None, what: str) -> np.ndarray:
    _check_batch(array.shape[0], what)
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{what}: expected {n} digits (one per latent vector), got {array.shape[0]}")
    if array.min() < 0 or array.max() >= spec.NUM_CLASSES:
        raise ValueError(f"{what}: expected digits 0-9, got values from {array.min()} to {array.max()}")
    return np.eye(spec.NUM_CLASSES, dtype=np.float32)[array]


def _probability_rows(array: np.ndarray, n: int | None, what: str) -> np.ndarray:
    if array.shape[1] != spec.NUM_CLASSES:
        raise ValueError(f"{what}: expected digit vectors of shape (N, {spec.NUM_CLASSES}), got {array.shape}")
    _check_batch(array.shape[0], what)
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{what}: expected {n} digit vectors (one per latent vector), got {array.shape[0]}")
    out = _finite_float32(array, what)
    sums = out.sum(axis=1)
    if out.min() < 0 or out.max() > 1 or np.abs(sums - 1).max() > VECTOR_TOLERANCE:
        raise ValueError(f"{what}: expected each digit vector to hold probabilities in [0, 1] summing to 1, "
                         f"got entries in [{out.min():g}, {out.max():g}] with sums from {sums.min():g} to {sums.max():g}")
    return out


def count(value: Any, what: str = "n") -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{what}: expected an integer, got {type(value).__name__}")
    _check_batch(int(value), what)
    if value < 0:
        raise ValueError(f"{what}: expected a positive count, got {value}")
    return int(value)


def seed(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise TypeError(f"seed: expected None or a non-negative integer, got {value!r}")
    return int(value)
