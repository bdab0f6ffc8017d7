"""Why real digits in camera frames are lost: which of is_digit's tests rejects them.

Reads generated frames, keeps the crops matched to a true digit, and splits the ones
``is_digit`` rejects by the tests that fail (:func:`digitvae.runtime.novelty.tests`: the
profile's distance, the classifier's confidence, the two joined), with how many of them
the classifier would have read wrong anyway. The crops go through the model in one batch,
not frame by frame, so the score's sampling noise differs from the reader's and the shares
differ slightly from ``bench_camera.py``'s.

    python benchmarks/why_rejected.py --seed 2 --frames 500
"""

from __future__ import annotations

import argparse

import numpy as np

from digitvae.runtime import DigitVAE
from digitvae.runtime.camera import GATES, DigitReader
from digitvae.bench.evaluate import match_boxes
from digitvae.data.frames import FrameGenerator
from digitvae.runtime.optional import require


def matched_crops(reader: DigitReader, seed: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The crops the reader found for true digits, and their labels."""
    gen = FrameGenerator.from_mnist(seed)
    crops, labels = [], []
    for i in range(frames):
        frame = gen.frame(index=i)
        found = reader.locate(frame.image)
        for truth, j in match_boxes(list(frame.boxes), found.boxes).items():
            crops.append(found.crops[j])
            labels.append(frame.digits[truth])
    return np.stack(crops), np.array(labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: the shipped graphs)")
    parser.add_argument("--seed", type=int, default=0, help="frame generator seed")
    parser.add_argument("--frames", type=int, default=500, help="generated frames")
    args = parser.parse_args()
    require("cv2", "the camera benchmark").setNumThreads(1)
    vae = DigitVAE.load(args.artifacts, threads=1)
    crops, labels = matched_crops(DigitReader(vae), args.seed, args.frames)
    verdict = vae.assess(crops, gates=GATES)  # the tests the reader applies
    failed = {name: value > 1 for name, value in verdict.tests.items()}
    rejected, wrong = ~verdict.is_digit, verdict.digits != labels
    print(f"{len(labels)} digits found in {args.frames} frames (seed {args.seed})")
    print(f"rejected by is_digit: {100 * rejected.mean():.2f}%, by the tests that fail:")
    which = np.array([" + ".join(name for name, f in failed.items() if f[i]) for i in range(len(labels))])
    for combination, count in zip(*np.unique(which[rejected], return_counts=True)):
        print(f"  {combination}: {100 * count / len(labels):.2f}%")
    if rejected.any():
        print(f"of the rejected, read wrong anyway: {100 * wrong[rejected].mean():.0f}%")
    print(f"read wrong: {100 * wrong.mean():.2f}%; read right and accepted: {100 * (~wrong & ~rejected).mean():.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
