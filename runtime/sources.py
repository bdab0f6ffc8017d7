"""Where the demo's frames come from: a camera, a video, an image, a folder, the sample clip.

Every source has ``read() -> frame or None`` (None: the stream is over), ``close()``, a
``name`` for messages, ``fps`` (frames per second to write a video at), ``live`` (a
camera) and ``stream`` (its frames follow one another: worth tracking digits across). A
camera that stops delivering frames is reported and reopened with growing pauses; the
capture factory and the sleep function are injectable, so tests can hand in a failing
fake. :class:`NewestFrame` reads a camera in a thread and keeps only its newest frame.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from .errors import DigitVAEError
from .optional import require

IMAGE_SUFFIXES: Final = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
SAMPLE: Final = "sample"
SAMPLE_FRAMES: Final = 200  # the clip's length where it is not looped (headless runs)
FAILS_BEFORE_REOPEN: Final = 5  # consecutive empty reads before the camera is reopened
BACKOFF: Final = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds before each reopen attempt, then 8 s
MAX_REOPENS: Final = 10  # attempts in a row before the demo gives up on the camera
RATE_FRAMES: Final = 30  # the camera's frame rate is measured over its last this many frames
STOP_WAIT: Final = 2.0  # seconds to wait for the grabbing thread's last read when closing


class CameraUnavailable(DigitVAEError):
    """The camera could not be opened (or reopened); the message names --source sample."""


class Capture(Protocol):
    """What the demo uses of ``cv2.VideoCapture``."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, Any]: ...

    def release(self) -> None: ...


class FrameSource(Protocol):
    name: str
    fps: float
    live: bool  # a camera: endless, and worth reopening
    stream: bool  # frames follow one another (not a folder of unrelated images)

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


def report(message: str) -> None:
    print(f"digitvae demo: {message}", file=sys.stderr, flush=True)


def open_source(source: str, *, loop: bool = False, max_frames: int | None = None, seed: int = 0,
                capture_factory: Callable[[Any], Capture] | None = None,
                sleep: Callable[[float], None] = time.sleep) -> FrameSource:
    """``source``: a camera index ("0"), ``sample``, an image file, a folder of images or a
    video file. ``loop`` repeats a still image or the sample clip for a window;
    ``max_frames`` bounds the sample clip when not looping."""
    if source.strip().isdigit():
        return CameraSource(int(source), capture_factory, sleep)
    if source == SAMPLE:
        return SampleSource(seed, None if loop else (max_frames or SAMPLE_FRAMES))
    path = Path(source)
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        raise DigitVAEError(f"--source {source}: no such file, folder or camera index "
                            f"(give a camera index like 0, an image, a folder, a video, or '{SAMPLE}')")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, loop)
    return VideoSource(path, capture_factory)


def _cv2() -> Any:
    return require("cv2", "the webcam demo")


class CameraSource:
    """A webcam by index; reopened with back-off when it stops delivering frames."""

    live = stream = True

    def __init__(self, index: int, factory: Callable[[Any], Capture] | None,
                 sleep: Callable[[float], None]) -> None:
        self.index, self.name, self.fps = index, f"camera {index}", 15.0
        self._factory = factory or (lambda i: _cv2().VideoCapture(i))
        self._sleep = sleep
        self._fails = 0
        self._reopens = 0  # reopens since the last good frame
        self._closed = False  # closed for good: a reopen under way (in a thread) stops
        self._capture: Capture | None = self._open()
        if self._capture is None:
            raise CameraUnavailable(
                f"could not open camera {index} (is one connected, and not in use by another "
                f"program?); try --source {SAMPLE} for the built-in clip")
        self.fps = _capture_fps(self._capture, self.fps)

    def _open(self) -> Capture | None:
        try:
            capture = self._factory(self.index)
        except Exception as exc:  # OpenCV backends raise their own exception types
            report(f"opening {self.name} failed: {exc}")
            return None
        if capture is None or not capture.isOpened():
            if capture is not None:
                capture.release()
            return None
        return capture

    def read(self) -> np.ndarray | None:
        """The next frame; after ``FAILS_BEFORE_REOPEN`` empty reads in a row, reopen with
        back-off; None only when the camera stays gone after ``MAX_REOPENS`` tries."""
        while not self._closed:
            frame = self._grab()
            if frame is not None:
                self._fails = self._reopens = 0
                return frame
            self._fails += 1
            if self._fails >= FAILS_BEFORE_REOPEN and not self._reopen():
                return None
        return None

    def _grab(self) -> np.ndarray | None:
        if self._capture is None:
            return None
        try:
            ok, frame = self._capture.read()
        except Exception as exc:  # a backend error on one read is one bad frame
            report(f"{self.name}: read failed ({exc})")
            return None
        return frame if ok and isinstance(frame, np.ndarray) and frame.size else None

    def _reopen(self) -> bool:
        report(f"{self.name} stopped delivering frames; reopening it")
        self._release()
        # A camera that opens but never delivers is retried as often as one that fails to
        # open: the count runs until a frame arrives.
        while self._reopens < MAX_REOPENS:
            attempt = self._reopens
            self._reopens += 1
            pause = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            report(f"{self.name}: attempt {attempt + 1} of {MAX_REOPENS} in {pause:g} s")
            self._sleep(pause)
            if self._closed:
                return False
            self._capture = self._open()
            if self._capture is not None:
                report(f"{self.name} is open again")
                self._fails = 0
                return True
        report(f"{self.name} did not come back after {MAX_REOPENS} attempts; giving up "
               f"(try --source {SAMPLE})")
        return False

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def close(self) -> None:
        self._closed = True
        self._release()


