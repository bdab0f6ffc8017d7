"""The real-photo benchmark (``digitvae bench --real``): its scoring rules on known strings,
exact figures from a scripted reader, the shipped reader on the committed mini folder
(tests/data/realdata: two MIT-licensed sudoku photos of the train split), the train-only
crop dump, bad folders refused with one clear line and nothing written, and the same
figures under other shooting conditions (benchmarks/real_conditions.py)."""

from __future__ import annotations

import csv
import importlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

cv2 = pytest.importorskip("cv2")

from digitvae.bench import real  # noqa: E402
from digitvae.data import realdata  # noqa: E402
from digitvae.runtime.camera import Detection  # noqa: E402
from digitvae.runtime.cli import main  # noqa: E402

MINI = Path(__file__).resolve().parent / "data" / "realdata"


@dataclass
class Det:
    """A detection as the reader gives it (only what the benchmark reads)."""

    digit: int
    is_digit: bool = True
    box: tuple[int, int, int, int] = (0, 0, 10, 10)
    crop: np.ndarray = field(default_factory=lambda: np.zeros((28, 28), np.float32))


# --- scoring rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("a, b, edits", [
    ("", "", 0), ("", "123", 3), ("135790", "135790", 0), ("1357", "1457", 1), ("12", "21", 2),
    ("8341032750", "834102750", 1), ("151171569", "123456789", 7), ("kitten", "sitting", 3)])
def test_levenshtein_on_known_strings(a, b, edits):
    assert real.levenshtein(a, b) == edits == real.levenshtein(b, a)


def test_alignment_counts_matches_and_prefers_accepted_reads():
    assert real.align("12", "21") == (2, [(0, 1)])  # two edits either way; the one keeping a match
    edits, pairs = real.align("8379787080", "8374787080")
    assert edits == 1 and len(pairs) == 9 and (3, 3) not in pairs
    assert real.align("11", "1", [False, True])[1] == [(1, 0)]
    assert real.align("11", "1", [True, False])[1] == [(0, 0)]


@pytest.mark.parametrize("read, truth, expected", [
    ("97182", "2718", (1, 4)), ("", "12", (2, 0)), ("999", "9", (2, 1)), ("123", "321", (0, 3)), ("45", "78", (2, 0))])
def test_multiset_score(read, truth, expected):
    assert real.multiset_score(read, truth) == expected


def test_score_photo_reads_accepted_digits_and_aligns_all_for_acceptance():
    dets = [Det(1), Det(3, is_digit=False), Det(5)]
    s = real.score_photo(dets, "135", scattered=False)
    assert (s["read"], s["edits"], s["matched"], s["exact"], s["right"], s["right_accepted"]) == (2, 1, 2, 0, 3, 2)
    assert s["read_string"] == "15" and s["all_string"] == "1(3)5"
    s = real.score_photo([Det(5), Det(1), Det(3, is_digit=False)], "135", scattered=True)
    assert (s["edits"], s["matched"], s["right"], s["right_accepted"]) == (1, 2, 3, 2)
    assert real.score_photo([Det(5), Det(1), Det(3)], "135", scattered=False)["edits"] == 2  # order counts here


def test_pick_takes_the_detection_nearest_the_cell_centre():
    edge, centre = Det(1, box=(0, 0, 6, 64)), Det(7, box=(20, 16, 24, 32))
    assert real.pick([edge, centre], 64) is centre
    assert real.pick([], 64) is None
    assert real.pick([edge, centre], 12, 64) is edge and real.pick([edge, centre], 64, 12) is centre  # width, height


# --- exact figures from a scripted reader -------------------------------------------------------


class ScriptedReader:
    """Gives the detections scripted for a frame's shape; every sudoku cell (64x64) holds a
    grid-line bit read as an accepted 1 at its edge and an accepted 7 at its centre."""

    def __init__(self, script: dict[tuple[int, int], list[Det]]) -> None:
        self.script = script

    def read(self, frame):
        if frame.shape[:2] == (realdata.CELL_SIZE, realdata.CELL_SIZE):
            return [Det(1, box=(0, 0, 5, 64)), Det(7, box=(18, 14, 28, 36))]
        return self.script[frame.shape[:2]]


def _photos_folder(root: Path, rows: list[tuple[str, str, tuple[int, int]]]) -> Path:
    (root / "photos").mkdir(parents=True)
    for name, _, (h, w) in rows:
        cv2.imwrite(str(root / "photos" / name), np.full((h, w, 3), 255, np.uint8))
    (root / "photos" / "labels.csv").write_text("file,labels,notes\n" + "".join(f"{n},{l},\n" for n, l, _ in rows))
    return root


