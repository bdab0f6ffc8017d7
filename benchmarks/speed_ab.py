"""Two readers timed side by side in one process: this package's and another version's.

On a shared machine a run's timings drift by 10% and more from one minute to the next, so
two readers timed one after the other differ by the machine as much as by their code. Here
each frame is read by one reader and then the other, in turn, ``--repeats`` times, with the
same graphs (this package's shipped artifacts, or ``--artifacts``) and the same frames; a busy
spell slows both alike. Prints, per kind of frame (blank, and 1, 5 and 10 digits as
``bench_camera.py`` draws them), each reader's median of the per-frame medians of
``DigitReader.read`` and the median of the per-frame ratios (this / other), on one core.

The other version is installed apart, then named by its folder:

    git worktree add /tmp/old REV && pip install --no-deps --target /tmp/old_pkg /tmp/old
    python benchmarks/speed_ab.py /tmp/old_pkg --precision int8
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from digitvae.bench.camera import DIGIT_COUNTS
from digitvae.data.frames import FrameGenerator
from digitvae.runtime import DigitVAE
from digitvae.runtime.camera import DigitReader
from digitvae.runtime.optional import require

OTHER = "digitvae_other"  # the other version's package, imported under this name


def other_reader(folder: Path, graphs: str, precision: str, work: Path) -> Any:
    """The other version's DigitReader: its package copied under another name (its own
    imports are relative), loading the graphs in the folder ``graphs``."""
    package = folder / "digitvae"
    if not (package / "runtime" / "camera.py").is_file():
        raise SystemExit(f"{folder}: expected a folder holding an installed digitvae package "
                         "(pip install --no-deps --target FOLDER CHECKOUT), found none")
    shutil.copytree(package, work / OTHER)
    sys.path.insert(0, str(work))
    runtime = importlib.import_module(f"{OTHER}.runtime")
    camera = importlib.import_module(f"{OTHER}.runtime.camera")
    return camera.DigitReader(runtime.DigitVAE.load(graphs, precision=precision, threads=1))


def frames(gen: FrameGenerator, digits: int, count: int) -> list[np.ndarray]:
    """``bench_camera.py``'s speed frames of ``digits`` digits; blank frames for 0."""
    if digits == 0:
        return [gen.blank_frame(index=500 + i).image for i in range(count)]
    return [gen.frame(digits, index=10_000 + 100 * digits + i).image for i in range(count)]


def side_by_side(readers: dict[str, Any], images: list[np.ndarray], repeats: int) -> dict[str, np.ndarray]:
    """Each reader's median seconds per frame, each frame read by each reader in turn."""
    medians: dict[str, list[float]] = {name: [] for name in readers}
    for image in images:
        for reader in readers.values():
            reader.read(image)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(repeats):
            for name, reader in readers.items():
                start = time.perf_counter()
                reader.read(image)
                times[name].append(time.perf_counter() - start)
        for name in readers:
            medians[name].append(float(np.median(times[name])))
    return {name: np.array(values) for name, values in medians.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("other", type=Path, help="folder the other version is installed in (pip install --target)")
    parser.add_argument("--artifacts", default=None, help="graphs both readers load (default: this package's)")
    parser.add_argument("--precision", default="int8", choices=("fp32", "int8"))
    parser.add_argument("--digits", type=int, nargs="+", default=[0, *DIGIT_COUNTS], help="0: blank frames")
    parser.add_argument("--frames", type=int, default=20, help="frames per kind")
    parser.add_argument("--repeats", type=int, default=15, help="reads of each frame by each reader")
    args = parser.parse_args()
    require("cv2", "the camera benchmark").setNumThreads(1)  # one core
    with tempfile.TemporaryDirectory() as work:
        this = DigitVAE.load(args.artifacts, precision=args.precision, threads=1)
        readers = {"this": DigitReader(this),
                   "other": other_reader(args.other, str(this.artifacts.folder), args.precision, Path(work))}
        gen = FrameGenerator.from_mnist(0)
        print("| digits | this reader, ms | other reader, ms | per-frame ratio (this / other) |")
        print("| ---: | ---: | ---: | ---: |")
        for digits in args.digits:
            got = side_by_side(readers, frames(gen, digits, args.frames), args.repeats)
            print(f"| {digits or 'blank'} | {1e3 * np.median(got['this']):.2f} | {1e3 * np.median(got['other']):.2f} "
                  f"| {np.median(got['this'] / got['other']):.3f} |", flush=True)


if __name__ == "__main__":
    main()
