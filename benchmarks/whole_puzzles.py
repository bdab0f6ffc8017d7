"""Whole sudoku photos read in one frame, as a user photographs a puzzle.

``digitvae bench --real`` reads each cell cut from the grid on its own. This reads each
whole photo with ``DigitReader.read`` (the page, ink and turn stages included) and puts
every accepted digit in the cell its box's centre falls in, through the grid's corners in
grids.csv. Per split, over the labelled digit cells: read right (an accepted digit in the
cell is the label), missed (no digit in the cell), wrong (only other digits); the empty
cells that got a digit; and the photos that gave no digit at all (a frame whose polarity is
misjudged reads nothing). Digits outside the grid (page numbers, a calendar, but mostly the
grain of a cloth or counter beside the page) are counted, not scored: no label says which
are digits. Notes cells are not scored. The same photos may be turned first (``--turn
DEGREES``), onto a canvas whose opened corners continue the photo smoothly.

    python benchmarks/whole_puzzles.py ../shared/realdata
    python benchmarks/whole_puzzles.py ../shared/realdata --precision int8 --turn 20
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from digitvae.data import realdata
from digitvae.runtime.camera import DigitReader
from digitvae.runtime.optional import require
from real_conditions import open_real, real_parser, turned  # this folder's: the same turn and arguments

cv2 = require("cv2", "reading whole puzzle photos")


def cells_of(detections: list[Any], corners: np.ndarray) -> dict[tuple[int, int], list[int]]:
    """The accepted digits of a frame by the (row, col) their box's centre falls in, through
    the grid's four corners (frame pixels, TL, TR, BR, BL); digits off the grid are left out."""
    found: dict[tuple[int, int], list[int]] = {}
    for digit, (gx, gy) in _on_grid(detections, corners):
        if 0 <= gx < 9 and 0 <= gy < 9:
            found.setdefault((int(gy), int(gx)), []).append(digit)
    return found


def outside_grid(detections: list[Any], corners: np.ndarray) -> int:
    """How many accepted digits of a frame lie off the grid: a page number or a calendar's
    digits, but mostly the grain of the surface the page lies on (no labels say which)."""
    return sum(not (0 <= gx < 9 and 0 <= gy < 9) for _, (gx, gy) in _on_grid(detections, corners))


def _on_grid(detections: list[Any], corners: np.ndarray) -> list[tuple[int, tuple[float, float]]]:
    """(digit, its box's centre in cell units of the grid) of each accepted detection."""
    to_grid = cv2.getPerspectiveTransform(corners.astype(np.float32), np.float32([[0, 0], [9, 0], [9, 9], [0, 9]]))
    out = []
    for d in detections:
        if d.is_digit:
            x, y, w, h = d.box
            gx, gy = cv2.perspectiveTransform(np.float32([[[x + w / 2, y + h / 2]]]), to_grid)[0, 0]
            out.append((d.digit, (float(gx), float(gy))))
    return out


def score(grid: realdata.Grid, found: dict[tuple[int, int], list[int]]) -> dict[str, int]:
    """Counts for one photo: digit cells right, missed and wrong; empty cells given a digit."""
    labels = {(c.row, c.col): c.label for c in grid.cells}
    digits = [(cell, label) for cell, label in labels.items() if label is not None]
    right = sum(label in found.get(cell, []) for cell, label in digits)
    missed = sum(cell not in found for cell, _ in digits)
    empty = [(r, c) for r in range(9) for c in range(9) if (r, c) not in labels]
    return {"digits": len(digits), "right": right, "missed": missed, "wrong": len(digits) - right - missed,
            "empty": len(empty), "empty_read": sum(cell in found for cell in empty), "nothing": int(not found)}


def measure(reader: DigitReader, data: realdata.RealData, degrees: float) -> dict[str, dict[str, float]]:
    """The counts of each split, summed over its photos, and the median milliseconds a photo."""
    totals: dict[str, dict[str, float]] = {}
    times: dict[str, list[float]] = {}
    for grid in data.grids:
        image = realdata.read_image(grid.path)
        corners = grid.corners
        if degrees:
            image, matrix = turned(image, degrees)
            corners = cv2.transform(corners.reshape(-1, 1, 2).astype(np.float32), matrix).reshape(-1, 2)
        start = time.perf_counter()
        detections = reader.read(image)
        times.setdefault(grid.split, []).append((time.perf_counter() - start) * 1e3)
        split = totals.setdefault(grid.split, {"photos": 0})
        split["photos"] += 1
        for key, value in score(grid, cells_of(detections, corners)).items():
            split[key] = split.get(key, 0) + value
        split["outside"] = split.get("outside", 0) + outside_grid(detections, corners)
    for split, ms in times.items():
        totals[split]["median_ms"] = float(np.median(ms))
    return totals


def main() -> None:
    parser = real_parser(__doc__)
    parser.add_argument("--turn", type=float, default=0.0,
                        help="turn each photo this many degrees first (counter-clockwise)")
    args = parser.parse_args()
    data, reader = open_real(parser, args)
    if not data.grids:
        parser.error(f"{args.real}: no sudoku photos to read (expected sudoku/grids.csv with rows)")
    print("| split | photos | digit cells | read right | missed | wrong digit | empty cells given a digit "
          "| photos with no digit read | digits read off the grid | median ms/photo |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for split, t in measure(reader, data, args.turn).items():
        n = max(t["digits"], 1)
        print(f"| {split} | {t['photos']} | {t['digits']} | {100 * t['right'] / n:.1f}% "
              f"| {100 * t['missed'] / n:.1f}% | {100 * t['wrong'] / n:.1f}% | {t['empty_read']} / {t['empty']} "
              f"| {t['nothing']} | {t['outside']} | {t['median_ms']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
