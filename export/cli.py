"""``digitvae export``: flags, then ``run_export``; torch is imported only on run."""

from __future__ import annotations

import argparse
from pathlib import Path

from digitvae.runtime import spec
from digitvae.runtime.command import Command
from digitvae.runtime.optional import require

#: Copies of this share of MNIST's validation digits, passed through the camera model, join
#: is_digit's calibration digits: the reader's crops of real digits are not MNIST's.
CALIBRATE_CAMERA = 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, default=Path("artifacts") / spec.CHECKPOINT_FILE, help="trained checkpoint")
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="folder for the graphs and manifest")
    parser.add_argument("--opset", type=int, default=spec.OPSET, help="ONNX opset")
    parser.add_argument("--int8", action="store_true", help="also quantize (static QDQ, per-channel) and keep the int8 graphs that earn their place")
    parser.add_argument("--ort", action="store_true", help="also write ORT-format graphs and the operator list for a reduced onnxruntime build")
    parser.add_argument("--calibrate-camera", type=float, default=CALIBRATE_CAMERA, metavar="SHARE",
                        help="is_digit is calibrated on MNIST's validation digits and copies of this share of them passed through the camera model (0: MNIST alone)")
    parser.add_argument("--calibrate-extra", type=Path, default=None, metavar="DIR",
                        help="... and on these labelled digits too (DIR/0/*.png ... DIR/9/*, e.g. digitvae bench --real --dump-crops)")
    parser.add_argument("--data-dir", default=None, help="folder of MNIST IDX files (default: $DIGITVAE_DATA, else the cache)")


def run(args: argparse.Namespace) -> int:
    for module in ("torch", "onnx", "onnxscript"):
        require(module, "digitvae export")
    from digitvae.data.mnist import load_mnist

    from .export import run_export

    written = run_export(args.checkpoint, args.out, load_mnist(args.data_dir), opset=args.opset,
                         int8=args.int8, ort_format=args.ort, calibrate_camera=args.calibrate_camera,
                         calibrate_extra=args.calibrate_extra)
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


COMMAND = Command(help="export the checkpoint as three ONNX graphs with a manifest (needs the [train] extra)",
                  add_arguments=add_arguments, run=run)
