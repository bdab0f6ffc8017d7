"""``digitvae demo``: digits read, reconstructed and re-drawn live from a webcam.

One window shows the frame with a box and "digit probability" on every digit, a "not a
digit" mark on what the model rejects, the camera's and the reader's frames per second,
and under it each read digit's crop, reconstruction and re-drawing as 0-9 in the same
handwriting (see :mod:`.demo_view`). Keys: q quits, space pauses, s saves a snapshot PNG,
g draws a new random style.

A camera, a video and the sample clip are read through :class:`.tracker.DigitTracker`:
digits are followed from frame to frame, so what is held still reads still, and a
digit's re-drawing keeps its handwriting while its track lives. A camera is read in a
thread that keeps only its newest frame (:class:`.sources.NewestFrame`): a reader slower
than the camera drops stale frames rather than falling behind (``--every-frame`` reads
them all, in order).

Without a display (no ``$DISPLAY`` on Linux) or with ``--headless`` it writes the
annotated frames to ``--output`` (a video for .mp4/.avi/.mkv, one image for .png/.jpg,
else a folder of PNGs) and prints the digits read. ``--auto`` (what ``make demo`` runs)
uses the camera where one opens, else the sample clip. The camera is reopened with
back-off when it stops delivering frames; Ctrl-C releases it and exits cleanly; a frame
that cannot be read is reported and skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import numpy as np

from . import sources
from .command import Command
from .errors import DigitVAEError
from .optional import require
from .sources import CameraUnavailable, FrameSource, report

HELP = "read, reconstruct and re-draw handwritten digits live from a webcam (or a video, images, the sample clip)"
WINDOW: Final = "digitvae demo"
DEFAULT_OUTPUT: Final = "digitvae-demo.mp4"
VIDEO_SUFFIXES: Final = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}
STILL_SUFFIXES: Final = {".png", ".jpg", ".jpeg", ".bmp"}
SYSTEM_FONTS: Final = "/usr/share/fonts"
BAD_FRAME_REPORTS: Final = 5  # bad frames reported one by one; after that, a count at the end


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's flags (the ``demo`` sub-parser)."""
    parser.add_argument("--source", default="0",
                        help="camera index, video file, image file, folder of images, or 'sample' (the built-in clip)")
    parser.add_argument("--headless", action="store_true", help="no window: write annotated output and print the digits")
    parser.add_argument("--output", default=None,
                        help=f"where to write annotated frames: .mp4/.avi video, .png image, or a folder "
                             f"(default when headless: {DEFAULT_OUTPUT})")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--auto", action="store_true",
                        help="the camera if one opens, else the sample clip; a window if there is a display")
    parser.add_argument("--strips", type=int, default=3, help="digits shown re-drawn as 0-9 (the first ones read)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample clip and of the first random style")
    parser.add_argument("--snapshot-dir", default=".", help="folder for snapshots (key s)")
    parser.add_argument("--every-frame", action="store_true",
                        help="read every frame a camera delivers, in order, even when reading falls behind it "
                             "(default: read the newest frame, drop the stale ones)")
    parser.add_argument("--no-tracking", action="store_true",
                        help="read each frame on its own, without following digits across frames (it flickers)")
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: $DIGITVAE_ARTIFACTS, else the shipped graphs)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: onnxruntime's choice)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default=None,
                        help="graph precision (default: int8 where the artifacts ship it, else fp32: on one core "
                             "it reads a 10-digit frame about 0.7 ms faster, with read-right within 0.15 points of fp32's "
                             "on generated frames; see BENCHMARKS.md)")


def _load(args: argparse.Namespace) -> Any:
    """The model in the precision asked for; by default int8 where it ships (faster per frame)."""
    from .artifacts import ships_int8
    from .model import DigitVAE

    precision = getattr(args, "precision", None) or ("int8" if ships_int8(args.artifacts) else "fp32")
    return DigitVAE.load(args.artifacts, precision=precision, threads=args.threads)


