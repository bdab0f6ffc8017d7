"""``digitvae demo``: headless runs, every kind of source, and a camera that fails."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from digitvae.runtime import demo, demo_view, sources, spec  # noqa: E402
from digitvae.runtime.cli import build_parser  # noqa: E402
from digitvae.runtime.errors import DigitVAEError  # noqa: E402
from digitvae.data.frames import FrameGenerator  # noqa: E402


class FakeVAE:
    """Just enough of DigitVAE for the demo: reads every crop as a 1, accepts inked crops,
    and draws plain bars for decoded images."""

    latent_size = 4

    def classify(self, images):
        n = len(np.asarray(images).reshape(-1, spec.IMAGE_SIZE, spec.IMAGE_SIZE))
        p = np.full((n, spec.NUM_CLASSES), 0.01, np.float32)
        p[:, 1] = 0.91
        return p

    def is_digit(self, images):
        x = np.asarray(images, np.float32).reshape(-1, spec.IMAGE_SIZE ** 2)
        return x.mean(axis=1) > 0.02

    def encode(self, images):
        n = len(np.asarray(images).reshape(-1, spec.IMAGE_SIZE, spec.IMAGE_SIZE))
        return np.zeros((n, self.latent_size), np.float32), np.zeros((n, self.latent_size), np.float32)

    def decode(self, z, digits):
        out = np.zeros((len(z), spec.IMAGE_SIZE, spec.IMAGE_SIZE), np.float32)
        out[:, 4:24, 12:16] = 1.0
        return out

    def sample_latents(self, n, seed=None):
        return np.random.default_rng(seed).standard_normal((n, self.latent_size)).astype(np.float32)


class FakeCapture:
    """A scripted camera: each item of ``script`` is a frame, None (an empty read) or an
    exception to raise; after the script, empty reads forever."""

    def __init__(self, script, opened=True):
        self.script, self.opened, self.released = list(script), opened, False

    def isOpened(self):
        return self.opened

    def read(self):
        if not self.script:
            return False, None
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return (item is not None), item

    def release(self):
        self.released = True


@pytest.fixture(scope="module")
def frames(mnist):
    gen = FrameGenerator.from_mnist(seed=5)
    return [gen.frame(3, index=i).image for i in range(4)]


def args_for(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["demo", *argv])


def factory_of(*captures):
    made = list(captures)
    opened = []

    def factory(index):
        capture = made.pop(0) if made else FakeCapture([], opened=False)
        opened.append(capture)
        return capture

    factory.opened = opened
    return factory


def test_demo_is_a_command():
    assert args_for("--source", "sample", "--headless").run is demo.run


def test_headless_sample_clip_with_the_real_model(shipped_vae, tmp_path, capsys):
    out = tmp_path / "demo.avi"
    code = demo.run(args_for("--source", "sample", "--headless", "--output", str(out), "--max-frames", "6"),
                    vae=shipped_vae)
    assert code == 0
    video = cv2.VideoCapture(str(out))
    count = 0
    while video.read()[0]:
        count += 1
    video.release()
    assert count == 6
    printed = capsys.readouterr()
    assert printed.out.startswith("frame 1: ") and any(ch.isdigit() for ch in printed.out.split(":", 1)[1])
    assert "wrote 6 annotated frames" in printed.err


def test_the_demo_runs_the_int8_graphs_where_they_ship(shipped_folder, tmp_path):
    from digitvae.runtime.demo import _load
    from digitvae.runtime.spec import INT8_SUFFIX

    int8 = _load(args_for("--artifacts", str(shipped_folder)))
    assert all(f.endswith(INT8_SUFFIX) for f in int8.artifacts.files.values())
    fp32 = _load(args_for("--artifacts", str(shipped_folder), "--precision", "fp32"))
    assert not any(f.endswith(INT8_SUFFIX) for f in fp32.artifacts.files.values())
    # A folder without int8 graphs runs fp32 rather than failing.
    bare = tmp_path / "fp32-only"
    bare.mkdir()
    manifest = json.loads((shipped_folder / "manifest.json").read_text())
    manifest["files"] = {f: e for f, e in manifest["files"].items() if INT8_SUFFIX not in f}
    (bare / "manifest.json").write_text(json.dumps(manifest))
    for f in manifest["files"]:
        if (shipped_folder / f).exists():  # the ORT-format files stay out of the wheel
            (bare / f).write_bytes((shipped_folder / f).read_bytes())
    assert not any(f.endswith(INT8_SUFFIX) for f in _load(args_for("--artifacts", str(bare))).artifacts.files.values())


def test_annotated_frame_shows_boxes_and_strips(shipped_vae, tmp_path):
    out = tmp_path / "last.png"
    assert demo.run(args_for("--source", "sample", "--headless", "--output", str(out), "--max-frames", "2"),
                    vae=shipped_vae) == 0
    canvas = cv2.imread(str(out))
    assert canvas.shape[1] == 640 and canvas.shape[0] > 480 + 150  # frame over the strips
    green = (canvas[:480, :, 1] > 150) & (canvas[:480, :, 0] < 110) & (canvas[:480, :, 2] < 110)
    assert green.sum() > 200  # digit boxes drawn
    assert canvas[490:, 60:].max() > 200  # reconstructions and re-drawn digits


def test_frames_folder_output(tmp_path):
    out = tmp_path / "frames"
    assert demo.run(args_for("--source", "sample", "--headless", "--output", str(out), "--max-frames", "3"),
                    vae=FakeVAE()) == 0
    assert sorted(p.name for p in out.iterdir()) == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]


def test_no_display_means_headless(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(demo.sys, "platform", "linux")
    monkeypatch.chdir(tmp_path)
    assert demo.run(args_for("--source", "sample", "--max-frames", "2"), vae=FakeVAE()) == 0
    assert (tmp_path / demo.DEFAULT_OUTPUT).stat().st_size > 0
    err = capsys.readouterr().err
    assert "running headless" in err and str(tmp_path / demo.DEFAULT_OUTPUT) in err


def test_camera_that_stops_is_reopened_with_back_off(frames, tmp_path, capsys):
    first = FakeCapture([frames[0], frames[1]])  # then empty reads: the camera stopped
    dead = FakeCapture([], opened=False)  # the first reopen fails ...
    back = FakeCapture([frames[2], frames[3]])  # ... the second one works
    factory = factory_of(first, dead, back)
    slept: list[float] = []
    # Every frame, in order: the newest-frame thread would drop those the fake delivers at once.
    args = args_for("--source", "0", "--headless", "--output", str(tmp_path / "f"), "--max-frames", "4", "--every-frame")
    assert demo.run(args, vae=FakeVAE(), capture_factory=factory, sleep=slept.append) == 0
    assert slept == list(sources.BACKOFF[:2])
    assert first.released and back.released
    err = capsys.readouterr().err
    assert "camera 0 stopped delivering frames" in err and "open again" in err
    assert len(list((tmp_path / "f").iterdir())) == 4


def test_camera_that_never_comes_back(frames, tmp_path, capsys):
    first = FakeCapture([frames[0]])
    slept: list[float] = []
    args = args_for("--source", "0", "--headless", "--output", str(tmp_path / "f"))
    code = demo.run(args, vae=FakeVAE(), capture_factory=factory_of(first), sleep=slept.append)
    assert code == 1 and first.released
    assert len(slept) == sources.MAX_REOPENS and slept[:3] == [0.5, 1.0, 2.0] and max(slept) == sources.BACKOFF[-1]
    assert "giving up" in capsys.readouterr().err


def test_camera_that_does_not_open_names_the_sample_clip(tmp_path):
    args = args_for("--source", "0", "--headless", "--output", str(tmp_path / "f"))
    with pytest.raises(sources.CameraUnavailable, match="--source sample"):
        demo.run(args, vae=FakeVAE(), capture_factory=factory_of(FakeCapture([], opened=False)))


def test_auto_falls_back_to_the_sample_clip(tmp_path, capsys):
    args = args_for("--auto", "--headless", "--output", str(tmp_path / "f"), "--max-frames", "2")
    assert demo.run(args, vae=FakeVAE(), capture_factory=factory_of(FakeCapture([], opened=False))) == 0
    assert "sample clip" in capsys.readouterr().err


def test_ctrl_c_releases_the_camera(frames, tmp_path, capsys):
    capture = FakeCapture([frames[0], KeyboardInterrupt()])
    args = args_for("--source", "0", "--headless", "--output", str(tmp_path / "f"))
    assert demo.run(args, vae=FakeVAE(), capture_factory=factory_of(capture)) == 130
    assert capture.released
    assert "interrupted" in capsys.readouterr().err


def test_one_bad_frame_is_skipped_not_fatal(frames, tmp_path, capsys):
    weird = np.zeros((480, 640, 2), np.uint8)  # a frame no reader can take
    capture = FakeCapture([frames[0], weird, RuntimeError("backend hiccup"), frames[1]])
    args = args_for("--source", "0", "--headless", "--output", str(tmp_path / "f"), "--max-frames", "3", "--every-frame")
    assert demo.run(args, vae=FakeVAE(), capture_factory=factory_of(capture)) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "backend hiccup" in err
    assert len(list((tmp_path / "f").iterdir())) == 2  # the good frames


def test_video_that_ends(frames, tmp_path, capsys):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for f in frames[:3]:
        writer.write(f)
    writer.release()
    assert demo.run(args_for("--source", str(path), "--headless", "--output", str(tmp_path / "o")),
                    vae=FakeVAE()) == 0
    assert "end of" in capsys.readouterr().err
    assert len(list((tmp_path / "o").iterdir())) == 3


def test_folder_with_other_files(frames, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), frames[0])
    cv2.imwrite(str(folder / "b.jpg"), frames[1])
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    assert demo.run(args_for("--source", str(folder), "--headless", "--output", str(tmp_path / "o")),
                    vae=FakeVAE()) == 0
    printed = capsys.readouterr()
    assert [line.split(":")[0] for line in printed.out.splitlines()] == ["a.png", "b.jpg"]
    assert "skipping" in printed.err and "notes.txt" in printed.err and "broken.png" in printed.err


def test_image_source(frames, tmp_path, capsys):
    path = tmp_path / "page.png"
    cv2.imwrite(str(path), frames[0])
    assert demo.run(args_for("--source", str(path), "--headless", "--output", str(tmp_path / "o.png")),
                    vae=FakeVAE()) == 0
    assert (tmp_path / "o.png").exists()
    out = capsys.readouterr().out
    assert re.fullmatch(r"frame 1: 1[1 /]*\n", out), out  # the fake reads every digit as 1


def test_missing_source_is_named(tmp_path):
    with pytest.raises(DigitVAEError, match="no-such-file.mp4"):
        demo.run(args_for("--source", str(tmp_path / "no-such-file.mp4"), "--headless"), vae=FakeVAE())


@pytest.mark.parametrize("flags, words", [(["--max-frames", "0"], "max-frames"), (["--strips", "9"], "strips")])
def test_bad_flags(flags, words):
    with pytest.raises(ValueError, match=words):
        demo.run(args_for("--source", "sample", "--headless", *flags), vae=FakeVAE())


# --- the window, on a virtual display -------------------------------------------------------


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    pytest.skip("no free X display number")


def _screenshot(display: int, path: Path) -> np.ndarray | None:
    env = {**os.environ, "DISPLAY": f":{display}"}
    result = subprocess.run(["import", "-window", "root", str(path)], env=env, capture_output=True, timeout=30)
    return cv2.imread(str(path)) if result.returncode == 0 else None


@pytest.mark.skipif(shutil.which("Xvfb") is None or shutil.which("import") is None,
                    reason="needs Xvfb and ImageMagick's import (apt-get install xvfb imagemagick)")
def test_window_under_xvfb(shipped_folder, tmp_path):
    """The real window on a virtual display: boxes, digits and strips are on screen, and
    Ctrl-C (SIGINT) ends the demo cleanly. The screenshot is kept as window.png."""
    display = _free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "DISPLAY": f":{display}", "DIGITVAE_ARTIFACTS": str(shipped_folder)}
    shot, app = tmp_path / "window.png", None
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{display}").exists():
            assert time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.1)
        log = tmp_path / "demo.log"
        with open(log, "w") as err:
            # Ctrl-C as in a terminal: a runner that started the tests in the background (SIGINT
            # ignored, which the demo would inherit and keep) must not make it deaf to it.
            app = subprocess.Popen([sys.executable, "-m", "digitvae.runtime.cli", "demo", "--source", "sample",
                                    "--threads", "1"], env=env, stdout=subprocess.DEVNULL, stderr=err,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        green, image = 0, None
        deadline = time.monotonic() + 120  # model, MNIST and the first sheet load first
        while green < 300 and time.monotonic() < deadline and app.poll() is None:
            time.sleep(1.0)
            image = _screenshot(display, shot)
            if image is not None:
                window = image[:480, :640].astype(np.int16)
                green = int(((window[..., 1] > 150) & (window[..., 0] < 110) & (window[..., 2] < 110)).sum())
        if green < 300:
            app.kill()
            app.wait()
            pytest.fail(f"no digit boxes on screen (exit code {app.returncode}); the demo said:\n{log.read_text()}")
        assert image[500:700, 60:640].max() > 200, "no strips under the frame"
        assert image[:480, :640].std() > 20, "a blank window"
        app.send_signal(signal.SIGINT)  # Ctrl-C
        app.wait(timeout=30)
        said = log.read_text()
        assert app.returncode == 130 and "interrupted" in said and "Traceback" not in said, said
    finally:
        for process in (app, xvfb):
            if process is not None and process.poll() is None:
                process.terminate()  # lets Xvfb remove its socket and lock file
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def test_no_window_support_means_headless(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "has_display", lambda: True)
    monkeypatch.setattr(demo, "_open_window", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert demo.run(args_for("--source", "sample", "--max-frames", "2"), vae=FakeVAE()) == 0
    assert (tmp_path / demo.DEFAULT_OUTPUT).stat().st_size > 0


def test_window_keys(tmp_path, monkeypatch):
    """q, space, s and g, with OpenCV's window calls replaced by a script of key presses."""
    keys = [ord("g"), ord("s"), ord(" "), -1, ord(" "), -1, ord("q")]
    shown = []
    monkeypatch.setattr(demo, "has_display", lambda: True)
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda name, image: shown.append(image.shape))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: keys.pop(0) if keys else ord("q"))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    seeds = []
    real_panel = demo_view.panel_images
    monkeypatch.setattr(demo_view, "panel_images",
                        lambda vae, dets, strips, seed, **kw: seeds.append(seed) or real_panel(vae, dets, strips, seed, **kw))
    args = args_for("--source", "sample", "--snapshot-dir", str(tmp_path / "snaps"), "--seed", "4")
    assert demo.run(args, vae=FakeVAE()) == 0
    assert seeds[:2] == [4, 5]  # g: a new random style from the next frame on
    assert len(list((tmp_path / "snaps").glob("digitvae-snapshot-*.png"))) == 1
    # Frames 1-3 (keys g, s, space), the pause (keys -1, space: no frames read), then
    # frames 4 and 5 (keys -1, q).
    assert len(shown) == 5
