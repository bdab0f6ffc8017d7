"""MNIST's IDX files, and what every MNIST source shares (numpy + stdlib only).

The base of :mod:`digitvae.data.mnist` and :mod:`digitvae.data.hub`; it imports neither.

- :class:`MnistError`, the one error of MNIST acquisition, and the one-line messages
  (:func:`_warn`, :func:`_progress`, :func:`_reason`);
- the facts of the data set: official sizes, array names, content hashes;
- :func:`read_idx` (one IDX file, gzipped or not, read strictly) and
  :func:`_load_idx_folder` (the four files of a folder, checked);
- the checks every source passes: :func:`_check_pair` (images and labels agree) and
  :func:`_check_arrays` (the four arrays are the full MNIST).

:data:`OFFICIAL_SHA256` is read here at call time by every source, the cache included, so
that replacing it in this module (as the tests do) changes it everywhere.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Final

import numpy as np

from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.spec import IMAGE_SIZE, NUM_CLASSES, PRODUCT

# --- Data constants -------------------------------------------------------------------
# The official split's sizes: a source with other counts is not the full MNIST.
TRAIN_SIZE: Final = 60_000  # the official training set (fit + validation)
TEST_SIZE: Final = 10_000  # the official test set

# The variable users set once instead of passing --data-dir on every command.
ENV_DATA: Final = "DIGITVAE_DATA"  # folder of IDX files, when no data_dir is given

#: The four arrays of a data set, keyed as in :class:`~digitvae.data.mnist.Mnist` and in
#: the cache file.
ARRAY_NAMES: Final = ("train_images", "train_labels", "test_images", "test_labels")

#: Standard IDX file names, as MNIST's own site names them (each may also end in ``.gz``).
IDX_FILES: Final = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# The IDX header's first 4 bytes: 0, 0, the element type (8 = unsigned byte), the number
# of dimensions. MNIST uses only these two; any other magic is not an MNIST file.
IDX_IMAGES_MAGIC: Final = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC: Final = 2049  # 0x00000801: unsigned bytes, 1 dimension
# The most bytes one IDX file may hold, once inflated: 128 MiB. The largest MNIST file is
# 47 MB; refuse to inflate a (malicious) .gz far beyond that.
_IDX_MAX_BYTES: Final = 128 * 2**20

#: sha256 of each array's raw bytes (C order) for the official MNIST, identical from
#: both sources. A cache whose content differs is refused; an IDX folder whose content
#: differs (say Fashion-MNIST, which has the same format) is used with a warning.
OFFICIAL_SHA256: Final[dict[str, str]] = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

# The way out that needs no network, appended to errors about the other sources.
_HINT_IDX: Final = (
    "Put the four MNIST IDX files in a folder and pass --data-dir or set " + ENV_DATA + "."
)


class MnistError(DigitVAEError):
    """MNIST could not be read, fetched or trusted; the message says what to do.

    A ``DigitVAEError`` (hence a ``RuntimeError``), so that ``digitvae`` prints it as one
    line instead of a traceback.
    """


# --- IDX ------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one MNIST IDX file (gzipped or not) strictly; return its uint8 array.

    Admits only MNIST's two kinds, unsigned bytes with magic 2051 (images, 3 dimensions)
    or 2049 (labels, 1 dimension), and requires the byte count to match the header
    exactly, so that a truncated or padded file is an error, not a silently short array.
    """
    path = Path(path)
    raw = _read_maybe_gzip(path)
    return _parse_idx(raw, str(path))


