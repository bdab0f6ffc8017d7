"""A steady live reading (issue 21): frame-by-frame reading against the tracker.

Generated clips of held sheets (the demo's sample clip, slow drift, shake, a hand passing in
front, scene cuts; ``digitvae.data.clips``) are read once by the camera reader, then shown
frame by frame and through ``DigitTracker``, and scored (see ``digitvae.bench.tracking``):
flicker, frames right, digits right, spurious digits, the delay before a new digit is shown
right, and the tracker's own cost per frame (median, one core).

Goals: flicker under 1% of frames, frames right no lower than frame by frame, a new digit
shown within 3 frames, the tracker's cost under 0.2 ms per frame.

    python benchmarks/bench_tracker.py                          # 5 kinds x 2 seeds x 200 frames
    python benchmarks/bench_tracker.py --frames 100 --seeds 0 --sweep --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

from digitvae.bench.tracking import KINDS, compare, markdown_lines, read_clips, tracker_cost
from digitvae.runtime import tracker as tracking
from digitvae.runtime.camera import DigitReader
from digitvae.runtime.model import DigitVAE
from digitvae.runtime.optional import require


def variants(sweep: bool) -> dict[str, dict[str, Any]]:
    """The tracker as shipped; with ``sweep``, each setting moved on its own as well."""
    shipped = {"appear": tracking.APPEAR, "vanish": tracking.VANISH, "votes": tracking.VOTES}
    out = {"tracker": shipped}
    if sweep:
        for name, values in (("appear", (1, 3)), ("vanish", (1, 2, 5)), ("votes", (1, 4, 16))):
            for value in values:
                out[f"tracker, {name} {value}"] = {**shipped, name: value}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: the shipped graphs)")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="int8", help="graphs (the demo's: int8)")
    parser.add_argument("--frames", type=int, default=200, help="frames per clip")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one clip of each kind per seed")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--sweep", action="store_true", help="also the tracker with each setting moved")
    parser.add_argument("--json", default=None, help="write every figure to this JSON file")
    args = parser.parse_args()
    if args.frames < 2:
        parser.error(f"--frames: expected at least 2, got {args.frames}")

    require("cv2", "the tracker benchmark").setNumThreads(1)  # one core
    reader = DigitReader(DigitVAE.load(args.artifacts, precision=args.precision, threads=1))
    t0 = time.perf_counter()
    clips = read_clips(reader, tuple(args.kinds), args.frames, args.seeds)
    read_s = time.perf_counter() - t0
    results = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
               "precision": args.precision, "frames_per_clip": args.frames, "seeds": args.seeds,
               "clips": len(clips), "read_seconds": read_s,
               "figures": compare(clips, variants(args.sweep)), "cost": tracker_cost(clips)}
    print("\n".join(markdown_lines(results)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
