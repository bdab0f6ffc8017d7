"""Camera-path and is-digit figures for ``digitvae bench`` (needs OpenCV, the [camera] extra).

* speed: median time per 640x480 frame with 1, 5 and 10 digits, split into image work
  (``DigitReader.locate``), onnxruntime (``DigitReader.judge``: the one batched model call)
  and the rest, on one core (one onnxruntime thread, one OpenCV thread), for the fp32 and
  the int8 graphs side by side (the demo runs int8 where it ships);
* the reader's accuracy on generated frames (``evaluate_reader``), for each precision;
* is_digit against the full test set and every kind of generated non-digit.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from digitvae.runtime.artifacts import ships_int8
from digitvae.runtime.camera import DigitReader
from .evaluate import evaluate_reader
from digitvae.data.frames import FrameGenerator
from digitvae.runtime.model import DigitVAE
from digitvae.data.nondigits import KINDS, nondigits
from digitvae.runtime.novelty import auroc
from digitvae.runtime.optional import require

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


def readers(folder: Any) -> dict[str, DigitReader]:
    """One reader per shipped precision ("fp32", and "int8" where int8 graphs ship), each
    on one onnxruntime thread."""
    out = {"fp32": DigitReader(DigitVAE.load(folder, threads=1))}
    if ships_int8(folder):
        out["int8"] = DigitReader(DigitVAE.load(folder, precision="int8", threads=1))
    return out


def camera_figures(folder: Any, frames: int, test_images: np.ndarray, per_kind: int) -> dict[str, Any]:
    require("cv2", "the camera benchmark").setNumThreads(1)
    by_precision, gen = readers(folder), FrameGenerator.from_mnist(0)
    # Precisions side by side for each digit count, so that both see the same host load.
    speed = [{"precision": p, **frame_speed(r, gen, n, max(frames // 15, 2), 5)}
             for n in DIGIT_COUNTS for p, r in by_precision.items()]
    accuracy = {}
    for p, r in by_precision.items():
        accuracy[p] = evaluate_reader(r, frames, 0, max(frames * 2 // 5, 1))
        accuracy[p].pop("failures", None)
    vae = by_precision["fp32"].vae
    return {"speed": speed, "accuracy": accuracy, "isdigit": isdigit_figures(vae, test_images, per_kind)}


def markdown_lines(camera: dict[str, Any]) -> list[str]:
    lines = ["## Camera path (one core)", "",
             "| digits in frame | graphs | image work ms | onnxruntime ms | rest ms | read() ms | frames/s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in camera["speed"]:
        lines.append(f"| {r['digits']} | {r['precision']} | {r['image_ms']:.2f} | {r['onnxruntime_ms']:.2f} | {r['rest_ms']:.2f} "
                     f"| {r['total_ms']:.2f} | {1000 / r['total_ms']:.0f} |")
    first = next(iter(camera["accuracy"].values()))
    lines += ["", f"Generated frames: {first['frames']} frames with {first['true_digits']} digits, "
              f"{first['blank_frames']} frames with none.", "",
              "| graphs | digits read right | spurious detections | false digits per 100 blank frames |",
              "| --- | --- | --- | --- |"]
    lines += [f"| {p} | {100 * a['digit_accuracy']:.2f}% | {100 * a['spurious_rate']:.2f}% | {a['false_digits_per_100_blank']:.1f} |"
              for p, a in camera["accuracy"].items()]
    lines += [""]
    d = camera["isdigit"]
    lines += ["## Is it a digit at all?", "",
              f"MNIST test digits rejected: {100 * d['digits_rejected']:.2f}% of {d['test_digits']}. "
              f"{d['per_kind']} generated non-digits per kind:", "",
              "| kind | accepted as a digit | AUROC |", "| --- | --- | --- |"]
    lines += [f"| {k} | {100 * v['accepted']:.2f}% | {v['auroc']:.4f} |" for k, v in d["kinds"].items()]
    return lines + [""]