def _read_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, inflated when it is gzip (found by content, not by name)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head != b"\x1f\x8b":
                return f.read(_IDX_MAX_BYTES + 1)
            with gzip.GzipFile(fileobj=f) as gz:
                raw = gz.read(_IDX_MAX_BYTES + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise MnistError(
            f"{path}: the gzip data is damaged or cut short ({_reason(exc)}); download the file again"
        ) from exc
    except OSError as exc:
        raise MnistError(f"cannot read {path}: {_reason(exc)}") from exc
    if len(raw) > _IDX_MAX_BYTES:
        raise MnistError(
            f"{path}: more than {_IDX_MAX_BYTES} bytes, far larger than any MNIST file; "
            "check that it is an MNIST IDX file"
        )
    return raw


def _parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse IDX bytes: magic, big-endian dimensions, then exactly their product in bytes."""
    if len(raw) < 4:
        raise MnistError(f"{name}: {len(raw)} bytes, too short for an IDX header; download it again")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
        raise MnistError(
            f"{name}: magic number {magic} (0x{magic:08x}), expected {IDX_IMAGES_MAGIC} "
            f"(images) or {IDX_LABELS_MAGIC} (labels); this is not an MNIST IDX file"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MnistError(
            f"{name}: header cut short ({len(raw)} of {header} bytes); the file is truncated, "
            "download it again"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    size = int(np.prod(dims, dtype=np.int64))
    found = len(raw) - header
    if found != size:
        what = "truncated" if found < size else "followed by extra bytes"
        raise MnistError(
            f"{name}: header declares {'x'.join(map(str, dims))} = {size} bytes of data, "
            f"found {found}: the file is {what}; download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, count=size, offset=header).reshape(dims).copy()


def _find_idx(folder: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``folder``: plain or .gz, also in the common variant that
    spells ``-idx3-ubyte`` as ``.idx3-ubyte``."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_idx_folder(folder: Path, origin: str) -> dict[str, np.ndarray]:
    """Read and check the four IDX files of ``folder``."""
    if not folder.is_dir():
        raise MnistError(f"{origin} {folder} is not a folder; {_HINT_IDX}")
    paths = {key: _find_idx(folder, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[key] for key, path in paths.items() if path is None]
    if missing:
        raise MnistError(
            f"{folder} lacks {', '.join(missing)} (plain or .gz); it needs all four MNIST IDX "
            f"files: {', '.join(IDX_FILES.values())}"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, path in paths.items():
        assert path is not None  # for the type checker: missing files were refused above
        array = read_idx(path)
        _check_idx_kind(array, key, path)
        arrays[key] = array
    _check_arrays(arrays, str(folder))
    if OFFICIAL_SHA256 and _content_hashes(arrays) != OFFICIAL_SHA256:
        _warn(
            f"the IDX files in {folder} are well formed but are not the official MNIST "
            "(their sha256 differs); using them anyway"
        )
    return arrays


def _check_idx_kind(array: np.ndarray, key: str, path: Path) -> None:
    """An image file must hold 28x28 images, a label file labels."""
    if key.endswith("_images"):
        if array.ndim != 3:
            raise MnistError(
                f"{path}: expected images (magic {IDX_IMAGES_MAGIC}, 3 dimensions), found "
                f"{array.ndim} dimension(s); the files are misnamed"
            )
        if array.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise MnistError(
                f"{path}: images are {array.shape[1]}x{array.shape[2]}, expected "
                f"{IMAGE_SIZE}x{IMAGE_SIZE}; this is not MNIST"
            )
    elif array.ndim != 1:
        raise MnistError(
            f"{path}: expected labels (magic {IDX_LABELS_MAGIC}, 1 dimension), found "
            f"{array.ndim} dimensions; the files are misnamed"
        )


# --- Checks shared by every source -----------------------------------------------------


def _check_pair(images: np.ndarray, labels: np.ndarray, what: str) -> None:
    """uint8 (N, 28, 28) images with N uint8 labels in 0-9."""
    if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
        raise MnistError(f"{what}: expected numpy arrays, got {type(images).__name__} and {type(labels).__name__}")
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise MnistError(
            f"{what}: expected uint8 images of shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}), got "
            f"{images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.shape != (len(images),):
        raise MnistError(
            f"{what}: expected uint8 labels of shape ({len(images)},) to match the images, "
            f"got {labels.dtype} {labels.shape}"
        )
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise MnistError(f"{what}: a label is {int(labels.max())}, expected 0-{NUM_CLASSES - 1}")


def _check_arrays(arrays: dict[str, np.ndarray], origin: str) -> None:
    """The four arrays form the full MNIST: structure, label range and official counts."""
    if set(arrays) != set(ARRAY_NAMES):
        raise MnistError(f"{origin}: expected arrays {', '.join(ARRAY_NAMES)}, found {', '.join(sorted(arrays))}")
    for split, size in (("train", TRAIN_SIZE), ("test", TEST_SIZE)):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_pair(images, labels, f"{origin}: {split} set")
        if len(images) != size:
            raise MnistError(
                f"{origin}: {len(images)} {split} images, expected {size}; this is not the full MNIST"
            )


def _content_hashes(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {name: _array_sha256(arrays[name]) for name in ARRAY_NAMES}


def _array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


# --- Messages ---------------------------------------------------------------------------


def _warn(message: str) -> None:
    print(f"{PRODUCT}: warning: {message}", file=sys.stderr, flush=True)


def _progress(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"{PRODUCT}: {message}", file=sys.stderr, flush=True)


def _reason(exc: BaseException) -> str:
    """An exception as one short line: its message, or its type when it has none."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
