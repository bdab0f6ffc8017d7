"""``digitvae bench``: speed, size, memory and accuracy of the runtime, measured side by side.

Every timing is a median over many runs after warm-up, with the spread (p10-p90, p99)
shown; every comparison (threads, fp32 vs int8) is measured in the same run. Nothing here
imports torch: the PyTorch comparison lives in ``benchmarks/compare_torch.py``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import numpy as np

from digitvae.runtime import spec
from digitvae.runtime.command import Command
from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.model import DigitVAE


@dataclass(frozen=True)
class Plan:
    """How hard to measure: ``--quick`` is for tests and smoke runs, not for figures."""

    runs: int = 300  # timed runs per latency figure
    warmup: int = 30
    test_images: int = 10_000  # quality figures on the full test set
    frames: int = 500  # generated camera frames for the reader's accuracy (and 200 blank)
    per_kind: int = 2000  # generated non-digits of each kind for the is-digit figures

    @classmethod
    def quick(cls) -> "Plan":
        return cls(runs=20, warmup=3, test_images=500, frames=10, per_kind=50)


# --- machine ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("digitvae", "numpy", "onnxruntime", "opencv-python", "torch"):
        try:
            versions[package] = version(package)
        except Exception:
            versions[package] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "system": platform.platform(),
            "versions": versions}


# --- timing ------------------------------------------------------------------------------


def timings(call: Callable[[], Any], plan: Plan) -> np.ndarray:
    """Seconds per call, ``plan.runs`` times after ``plan.warmup`` untimed calls."""
    for _ in range(plan.warmup):
        call()
    out = np.empty(plan.runs)
    for i in range(plan.runs):
        start = time.perf_counter()
        call()
        out[i] = time.perf_counter() - start
    return out


def summary_ms(seconds: np.ndarray) -> dict[str, float]:
    p10, p50, p90, p99 = np.percentile(seconds, [10, 50, 90, 99]) * 1e3
    return {"median_ms": float(p50), "p10_ms": float(p10), "p90_ms": float(p90), "p99_ms": float(p99)}


def graph_feeds(vae: DigitVAE, name: str, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if name == "decoder":
        return {"z": rng.standard_normal((batch, vae.latent_size), dtype=np.float32),
                "digit": np.eye(spec.NUM_CLASSES, dtype=np.float32)[np.arange(batch) % spec.NUM_CLASSES]}
    return {"image": rng.random((batch, 1, spec.IMAGE_SIZE, spec.IMAGE_SIZE), dtype=np.float32)}


def graph_speed(folder: Path | None, precisions: list[str], plan: Plan) -> list[dict[str, Any]]:
    """Latency at batch 1 and throughput at batch 64, on 1 thread and on all cores."""
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        for precision in precisions:
            vae = DigitVAE.load(folder, precision=precision, threads=threads)
            for name in spec.GRAPH_FILES:
                session, file = vae._sessions[name], vae.artifacts.files[name]
                if precision == "int8" and not file.endswith(spec.INT8_SUFFIX):
                    continue  # this graph ships no int8 variant
                one, batch = graph_feeds(vae, name, 1), graph_feeds(vae, name, 64)
                b1 = timings(lambda: session.run(None, one), plan)
                b64 = timings(lambda: session.run(None, batch), plan)
                flops = vae.artifacts.manifest["files"][file].get("flops_per_image", 0)
                rows.append({
                    "graph": name, "precision": precision, "threads": threads, "batch1": summary_ms(b1),
                    "batch64_images_per_s": float(64 / np.median(b64)),
                    "batch64_gflops": float(64 * flops / np.median(b64) / 1e9),
                    "mflops_per_image": flops / 1e6,
                })
    return rows


PEAK_SCRIPT = """
import time, numpy as np
a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32); b = a.copy()
for _ in range(3): a @ b
ts = []
for _ in range(15):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
print(2 * 1024**3 / np.median(ts) / 1e9)
"""


def peak_gflops(threads: int) -> float:
    """The machine's measured float32 matmul rate with numpy, on ``threads`` threads (a
    fresh process, since BLAS reads its thread count at start-up)."""
    env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    return float(out.stdout.strip()) if out.returncode == 0 else float("nan")


# --- start-up and footprint ------------------------------------------------------------------

FOOTPRINT_SCRIPT = """
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
import digitvae.runtime as rt
t1 = time.perf_counter()
vae = rt.DigitVAE.load(sys.argv[1] or None)
t2 = time.perf_counter()
vae.classify(np.zeros((1, 28, 28), np.float32))
if sys.argv[2] == "camera":
    import digitvae.runtime.camera
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def footprint(folder: Path | None, camera: bool) -> dict[str, float]:
    """Import time, load time and peak resident memory of a fresh process (median of 3)."""
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", FOOTPRINT_SCRIPT, str(folder or ""), "camera" if camera else "-"],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
        runs.append(json.loads(out.stdout))
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def artifact_sizes(vae: DigitVAE) -> dict[str, int]:
    return {name: int(entry["size"]) for name, entry in vae.artifacts.manifest["files"].items()}