def has_display() -> bool:
    """Whether a window can appear: on Linux and BSD an X11 or Wayland display must be set."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def run(args: argparse.Namespace, *, vae: Any = None, capture_factory: Callable[[Any], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep) -> int:
    """Run the demo; 0 when it ran to the end (or q), 1 when the camera was lost, 130 on
    Ctrl-C. ``vae``, ``capture_factory`` and ``sleep`` are for tests."""
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames: expected a positive number, got {args.max_frames}")
    if not 0 <= args.strips <= 6:
        raise ValueError(f"--strips: expected 0 to 6, got {args.strips}")
    require("cv2", "the webcam demo")
    headless = args.headless or not has_display()
    if headless and not args.headless:
        report("no display found ($DISPLAY is not set): running headless")
    # The window first: without one, sources must end and the output must be written.
    window = not headless and _open_window()
    headless = not window
    if vae is None:
        vae = _load(args)
    source = _open(args, headless, capture_factory, sleep)
    output = args.output or (DEFAULT_OUTPUT if headless else None)
    demo: Demo | None = None
    try:
        demo = Demo(vae, source, window, output, args)
        return demo.loop()
    except KeyboardInterrupt:
        report("interrupted; the camera is released")
        return 130
    finally:  # the camera is released however the loop ends
        if demo is not None:
            demo.close()
        else:
            source.close()


def _open(args: argparse.Namespace, headless: bool, capture_factory: Any, sleep: Any) -> FrameSource:
    try:
        source = sources.open_source(args.source, loop=not headless, max_frames=args.max_frames, seed=args.seed,
                                     capture_factory=capture_factory, sleep=sleep)
    except CameraUnavailable as exc:
        if not args.auto:
            raise
        report(f"{exc}; showing the sample clip instead")
        return sources.open_source(sources.SAMPLE, loop=not headless, max_frames=args.max_frames, seed=args.seed)
    # A camera runs at its own pace: read its newest frame, never a queue of stale ones.
    return sources.NewestFrame(source) if source.live and not args.every_frame else source


class Demo:
    """The read-show-write loop over one source."""

    def __init__(self, vae: Any, source: FrameSource, window: bool, output: str | None,
                 args: argparse.Namespace) -> None:
        """``window``: show the demo window (already created); else headless."""
        from .camera import DigitReader
        from .tracker import DigitTracker

        self.vae, self.source, self.args = vae, source, args
        self.window, self.headless = window, not window
        self.reader = DigitReader(vae)
        track = getattr(source, "stream", False) and not args.no_tracking
        self.tracker = DigitTracker(self.reader) if track else None
        self.styles: dict[int, np.ndarray] = {}  # track id -> latent style of its re-drawing
        self.writer = Output(output, source.fps) if output else None
        self.style_seed = args.seed
        self.frames = self.bad_frames = 0
        self.fps: float | None = None
        self.last_text: str | None = None
        self.paused = False
        self.canvas: np.ndarray | None = None
        self._last_frame: np.ndarray | None = None
        self._last_seed = self.style_seed
        self._idle = False

    def loop(self) -> int:
        report(f"reading {self.source.name}" + (" (headless)" if self.headless else "; keys: q quit, "
               "space pause, s snapshot, g new style"))
        tick = time.perf_counter()
        while self.args.max_frames is None or self.frames < self.args.max_frames:
            if self.paused:
                if not self._keys():
                    return 0
                continue
            frame = self.source.read()
            if frame is None:
                return self._ended()
            self.frames += 1
            # A still image comes back as the same array: its canvas stands, only keys matter.
            self._idle = frame is self._last_frame and self.style_seed == self._last_seed
            if not self._idle:
                self.canvas = self._show(frame)
            self._last_frame, self._last_seed = frame, self.style_seed
            now = time.perf_counter()
            rate = 1.0 / max(now - tick, 1e-6)
            self.fps = rate if self.fps is None else 0.9 * self.fps + 0.1 * rate
            tick = now
            if self.window and not self._keys():
                return 0
        return 0

    def _show(self, frame: np.ndarray) -> np.ndarray | None:
        """Read, draw, write and show one frame; a frame that fails is reported, not fatal."""
        from .demo_view import panel_images, render

        cv2 = require("cv2", "the webcam demo")
        try:
            detections = self.tracker.update(frame) if self.tracker is not None else self.reader.read(frame)
            alive = {getattr(d, "track_id", None) for d in detections}
            self.styles = {k: z for k, z in self.styles.items() if k in alive}  # styles of ended tracks go
            panel = panel_images(self.vae, detections, self.args.strips, self.style_seed, styles=self.styles)
            canvas = render(frame, detections, panel, self.fps, strips=self.args.strips,
                            camera_fps=getattr(self.source, "camera_fps", None))
        except (DigitVAEError, ValueError, TypeError, cv2.error) as exc:
            self._bad_frame(exc)
            return self.canvas
        self._print(detections)
        if self.writer is not None:
            self.writer.write(canvas)
        if self.window:
            cv2.imshow(WINDOW, canvas)
        return canvas

    def _bad_frame(self, exc: Exception) -> None:
        self.bad_frames += 1
        if self.bad_frames <= BAD_FRAME_REPORTS:
            report(f"frame {self.frames}: skipped ({exc})")

    def _print(self, detections: list[Any]) -> None:
        """Headless: print the digits read, line by line ("31 / 7"), when they change."""
        if not self.headless:
            return
        text = _digits_text(detections)
        where = getattr(self.source, "current", None)
        if where is not None:  # a folder: every file gets its line
            print(f"{where.name}: {text}", flush=True)
        elif text != self.last_text:
            print(f"frame {self.frames}: {text}", flush=True)
        self.last_text = text

    def _keys(self) -> bool:
        """Handle a key press; False to quit (q, Esc, or the window closed)."""
        cv2 = require("cv2", "the webcam demo")
        key = cv2.waitKey(30 if self.paused or self._idle else 1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            return False
        if key == ord(" "):
            self.paused = not self.paused
        elif key == ord("s") and self.canvas is not None:
            path = Path(self.args.snapshot_dir) / time.strftime("digitvae-snapshot-%Y%m%d-%H%M%S.png")
            path.parent.mkdir(parents=True, exist_ok=True)
            ok = cv2.imwrite(str(path), self.canvas)
            report(f"snapshot {'saved to' if ok else 'could not be written to'} {path}")
        elif key == ord("g"):
            self.style_seed += 1
        return True

    def _ended(self) -> int:
        if self.source.live:
            report(f"{self.source.name} is gone")
            return 1
        report(f"end of {self.source.name} after {self.frames} frames")
        return 0

    def close(self) -> None:
        self.source.close()
        if self.fps is not None:
            report(self._rates())
        if self.bad_frames > BAD_FRAME_REPORTS:
            report(f"{self.bad_frames} frames were skipped in all")
        if self.writer is not None:
            self.writer.close()
        if self.window:
            cv2 = require("cv2", "the webcam demo")
            cv2.destroyAllWindows()
            cv2.waitKey(1)


    def _rates(self) -> str:
        """The reader's frame rate, and the camera's with the stale frames dropped."""
        text = f"read {self.frames} frames at {self.fps:.1f} fps"
        camera = getattr(self.source, "camera_fps", None)
        if camera is not None:
            text += (f"; the camera delivered {self.source.delivered} at {camera:.1f} fps, "
                     f"{self.source.dropped} stale ones dropped")
        return text


def _digits_text(detections: list[Any]) -> str:
    lines: dict[int, str] = {}
    for d in detections:
        if d.is_digit:
            lines[d.line] = lines.get(d.line, "") + str(d.digit)
    return " / ".join(lines[k] for k in sorted(lines)) if lines else "(no digits)"


def _open_window() -> bool:
    """Create the window; False (headless) when this OpenCV has no GUI support."""
    cv2 = require("cv2", "the webcam demo")
    # OpenCV's Qt build looks for fonts in its own (empty) folder and complains on every
    # text draw; point it at the system's fonts where there are some.
    if "QT_QPA_FONTDIR" not in os.environ and Path(SYSTEM_FONTS).is_dir():
        os.environ["QT_QPA_FONTDIR"] = SYSTEM_FONTS
    try:
        # GUI_NORMAL: the picture only, without the Qt build's toolbar over it.
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        return True
    except cv2.error as exc:
        report(f"cannot open a window ({str(exc).strip().splitlines()[-1]}): running headless")
        return False


class Output:
    """Annotated frames to a video (.mp4, .avi, .mkv, .mov), one image (.png, .jpg: the
    last frame) or a folder of numbered PNGs (any other path)."""

    def __init__(self, path: str, fps: float) -> None:
        self.path, self.fps, self.count = Path(path), fps, 0
        suffix = self.path.suffix.lower()
        self.kind = "video" if suffix in VIDEO_SUFFIXES else "image" if suffix in STILL_SUFFIXES else "folder"
        self._video: Any = None
        target = self.path if self.kind == "folder" else self.path.parent
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DigitVAEError(f"--output {path}: cannot create {target} ({exc.strerror})") from exc

    def write(self, canvas: np.ndarray) -> None:
        cv2 = require("cv2", "writing the demo's output")
        if self.kind == "video":
            if self._video is None:
                self._video = self._open_video(canvas.shape[1], canvas.shape[0])
            if canvas.shape[:2] != self._size[::-1]:  # a source whose frame size changes
                canvas = cv2.resize(canvas, self._size)
            self._video.write(canvas)
        else:
            target = self.path if self.kind == "image" else self.path / f"frame_{self.count + 1:06d}.png"
            if not cv2.imwrite(str(target), canvas):
                raise DigitVAEError(f"--output: could not write {target}")
        self.count += 1

    def _open_video(self, width: int, height: int) -> Any:
        cv2 = require("cv2", "writing the demo's output")
        fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[self.path.suffix.lower()])
        self._size = (width, height)
        video = cv2.VideoWriter(str(self.path), fourcc, self.fps, self._size)
        if not video.isOpened():
            raise DigitVAEError(f"--output {self.path}: this OpenCV cannot write {self.path.suffix} video; "
                                "try a .avi file or a folder")
        return video

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
        if self.count:
            what = {"video": "video", "image": "image (the last frame)", "folder": "folder of frames"}[self.kind]
            report(f"wrote {self.count} annotated frame{'s' if self.count != 1 else ''} to the {what} "
                   f"{self.path.resolve()}")


COMMAND = Command(help=HELP, add_arguments=add_arguments, run=run)
