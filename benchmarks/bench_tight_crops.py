"""How the camera reader does on images cut tight to one digit (``digitvae classify`` on a
crop someone made by hand), by margin.

MNIST test digits are enlarged to 84 px, drawn as dark ink on light paper, and cut to their
ink's bounding box plus ``margin`` pixels on each side (0: the ink touches all four edges).
Each image is read as a frame; the detection nearest its centre stands for it. Printed:
the share read as the right digit and accepted by is_digit, and the share with no detection.

    python benchmarks/bench_tight_crops.py --digits 600 --margins 0 2 6
"""

from __future__ import annotations

import argparse

import numpy as np

from digitvae.bench.real import pick
from digitvae.data.mnist import load_mnist
from digitvae.runtime import DigitVAE
from digitvae.runtime.camera import DigitReader
from digitvae.runtime.optional import require

cv2 = require("cv2", "drawing the crops")
SIZE = 84  # pixels the 28x28 digit is enlarged to
PAPER, INK = 235, 0.8  # paper brightness, and the share of it a full-ink pixel takes away


def tight_crop(image: np.ndarray, margin: int) -> np.ndarray:
    """A uint8 28x28 MNIST digit -> gray uint8 paper with the digit as ink, cut ``margin``
    pixels outside its ink's bounding box."""
    big = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    rows, cols = np.nonzero(big > 40)
    cut = big[max(0, rows.min() - margin):rows.max() + 1 + margin, max(0, cols.min() - margin):cols.max() + 1 + margin]
    return np.clip(PAPER - INK * cut.astype(np.float32), 0, 255).astype(np.uint8)


def measure(reader: DigitReader, images: np.ndarray, labels: np.ndarray, margin: int) -> tuple[float, float]:
    right = missing = 0
    for image, label in zip(images, labels):
        frame = tight_crop(image, margin)
        centre = pick(reader.read(frame), frame.shape[1], frame.shape[0])
        if centre is None:
            missing += 1
            continue
        right += centre.digit == label and centre.is_digit
    return right / len(images), missing / len(images)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=600, help="MNIST test digits (the first ones)")
    parser.add_argument("--margins", type=int, nargs="+", default=[0, 2, 6], help="margins in pixels")
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: the shipped graphs)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    mnist = load_mnist()
    images, labels = mnist.test_images[:args.digits], mnist.test_labels[:args.digits]
    reader = DigitReader(DigitVAE.load(args.artifacts, precision=args.precision, threads=1))
    print(f"| margin px | read right and accepted | no detection |  ({args.digits} MNIST test digits, {args.precision})")
    print("| ---: | ---: | ---: |")
    for margin in args.margins:
        right, missing = measure(reader, images, labels, margin)
        print(f"| {margin} | {100 * right:.1f}% | {100 * missing:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
