"""What each of is_digit's tests and gates buys on real photos, and costs in real digits.

For the rule as shipped, and with one test or gate switched off at a time (and with all
of them off: every crop accepted), reads ``DIR`` (laid out as ``../shared/realdata``) and
generated blank frames, and prints: photos' precision, recall and 1 - edits/digits; the
share of right real digits accepted (photos and sudoku validation); sudoku train and
validation accuracy; false digits per 100 generated blank frames. A test pays where
switching it off loses precision (or adds false digits) worth more than the digits it gains.

    python benchmarks/gates_real.py ../shared/realdata --blank 300
    python benchmarks/gates_real.py ../shared/realdata --artifacts DIR --precision int8
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from digitvae.bench.evaluate import evaluate_reader
from digitvae.bench.real import measure
from digitvae.data import realdata
from digitvae.runtime import DigitVAE
from digitvae.runtime.camera import DigitReader
from digitvae.runtime.optional import require
from digitvae.runtime.spec import NUM_CLASSES

INF = float("inf")
#: Each test or gate, and the thresholds that switch it off alone (the joint test keeps
#: using the profile's and the confidence's values).
OFF = {
    "profile": lambda t: replace(t, max_distance=INF),
    "confidence": lambda t: replace(t, min_confidence=(0.0,) * NUM_CLASSES),
    "joint": lambda t: replace(t, max_joint=INF),
    "symmetry": lambda t: replace(t, max_half_turn=(INF,) * NUM_CLASSES),
    "star": lambda t: replace(t, star_half_turn=(INF,) * NUM_CLASSES),
}


def figures(vae: DigitVAE, data: realdata.RealData, blank: int) -> list[str]:
    results, _ = measure(DigitReader(vae), data)
    photos, sudoku = results["photos"]["overall"], results["sudoku"]
    generated = evaluate_reader(DigitReader(vae), n_frames=0, blank_frames=blank, seed=1)
    return [f"{100 * photos['precision']:.1f}%", f"{100 * photos['recall']:.1f}%", f"{100 * photos['one_minus_edits']:.1f}%",
            f"{100 * results['accepts_right_photos_and_validation']:.1f}%", f"{100 * sudoku['train']['accuracy']:.1f}%",
            f"{100 * sudoku['validation']['accuracy']:.1f}%", f"{generated['false_digits_per_100_blank']:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("real", help="a folder laid out like ../shared/realdata")
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: the shipped graphs)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--blank", type=int, default=300, help="generated blank frames (seed 1)")
    args = parser.parse_args()
    require("cv2", "reading photos").setNumThreads(1)
    vae = DigitVAE.load(args.artifacts, precision=args.precision, threads=1)
    data, shipped = realdata.load(args.real), vae.thresholds
    print("| is_digit | photos precision | photos recall | photos 1 - edits/digits | right real digits accepted "
          "| sudoku train | sudoku validation | false digits / 100 blank frames |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = [("as shipped", shipped)] + [(f"without {name}", off(shipped)) for name, off in OFF.items()]
    everything_off = shipped
    for off in OFF.values():
        everything_off = off(everything_off)
    for name, thresholds in rows + [("accept every crop", everything_off)]:
        vae.thresholds = thresholds
        print(f"| {name} | " + " | ".join(figures(vae, data, args.blank)) + " |", flush=True)
    vae.thresholds = shipped


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
