"""Refresh the generated sections of BENCHMARKS.md from the measured results in benchmarks/results/.

Each generated section sits between two HTML comments that name it; the hand-written text
between them (experiments, history, each with its own command) is kept as it is. A section
that BENCHMARKS.md lacks is added at the end. Produce the results first (each command
writes one file), then run this:

    digitvae bench --output benchmarks/results/runtime.md --json benchmarks/results/bench.json
    python benchmarks/compare_torch.py --json benchmarks/results/torch.json > benchmarks/results/torch.md
    python benchmarks/soak.py --reads 100000 --json benchmarks/results/soak.json
    DIGITVAE_FUZZ_EXAMPLES=10000 pytest tests/test_properties.py > benchmarks/results/fuzz_10000.txt
    digitvae bench --real ../shared/realdata --precision fp32 > benchmarks/results/real_fp32.md
    digitvae bench --real ../shared/realdata --precision int8 > benchmarks/results/real_int8.md
    python benchmarks/report.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def training_section() -> list[str]:
    metrics = [json.loads(line) for line in (REPO / "artifacts" / "metrics.jsonl").read_text().splitlines()]
    log = (REPO / "artifacts" / "training_log.txt").read_text()
    # The log is the training's own output ("trained in N min"), plus a line naming the command.
    wall = next((line.split(" in ", 1)[1].split(";", 1)[0] + " wall clock" for line in log.splitlines()
                 if line.startswith("trained in ")), "?")
    command = next((line.split(": ", 1)[1].split(" (", 1)[0] for line in log.splitlines() if line.startswith("command: ")), "?")
    last = metrics[-1]
    return ["## Training (PyTorch, 2 cores)", "",
            f"`{command}`: {len(metrics)} epochs, {wall} "
            f"(median epoch {sorted(m['epoch_seconds'] for m in metrics)[len(metrics) // 2]:.0f} s of training, plus evaluation).",
            f"Final test figures: accuracy {100 * last['test_accuracy']:.2f}%, negative ELBO {last['test_neg_elbo']:.2f} nats "
            f"(reconstruction {last['test_reconstruction']:.2f} + KL {last['test_kl']:.2f}), generated digits read right by "
            f"the independent judge {100 * last['generation_accuracy']:.2f}% (worst digit "
            f"{100 * last['generation_accuracy_min_digit']:.1f}%), restyled {100 * last['restyle_accuracy']:.2f}%.", ""]


def wheel_size() -> str:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, str(REPO)],
                       check=True, capture_output=True)
        wheel = next(Path(out).glob("*.whl"))
        return f"Wheel: {wheel.name}, {wheel.stat().st_size / 1e6:.2f} MB (graphs fp32 + int8, manifest, golden fixtures; no checkpoint)."


REAL_NOTE = (
    "The development set of real photos in `../shared/realdata` (its SOURCES.md; the photos are not in the repository). "
    "Photos: the digits `is_digit` accepts, in reading order with lines joined, against the label: 1 - Levenshtein "
    "edits / digits (summed over photos), recall and precision from the edit alignment, and the share of photos read "
    "exactly; `pcrdoo` (scattered digits) is scored as a multiset. Sudoku: each labelled cell is cut from the grid "
    "warped through its corners (64 px cells) and read as a frame, the detection nearest its centre standing for it; "
    "train = puzzles 02_17 to 03_11, validation = 01_01 to 02_15 (fit and choose on train only). \"is_digit accepts "
    "right digits\": of the detections with the right digit (photos: all detections, rejected ones too, aligned with "
    "the label), the share accepted. \"Empty cells read as a digit\": the cells cells.csv leaves out (no digit; a few "
    "hold faint erased pencil), read the same way: any digit accepted there is a false one. Targets (issue 19): sudoku "
    "validation >= 98%; photos 1 - edits/digits >= 95% with precision >= 97%; right digits accepted >= 98%. Timings: "
    "one thread, on a machine shared with other jobs.")


def real_section() -> list[str]:
    """The real-photo tables of ``digitvae bench --real``, fp32 then int8, where measured."""
    found = [RESULTS / f"real_{p}.md" for p in ("fp32", "int8") if (RESULTS / f"real_{p}.md").exists()]
    if not found:
        return ["## Real photos", "", "Not measured in this report.", ""]
    return (["## Real photos (`digitvae bench --real ../shared/realdata --precision fp32|int8`)", "", REAL_NOTE, ""]
            + [line for path in found for line in path.read_text().rstrip("\n").splitlines() + [""]])


def soak_section() -> list[str]:
    path = RESULTS / "soak.json"
    if not path.exists():
        return ["## Soak", "", "Not measured in this report.", ""]
    s = json.loads(path.read_text())
    return ["## Soak (`python benchmarks/soak.py --reads 100000`)", "",
            f"{s['reads']:,} reads of {s['distinct_frames']} distinct generated 640x480 frames in one process, {s['seconds']:.0f} s. "
            f"Resident memory includes the pool of frames itself ({s['distinct_frames']} x 0.92 MB).",
            "", "| | after warm-up (500 reads) | end | growth |", "| --- | --- | --- | --- |",
            f"| resident memory MB | {s['after_warmup']['rss_mb']:.1f} | {s['end']['rss_mb']:.1f} | {s['rss_growth_mb']:+.1f} |",
            f"| open files | {s['after_warmup']['open_files']} | {s['end']['open_files']} | {s['open_files_growth']:+d} |",
            f"| OS threads | {s['after_warmup']['os_threads']} | {s['end']['os_threads']} | {s['os_threads_growth']:+d} |", "",
            *samples_line(s.get("samples", [])), ""]


def samples_line(samples: list[dict]) -> list[str]:
    """The resident memory sampled along the run: a leak climbs, allocator steps do not."""
    if not samples:
        return []
    rss = [round(x["rss_mb"], 1) for x in samples]
    return [f"Resident memory every {samples[0]['reads']:,} reads: " + ", ".join(f"{v:.1f}" for v in rss) + " MB."]


def fuzz_section() -> list[str]:
    path = RESULTS / "fuzz_10000.txt"
    if not path.exists():
        return ["## Property-based tests, long run", "", "Not measured in this report.", ""]
    summary = [line for line in path.read_text().splitlines() if " passed" in line or " failed" in line]
    return ["## Property-based tests, long run", "",
            "- every DigitVAE call and DigitReader.read, 10,000 examples per property (`DIGITVAE_FUZZ_EXAMPLES=10000 pytest "
            f"tests/test_properties.py`): {summary[-1].strip('= ') if summary else 'no result line'}; nothing but the "
            "documented ValueError/TypeError escaped.", ""]


def plots() -> list[str]:
    """Two PNG plots beside BENCHMARKS.md: runtime vs PyTorch latency, camera breakdown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in json.loads((RESULTS / "torch.json").read_text()) if r["threads"] == 1 and r["batch"] == 1]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["onnxruntime_ms"] for r in rows], 0.4, label="onnxruntime")
    ax.bar([i + 0.2 for i in x], [r["torch_ms"] for r in rows], 0.4, label="PyTorch eager")
    ax.set_xticks(list(x), [r["graph"] for r in rows])
    ax.set_ylabel("ms per image (batch 1, 1 thread)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "latency.png", dpi=110)

    speed = json.loads((RESULTS / "bench.json").read_text())["camera"]["speed"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bottom = [0.0] * len(speed)
    for key, label in (("image_ms", "image work"), ("onnxruntime_ms", "onnxruntime"), ("rest_ms", "the rest")):
        values = [r[key] for r in speed]
        ax.bar([f"{r['digits']} {r.get('precision', '')}" for r in speed], values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.axhline(5.0, color="grey", linestyle="--", label="goal: 5 ms")
    ax.set_xlabel("digits in a 640x480 frame, graphs")
    ax.set_ylabel("median ms per frame (1 core)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "camera.png", dpi=110)
    return ["## Plots", "", "![latency](benchmarks/results/latency.png)", "", "![camera](benchmarks/results/camera.png)", ""]


BEGIN, END = "<!-- generated by benchmarks/report.py: {} -->", "<!-- end of generated: {} -->"


def blocks_of(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Markdown cut before each "## " heading, each piece named by its heading ("top" before the first)."""
    blocks: list[tuple[str, list[str]]] = [("top", [])]
    for line in lines:
        if line.startswith("## "):
            blocks.append((line[3:].split(" (", 1)[0].strip(), []))
        blocks[-1][1].append(line)
    return [(name, body) for name, body in blocks if any(body)]


def splice(old: str, blocks: list[tuple[str, list[str]]]) -> str:
    """``old`` with each named block's text replaced; the text outside the blocks kept."""
    text = old
    for name, body in blocks:
        begin, end = BEGIN.format(name), END.format(name)
        while body and not body[-1].strip():
            body = body[:-1]
        fresh = "\n".join([begin, *body, end])
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + fresh + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + fresh + "\n"
    return text


def main() -> None:
    runtime = (RESULTS / "runtime.md").read_text().rstrip("\n").splitlines()
    torch_md = (RESULTS / "torch.md").read_text().strip().splitlines() if (RESULTS / "torch.md").exists() else []
    parts = runtime + ["", *real_section(), *torch_md, "", *training_section(), *soak_section(), *fuzz_section(),
                       "## Sizes", "", wheel_size(), "", *plots()]
    note = ["## About these figures", "", "Every figure in a generated section was measured by the commands in "
            "`benchmarks/report.py`'s docstring, on the machine named at the top; the sections between them name their "
            "own commands, code and machine. Timings are medians after warm-up, comparisons measured side by side in one "
            "run. int8 \"GFLOP/s\" counts the same multiply-adds as fp32, done in int8.", ""]
    path = REPO / "BENCHMARKS.md"
    path.write_text(splice(path.read_text() if path.exists() else "", blocks_of(parts + note)))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