def _all_cells(folder: Path) -> list[dict[str, str]]:
    with (folder / "sudoku" / "cells.csv").open() as f:
        return list(csv.DictReader(f))


def _digit_cells(folder: Path) -> list[dict[str, str]]:
    return [r for r in _all_cells(folder) if r["label"] != realdata.NOTES]


def _grid_files(folder: Path) -> list[str]:
    with (folder / "sudoku" / "grids.csv").open() as f:
        return [r["file"] for r in csv.DictReader(f)]


def test_figures_from_a_scripted_reader(tmp_path):
    folder = _photos_folder(tmp_path / "real", [("alpha_1.png", "12/3", (60, 100)), ("alpha_2.png", "45", (60, 110)),
                                                ("pcrdoo_1.png", "98/7", (60, 120))])
    shutil.copytree(MINI / "sudoku", folder / "sudoku")
    reader = ScriptedReader({(60, 100): [Det(1), Det(2), Det(3)],
                             (60, 110): [Det(4), Det(6), Det(5, is_digit=False)],
                             (60, 120): [Det(7), Det(8), Det(9), Det(1)]})
    results, crops = real.measure(reader, realdata.load(folder))
    alpha, overall = results["photos"]["alpha"], results["photos"]["overall"]
    assert (alpha["digits"], alpha["read"], alpha["one_minus_edits"], alpha["recall"], alpha["precision"]) == (5, 5, 0.8, 0.8, 0.8)
    assert (alpha["exact"], alpha["right"], alpha["right_accepted"]) == (0.5, 5, 4)
    assert results["photos"]["pcrdoo"]["one_minus_edits"] == pytest.approx(2 / 3)  # 7, 8, 9 found, 1 extra
    assert (overall["digits"], overall["read"], overall["photos"]) == (8, 9, 3)
    assert overall["one_minus_edits"] == pytest.approx(0.75) and overall["recall"] == pytest.approx(7 / 8)
    assert overall["precision"] == pytest.approx(7 / 9) and overall["exact"] == pytest.approx(1 / 3)
    assert results["accepts_right_photos_and_validation"] == pytest.approx(7 / 8)  # no validation cells here
    cells, sevens = _digit_cells(MINI), sum(r["label"] == "7" for r in _digit_cells(MINI))
    train = results["sudoku"]["train"]
    assert "validation" not in results["sudoku"] and crops == []  # crops only when asked for
    assert train["cells"] == len(cells) and train["accuracy"] == train["classifier"] == pytest.approx(sevens / len(cells))
    assert train["no_detection"] == 0 and train["wrong_accepted"] == pytest.approx(1 - sevens / len(cells))
    assert train["notes_cells"] == train["notes_accepted"] == 4
    empty = 81 * len(_grid_files(MINI)) - len(_all_cells(MINI))  # the cells cells.csv leaves out
    assert train["empty_cells"] == train["empty_read"] == len(results["empty_cells_read"]) == empty > 0
    assert {e["read"] for e in results["empty_cells_read"]} == {"17"}  # every accepted digit there is false


# --- the shipped reader on the mini folder, through the command line ------------------------------


def _with_validation_copy(root: Path) -> Path:
    """The mini folder plus one photo renamed into the validation split (same sheet, same rows)."""
    shutil.copytree(MINI, root)
    sudoku = root / "sudoku"
    shutil.copy(sudoku / "images" / "02_17_iphone_14_0.jpg", sudoku / "images" / "01_01_iphone_14_0.jpg")
    for table in ("grids.csv", "cells.csv"):
        lines = (sudoku / table).read_text().splitlines()
        copies = [line.replace("02_17_iphone", "01_01_iphone") for line in lines if line.startswith("02_17_iphone")]
        (sudoku / table).write_text("\n".join(lines + copies) + "\n")
    return root


