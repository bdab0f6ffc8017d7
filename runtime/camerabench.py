"""Camera-path and is-digit figures for ``digitvae bench`` (needs OpenCV, the [camera] extra).

* speed: median time per 640x480 frame with 1, 5 and 10 digits, split into image work
  (``DigitReader.locate``), onnxruntime (``DigitReader.judge``: the one batched model call)
  and the rest, on one core (one onnxruntime thread, one OpenCV thread);
* the reader's accuracy on generated frames (``evaluate_reader``);
* is_digit against the full test set and every kind of generated non-digit.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .camera import DigitReader
from .evaluate import evaluate_reader
from .frames import FrameGenerator
from .model import DigitVAE
from .nondigits import KINDS, nondigits
from .novelty import auroc
from .optional import require

DIGIT_COUNTS = (1, 5, 10)


def frame_speed(reader: DigitReader, gen: FrameGenerator, n_digits: int, frames: int, repeats: int) -> dict[str, Any]:
    """Median per-frame milliseconds over ``frames`` frames, each read ``repeats`` times."""
    images = [gen.frame(n_digits, index=10_000 + 100 * n_digits + i).image for i in range(frames)]
    parts: dict[str, list[float]] = {"image_ms": [], "onnxruntime_ms": [], "rest_ms": [], "total_ms": []}
    for image in images:
        reader.read(image)  # warm-up: first-call allocations are not the steady state
        for _ in range(repeats):
            t0 = time.perf_counter()
            found = reader.locate(image)
            t1 = time.perf_counter()
            if found.boxes:
                reader.judge(found.crops)
            t2 = time.perf_counter()
            reader.read(image)
            t3 = time.perf_counter()
            parts["image_ms"].append(t1 - t0)
            parts["onnxruntime_ms"].append(t2 - t1)
            parts["total_ms"].append(t3 - t2)
            parts["rest_ms"].append(max(0.0, (t3 - t2) - (t2 - t0)))
    return {"digits": n_digits, **{k: 1e3 * float(np.median(v)) for k, v in parts.items()}}


def isdigit_figures(vae: DigitVAE, test_images: np.ndarray, per_kind: int, seed: int = 0) -> dict[str, Any]:
    digits = vae.assess(test_images.astype(np.float32) / 255.0)
    kinds = {}
    for kind in KINDS:
        other = vae.assess(nondigits(kind, per_kind, seed))
        kinds[kind] = {"accepted": float(other.is_digit.mean()), "auroc": auroc(digits.oddness, other.oddness)}
    return {"test_digits": len(test_images), "digits_rejected": float(1 - digits.is_digit.mean()),
            "per_kind": per_kind, "kinds": kinds}


def camera_figures(folder: Any, frames: int, test_images: np.ndarray, per_kind: int) -> dict[str, Any]:
    require("cv2", "the camera benchmark").setNumThreads(1)
    vae = DigitVAE.load(folder, threads=1)
    reader, gen = DigitReader(vae), FrameGenerator.from_mnist(0)
    speed = [frame_speed(reader, gen, n, max(frames // 15, 2), 5) for n in DIGIT_COUNTS]
    accuracy = evaluate_reader(reader, frames, 0, max(frames * 2 // 5, 1))
    accuracy.pop("failures", None)
    return {"speed": speed, "accuracy": accuracy, "isdigit": isdigit_figures(vae, test_images, per_kind)}


def markdown_lines(camera: dict[str, Any]) -> list[str]:
    lines = ["## Camera path (one core)", "", "| digits in frame | image work ms | onnxruntime ms | rest ms | read() ms | frames/s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in camera["speed"]:
        lines.append(f"| {r['digits']} | {r['image_ms']:.2f} | {r['onnxruntime_ms']:.2f} | {r['rest_ms']:.2f} "
                     f"| {r['total_ms']:.2f} | {1000 / r['total_ms']:.0f} |")
    a = camera["accuracy"]
    lines += ["", f"Generated frames: {a['frames']} frames with {a['true_digits']} digits, {a['blank_frames']} frames with none.", "",
              "| digits read right | spurious detections | false digits per 100 blank frames |", "| --- | --- | --- |",
              f"| {100 * a['digit_accuracy']:.2f}% | {100 * a['spurious_rate']:.2f}% | {a['false_digits_per_100_blank']:.1f} |", ""]
    d = camera["isdigit"]
    lines += ["## Is it a digit at all?", "",
              f"MNIST test digits rejected: {100 * d['digits_rejected']:.2f}% of {d['test_digits']}. "
              f"{d['per_kind']} generated non-digits per kind:", "",
              "| kind | accepted as a digit | AUROC |", "| --- | --- | --- |"]
    lines += [f"| {k} | {100 * v['accepted']:.2f}% | {v['auroc']:.4f} |" for k, v in d["kinds"].items()]
    return lines + [""]
