"""A short soak in CI: the reader neither grows nor leaks files or threads over 1,500 reads
(the 100,000-read figure is in BENCHMARKS.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

pytest.importorskip("cv2")


def test_short_soak_has_no_leaks(shipped_folder):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--reads", "1500", "--pool", "40",
                             "--artifacts", str(shipped_folder), "--max-growth-mb", "10"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
