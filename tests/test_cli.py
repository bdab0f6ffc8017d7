"""The runtime's command line: classify, generate, restyle, reconstruct, data, errors."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from conftest import run_cli

cv2 = pytest.importorskip("cv2")

from digitvae.runtime.commands import read_frame  # noqa: E402


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, mnist) -> list:
    """Five MNIST test digits as photos would come: dark ink on white, enlarged."""
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i in range(5):
        image = 255 - cv2.resize(mnist.test_images[i], (112, 112), interpolation=cv2.INTER_CUBIC)
        framed = cv2.copyMakeBorder(image, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
        path = folder / f"digit_{i}_{mnist.test_labels[i]}.png"
        cv2.imwrite(str(path), framed)
        paths.append(path)
    return paths


def test_help_lists_every_command():
    out = run_cli("--help").stdout
    for command in ("classify", "generate", "restyle", "reconstruct", "data", "train", "export"):
        assert command in out


def test_classify_reads_digit_photos(digit_files, mnist):
    result = run_cli("classify", "--json", *map(str, digit_files))
    read = json.loads(result.stdout)
    assert [r["digits"][0]["digit"] for r in read] == [int(d) for d in mnist.test_labels[:5]]
    plain = run_cli("classify", str(digit_files[0].parent)).stdout
    assert plain.count(".png:") == 5


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """A JPEG file with an EXIF block (APP1) holding one tag: its orientation."""
    entry = struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)  # tag, SHORT, one value, the value
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + struct.pack("<I", 0)
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_a_phone_photo_stored_on_its_side_is_read_upright(digit_files, tmp_path):
    # A phone stores a portrait photo as the sensor saw it, a quarter turn off, with an EXIF
    # tag (orientation 6: turn it clockwise to show it); viewers, and the photos' labels, show it upright.
    upright = cv2.imread(str(digit_files[0]), cv2.IMREAD_GRAYSCALE)
    wide = np.hstack([upright, np.full((upright.shape[0], 40), 255, np.uint8), upright])  # two digits, side by side
    stored = np.ascontiguousarray(np.rot90(wide))  # a quarter turn counter-clockwise
    path = tmp_path / "portrait.jpg"
    path.write_bytes(with_exif_orientation(cv2.imencode(".jpg", stored)[1].tobytes(), 6))
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == stored.shape  # as stored, on its side
    frame = read_frame(path)
    assert frame.shape[:2] == wide.shape
    assert np.abs(frame.astype(int).reshape(wide.shape) - wide).mean() < 4  # JPEG's loss only
    read = json.loads(run_cli("classify", "--json", str(path)).stdout)[0]["digits"]
    assert [d["box"][1] < wide.shape[0] and d["box"][0] + d["box"][2] <= wide.shape[1] for d in read] == [True, True]
    # A PNG keeps its alpha channel (ink on a transparent background).
    bgra = np.zeros(wide.shape + (4,), np.uint8)
    bgra[:, :, 3] = 255 - wide
    cv2.imwrite(str(tmp_path / "ink.png"), bgra)
    assert read_frame(tmp_path / "ink.png").shape == bgra.shape


def test_unreadable_files_are_reported_and_the_rest_still_read(digit_files, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    result = run_cli("classify", str(broken), str(digit_files[0]), str(tmp_path / "missing.png"), check=False)
    assert result.returncode == 1
    assert "broken.png: not an image" in result.stderr and "missing.png: no such file" in result.stderr
    assert digit_files[0].name in result.stdout


def test_generate_writes_a_grid(tmp_path):
    out = tmp_path / "grid.png"
    run_cli("generate", "-n", "6", "--seed", "1", "-o", str(out), "--scale", "1")
    grid = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    assert grid.shape == (10 * 30 + 2, 6 * 30 + 2)


def test_restyle_and_reconstruct(digit_files, tmp_path):
    run_cli("restyle", str(digit_files[0]), "-o", str(tmp_path / "r.png"), "--scale", "1")
    assert cv2.imread(str(tmp_path / "r.png"), cv2.IMREAD_GRAYSCALE).shape == (32, 11 * 30 + 2)
    run_cli("reconstruct", str(digit_files[0]), "-o", str(tmp_path / "c.png"), "--scale", "1")
    assert cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_GRAYSCALE).shape == (32, 62)


def test_bad_arguments_are_one_line(tmp_path):
    result = run_cli("generate", "--digit", "12", check=False)
    assert result.returncode == 2 and "invalid choice" in result.stderr
    result = run_cli("classify", "--artifacts", str(tmp_path / "none"), str(tmp_path), check=False)
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_output_cut_short_by_a_closed_pipe_ends_quietly():
    # ``digitvae classify ... --json | head``: more output than a pipe buffers, and the
    # reader leaves after a few bytes. A traceback there is noise; the shell's status is 141.
    import subprocess
    import sys

    from conftest import REPO

    photo = str(REPO / "tests/data/realdata/sudoku/images/02_17_iphone_14_0.jpg")
    proc = subprocess.Popen([sys.executable, "-m", "digitvae.runtime.cli", "classify", "--json", *[photo] * 12],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100).startswith(b"[")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err
