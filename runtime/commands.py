"""The runtime's sub-commands: ``classify``, ``generate``, ``restyle``, ``reconstruct``
(and ``demo`` from its own module; ``data`` and ``bench`` register from their packages).

Commands that read or write image files need OpenCV (the ``[camera]`` extra); each
unreadable file is reported on its own line and the rest are still processed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import demo, sources, spec
from .command import Command
from .errors import DigitVAEError
from .pictures import tile, write_png

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: $DIGITVAE_ARTIFACTS, else the shipped graphs)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="graph precision")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: onnxruntime's choice)")


def _load(args: argparse.Namespace):
    from .model import DigitVAE

    return DigitVAE.load(args.artifacts, precision=args.precision, threads=args.threads)


def image_files(paths: list[str]) -> list[Path]:
    """Expand folders (sorted, image suffixes only); keep files as given, even odd ones,
    so that an unreadable file is reported rather than silently skipped."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(path)
    return found


def read_frame(path: Path) -> np.ndarray:
    """Read an image file as a camera frame would arrive (BGR or gray, alpha kept), turned
    upright by its EXIF orientation (see :func:`.sources.read_image`)."""
    if not path.is_file():
        raise DigitVAEError(f"{path}: no such file")
    frame = sources.read_image(path)
    if frame is None:
        raise DigitVAEError(f"{path}: not an image OpenCV can read (expected PNG, JPEG, BMP, TIFF, ...)")
    return frame


# --- classify -------------------------------------------------------------------------


def _add_classify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+",
                        help="image files or folders of images (photos of digits, or 28x28 MNIST crops), or video "
                             "files (read with the tracker: a steady reading per frame, each digit with a track id)")
    parser.add_argument("--json", action="store_true", help="print one JSON document for programs")
    _add_model_options(parser)


def read_digits(reader: Any, frame: np.ndarray) -> list[dict[str, Any]]:
    return [_digit_entry(d) for d in reader.read(frame)]


def _digit_entry(d: Any) -> dict[str, Any]:
    entry = {"digit": d.digit, "probability": round(float(d.probability), 4), "is_digit": bool(d.is_digit),
             "box": [int(v) for v in d.box], "line": d.line}
    if hasattr(d, "track_id"):
        entry["track"] = int(d.track_id)
    return entry


def read_video(reader: Any, path: Path) -> list[dict[str, Any]]:
    """Every frame of a video through a :class:`~.tracker.DigitTracker`: [{"frame": 1-based
    number, "digits": [... with "track"]}]."""
    from .optional import require
    from .tracker import DigitTracker

    cv2 = require("cv2", "reading video files")
    if not path.is_file():
        raise DigitVAEError(f"{path}: no such file")
    video = cv2.VideoCapture(str(path))
    try:
        if not video.isOpened():
            raise DigitVAEError(f"{path}: not a video OpenCV can read (expected MP4, AVI, MKV, MOV, ...)")
        tracker, frames = DigitTracker(reader), []
        while True:
            ok, frame = video.read()
            if not ok or frame is None:
                break
            frames.append({"frame": len(frames) + 1, "digits": [_digit_entry(d) for d in tracker.update(frame)]})
    finally:
        video.release()
    if not frames:
        raise DigitVAEError(f"{path}: no frame could be read from this video")
    return frames


