"""Real photos of handwritten digits, laid out like ``../shared/realdata`` (numpy + OpenCV).

    DIR/photos/labels.csv     file,labels,notes: digits in reading order, lines split by '/'
    DIR/photos/<file>
    DIR/sudoku/grids.csv      file,tl_x,tl_y,tr_x,tr_y,br_x,br_y,bl_x,bl_y: outer grid corners
    DIR/sudoku/cells.csv      file,row,col,label: 0-based cell, label 1-9 or 'notes'
    DIR/sudoku/images/<file>  (or DIR/sudoku/<file>)

Either part may be absent, not both. :func:`load` checks the whole folder (every row, and
every image decoded once) before anything uses it, so a bad folder fails with one line that
names the file, the row and what was expected, before any figure is computed or written.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Iterator

import numpy as np

from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.optional import require

cv2 = require("cv2", "reading real photos")

#: Sudoku split by puzzle date (file names start ``MM_DD_``), inclusive ranges: the upstream
#: train/val split of AlexKubiesa/sudoku-scanner, which keeps both photos of a sheet on one side.
SPLITS: Final = {"train": ("02_17", "03_11"), "validation": ("01_01", "02_15")}
#: Side of one sudoku cell after warping the grid, in pixels. The grids' cells are 58 to 109
#: px wide (median 90) in the 1200x1600 photos, so 64 px shrinks nearly every cell (no made-up
#: detail) while a digit stays ~30-45 px tall, well above the reader's smallest (14 px).
CELL_SIZE: Final = 64
NOTES: Final = "notes"  # cells.csv label of a cell of small pencil candidates: not one digit
DIGIT_LABEL: Final = re.compile(r"[0-9]+(/[0-9]+)*")
DATE: Final = re.compile(r"(\d\d_\d\d)_")
CORNERS: Final = ("tl", "tr", "br", "bl")


@dataclass(frozen=True)
class Photo:
    """One labelled photo: ``lines`` are the digit strings of its lines, top to bottom."""

    path: Path
    source: str  # the file name up to its first '_': where the photo came from
    lines: tuple[str, ...]
    notes: str

    @property
    def truth(self) -> str:
        return "".join(self.lines)


@dataclass(frozen=True)
class Cell:
    """One labelled sudoku cell: ``label`` 0-9, or None for a notes cell."""

    row: int
    col: int
    label: int | None


@dataclass(frozen=True)
class Grid:
    """One sudoku photo: corners (4, 2) float32 TL, TR, BR, BL; its labelled cells."""

    path: Path
    split: str
    corners: np.ndarray
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class RealData:
    folder: Path
    photos: tuple[Photo, ...]
    grids: tuple[Grid, ...]


def load(folder: str | Path) -> RealData:
    """Read and check a realdata folder; raise :class:`DigitVAEError` naming what is wrong."""
    root = Path(folder)
    if not root.is_dir():
        raise DigitVAEError(f"{root}: no such folder (expected a folder holding photos/labels.csv and/or "
                            "sudoku/grids.csv + sudoku/cells.csv)")
    has_photos, has_sudoku = (root / "photos").is_dir(), (root / "sudoku").is_dir()
    if not has_photos and not has_sudoku:
        raise DigitVAEError(f"{root}: no photos/ or sudoku/ folder (expected photos/labels.csv and/or "
                            "sudoku/grids.csv + sudoku/cells.csv)")
    photos = _photos(root / "photos") if has_photos else ()
    grids = _grids(root / "sudoku") if has_sudoku else ()
    for photo in photos:
        image_shape(photo.path)  # every image decodes, or the folder is refused now
    for grid in grids:
        _check_corners(grid, image_shape(grid.path))
    return RealData(root, photos, grids)


def read_image(path: Path) -> np.ndarray:
    """A photo as a BGR uint8 frame. IMREAD_COLOR turns the picture upright by its EXIF
    orientation, as the image viewer the labels were read on did."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None or image.size == 0:
        raise DigitVAEError(f"{path}: not an image OpenCV can read (expected a JPEG or PNG photo)")
    return image


def image_shape(path: Path) -> tuple[int, int]:
    return read_image(path).shape[:2]


def cut_cells(grid: Grid, warped: np.ndarray | None = None) -> Iterator[tuple[Cell, np.ndarray]]:
    """Each labelled cell of ``grid`` as a BGR (CELL_SIZE, CELL_SIZE) patch: the grid is warped
    to a 9x9 square of CELL_SIZE cells through its four corners, and cut exactly on the cell
    lines (no inset, no margin: the grid lines at the patch's edges are the reader's to ignore).
    ``warped``: the grid as :func:`warp_grid` gives it, where the caller has it already."""
    warped = warp_grid(grid, read_image(grid.path)) if warped is None else warped
    for cell in grid.cells:
        yield cell, _patch(warped, cell.row, cell.col)


