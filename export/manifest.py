"""``manifest.json``: what the runtime needs to trust and use the artifacts (SPEC section 6)."""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import onnx

from digitvae.runtime import spec

_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe_graph(path: Path) -> dict[str, Any]:
    """Names, shapes and dtypes of a graph's inputs and outputs, read from the file itself."""
    model = onnx.load(str(path))

    def values(items: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": v.name,
                "dtype": _ONNX_DTYPES.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type)),
                "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
            }
            for v in items
        ]

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {"opset": opset, "inputs": values(model.graph.input), "outputs": values(model.graph.output)}


def file_entry(path: Path, role: str, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": role, "sha256": sha256(path), "size": path.stat().st_size, **extra}
    if path.suffix == ".onnx":
        entry.update(describe_graph(path))
    return entry


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("digitvae", "torch", "onnx", "onnxruntime", "onnxscript", "numpy"):
        try:
            found[package] = version(package)
        except Exception:
            found[package] = "not installed"
    return found


def build(files: dict[str, dict[str, Any]], latent_size: int, training: dict[str, Any],
          thresholds: dict[str, Any] | None, quantization: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "product": spec.PRODUCT,
        "format_version": spec.FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "opset": spec.OPSET,
        "latent_size": latent_size,
        "num_classes": spec.NUM_CLASSES,
        "image_size": spec.IMAGE_SIZE,
        "pixel_contract": {
            "text": spec.PIXEL_CONTRACT,
            "dtype": "float32",
            "range": [spec.PIXEL_MIN, spec.PIXEL_MAX],
            "ink": "white on black",
            "digit_box": spec.DIGIT_BOX,
            "centring": "centre of mass",
        },
        "files": files,
        "training": training,
        "thresholds": thresholds,
        "quantization": quantization,
        "versions": versions(),
    }


def write(manifest: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