def _run_classify(args: argparse.Namespace) -> int:
    from .camera import DigitReader

    reader = DigitReader(_load(args))
    results, failed = [], 0
    for path in image_files(args.paths):
        video = path.suffix.lower() in VIDEO_SUFFIXES
        try:
            found = read_video(reader, path) if video else read_digits(reader, read_frame(path))
            results.append({"file": str(path), "frames" if video else "digits": found, "error": None})
        except (DigitVAEError, ValueError, TypeError) as exc:
            failed += 1
            results.append({"file": str(path), "frames" if video else "digits": [], "error": str(exc)})
            print(f"digitvae classify: {exc}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            if result["error"] is None:
                print("\n".join(_result_lines(result)))
    return 1 if failed else 0


def _result_lines(result: dict[str, Any]) -> list[str]:
    """An image's digits on one line; a video's, frame by frame, where the reading changes."""
    if "frames" not in result:
        return [f"{result['file']}: {format_lines(result['digits'])}"]
    lines, last = [], None
    for frame in result["frames"]:
        text = format_lines(frame["digits"])
        if text != last:
            lines.append(f"{result['file']} frame {frame['frame']}: {text}")
        last = text
    return lines


def format_lines(digits: list[dict[str, Any]]) -> str:
    """Digits line by line; a rejected crop shows as '?'."""
    if not digits:
        return "(no digits found)"
    lines: dict[int, str] = {}
    for d in digits:
        lines[d["line"]] = lines.get(d["line"], "") + (str(d["digit"]) if d["is_digit"] else "?")
    return " / ".join(lines[k] for k in sorted(lines))


# --- generate, restyle, reconstruct -----------------------------------------------------


def _add_generate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--digit", type=int, default=None, choices=range(10), metavar="D",
                        help="the digit to draw, 0-9 (default: every digit, one row each, same styles per column)")
    parser.add_argument("-n", type=int, default=8, help="styles per digit")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the styles")
    parser.add_argument("-o", "--output", default="generated.png", help="PNG file to write")
    parser.add_argument("--scale", type=int, default=4, help="enlarge the picture this many times")
    _add_model_options(parser)


def _run_generate(args: argparse.Namespace) -> int:
    vae = _load(args)
    digits = list(range(10)) if args.digit is None else [args.digit]
    z = vae.sample_latents(args.n, args.seed)  # the same styles for every row
    rows = [vae.decode(z, np.full(args.n, d)) for d in digits]
    path = write_png(args.output, tile(np.concatenate(rows), len(digits), args.n), scale=args.scale)
    print(f"wrote {path}: {len(digits)} x {args.n} generated digits")
    return 0


def _add_one_image(parser: argparse.ArgumentParser, default_output: str) -> None:
    parser.add_argument("image", help="an image of one handwritten digit (any size; or a 28x28 MNIST crop)")
    parser.add_argument("-o", "--output", default=default_output, help="PNG file to write")
    parser.add_argument("--scale", type=int, default=4, help="enlarge the picture this many times")
    _add_model_options(parser)


def first_crop(vae: Any, path: Path) -> np.ndarray:
    """The most confident digit of an image file, normalised as MNIST (28x28 float)."""
    from .camera import DigitReader

    detections = DigitReader(vae).read(read_frame(path))
    if not detections:
        raise DigitVAEError(f"{path}: no digit found in the image")
    return max(detections, key=lambda d: (d.is_digit, d.probability)).crop


def _run_restyle(args: argparse.Namespace) -> int:
    vae = _load(args)
    crop = first_crop(vae, Path(args.image))
    drawn = vae.restyle(crop, digits=range(spec.NUM_CLASSES))
    path = write_png(args.output, tile(np.concatenate([crop[None], drawn]), 1, spec.NUM_CLASSES + 1), scale=args.scale)
    print(f"wrote {path}: the digit as read, then its handwriting as 0-9")
    return 0


def _run_reconstruct(args: argparse.Namespace) -> int:
    vae = _load(args)
    crop = first_crop(vae, Path(args.image))
    path = write_png(args.output, tile(np.stack([crop, vae.reconstruct(crop)[0]]), 1, 2), scale=args.scale)
    print(f"wrote {path}: the digit as read, then its reconstruction")
    return 0


COMMANDS: dict[str, Command] = {
    "demo": demo.COMMAND,
    "classify": Command(help="read the digits in image files, folders of images or videos", add_arguments=_add_classify,
                        run=_run_classify),
    "generate": Command(help="draw a digit (or all ten) in random handwriting styles", add_arguments=_add_generate, run=_run_generate),
    "restyle": Command(help="re-draw the handwriting of a digit as every digit 0-9",
                       add_arguments=lambda p: _add_one_image(p, "restyled.png"), run=_run_restyle),
    "reconstruct": Command(help="encode and decode a digit: what the VAE sees",
                           add_arguments=lambda p: _add_one_image(p, "reconstructed.png"), run=_run_reconstruct),
}
