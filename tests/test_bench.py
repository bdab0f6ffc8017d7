"""``digitvae bench --quick`` runs and writes a well-formed report (no timing is asserted)."""

from __future__ import annotations

import json

from conftest import run_cli


def test_quick_bench_writes_a_report(tmp_path):
    report, figures = tmp_path / "BENCH.md", tmp_path / "bench.json"
    run_cli("bench", "--quick", "--output", str(report), "--json", str(figures))
    text = report.read_text()
    for heading in ("# digitvae benchmarks", "## Graphs", "## Quality", "## Start-up and footprint", "## Camera path",
                    "## Is it a digit at all?"):
        assert heading in text, heading
    results = json.loads(figures.read_text())
    assert {r["graph"] for r in results["graphs"]} == {"encoder", "decoder", "classifier"}
    assert {"fp32", "int8"} <= {r["precision"] for r in results["graphs"]}
    assert all(r["batch1"]["median_ms"] > 0 and r["mflops_per_image"] > 0 for r in results["graphs"])
    assert 0.9 < results["quality"]["fp32"]["accuracy"] <= 1
    assert results["camera"]["speed"][-1]["digits"] == 10
    # The camera path is measured for both precisions side by side (the demo runs int8).
    assert {r["precision"] for r in results["camera"]["speed"]} == {"fp32", "int8"} == set(results["camera"]["accuracy"])


def test_speed_ab_times_two_readers_side_by_side():
    # The other version is the installed package itself, named by its folder: a ratio near 1.
    import subprocess
    import sys
    from pathlib import Path

    import digitvae.runtime
    from conftest import REPO

    script = str(REPO / "benchmarks" / "speed_ab.py")
    installed = str(Path(digitvae.runtime.__file__).resolve().parents[2])  # site-packages
    result = subprocess.run([sys.executable, script, installed, "--digits", "0", "5", "--frames", "2", "--repeats", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines()[2:]]  # under the header and its rule
    assert [r[0].strip() for r in rows] == ["blank", "5"]
    assert all(0.2 < float(r[3]) < 5.0 and float(r[1]) > 0 and float(r[2]) > 0 for r in rows), result.stdout


def test_speed_ab_refuses_a_folder_without_the_package(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "speed_ab.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"{tmp_path}: expected a folder holding an installed digitvae package" in result.stderr
