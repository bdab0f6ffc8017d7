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
