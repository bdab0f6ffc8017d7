"""The wheel a user installs: small, carries the graphs (not the checkpoint), and works in
a fresh virtual environment without torch."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

MAX_WHEEL_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True, text=True, timeout=600)
    (found,) = out.glob("digitvae-*.whl")
    return found


def test_wheel_is_small_and_carries_the_graphs_not_the_checkpoint(wheel):
    assert wheel.stat().st_size <= MAX_WHEEL_BYTES, f"{wheel.stat().st_size / 1e6:.2f} MB"
    names = zipfile.ZipFile(wheel).namelist()
    for graph in ("encoder.onnx", "decoder.onnx", "classifier.onnx", "manifest.json"):
        assert f"digitvae/runtime/shipped/{graph}" in names
    assert "digitvae/runtime/py.typed" in names
    assert not any(n.endswith((".pt", ".ort", ".png")) for n in names)


def test_wheel_works_in_a_fresh_environment_without_torch(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, f"{wheel}[camera]"], check=True, capture_output=True, timeout=900)
    python, cli = venv / "bin" / "python", venv / "bin" / "digitvae"
    no_torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True)
    assert no_torch.returncode != 0, "torch must not be installed with the runtime"

    out = tmp_path / "sevens.png"
    subprocess.run([str(cli), "generate", "--digit", "7", "-n", "4", "--seed", "0", "-o", str(out)],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    assert out.stat().st_size > 0
    result = subprocess.run([str(cli), "classify", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "7" in result.stdout
    train = subprocess.run([str(cli), "train", "--epochs", "1"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert train.returncode == 2 and "pip install 'digitvae[train]'" in train.stderr