def empty_cells(grid: Grid, warped: np.ndarray | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """(row, col, patch) of each cell of ``grid`` that cells.csv leaves out: cells the puzzle
    left empty (a few with faint erased pencil, SOURCES.md), cut as :func:`cut_cells` cuts.
    Real paper, grid lines and shadows with no digit: where a reader's false digits show."""
    warped = warp_grid(grid, read_image(grid.path)) if warped is None else warped
    labelled = {(cell.row, cell.col) for cell in grid.cells}
    for row in range(9):
        for col in range(9):
            if (row, col) not in labelled:
                yield row, col, _patch(warped, row, col)


def _patch(warped: np.ndarray, row: int, col: int) -> np.ndarray:
    y, x = row * CELL_SIZE, col * CELL_SIZE
    return np.ascontiguousarray(warped[y:y + CELL_SIZE, x:x + CELL_SIZE])


def warp_grid(grid: Grid, image: np.ndarray) -> np.ndarray:
    """The grid seen square-on, 9 * CELL_SIZE pixels a side. warpPerspective samples without
    averaging, so the grid is warped at twice that (cells of 128 px, larger than any in the
    photos) and then shrunk with INTER_AREA: thin pencil strokes are averaged, not skipped."""
    side = 2 * 9 * CELL_SIZE
    square = np.float32([[0, 0], [side, 0], [side, side], [0, side]])
    matrix = cv2.getPerspectiveTransform(grid.corners, square)
    big = cv2.warpPerspective(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(big, (side // 2, side // 2), interpolation=cv2.INTER_AREA)


def split_of(name: str) -> str | None:
    """'train' or 'validation' by the puzzle date that starts ``name``; None if it has none."""
    match = DATE.match(name)
    if not match:
        return None
    for split, (first, last) in SPLITS.items():
        if first <= match.group(1) <= last:
            return split
    return None


# --- the CSV files ----------------------------------------------------------------------


def _rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file whose header holds ``columns``; none at all is an error."""
    if not path.is_file():
        raise DigitVAEError(f"{path}: no such file (expected a CSV file with columns {','.join(columns)})")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise DigitVAEError(f"{path}: no column {', '.join(missing)} in the header "
                                    f"(expected columns {','.join(columns)})")
            rows = [(reader.line_num, row) for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DigitVAEError(f"{path}: not a readable CSV file ({exc}; expected UTF-8 text)") from None
    if not rows:
        raise DigitVAEError(f"{path}: no rows (expected at least one labelled image)")
    yield from rows


def _image_path(folder: Path, name: str, where: str) -> Path:
    for path in (folder / "images" / name, folder / name):
        if name and Path(name).name == name and path.is_file():
            return path
    raise DigitVAEError(f"{where}: image {name!r} not found (expected a file name in {folder})")


def _photos(folder: Path) -> tuple[Photo, ...]:
    table = folder / "labels.csv"
    photos, seen = [], set()
    for line, row in _rows(table, ("file", "labels")):
        where, name, label = f"{table} line {line}", (row["file"] or "").strip(), (row["labels"] or "").strip()
        if not DIGIT_LABEL.fullmatch(label):
            raise DigitVAEError(f"{where}: labels {label!r} for {name!r} are not digits "
                                "(expected digits 0-9 in reading order, lines split by '/', e.g. 135/79)")
        if name in seen:
            raise DigitVAEError(f"{where}: {name!r} is labelled twice (expected one row per photo)")
        seen.add(name)
        path = _image_path(folder, name, where)
        photos.append(Photo(path, name.split("_", 1)[0], tuple(label.split("/")), (row.get("notes") or "").strip()))
    return tuple(photos)


def _grids(folder: Path) -> tuple[Grid, ...]:
    table = folder / "grids.csv"
    corners: dict[str, tuple[Path, np.ndarray]] = {}
    columns = tuple(f"{c}_{axis}" for c in CORNERS for axis in "xy")
    for line, row in _rows(table, ("file", *columns)):
        where, name = f"{table} line {line}", (row["file"] or "").strip()
        if name in corners:
            raise DigitVAEError(f"{where}: {name!r} is listed twice (expected one row per photo)")
        try:
            points = np.float32([float(row[c]) for c in columns]).reshape(4, 2)
        except (TypeError, ValueError):
            raise DigitVAEError(f"{where}: corners of {name!r} are not numbers (expected 8 pixel coordinates)") from None
        if split_of(name) is None:
            raise DigitVAEError(f"{where}: {name!r} has no puzzle date in a known split (expected a name starting "
                                f"MM_DD_ with train {SPLITS['train']} or validation {SPLITS['validation']}, inclusive)")
        corners[name] = (_image_path(folder, name, where), points)
    cells: dict[str, dict[tuple[int, int], Cell]] = {name: {} for name in corners}
    table = folder / "cells.csv"
    for line, row in _rows(table, ("file", "row", "col", "label")):
        where, name = f"{table} line {line}", (row["file"] or "").strip()
        if name not in corners:
            raise DigitVAEError(f"{where}: {name!r} is not in grids.csv (expected each cell's photo to have its corners)")
        r, c, label = (row["row"] or "").strip(), (row["col"] or "").strip(), (row["label"] or "").strip()
        if not (r.isdigit() and c.isdigit() and int(r) < 9 and int(c) < 9):
            raise DigitVAEError(f"{where}: cell ({r}, {c}) of {name!r} is not in the grid (expected row and col 0-8)")
        if not (label == NOTES or (len(label) == 1 and label.isdigit())):
            raise DigitVAEError(f"{where}: label {label!r} is not a digit (expected one digit 0-9 or '{NOTES}')")
        if (int(r), int(c)) in cells[name]:
            raise DigitVAEError(f"{where}: cell ({r}, {c}) of {name!r} is labelled twice")
        cells[name][int(r), int(c)] = Cell(int(r), int(c), None if label == NOTES else int(label))
    return tuple(Grid(path, split_of(name) or "", points, tuple(cells[name][k] for k in sorted(cells[name])))
                 for name, (path, points) in corners.items())


def _check_corners(grid: Grid, shape: tuple[int, int]) -> None:
    """Corners inside the image and in TL, TR, BR, BL order (a convex, clockwise outline)."""
    (h, w), p = shape, grid.corners
    inside = bool(np.all((p >= -0.5) & (p <= np.float32([w, h]) + 0.5)))
    edges = np.roll(p, -1, axis=0) - p
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not inside or turns.min() <= 0:
        raise DigitVAEError(f"{grid.path}: grid corners {p.round(1).tolist()} are not a clockwise outline inside "
                            f"the {w}x{h} image (expected TL, TR, BR, BL in pixels)")
