"""``digitvae bench --real DIR``: how well the camera reader reads real photos.

Photos (``DIR/photos``): the reader's string is the digits of its detections that
``is_digit`` accepts, in reading order, lines joined; the truth is the label, lines joined.
Against it: Levenshtein edits, 1 - edits/digits (summed over photos before dividing),
recall and precision (matched digits of the edit alignment / truth digits, / read
digits) and the share of photos read exactly, per source and overall. Sources whose digits
are scattered on the page (``SCATTERED``) are scored as multisets instead.

Sudoku cells (``DIR/sudoku``): each labelled cell, cut from the warped grid, is read as a
frame on its own, and the detection nearest the cell's centre stands for the cell. The
cells cells.csv leaves out are empty: real paper and grid lines with no digit, read the same
way, where any digit accepted is a false one ("empty cells read as a digit").

"is_digit accepts right digits": of the detections whose digit is right (photos: the matched
pairs when *all* detections, rejected ones too, are aligned with the truth; sudoku: the
picked detection), the share that ``is_digit`` accepts.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final, Protocol, Sequence

import numpy as np

from digitvae.data import realdata
from digitvae.runtime.errors import DigitVAEError

#: Sources whose digits are scattered over the page, so that reading order is a guess
#: (SOURCES.md: the '/' groups of pcrdoo are approximate rows): scored as a multiset.
SCATTERED: Final = frozenset({"pcrdoo"})
#: The is_digit target is judged on digits never fitted to: the photos and sudoku validation.
ACCEPTANCE_PARTS: Final = ("photos", "validation")


class Reader(Protocol):
    def read(self, frame: Any) -> Sequence[Any]: ...  # detections: .box .digit .is_digit .crop


# --- scoring ------------------------------------------------------------------------------


def align(read: str, truth: str, accepted: Sequence[bool] | None = None) -> tuple[int, list[tuple[int, int]]]:
    """(Levenshtein edits, matched pairs (i in read, j in truth)) of the alignment with the
    fewest edits; among those, the most matches, then the most matches of ``accepted`` reads."""
    ok = [True] * len(read) if accepted is None else list(accepted)
    n, m = len(read), len(truth)
    # cost[i][j] = (edits, -matches, -accepted matches) of read[:i] against truth[:j]
    cost = [[(i + j, 0, 0) if i == 0 or j == 0 else (0, 0, 0) for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            e, mt, a = cost[i - 1][j - 1]
            same = read[i - 1] == truth[j - 1]
            diagonal = (e, mt - 1, a - ok[i - 1]) if same else (e + 1, mt, a)
            up, left = cost[i - 1][j], cost[i][j - 1]
            cost[i][j] = min(diagonal, (up[0] + 1, up[1], up[2]), (left[0] + 1, left[1], left[2]))
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        e, mt, a = cost[i - 1][j - 1]
        same = read[i - 1] == truth[j - 1]
        if cost[i][j] == ((e, mt - 1, a - ok[i - 1]) if same else (e + 1, mt, a)):
            if same:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i][j] == (cost[i - 1][j][0] + 1, *cost[i - 1][j][1:]):
            i -= 1
        else:
            j -= 1
    return cost[n][m][0], pairs[::-1]


def levenshtein(a: str, b: str) -> int:
    return align(a, b)[0]


def multiset_score(read: str, truth: str) -> tuple[int, int]:
    """(edits, matched) of two digit strings as multisets: matched = their intersection;
    edits = max(missing, extra), as a substitution mends one of each."""
    matched = sum((Counter(read) & Counter(truth)).values())
    return max(len(truth) - matched, len(read) - matched), matched


def score_photo(detections: Sequence[Any], truth: str, scattered: bool) -> dict[str, Any]:
    """One photo's counts: digits, read, edits, matched, exact; right / right_accepted
    (all detections aligned with the truth, see the module's docstring)."""
    every = "".join(str(d.digit) for d in detections)
    ok = [bool(d.is_digit) for d in detections]
    read = "".join(c for c, a in zip(every, ok) if a)
    if scattered:
        edits, matched = multiset_score(read, truth)
        right = sum((Counter(every) & Counter(truth)).values())
        right_accepted = matched  # accepted reads are matched first: the multiset of accepted ones
    else:
        edits, pairs = align(read, truth)
        matched = len(pairs)
        _, all_pairs = align(every, truth, ok)
        right, right_accepted = len(all_pairs), sum(ok[i] for i, _ in all_pairs)
    return {"digits": len(truth), "read": len(read), "edits": edits, "matched": matched, "exact": int(edits == 0),
            "right": right, "right_accepted": right_accepted, "truth": truth, "read_string": read,
            "all_string": "".join(c if a else f"({c})" for c, a in zip(every, ok))}


def summarise_photos(scores: list[dict[str, Any]]) -> dict[str, float]:
    total = {k: sum(s[k] for s in scores) for k in ("digits", "read", "edits", "matched", "exact", "right", "right_accepted")}
    return {
        "photos": len(scores), "digits": total["digits"], "read": total["read"],
        "one_minus_edits": 1 - total["edits"] / total["digits"],
        "recall": total["matched"] / total["digits"],
        "precision": total["matched"] / total["read"] if total["read"] else float("nan"),
        "exact": total["exact"] / len(scores),
        "right": total["right"], "right_accepted": total["right_accepted"],
        "accepts_right": total["right_accepted"] / total["right"] if total["right"] else float("nan"),
        "median_ms": float(np.median([s["ms"] for s in scores])),
    }


def pick(detections: Sequence[Any], width: int, height: int | None = None) -> Any | None:
    """The detection whose box centre is nearest the centre of a ``width`` x ``height``
    image (square when ``height`` is not given; the first in reading order on a tie): a
    cell holds one digit, centred, and grid-line bits lie at its edges."""
    if not detections:
        return None
    h = width if height is None else height
    return min(detections, key=lambda d: (d.box[0] + d.box[2] / 2 - width / 2) ** 2 + (d.box[1] + d.box[3] / 2 - h / 2) ** 2)


def summarise_cells(cells: list[dict[str, Any]], empty: list[dict[str, Any]]) -> dict[str, float]:
    """The figures of one split's labelled ``cells`` and its ``empty`` cells."""
    digits = [c for c in cells if c["label"] is not None]
    n = len(digits)
    right = [c for c in digits if c["read"] == c["label"]]
    notes = [c for c in cells if c["label"] is None]
    share = (lambda k: k / n) if n else (lambda k: float("nan"))
    return {
        "cells": n, "accuracy": share(sum(c["accepted"] for c in right)), "classifier": share(len(right)),
        "no_detection": share(sum(c["read"] is None for c in digits)),
        "wrong_accepted": share(sum(c["accepted"] and c["read"] not in (None, c["label"]) for c in digits)),
        "right": len(right), "right_accepted": sum(c["accepted"] for c in right),
        "accepts_right": sum(c["accepted"] for c in right) / len(right) if right else float("nan"),
        "notes_cells": len(notes), "notes_accepted": sum(bool(c["accepted"]) for c in notes),
        "median_ms": float(np.median([c["ms"] for c in cells])) if cells else float("nan"),
        "empty_cells": len(empty), "empty_read": sum(bool(e["read"]) for e in empty),
    }


# --- measuring ------------------------------------------------------------------------------


def _timed_read(reader: Reader, frame: np.ndarray) -> tuple[list[Any], float]:
    start = time.perf_counter()
    detections = list(reader.read(frame))
    return detections, (time.perf_counter() - start) * 1e3


def measure(reader: Reader, data: realdata.RealData, keep_crops: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every figure of ``data`` read by ``reader``, and (``keep_crops``) the picked crops of
    the *train* sudoku cells: never validation, never photos."""
    photos: list[dict[str, Any]] = []
    for i, photo in enumerate(data.photos):
        frame = realdata.read_image(photo.path)
        if i == 0:
            reader.read(frame)  # warm-up: first-call allocations are not the steady state
        detections, ms = _timed_read(reader, frame)
        photos.append({"file": photo.path.name, "source": photo.source, "ms": ms,
                       **score_photo(detections, photo.truth, photo.source in SCATTERED)})
    cells: list[dict[str, Any]] = []
    empty: list[dict[str, Any]] = []
    crops: list[dict[str, Any]] = []
    for grid in data.grids:
        warped = realdata.warp_grid(grid, realdata.read_image(grid.path))  # once for both kinds of cell
        for cell, patch in realdata.cut_cells(grid, warped):
            detections, ms = _timed_read(reader, patch)
            chosen = pick(detections, realdata.CELL_SIZE)
            cells.append({"file": grid.path.name, "split": grid.split, "row": cell.row, "col": cell.col,
                          "label": cell.label, "read": None if chosen is None else int(chosen.digit),
                          "accepted": chosen is not None and bool(chosen.is_digit), "ms": ms})
            if keep_crops and grid.split == "train" and chosen is not None and cell.label is not None:
                crops.append({**cells[-1], "crop": np.asarray(chosen.crop, np.float32), "box": [int(v) for v in chosen.box]})
        for row, col, patch in realdata.empty_cells(grid, warped):  # any digit accepted there is false
            read = "".join(str(d.digit) for d in reader.read(patch) if d.is_digit)
            empty.append({"file": grid.path.name, "split": grid.split, "row": row, "col": col, "read": read})
    results: dict[str, Any] = {"photos": {}, "sudoku": {}, "per_photo": [
        {k: p[k] for k in ("file", "source", "truth", "read_string", "all_string", "edits", "matched", "ms")} for p in photos],
        "per_cell": cells, "empty_cells_read": [e for e in empty if e["read"]]}
    for source in sorted({p["source"] for p in photos}):
        results["photos"][source] = summarise_photos([p for p in photos if p["source"] == source])
    if photos:
        results["photos"]["overall"] = summarise_photos(photos)
    for split in realdata.SPLITS:
        if any(c["split"] == split for c in cells):
            results["sudoku"][split] = summarise_cells([c for c in cells if c["split"] == split],
                                                       [e for e in empty if e["split"] == split])
    parts = [results["photos"].get("overall"), results["sudoku"].get("validation")]
    right = sum(p["right"] for p in parts if p)
    results["accepts_right_photos_and_validation"] = (
        sum(p["right_accepted"] for p in parts if p) / right if right else float("nan"))
    return results, crops


def write_crops(out: Path, crops: list[dict[str, Any]]) -> None:
    """The crops as 8-bit PNGs in ``out/<true digit>/``, and ``out/crops.csv`` saying for each
    what the reader made of it (a picked box can be a grid-line bit: filter on ``read``)."""
    from digitvae.runtime.optional import require

    cv2 = require("cv2", "writing crops")
    out.mkdir(parents=True, exist_ok=True)
    rows = ["path,file,row,col,label,read,is_digit,box_x,box_y,box_w,box_h"]
    for c in crops:
        name = f"{c['label']}/{Path(c['file']).stem}_r{c['row']}c{c['col']}.png"
        (out / str(c["label"])).mkdir(exist_ok=True)
        if not cv2.imwrite(str(out / name), np.clip(np.rint(c["crop"] * 255), 0, 255).astype(np.uint8)):
            raise DigitVAEError(f"{out / name}: could not write the crop (is the folder writable?)")
        rows.append(f"{name},{c['file']},{c['row']},{c['col']},{c['label']},{c['read']},{int(c['accepted'])},"
                    + ",".join(map(str, c["box"])))
    (out / "crops.csv").write_text("\n".join(rows) + "\n")


# --- the report -----------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def markdown_lines(results: dict[str, Any], precision: str) -> list[str]:
    lines: list[str] = []
    m = results.get("machine")
    if m:
        lines += [f"Machine: {m['cpu']}, {m['cores']} cores, read on one thread; onnxruntime {m['versions']['onnxruntime']}, "
                  f"opencv-python {m['versions']['opencv-python']}. Code: {results['code']}. Folder: {results['folder']}.", ""]
    if results["photos"]:
        lines += [f"Photos, {precision} graphs:", "",
                  "| source | photos | digits | read | 1 - edits/digits | recall | precision | photos exact "
                  "| is_digit accepts right digits | median ms/photo |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for source, s in results["photos"].items():
            name = f"**{source}**" if source == "overall" else source + (" (multiset)" if source in SCATTERED else "")
            lines.append(f"| {name} | {s['photos']} | {s['digits']} | {s['read']} | {_pct(s['one_minus_edits'])} "
                         f"| {_pct(s['recall'])} | {_pct(s['precision'])} | {_pct(s['exact'])} "
                         f"| {_pct(s['accepts_right'])} ({s['right_accepted']}/{s['right']}) | {s['median_ms']:.1f} |")
        lines.append("")
    if results["sudoku"]:
        lines += [f"Sudoku cells, {precision} graphs (each cell read alone; the detection nearest its centre):", "",
                  "| split | digit cells | accuracy (right and accepted) | right digit (classifier only) | no detection "
                  "| wrong digit accepted | is_digit accepts right digits | notes cells read as a digit "
                  "| empty cells read as a digit | median ms/cell |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for split, s in results["sudoku"].items():
            lines.append(f"| {split} | {s['cells']} | {_pct(s['accuracy'])} | {_pct(s['classifier'])} "
                         f"| {_pct(s['no_detection'])} | {_pct(s['wrong_accepted'])} "
                         f"| {_pct(s['accepts_right'])} ({s['right_accepted']}/{s['right']}) "
                         f"| {s['notes_accepted']}/{s['notes_cells']} "
                         f"| {_pct(s['empty_read'] / s['empty_cells'] if s['empty_cells'] else float('nan'))} "
                         f"({s['empty_read']}/{s['empty_cells']}) | {s['median_ms']:.2f} |")
        lines.append("")
    lines += [f"Right digits accepted by is_digit, photos and sudoku validation together: "
              f"{_pct(results['accepts_right_photos_and_validation'])}.", ""]
    return lines


def code_version() -> str:
    """The commit the reader was run from, and whether runtime/ or artifacts/ differ from it
    (figures of uncommitted code say so); 'unknown' outside a git checkout."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "runtime", "artifacts"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" with uncommitted changes in runtime/ or artifacts/" if changed else "")


def _check_targets(args: Any) -> None:
    """Refuse unusable output paths before the long part, so that a bad run writes nothing."""
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise DigitVAEError(f"--json {args.json}: its folder does not exist (expected a file path in an existing folder)")
    out = Path(args.dump_crops) if args.dump_crops else None
    if out is not None and (out.is_file() or (out.is_dir() and any(out.iterdir()))):
        raise DigitVAEError(f"--dump-crops {out}: not an empty folder (expected a new or empty folder for the crops)")


def run(args: Any) -> int:
    """The ``--real`` branch of ``digitvae bench``: print the tables; --json, --dump-crops."""
    from digitvae.runtime.camera import DigitReader
    from digitvae.runtime.model import DigitVAE
    from digitvae.runtime.optional import require

    from .speed import machine

    _check_targets(args)
    data = realdata.load(args.real)
    # One core, as the camera figures are measured: times comparable from run to run.
    require("cv2", "reading real photos").setNumThreads(1)
    vae = DigitVAE.load(args.artifacts, precision=args.precision, threads=1)
    results, crops = measure(DigitReader(vae), data, keep_crops=bool(args.dump_crops))
    results.update({"precision": args.precision, "folder": str(data.folder), "machine": machine(), "code": code_version(),
                    "scattered_sources": sorted(SCATTERED), "splits": realdata.SPLITS, "cell_size": realdata.CELL_SIZE})
    print("\n".join(markdown_lines(results, args.precision)))
    if args.json:  # the per-photo and per-cell reads are there too
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.dump_crops:
        write_crops(Path(args.dump_crops), crops)
        print(f"wrote {len(crops)} train-split crops to {args.dump_crops}", file=sys.stderr)
    return 0