class VideoSource:
    """A video file, read to its end."""

    live, stream = False, True

    def __init__(self, path: Path, factory: Callable[[Any], Capture] | None) -> None:
        cv2 = _cv2()
        self.name = str(path)
        self._capture = (factory or (lambda p: cv2.VideoCapture(p)))(str(path))
        if self._capture is None or not self._capture.isOpened():
            raise DigitVAEError(f"--source {path}: not a video or image OpenCV can read")
        self.fps = _capture_fps(self._capture, 25.0)

    def read(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        return frame if ok and frame is not None else None

    def close(self) -> None:
        self._capture.release()


class ImageSource:
    """One image file: once, or over and over for a window."""

    live = stream = False
    fps = 10.0

    def __init__(self, path: Path, loop: bool) -> None:
        self.name, self._loop, self._done = str(path), loop, False
        self._frame = read_image(path)
        if self._frame is None:
            raise DigitVAEError(f"--source {path}: not an image OpenCV can read")

    def read(self) -> np.ndarray | None:
        if self._done and not self._loop:
            return None
        self._done = True
        return self._frame

    def close(self) -> None:
        pass


class FolderSource:
    """The images of a folder, in name order; other files are reported and skipped."""

    live = stream = False
    fps = 2.0

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self._files = iter(sorted(p for p in path.iterdir() if p.is_file()))
        self.current: Path | None = None

    def read(self) -> np.ndarray | None:
        for path in self._files:
            frame = read_image(path) if path.suffix.lower() in IMAGE_SUFFIXES else None
            if frame is None:
                report(f"skipping {path}: not an image OpenCV can read")
                continue
            self.current = path
            return frame
        return None

    def close(self) -> None:
        pass


class SampleSource:
    """The generated clip: sheets of MNIST test digits held up to a camera."""

    live, stream = False, True
    fps = 20.0

    def __init__(self, seed: int, frames: int | None) -> None:
        from digitvae.data.frames import sample_clip  # lazily: the data package is not runtime

        self.name = "the sample clip"
        self._clip: Iterator[np.ndarray] = sample_clip(frames if frames is not None else 10**9, seed)

    def read(self) -> np.ndarray | None:
        return next(self._clip, None)

    def close(self) -> None:
        pass


class NewestFrame:
    """A live source read in a thread that keeps only its newest frame, so that a reader
    slower than the camera reads what the camera sees now, not a queue of stale frames
    (a frame not taken before the next one arrives is dropped and counted). Errors of the
    source's ``read`` come out of :meth:`read`, after the frame before them."""

    def __init__(self, source: FrameSource, clock: Callable[[], float] = time.perf_counter) -> None:
        self.source, self.name, self.fps = source, source.name, source.fps
        self.live, self.stream = source.live, source.stream
        self.delivered = self.dropped = 0
        self._clock, self._arrivals = clock, deque(maxlen=RATE_FRAMES)
        self._ready = threading.Condition()
        self._frame: np.ndarray | None = None
        self._fresh = self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._grab, name=f"digitvae {source.name}", daemon=True)
        self._thread.start()

    def _grab(self) -> None:
        """The thread: read the source until it ends, fails or is closed."""
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                with self._ready:
                    if frame is None:
                        self._ended = True
                    else:
                        self.dropped += self._fresh
                        self.delivered += 1
                        self._frame, self._fresh = frame, True
                        self._arrivals.append(self._clock())
                    self._ready.notify_all()
                if frame is None:
                    return
        except BaseException as exc:  # handed to the reading thread, which re-raises it
            with self._ready:
                self._error = exc
                self._ready.notify_all()

    def read(self) -> np.ndarray | None:
        """The newest frame not read yet (waiting for one); None when the source ended."""
        with self._ready:
            while not (self._fresh or self._ended or self._error is not None):
                self._ready.wait(0.1)  # a timeout, so that Ctrl-C is seen while waiting
            if self._fresh:
                self._fresh = False
                return self._frame
            if self._error is not None:
                error, self._error, self._ended = self._error, None, True
                raise error
            return None

    @property
    def camera_fps(self) -> float | None:
        """Frames per second the source delivered lately (None before two frames)."""
        times = list(self._arrivals)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(STOP_WAIT)  # its read returns within a frame (or a reopen pause)
        if self._thread.is_alive():
            report(f"{self.name}: still busy after {STOP_WAIT:g} s; releasing it anyway")
        self.source.close()


def _capture_fps(capture: Any, default: float) -> float:
    """The capture's frame rate where it reports a plausible one, else ``default``."""
    try:
        fps = float(capture.get(_cv2().CAP_PROP_FPS))
    except Exception:  # fakes without get(), backends that cannot tell
        return default
    return fps if 1.0 <= fps <= 240.0 else default


#: The first bytes of a JPEG file: a JPEG has no alpha channel to keep.
JPEG_MAGIC: Final = b"\xff\xd8"


def read_image(path: Path) -> np.ndarray | None:
    """An image file as a frame (any depth), or None if unreadable: turned upright by its
    EXIF orientation, as image viewers show it (a phone's portrait photo is stored on its
    side, with a tag that says so). An alpha channel is kept where there is one; OpenCV
    turns no image it reads with alpha, but such files are drawings, seldom tagged."""
    cv2 = require("cv2", "reading image files")
    try:
        frame = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)  # EXIF applied
        if frame is not None and not _is_jpeg(path):
            with_alpha = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # EXIF ignored
            if with_alpha is not None and with_alpha.ndim == 3 and with_alpha.shape[2] == 4:
                frame = with_alpha
    except cv2.error:
        return None
    return frame if frame is not None and frame.size else None


def _is_jpeg(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            return file.read(len(JPEG_MAGIC)) == JPEG_MAGIC
    except OSError:
        return False