# --- quality ----------------------------------------------------------------------------------


def quality(folder: Path | None, precision: str, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and negative ELBO on the test images; generated digits read right by the
    shipped classifier (not an independent judge: see the training figures for that)."""
    vae = DigitVAE.load(folder, precision=precision)
    x = images.astype(np.float32)[:, None] / 255.0
    assessed = vae.assess(x, seed=0)
    hits = [(vae.classify(vae.generate(d, n=200, seed=d)).argmax(1) == d).mean() for d in range(spec.NUM_CLASSES)]
    return {
        "accuracy": float((assessed.digits == labels).mean()),
        "neg_elbo": float(assessed.score.mean()),
        "test_digits_rejected": float(1 - assessed.is_digit.mean()),
        "generation_read_by_classifier": float(np.mean(hits)),
        "images": int(len(labels)),
    }


# --- the report ----------------------------------------------------------------------------

REFERENCES = {
    "pytorch/examples VAE, negative ELBO after 10 epochs (nats)": 105.6,
    "pytorch/examples MNIST CNN accuracy": 0.990,
    "ONNX model zoo MNIST accuracy": 0.989,
}


def measure(folder: Path | None, plan: Plan, data: Any) -> dict[str, Any]:
    """Every runtime figure; camera and is-digit figures join when their extras are there."""
    vae = DigitVAE.load(folder)
    precisions = ["fp32"] + (["int8"] if _has_int8(vae) else [])
    images, labels = data.test_images[: plan.test_images], data.test_labels[: plan.test_images]
    results: dict[str, Any] = {
        "machine": machine(),
        "plan": plan.__dict__,
        "graphs": graph_speed(folder, precisions, plan),
        "peak_gflops": {str(t): peak_gflops(t) for t in sorted({1, os.cpu_count() or 1})},
        "footprint": {"runtime": footprint(folder, camera=False), "runtime+camera": footprint(folder, camera=True)},
        "artifact_sizes": artifact_sizes(vae),
        "quality": {p: quality(folder, p, images, labels) for p in precisions},
        "training": vae.artifacts.manifest.get("training", {}).get("final_metrics", {}),
        "references": REFERENCES,
    }
    results.update(_camera_figures(folder, plan, data.test_images[: plan.test_images]))
    return results


def _has_int8(vae: DigitVAE) -> bool:
    return any(name.endswith(spec.INT8_SUFFIX) for name in vae.artifacts.manifest["files"])


def _camera_figures(folder: Path | None, plan: Plan, test_images: np.ndarray) -> dict[str, Any]:
    try:
        from .camera import camera_figures
    except ImportError as exc:  # OpenCV missing: the report says so instead of failing
        return {"camera": {"skipped": str(exc)}}
    return {"camera": camera_figures(folder, plan.frames, test_images, plan.per_kind)}


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# digitvae benchmarks",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".",
        f"Plan: {results['plan']['runs']} timed runs after {results['plan']['warmup']} warm-up runs per figure; "
        f"quality on {results['quality']['fp32']['images']} test images.",
        "",
        "## Graphs: latency at batch 1, throughput at batch 64",
        "",
        "| graph | precision | threads | batch 1 median ms | p10-p90 ms | p99 ms | batch 64 images/s | MFLOP/image | achieved GFLOP/s (b64) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results["graphs"]:
        b = r["batch1"]
        lines.append(f"| {r['graph']} | {r['precision']} | {r['threads']} | {b['median_ms']:.3f} | {b['p10_ms']:.3f}-{b['p90_ms']:.3f} "
                     f"| {b['p99_ms']:.3f} | {r['batch64_images_per_s']:.0f} | {r['mflops_per_image']:.2f} | {r['batch64_gflops']:.1f} |")
    peaks = ", ".join(f"{t} thread(s): {g:.1f} GFLOP/s" for t, g in results["peak_gflops"].items())
    lines += ["", f"Machine peak, float32 1024x1024 matrix product in numpy: {peaks}.", ""]
    lines += _quality_lines(results) + _footprint_lines(results) + _camera_lines(results)
    return "\n".join(lines) + "\n"


def _quality_lines(results: dict[str, Any]) -> list[str]:
    lines = ["## Quality", "", "| precision | accuracy | negative ELBO (nats) | test digits rejected by is_digit | generated digits read right (shipped classifier) |",
             "| --- | --- | --- | --- | --- |"]
    for precision, q in results["quality"].items():
        lines.append(f"| {precision} | {100 * q['accuracy']:.2f}% | {q['neg_elbo']:.2f} | {100 * q['test_digits_rejected']:.2f}% "
                     f"| {100 * q['generation_read_by_classifier']:.2f}% |")
    t = results.get("training") or {}
    if t:
        lines += ["", f"From training (PyTorch, full test set): accuracy {100 * t['test_accuracy']:.2f}%, negative ELBO "
                  f"{t['test_neg_elbo']:.2f} nats, generated digits read right by the independent judge "
                  f"{100 * t['generation_accuracy']:.2f}% (worst digit {100 * t['generation_accuracy_min_digit']:.1f}%)."]
    lines += ["", "References: " + "; ".join(f"{k}: {v}" for k, v in results["references"].items()) + ".", ""]
    return lines


def _footprint_lines(results: dict[str, Any]) -> list[str]:
    lines = ["## Start-up and footprint", "", "| process | import s | load s | peak RSS MB |", "| --- | --- | --- | --- |"]
    for name, f in results["footprint"].items():
        if "error" in f:
            lines.append(f"| {name} | {f['error']} | | |")
        else:
            lines.append(f"| {name} | {f['import_s']:.3f} | {f['load_s']:.3f} | {f['peak_rss_mb']:.0f} |")
    sizes = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in results["artifact_sizes"].items())
    return lines + ["", f"Artifacts: {sizes}.", ""]


def _camera_lines(results: dict[str, Any]) -> list[str]:
    camera = results.get("camera", {})
    if "skipped" in camera or not camera:
        return ["## Camera path", "", f"Not measured: {camera.get('skipped', 'no figures')}.", ""]
    from .camera import markdown_lines

    return markdown_lines(camera)


def add_arguments(parser: Any) -> None:
    parser.add_argument("--artifacts", default=None, help="artifacts folder (default: the shipped graphs)")
    parser.add_argument("--quick", action="store_true", help="a few runs of everything: checks the report, not the figures")
    parser.add_argument("--output", default=None, help="write the Markdown report here (default: print it); "
                        "BENCHMARKS.md is assembled by benchmarks/report.py from such files")
    parser.add_argument("--json", default=None, help="also write every figure as JSON here")
    parser.add_argument("--data-dir", default=None, help="folder of MNIST IDX files (default: $DIGITVAE_DATA, else the cache)")
    parser.add_argument("--real", default=None, metavar="DIR",
                        help="instead: read the real photos in DIR (laid out like ../shared/realdata) and print their table")
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32", help="graphs for --real")
    parser.add_argument("--dump-crops", default=None, metavar="OUT",
                        help="with --real: write the reader's crops of the train-split sudoku cells to OUT/<digit>/")


def run(args: Any) -> int:
    if getattr(args, "real", None):
        from .real import run as run_real  # the real-photo benchmark, not the speed one

        return run_real(args)
    if getattr(args, "dump_crops", None):
        raise DigitVAEError("--dump-crops needs --real DIR (the crops come from the real sudoku photos)")
    from digitvae.data.mnist import load_mnist

    plan = Plan.quick() if args.quick else Plan()
    results = measure(Path(args.artifacts) if args.artifacts else None, plan, load_mnist(args.data_dir))
    if args.output:
        Path(args.output).write_text(markdown(results))
        print(f"wrote {args.output}")
    else:
        print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


COMMAND = Command(help="measure speed, size, memory and accuracy (or, with --real DIR, reading real photos)", add_arguments=add_arguments, run=run)
