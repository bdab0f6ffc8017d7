"""``digitvae export``: checkpoint -> graphs, golden fixtures, thresholds, manifest.

Everything is written to a temporary folder beside the output and moved into place only
when all of it succeeded, so a failed export leaves the previous artifacts untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from digitvae.runtime import spec
from digitvae.data.mnist import Mnist
from digitvae.runtime.model import DigitVAE as RuntimeVAE
from digitvae.runtime.novelty import Thresholds, calibrate, widen_profile

from . import manifest
from .cli import CALIBRATE_CAMERA
from .flops import flops_per_image
from .golden import write_golden
from .graphs import export_graphs

CALIBRATION_SEED = 0  # the score's noise; the runtime's is_digit uses seed 0 too
CAMERA_SEED = 0  # the camera model's draws over the calibration digits
Extra = tuple[np.ndarray, str]  # labelled digits, uint8 (N, 28, 28), and where they came from


def calibration_digits(data: Mnist, camera_share: float = 0.0, extra: Extra | None = None) -> tuple[np.ndarray, str]:
    """The digits is_digit is calibrated on, float32 (N, 28, 28), and a line saying what
    they are: MNIST's validation slice; copies of its first ``camera_share`` passed through
    the training camera model (camera crops are not MNIST's); and the ``extra`` folder's
    digits (e.g. the reader's crops of real digits: (uint8 images, where they came from))."""
    images = data.validation_split()[0].astype(np.float32) / 255.0
    parts, said = [images], [f"{len(images)} MNIST validation digits"]
    if camera_share > 0:
        import torch

        from digitvae.train.augment import augment
        from digitvae.train.camera_model import camera

        n = int(round(camera_share * len(images)))
        generator = torch.Generator().manual_seed(CAMERA_SEED)
        photographed = camera(augment(torch.from_numpy(images[:n, None]), 1.0, generator), 1.0, generator)
        parts.append(photographed[:, 0].numpy())
        said.append(f"{n} of them through the camera model")
    if extra is not None:
        parts.append(extra[0].astype(np.float32) / 255.0)
        said.append(f"{len(extra[0])} digits of {extra[1]}")
    return np.concatenate(parts), ", ".join(said)


def thresholds_for(folder: Path, data: Mnist, camera_share: float = 0.0, extra: Extra | None = None) -> dict[str, Any]:
    """Calibrate the is-digit thresholds with the runtime itself: every test and gate on
    MNIST's validation digits, then the profile test widened (:func:`widen_profile`) to
    :func:`calibration_digits` when they hold camera-model copies or extra digits."""
    vae = RuntimeVAE.load(folder)

    def calibrated(images: np.ndarray) -> Thresholds:
        return calibrate(*vae._score(images[:, None], CALIBRATION_SEED), images)

    images, said = calibration_digits(data, camera_share, extra)
    validation = len(data.validation_split()[0])
    thresholds = calibrated(images[:validation])
    if len(images) > validation:
        thresholds = widen_profile(thresholds, calibrated(images))
        said = f"the profile test: {said}; the other tests and the gates: the MNIST validation digits alone"
    return {**thresholds.to_manifest(), "calibrated_on": said}


def write_manifest(folder: Path, state: dict[str, Any], thresholds: dict[str, Any] | None,
                   quantization: dict[str, Any] | None) -> None:
    files = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".onnx":
            precision = "int8" if path.name.endswith(spec.INT8_SUFFIX) else "fp32"
            files[path.name] = manifest.file_entry(path, "graph", precision=precision, flops_per_image=flops_per_image(path))
        elif path.name == spec.GOLDEN_FILE:
            files[path.name] = manifest.file_entry(path, "fixture")
        elif path.suffix in (".ort", ".config"):
            files[path.name] = manifest.file_entry(path, "ort-format")
    metrics = state["metrics"][-1] if state.get("metrics") else {}
    training = {"model_args": state["model_args"], "config": state["config"], "final_metrics": metrics,
                "epochs_trained": len(state.get("metrics", [])), "torch_version": state.get("torch_version")}
    built = manifest.build(files, state["model_args"]["latent_size"], training, thresholds, quantization)
    manifest.write(built, folder / spec.MANIFEST_FILE)


def move_into(staging: Path, out: Path) -> list[Path]:
    moved = []
    for path in sorted(staging.iterdir()):
        target = out / path.name
        os.replace(path, target)
        moved.append(target)
    return moved


def run_export(checkpoint_path: Path, out: Path, data: Mnist, *, opset: int = spec.OPSET,
               int8: bool = False, ort_format: bool = False, calibrate_camera: float = CALIBRATE_CAMERA,
               calibrate_extra: Path | None = None) -> list[Path]:
    from digitvae.train.checkpoint import load_model
    from digitvae.train.cli import check_writable

    model, _, state = load_model(checkpoint_path)
    extra = None
    if calibrate_extra is not None:  # a bad folder stops the export before anything is written
        from digitvae.data.extra import load_extra

        extra = (load_extra(calibrate_extra)[0], calibrate_extra.name)
    check_writable(out)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" x12
    logging.getLogger("onnxscript").setLevel(logging.CRITICAL)  # its own traceback before our one-line error
    metadata = {"product": spec.PRODUCT, "format_version": str(spec.FORMAT_VERSION),
                "pixel_contract": spec.PIXEL_CONTRACT, "digitvae_version": manifest.versions()["digitvae"]}
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".export-"))
    try:
        export_graphs(model, staging, opset, metadata)
        write_golden(model, data.test_images, data.test_labels, staging / spec.GOLDEN_FILE)
        write_manifest(staging, state, None, None)  # first without thresholds: the runtime calibrates them
        thresholds = thresholds_for(staging, data, calibrate_camera, extra)
        quantization = None
        if int8:
            from .quantize import quantize_all

            quantization = quantize_all(staging, data)
        if ort_format:
            from .ort_format import convert

            convert(staging)
        write_manifest(staging, state, thresholds, quantization)
        return move_into(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
