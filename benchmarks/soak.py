"""Soak: one process reads many generated frames through ``DigitReader`` and watches its
resident memory, open files and threads for leaks.

    python benchmarks/soak.py --reads 100000 --json benchmarks/results/soak.json

Frames come from a pool of distinct generated frames (rendering a frame costs more than
reading it), read in turn; what is measured is the reader's and onnxruntime's footprint.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

from tqdm import tqdm

from digitvae.runtime import DigitVAE
from digitvae.runtime.camera import DigitReader
from digitvae.data.frames import FrameGenerator

WARMUP_READS = 500  # allocator pools and onnxruntime's arenas settle in this many reads


def resident_mb() -> float:
    """Current (not peak) resident memory of this process, from /proc."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def snapshot() -> dict[str, float]:
    return {"rss_mb": resident_mb(), "open_files": open_files(), "os_threads": os_threads(),
            "python_threads": threading.active_count()}


def soak(reads: int, pool: int, seed: int, artifacts: str | None = None) -> dict:
    generator = FrameGenerator.from_mnist(seed=seed)
    frames = [generator.frame().image for _ in range(pool)]
    reader = DigitReader(DigitVAE.load(artifacts))
    samples = []
    started = time.perf_counter()
    for i in tqdm(range(reads), desc="soak", unit="frame", disable=None, mininterval=2):
        reader.read(frames[i % pool])
        if i + 1 == WARMUP_READS:
            after_warmup = snapshot()
        if (i + 1) % max(reads // 20, 1) == 0:
            samples.append({"reads": i + 1, **snapshot()})
    seconds = time.perf_counter() - started
    end = snapshot()
    return {
        "reads": reads, "distinct_frames": pool, "seconds": seconds, "after_warmup": after_warmup, "end": end,
        "rss_growth_mb": end["rss_mb"] - after_warmup["rss_mb"],
        "open_files_growth": end["open_files"] - after_warmup["open_files"],
        "os_threads_growth": end["os_threads"] - after_warmup["os_threads"],
        "samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--reads", type=int, default=100_000, help="frames read")
    parser.add_argument("--pool", type=int, default=500, help="distinct generated frames, read in turn")
    parser.add_argument("--seed", type=int, default=0, help="frame generator seed")
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: the shipped graphs)")
    parser.add_argument("--max-growth-mb", type=float, default=10.0, help="fail when resident memory grows more")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if args.reads <= WARMUP_READS:
        parser.error(f"--reads must exceed the {WARMUP_READS} warm-up reads")
    result = soak(args.reads, args.pool, args.seed, args.artifacts)
    print(f"{result['reads']} reads in {result['seconds']:.0f} s: resident memory {result['after_warmup']['rss_mb']:.1f} MB "
          f"after warm-up, {result['end']['rss_mb']:.1f} MB at the end ({result['rss_growth_mb']:+.1f} MB); open files "
          f"{result['open_files_growth']:+d}, threads {result['os_threads_growth']:+d}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    leaked = result["rss_growth_mb"] >= args.max_growth_mb or result["open_files_growth"] > 0 or result["os_threads_growth"] > 0
    return 1 if leaked else 0


if __name__ == "__main__":
    raise SystemExit(main())
