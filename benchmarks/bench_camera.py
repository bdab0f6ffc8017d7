"""Reading digits in camera frames: speed per frame and accuracy on generated frames.

Speed (issue 5: a 640x480 frame with up to 10 digits in at most 5 ms, median, one core):
for frames of 1, 5 and 10 digits, the median per-frame time of

* image work: gray conversion, ink map, strokes, grouping, crops (``DigitReader.locate``);
* onnxruntime: the one batched model call (``DigitReader.judge``: the three graphs and
  the runtime's numpy around them);
* the rest: building the detections, and everything else ``read`` does;

and the end-to-end median of ``DigitReader.read`` timed on its own. onnxruntime runs on
one thread and OpenCV on one thread, so the figures are one core's. The fp32 and int8
graphs are measured side by side (the demo runs int8 where it ships), for speed and for
accuracy.

Accuracy (issue 5: >= 98% of digits read right, <= 1% of detections spurious, <= 1 false
digit per 100 blank frames): ``evaluate_reader`` over generated frames.

    python benchmarks/bench_camera.py                          # shipped artifacts, both parts
    python benchmarks/bench_camera.py --artifacts DIR --frames 500 --blank 200 --json out.json
    python benchmarks/bench_camera.py --speed-only
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

from digitvae.bench.camera import DIGIT_COUNTS, frame_speed, readers
from digitvae.bench.evaluate import evaluate_reader
from digitvae.data.frames import FrameGenerator
from digitvae.runtime.optional import require



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: the shipped graphs)")
    parser.add_argument("--frames", type=int, default=500, help="generated frames for accuracy")
    parser.add_argument("--blank", type=int, default=200, help="blank frames for false digits")
    parser.add_argument("--speed-frames", type=int, default=20, help="frames per digit count for speed")
    parser.add_argument("--repeats", type=int, default=5, help="reads per speed frame")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--accuracy-only", action="store_true")
    parser.add_argument("--light-ink", action="store_true", help="also measure chalk-on-board frames")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "int8"], default=["fp32", "int8"],
                        help="graphs to measure (int8 where it ships)")
    parser.add_argument("--json", default=None, help="write the numbers to this JSON file")
    args = parser.parse_args()

    cv2 = require("cv2", "the camera benchmark")
    cv2.setNumThreads(1)  # one core, as the issue asks
    by_precision = {p: r for p, r in readers(args.artifacts).items() if p in args.precision}
    if not by_precision:
        parser.error(f"no {' or '.join(args.precision)} graphs ship in the artifacts")
    gen = FrameGenerator.from_mnist(args.seed)
    out: dict[str, Any] = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                           "python": platform.python_version(),
                           "artifacts": str(next(iter(by_precision.values())).vae.artifacts.folder)}
    if not args.accuracy_only:
        # Precisions side by side for each digit count, so that both see the same host load.
        out["speed"] = [{"precision": p, **frame_speed(r, gen, n, args.speed_frames, args.repeats)}
                        for n in DIGIT_COUNTS for p, r in by_precision.items()]
        print("| digits | graphs | image work ms | onnxruntime ms | rest ms | read() ms |")
        print("|---:|---|---:|---:|---:|---:|")
        for row in out["speed"]:
            print(f"| {row['digits']} | {row['precision']} | {row['image_ms']:.2f} | "
                  f"{row['onnxruntime_ms']:.2f} | {row['rest_ms']:.2f} | {row['total_ms']:.2f} |")
    if not args.speed_only:
        polarities = [False, True] if args.light_ink else [False]
        out["accuracy"] = {}
        for (precision, reader), light in ((pr, light) for pr in by_precision.items() for light in polarities):
            t0 = time.perf_counter()
            result = evaluate_reader(reader, args.frames, args.seed, args.blank, light_ink=light, generator=gen)
            result["seconds"] = time.perf_counter() - t0
            out["accuracy"][f"{precision} {'chalk' if light else 'ink'}"] = result
            print(f"\n{precision} graphs, {'chalk on board' if light else 'ink on paper'}: {result['frames']} frames, "
                  f"{result['true_digits']} digits, {result['blank_frames']} blank frames")
            print("| digits read right | found | true digits rejected | spurious detections (on marks) "
                  "| frames read in order | false digits / 100 blank | non-digit marks accepted |")
            print("|---:|---:|---:|---:|---:|---:|---:|")
            print(f"| {100 * result['digit_accuracy']:.2f}% | {100 * result['found']:.2f}% | "
                  f"{100 * result['true_digits_rejected']:.2f}% | {100 * result['spurious_rate']:.2f}% "
                  f"({100 * result['spurious_on_marks']:.0f}%) | "
                  f"{100 * result['frames_read_in_order']:.1f}% | {result['false_digits_per_100_blank']:.1f} | "
                  f"{100 * result['marks_accepted']:.1f}% of {result['marks']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