def test_bench_real_on_the_mini_folder_dumps_train_crops_only(tmp_path, capsys):
    folder = _with_validation_copy(tmp_path / "real")
    folder = _photos_folder(folder, [("typed_1.png", "37", (120, 240))])
    cv2.putText(page := np.full((120, 240, 3), 255, np.uint8), "3  7", (40, 85), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (0, 0, 0), 5)
    cv2.imwrite(str(folder / "photos" / "typed_1.png"), page)
    figures, crops = tmp_path / "real.json", tmp_path / "crops"
    assert main(["bench", "--real", str(folder), "--json", str(figures), "--dump-crops", str(crops)]) == 0
    assert "| **overall** |" in capsys.readouterr().out
    results = json.loads(figures.read_text())
    cells = _digit_cells(folder)
    for split, prefix in (("train", "02_17"), ("validation", "01_01")):
        s = results["sudoku"][split]
        assert s["cells"] == sum(r["file"].startswith(prefix) for r in cells)
        for key in ("accuracy", "classifier", "no_detection", "wrong_accepted", "accepts_right"):
            assert 0 <= s[key] <= 1, (split, key)
        assert s["accuracy"] <= s["classifier"] and s["right"] >= s["right_accepted"]
        files = [f for f in _grid_files(folder) if f.startswith(prefix)]
        assert s["empty_cells"] == 81 * len(files) - sum(r["file"] in files for r in _all_cells(folder))
        assert 0 <= s["empty_read"] <= s["empty_cells"]
    p = results["photos"]["overall"]
    assert (p["photos"], p["digits"]) == (1, 2) and all(0 <= p[k] <= 1 for k in ("recall", "exact", "accepts_right"))
    with (crops / "crops.csv").open() as f:
        dumped = list(csv.DictReader(f))
    train = [c for c in results["per_cell"] if c["split"] == "train" and c["label"] is not None and c["read"] is not None]
    assert len(dumped) == len(train) > 0 and all(row["file"].startswith("02_17_") for row in dumped)
    pngs = sorted(crops.rglob("*.png"))
    assert len(pngs) == len(dumped)
    for row in dumped:
        image = cv2.imread(str(crops / row["path"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (28, 28) and Path(row["path"]).parent.name == row["label"]


# --- bad folders: one clear line, nothing written ---------------------------------------------


def _missing(root: Path) -> Path:
    return root / "nowhere"


def _empty(root: Path) -> Path:
    (root / "empty").mkdir()
    return root / "empty"


def _labels(root: Path, text: str, image: bytes | None = None) -> Path:
    (root / "f" / "photos").mkdir(parents=True)
    cv2.imwrite(str(root / "f" / "photos" / "a_1.png"), np.full((40, 40, 3), 255, np.uint8))
    if image is not None:
        (root / "f" / "photos" / "a_1.png").write_bytes(image)
    (root / "f" / "photos" / "labels.csv").write_text(text)
    return root / "f"


def _cells_append(root: Path, table: str, line: str) -> Path:
    shutil.copytree(MINI, root / "f")
    with (root / "f" / "sudoku" / table).open("a") as f:
        f.write(line + "\n")
    return root / "f"


BAD = {
    "missing folder": (_missing, "no such folder"),
    "empty folder": (_empty, "no photos/ or sudoku/ folder"),
    "no rows": (lambda r: _labels(r, "file,labels,notes\n"), "labels.csv: no rows"),
    "unreadable image": (lambda r: _labels(r, "file,labels,notes\na_1.png,1,\n", b"not a picture"), "a_1.png: not an image"),
    "labels not digits": (lambda r: _labels(r, "file,labels,notes\na_1.png,12a,\n"), "labels.csv line 2: labels '12a'"),
    "empty line in labels": (lambda r: _labels(r, "file,labels,notes\na_1.png,1//2,\n"), "are not digits"),
    "photo file missing": (lambda r: _labels(r, "file,labels,notes\nb_1.png,1,\n"), "image 'b_1.png' not found"),
    "cell of a photo not in grids": (lambda r: _cells_append(r, "cells.csv", "03_01_iphone_14_0.jpg,0,0,5"),
                                     "cells.csv line 96: '03_01_iphone_14_0.jpg' is not in grids.csv"),
    "cell label not a digit": (lambda r: _cells_append(r, "cells.csv", "02_17_iphone_14_0.jpg,8,8,x"),
                               "cells.csv line 96: label 'x' is not a digit"),
    "grid image missing": (lambda r: _cells_append(r, "grids.csv", "03_01_iphone_14_0.jpg,1,1,9,1,9,9,1,9"),
                           "image '03_01_iphone_14_0.jpg' not found"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_folders_give_one_clear_line_and_write_nothing(case, tmp_path, capsys):
    make, message = BAD[case]
    folder = make(tmp_path)
    figures, crops = tmp_path / "out.json", tmp_path / "crops"
    assert main(["bench", "--real", str(folder), "--json", str(figures), "--dump-crops", str(crops)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "expected" in err, err
    assert not figures.exists() and not crops.exists()


def test_unusable_outputs_are_refused_before_reading(tmp_path, capsys):
    (tmp_path / "crops").mkdir()
    (tmp_path / "crops" / "old.png").write_bytes(b"")
    assert main(["bench", "--real", str(MINI), "--dump-crops", str(tmp_path / "crops")]) == 2
    assert main(["bench", "--real", str(MINI), "--json", str(tmp_path / "no" / "such" / "out.json")]) == 2
    assert main(["bench", "--dump-crops", str(tmp_path / "new")]) == 2  # crops come only from --real
    err = capsys.readouterr().err
    assert "not an empty folder" in err and "folder does not exist" in err and "needs --real" in err
    assert [p.name for p in (tmp_path / "crops").iterdir()] == ["old.png"] and not (tmp_path / "new").exists()


# --- the same figures under other shooting conditions (benchmarks/real_conditions.py) --------------


def test_real_conditions_on_the_mini_folder(shipped_folder):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "real_conditions.py"), str(MINI), "--only", "none",
                             "exposure-0.3", "turn-8", "--artifacts", str(shipped_folder)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| condition")}
    # No photos in the mini folder, only train cells: its rows say "-" for what is absent, and
    # its clear puzzle reads right in full light and at a third of the exposure alike (it
    # did so before the polarity change too: that change's test is test_ink's dim paper).
    assert rows["none"] == rows["exposure-0.3"] == ["-", "-", "-", "100.0%", "-", "0 / -"]
    assert rows["turn-8"][3:] == ["(not turned)"] * 3


def test_real_conditions_refuses_a_missing_folder_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "real_conditions.py"), str(tmp_path / "nowhere")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].endswith("no such folder (expected a folder holding photos/labels.csv "
                                                           "and/or sudoku/grids.csv + sudoku/cells.csv)")
    assert "Traceback" not in result.stderr


# --- whole puzzle photos read in one frame (benchmarks/whole_puzzles.py) ----------------------------


def test_whole_puzzles_on_the_mini_folder(shipped_folder):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "whole_puzzles.py"), str(MINI),
                             "--artifacts", str(shipped_folder)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in result.stdout.splitlines()
            if line.startswith("| train")]
    assert len(rows) == 1  # the mini folder holds two train photos of one puzzle, no validation
    split, photos, digits, right, missed, wrong, empty, nothing, outside, _ = rows[0]
    labelled = sum(1 for r in csv.DictReader(open(MINI / "sudoku" / "cells.csv")) if r["label"] != realdata.NOTES)
    assert (photos, digits, nothing) == ("2", str(labelled), "0")
    assert int(outside) > 0  # the page's heading and its calendar's digits lie off the grid
    assert float(right.rstrip("%")) >= 90.0  # its digits read in place from the whole photos
    assert float(right.rstrip("%")) + float(missed.rstrip("%")) + float(wrong.rstrip("%")) == pytest.approx(100.0, abs=0.2)


def test_whole_puzzles_puts_digits_in_cells_and_counts_those_off_the_grid(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    whole = importlib.import_module("whole_puzzles")
    corners = np.float32([[100, 100], [190, 100], [190, 190], [100, 190]])  # cells 10 px wide
    found = [Detection(box=(112, 101, 6, 8), crop=np.zeros((28, 28), np.float32), digit=7, probability=0.9,
                       is_digit=True, line=0),  # centre (115, 105): row 0, column 1
             Detection(box=(20, 20, 6, 8), crop=np.zeros((28, 28), np.float32), digit=3, probability=0.9,
                       is_digit=True, line=0),  # off the grid
             Detection(box=(20, 60, 6, 8), crop=np.zeros((28, 28), np.float32), digit=1, probability=0.3,
                       is_digit=False, line=1)]  # off the grid, rejected: not counted
    assert whole.cells_of(found, corners) == {(0, 1): [7]}
    assert whole.outside_grid(found, corners) == 1


def test_whole_puzzles_turns_the_photos_and_keeps_the_cells_in_place(shipped_folder):
    base = [sys.executable, str(REPO / "benchmarks" / "whole_puzzles.py"), str(MINI), "--artifacts", str(shipped_folder)]
    result = subprocess.run(base + ["--turn", "15"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    right = [line.split("|")[4].strip() for line in result.stdout.splitlines() if line.startswith("| train")][0]
    assert float(right.rstrip("%")) >= 80.0  # grid corners turned with the photo: cells still match


def test_whole_puzzles_refuses_a_missing_folder_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "whole_puzzles.py"), str(tmp_path / "nowhere")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert "no such folder" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
