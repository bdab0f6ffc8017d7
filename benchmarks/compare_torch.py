"""onnxruntime against PyTorch eager on the same weights, inputs and thread count, measured
side by side in one run (needs the [train] extra).

    python benchmarks/compare_torch.py --json benchmarks/results/torch.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from digitvae.runtime import DigitVAE, spec
from digitvae.bench.speed import graph_feeds
from digitvae.train.checkpoint import load_model
from digitvae.export.graphs import graph_modules

REPO = Path(__file__).resolve().parent.parent


def median_seconds(call, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def compare(checkpoint: Path, folder: Path | None, runs: int, warmup: int) -> list[dict]:
    model, _, _ = load_model(checkpoint)
    modules = {name: module for name, (module, _, _) in graph_modules(model).items()}
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        vae = DigitVAE.load(folder, threads=threads)
        for name in spec.GRAPH_FILES:
            for batch in (1, 64):
                feeds = graph_feeds(vae, name, batch)
                tensors = [torch.from_numpy(v) for v in feeds.values()]
                session = vae._sessions[name]

                def run_torch():
                    with torch.inference_mode():
                        modules[name](*tensors)

                # Alternate the two, several rounds, so drift on a shared machine hits both alike.
                ort_times, torch_times = [], []
                for _ in range(5):
                    ort_times.append(median_seconds(lambda: session.run(None, feeds), runs // 5, warmup))
                    torch_times.append(median_seconds(run_torch, runs // 5, warmup))
                ort_s, torch_s = float(np.median(ort_times)), float(np.median(torch_times))
                rows.append({"graph": name, "threads": threads, "batch": batch, "onnxruntime_ms": ort_s * 1e3,
                             "torch_ms": torch_s * 1e3, "speedup": torch_s / ort_s})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["## onnxruntime against PyTorch eager (same weights, inputs, threads; one run)", "",
             f"torch {torch.__version__}. Median of 5 alternating rounds, each a median of many calls.", "",
             "| graph | threads | batch | onnxruntime ms | PyTorch eager ms | onnxruntime speed-up |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['graph']} | {r['threads']} | {r['batch']} | {r['onnxruntime_ms']:.3f} | {r['torch_ms']:.3f} | {r['speedup']:.1f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=REPO / "artifacts" / spec.CHECKPOINT_FILE, help="the checkpoint the graphs came from")
    parser.add_argument("--artifacts", type=Path, default=None, help="artifacts folder (default: the shipped graphs)")
    parser.add_argument("--runs", type=int, default=500, help="timed calls per figure")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls before each round")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    rows = compare(args.checkpoint, args.artifacts, args.runs, args.warmup)
    print(markdown(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
