"""``digitvae train``: argparse flags mirror ``TrainConfig``; torch is imported only on run."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from digitvae.runtime.command import Command
from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.optional import require


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .config import TrainConfig  # torch-free

    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the training images")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per step")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate (one-cycle schedule)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW weight decay")
    parser.add_argument("--latent-size", type=int, default=defaults.latent_size, help="width of z (at least 10)")
    parser.add_argument("--class-weight", type=float, default=defaults.class_weight, help="weight of the classifier's cross-entropy (the seed used 10)")
    parser.add_argument("--gen-weight", type=float, default=defaults.gen_weight, help="weight of the generation/restyle consistency loss (0 = the plain seed)")
    parser.add_argument("--outlier-weight", type=float, default=defaults.outlier_weight, help="weight of outlier exposure: the classifier's cross-entropy to uniform on drawn non-digits (0 = off)")
    parser.add_argument("--augment", type=float, default=defaults.augment, help="share of the classifier's batch augmented (shift, rotation, scale, stroke width); the VAE learns clean digits")
    parser.add_argument("--camera", type=float, default=defaults.camera, help="share of the classifier's batch passed through the camera model (blur, low resolution, shear, broken strokes, line ends, specks)")
    parser.add_argument("--flagged-ones", type=float, default=defaults.flagged_ones, help="share of the 1s drawn with a flag, the up-stroke from the top many writers start a 1 with (MNIST's seldom)")
    parser.add_argument("--extra", metavar="DIR", default=None, help="extra labelled digits for the classifier: DIR/0/*.png ... DIR/9/*, any image size (e.g. from digitvae bench --real --dump-crops)")
    parser.add_argument("--extra-share", type=float, default=defaults.extra_share, help="extra digits drawn into each classifier batch, as a share of its MNIST images")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed; same seed, same machine, same result")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="train on the first N images only")
    parser.add_argument("--eval-limit", type=int, default=None, metavar="N", help="evaluate on the first N test images only")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--data-dir", default=None, help="folder of the four MNIST IDX files (default: $DIGITVAE_DATA, else the cache, else download)")
    parser.add_argument("--out", dest="out_dir", default=defaults.out_dir, help="folder for checkpoint, metrics and pictures")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its resume.pt")
    parser.add_argument("--device", default=defaults.device, help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps; under torchrun, cuda is each process's GPU (LOCAL_RANK)")
    parser.add_argument("--amp", action="store_true", help="mixed precision: bfloat16 autocast for the training step (CUDA only)")
    parser.add_argument("--evaluate", metavar="CHECKPOINT", default=None, help="do not train: recompute every figure of CHECKPOINT on the full test set")
    parser.add_argument("--json", action="store_true", help="with --evaluate: print the figures as JSON")


def check_writable(folder: Path) -> None:
    """Fail in one line before training, not after an hour, if the output cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise DigitVAEError(f"cannot write to the output folder {folder} ({exc.strerror}): pass a writable --out") from exc


def run(args: argparse.Namespace) -> int:
    require("torch", "digitvae train")
    require("tqdm", "digitvae train")
    from digitvae.data.mnist import load_mnist

    from .config import TrainConfig

    if args.evaluate:
        return evaluate_checkpoint(args.evaluate, args.data_dir, args.eval_limit, args.json)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    from .distributed import World, WorldError, session
    from .train import train

    world = World.from_env()  # torchrun's processes; one process without it
    try:
        with session(world, config.device, config.amp) as device:
            data = world.once_per_machine(lambda: load_mnist(config.data_dir))
            started = time.perf_counter()
            train(config, data, world, device)
    except WorldError:
        if not world.is_main:
            raise SystemExit(2) from None  # every rank found it; rank 0 prints the one line
        raise
    if world.is_main:
        minutes = (time.perf_counter() - started) / 60
        print(f"trained in {minutes:.1f} min; checkpoint, metrics and pictures in {config.out_dir}")
    return 0


def evaluate_checkpoint(path: str, data_dir: str | None, limit: int | None, as_json: bool) -> int:
    from digitvae.data.mnist import load_mnist

    from . import checkpoint
    from .evaluate import evaluate
    from .train import as_tensors

    model, judge, _ = checkpoint.load_model(path)
    data = load_mnist(data_dir)
    images, labels = as_tensors(data.test_images, data.test_labels)
    if limit:
        images, labels = images[:limit], labels[:limit]
    figures = evaluate(model, judge, images, labels)
    if as_json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:32s} {value}")
    return 0


COMMAND = Command(help="train the VAE and classifier on MNIST (needs the [train] extra)", add_arguments=add_arguments, run=run)
