"""Is this a digit at all? ``is_digit`` against real digits and against non-digits.

Measures, with the artifacts' calibrated thresholds:

* on the FULL official MNIST test set (10,000 digits, never used for calibration): the
  share of digits that ``is_digit`` rejects (target: at most 1%);
* for each kind of non-digit from :mod:`digitvae.data.nondigits` (``--per-kind`` crops
  each, MNIST-normalised as camera crops are): the share ``is_digit`` accepts, and the
  AUROC of the oddness score, digits against that kind (target: at least 0.99 each).

    python benchmarks/bench_isdigit.py                      # the shipped artifacts
    python benchmarks/bench_isdigit.py /tmp/scratch/exp1 --json isdigit.json --grid worst.png
    python benchmarks/bench_isdigit.py --gates symmetry,star --glyphs 'ij;' --glyphs '=$<>^~{}[]:'

``--gates`` measures the rule with only some of its gates (``novelty.GATES``), to see what
one does; ``--glyphs`` adds rows for characters the kinds never draw (same renderer,
``--per-kind`` of them), to check that a test fits the problem rather than the benchmark.

Prints a Markdown table; ``--json`` writes the numbers, ``--grid`` a PNG with, for each
kind, the most digit-like crops (lowest oddness) with the accepted ones framed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from digitvae.runtime import DigitVAE
from digitvae.data.mnist import load_mnist
from digitvae.data.nondigits import KINDS, glyphs, nondigits
from digitvae.runtime.novelty import GATES, auroc

MAX_REJECTED = 0.01
MIN_AUROC = 0.99


def measure(vae: DigitVAE, per_kind: int, seed: int, kinds: tuple[str, ...] = KINDS,
            gates: tuple[str, ...] = GATES, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``extra``: strings of characters, one more row each (see ``--glyphs``)."""
    data = load_mnist(quiet=True)
    digits = data.test_images.astype(np.float32) / 255.0
    t0 = time.perf_counter()
    assessed = vae.assess(digits, gates=gates)
    digit_odd = assessed.oddness
    rejected = ~assessed.is_digit
    by_label = {int(d): float(rejected[data.test_labels == d].mean()) for d in range(10)}
    result: dict[str, Any] = {
        "artifacts": str(vae.artifacts.folder),
        "thresholds": vae.artifacts.manifest.get("thresholds"),
        "test_digits": int(len(digits)),
        "digits_rejected": float(rejected.mean()),
        "digits_rejected_by_label": by_label,
        "per_kind": int(per_kind),
        "seed": int(seed),
        "gates": list(gates),
        "kinds": {},
        "targets": {"max_digits_rejected": MAX_REJECTED, "min_auroc": MIN_AUROC},
    }
    crops: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows = [(kind, nondigits(kind, per_kind, seed)) for kind in kinds]
    rows += [(f"glyphs {characters}", glyphs(characters, per_kind, seed)) for characters in extra]
    for kind, images in rows:
        a = vae.assess(images, gates=gates)
        crops[kind] = (images, a.oddness)
        result["kinds"][kind] = {
            "accepted": float(a.is_digit.mean()),
            "auroc": auroc(digit_odd, a.oddness),
            "accepted_read_as": {int(d): int(c) for d, c in zip(*np.unique(a.digits[a.is_digit], return_counts=True))},
        }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["passed"] = bool(result["digits_rejected"] <= MAX_REJECTED
                            and all(result["kinds"][k]["auroc"] >= MIN_AUROC for k in kinds))
    result["_crops"] = crops
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Artifacts: `{result['artifacts']}`; {result['test_digits']:,} MNIST test digits, "
        f"{result['per_kind']:,} non-digits per kind (seed {result['seed']}); gates: "
        f"{', '.join(result['gates']) or 'none'}.",
        "",
        f"MNIST test digits rejected: **{100 * result['digits_rejected']:.2f}%** "
        f"(target <= {100 * MAX_REJECTED:.0f}%)",
        "",
        "| kind | accepted as a digit | AUROC (digits vs kind) | meets >= 0.99 |",
        "|---|---:|---:|:---:|",
    ]
    for kind, k in result["kinds"].items():
        meets = "not a goal" if kind.startswith("glyphs ") else "yes" if k["auroc"] >= MIN_AUROC else "NO"
        lines.append(f"| {kind} | {100 * k['accepted']:.2f}% | {k['auroc']:.4f} | {meets} |")
    return "\n".join(lines)


def write_grid(path: Path, crops: dict[str, tuple[np.ndarray, np.ndarray]], cols: int = 24) -> None:
    """One row per kind: its ``cols`` most digit-like crops, accepted ones framed in grey."""
    from digitvae.runtime.pictures import tile, write_png

    rows = []
    for images, odd in crops.values():
        order = np.argsort(odd)[:cols]
        picked = images[order].copy()
        if len(picked) < cols:
            picked = np.concatenate([picked, np.zeros((cols - len(picked), 28, 28), np.float32)])
        for i, j in enumerate(order):
            if odd[j] <= 1.0:
                picked[i, [0, -1], :] = 0.5
                picked[i, :, [0, -1]] = 0.5
        rows.append(picked)
    write_png(path, tile(np.concatenate(rows), len(rows), cols), scale=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", nargs="?", default=None,
                        help="artifacts folder (default: $DIGITVAE_ARTIFACTS, else the shipped graphs)")
    parser.add_argument("--per-kind", type=int, default=2000, help="non-digits per kind (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the non-digit generator")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds (default: all)")
    parser.add_argument("--gates", default=",".join(GATES), help="comma-separated gates to apply (default: all)")
    parser.add_argument("--glyphs", action="append", default=[], metavar="CHARACTERS",
                        help="one more row of these characters (not part of the goal; repeatable)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32", help="graphs to run (default fp32)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers to this JSON file")
    parser.add_argument("--grid", type=Path, default=None, help="write a PNG of the most digit-like non-digits")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    gates = tuple(g.strip() for g in args.gates.split(",") if g.strip())
    unknown = [k for k in kinds if k not in KINDS] + [g for g in gates if g not in GATES]
    if unknown or args.per_kind < 1:
        parser.error(f"--kinds must be among {', '.join(KINDS)}, --gates among {', '.join(GATES)}, "
                     f"and --per-kind >= 1; got {', '.join(unknown) or f'--per-kind {args.per_kind}'}")

    vae = DigitVAE.load(args.artifacts, precision=args.precision, threads=args.threads)
    try:
        result = measure(vae, args.per_kind, args.seed, kinds, gates, tuple(args.glyphs))
    except ValueError as exc:  # a bad --glyphs string
        parser.error(str(exc))
    crops = result.pop("_crops")
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.grid:
        write_grid(args.grid, crops)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
