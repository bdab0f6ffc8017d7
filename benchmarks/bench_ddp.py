"""One process against torchrun's several on this machine: the same short training, side by side.

    python benchmarks/bench_ddp.py                 # 2 epochs on the full training set, ~10 min on 2 cores
    python benchmarks/bench_ddp.py --epochs 1 --limit 4096

Runs, one after the other, each into its own folder: one process with every core (the
default), one process with one thread (what torchrun gives each of its processes), and
``torchrun --standalone --nproc-per-node N``. Prints a markdown table: wall time of the
whole command, training images per second (training time alone, from metrics.jsonl) and the
last epoch's test accuracy and negative ELBO, with the load average around each run
(other work on the machine slows every figure here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def configurations(nproc: int) -> list[tuple[str, list[str]]]:
    python = [sys.executable, "-m", "digitvae.train"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), "-m", "digitvae.train"]
    return [
        ("1 process, all cores", python),
        ("1 process, 1 thread", [*python, "--threads", "1"]),
        (f"torchrun, {nproc} processes x 1 thread", torchrun),
    ]


def run(command: list[str], out: Path) -> dict[str, float]:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"wall": wall, "train_seconds": sum(m["epoch_seconds"] for m in history), "last": history[-1],
            "load": (load_before, os.getloadavg()[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images (default: all 50,000)")
    parser.add_argument("--nproc", type=int, default=2, help="torchrun's --nproc-per-node")
    args = parser.parse_args()
    from digitvae.data.mnist import load_mnist
    from digitvae.train.config import TrainConfig

    images = len(load_mnist(quiet=True).fit_split()[0])
    images = min(images, args.limit) if args.limit else images
    common = ["--epochs", str(args.epochs), *(["--limit", str(args.limit)] if args.limit else [])]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        for i, (name, command) in enumerate(configurations(args.nproc)):
            print(f"running: {name} ...", file=sys.stderr, flush=True)
            rows.append((name, run([*command, *common], Path(tmp) / str(i))))
    print(f"{args.epochs} epochs on {images:,} training images, batch {TrainConfig().batch_size} (global), evaluation on the 10,000 test images "
          f"after each epoch; {os.cpu_count()} cores\n")
    print("| run | wall time s | training images/s | test accuracy | test -ELBO nats | load average before / after |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, r in rows:
        last = r["last"]
        print(f"| {name} | {r['wall']:.0f} | {args.epochs * images / r['train_seconds']:.0f} | "
              f"{100 * last['test_accuracy']:.2f}% | {last['test_neg_elbo']:.2f} | {r['load'][0]:.2f} / {r['load'][1]:.2f} |")


if __name__ == "__main__":
    main()
