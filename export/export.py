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
from digitvae.runtime.novelty import calibrate

from . import manifest
from .flops import flops_per_image
from .golden import write_golden
from .graphs import export_graphs

CALIBRATION_SEED = 0  # the score's noise; the runtime's is_digit uses seed 0 too


def thresholds_for(folder: Path, data: Mnist) -> dict[str, Any]:
    """Calibrate the is-digit thresholds with the runtime itself, on the validation slice."""
    vae = RuntimeVAE.load(folder)
    images = data.validation_split()[0].astype(np.float32) / 255.0
    score, probabilities = vae._score(images[:, None], CALIBRATION_SEED)
    return calibrate(score, probabilities, images).to_manifest()


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
               int8: bool = False, ort_format: bool = False) -> list[Path]:
    from digitvae.train.checkpoint import load_model
    from digitvae.train.cli import check_writable

    model, _, state = load_model(checkpoint_path)
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
        thresholds = thresholds_for(staging, data)
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
