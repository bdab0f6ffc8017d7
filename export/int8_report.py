"""INT8 against fp32: the measurements that decide which int8 graphs ship, and their table.

Each int8 graph is measured beside its fp32 graph in one run: file size, median latency
at batch 1 and 64 on one thread (:func:`time_graphs`; :func:`latencies` times fp32 and
int8 in alternating rounds), and the accuracy budget on the full test set
(:func:`evaluate`: classifier accuracy within 0.1 points; negative ELBO within 1 nat,
computed as the runtime's ``score`` computes it). :func:`judge` applies the rule: an int8
graph stays only where it earns its place, within budget and faster, or much smaller at
equal speed; :func:`hold_together` then holds the kept set to the budget as the runtime
loads it, all at once. :func:`rule` says the rule in words for the manifest,
:func:`table` prints the record.

Also here, since calibration (:mod:`digitvae.export.quantize`) uses them too: the session
and feed helpers (:func:`session`, :func:`run`, :func:`as_images`, :func:`one_hot`) and
:data:`SEED`. The rule's constants are read here at call time; patch them on this module.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from digitvae.data.mnist import Mnist
from digitvae.runtime import spec
from digitvae.runtime.model import bernoulli_nats, kl_nats, posterior_sample, softmax

# --- The rules ------------------------------------------------------------------------

# Seed of the calibration sample, the decoder's prior draws and the latency feeds: any
# fixed value makes the export reproducible. (The score's noise is seeded 0 on its own, as
# the runtime's is.)
SEED = 0

# The accuracy budget. Classifier: int8 accuracy may drop at most this many
# percentage points below fp32's (0.1 = 10 of the 10,000 test images).
BUDGET_ACCURACY_POINTS = 0.1
# Encoder and decoder: int8 mean negative ELBO within this many nats of fp32's.
BUDGET_NATS = 1.0

# What earns an int8 graph its place. "Faster": int8 median latency at most 90% of fp32's
# at batch 1 and at batch 64, a clear gain rather than a tie.
FASTER = 0.90
# Or "much smaller at equal speed": int8 no more than 10% slower at either batch size ...
EQUAL_SPEED = 1.10
# ... and its file at most half the fp32 file.
MUCH_SMALLER = 0.50

# The benchmarks' two figures: latency of one image, throughput of a batch of 64.
BATCH_SIZES = (1, 64)
# Timed calls per graph, precision and batch size: a few hundred for a stable median;
# fewer at batch 64, where each call takes many times longer.
LATENCY_RUNS = {1: 400, 64: 100}
# Untimed calls per session before timing, so that first-call allocations and cold caches
# fall outside the figures.
WARMUP_RUNS = 20
# Images per evaluation call: bounds the memory of one call on the 10,000 test images.
EVAL_CHUNK = 1000


# --- Feeds and sessions -----------------------------------------------------------------


def as_images(uint8_images: np.ndarray) -> np.ndarray:
    return (uint8_images.astype(np.float32) / 255.0)[:, None]


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(spec.NUM_CLASSES, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    n = len(next(iter(feeds.values())))
    parts = [sess.run(None, {k: v[i : i + EVAL_CHUNK] for k, v in feeds.items()}) for i in range(0, n, EVAL_CHUNK)]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]


# --- Latency --------------------------------------------------------------------------


def latencies(fp32: ort.InferenceSession, int8: ort.InferenceSession, feeds: dict[str, np.ndarray],
              runs: int, warmup: int = WARMUP_RUNS) -> tuple[float, float]:
    """Median milliseconds per call of each session on the same feeds. The two are timed in
    alternating rounds, so that a neighbour's load on the CPU falls on both alike."""
    for _ in range(warmup):
        fp32.run(None, feeds)
        int8.run(None, feeds)
    times: dict[int, list[float]] = {0: [], 1: []}
    rounds = max(1, min(20, runs // 5))
    per_round = max(1, runs // rounds)
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for which in order:
            sess = (fp32, int8)[which]
            for _ in range(per_round):
                start = time.perf_counter_ns()
                sess.run(None, feeds)
                times[which].append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times[0]), statistics.median(times[1])


def latency_feeds(name: str, data: Mnist, batch: int, latent_size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    if name == "decoder":
        return {"z": rng.standard_normal((batch, latent_size), dtype=np.float32),
                "digit": one_hot(np.arange(batch) % spec.NUM_CLASSES)}
    fit_images = data.fit_split()[0]
    return {"image": as_images(fit_images[:batch])}


def time_graphs(fp32: dict[str, ort.InferenceSession], int8: dict[str, ort.InferenceSession], data: Mnist,
                names: list[str], runs: dict[int, int]) -> dict[str, dict[str, dict[int, float]]]:
    """Median milliseconds per call of each graph, fp32 and int8 side by side in one run:
    ``timing[name][precision][batch]``, with ``runs[batch]`` timed calls."""
    latent_size = fp32["decoder"].get_inputs()[0].shape[1]
    timing: dict[str, dict[str, dict[int, float]]] = {}
    for name in names:
        timing[name] = {"fp32": {}, "int8": {}}
        for batch in BATCH_SIZES:
            feeds = latency_feeds(name, data, batch, latent_size)
            a, b = latencies(fp32[name], int8[name], feeds, runs[batch])
            timing[name]["fp32"][batch], timing[name]["int8"][batch] = a, b
    return timing


# --- The budget ---------------------------------------------------------------------------


def neg_elbo(x: np.ndarray, mu: np.ndarray, logvar: np.ndarray, logits: np.ndarray,
             decoder: ort.InferenceSession) -> np.ndarray:
    """Per-image negative ELBO in nats, exactly as the runtime's ``_score`` (seed 0)."""
    pixels = run(decoder, {"z": posterior_sample(x, mu, logvar, 0), "digit": softmax(logits)})[0]
    return bernoulli_nats(x, pixels) + kl_nats(mu, logvar)


@dataclass
class Evaluation:
    images: int
    accuracy: dict[str, float]  # precision -> classifier accuracy, percent
    agreement: float  # int8 and fp32 classifier: same argmax, percent
    elbo: dict[str, float]  # "fp32", "<graph> int8" (others fp32), ... -> mean negative ELBO


def evaluate(fp32: dict[str, ort.InferenceSession], int8: dict[str, ort.InferenceSession],
             images: np.ndarray, labels: np.ndarray, combinations: list[tuple[str, ...]]) -> Evaluation:
    x = as_images(images)
    outputs = {}
    for precision, sessions in (("fp32", fp32), ("int8", int8)):
        mu, logvar = run(sessions["encoder"], {"image": x})
        outputs[precision] = {"mu": mu, "logvar": logvar, "logits": run(sessions["classifier"], {"image": x})[0]}
    predicted = {p: o["logits"].argmax(axis=1) for p, o in outputs.items()}
    correct = {p: int(np.sum(predicted[p] == labels)) for p in outputs}
    accuracy = {p: 100.0 * correct[p] / len(x) for p in outputs}
    agreement = float(100.0 * np.mean(predicted["fp32"] == predicted["int8"]))

    def elbo(quantized: tuple[str, ...]) -> float:
        pick = {name: "int8" if name in quantized else "fp32" for name in spec.GRAPH_FILES}
        enc, cls = outputs[pick["encoder"]], outputs[pick["classifier"]]
        decoder = (int8 if pick["decoder"] == "int8" else fp32)["decoder"]
        return float(np.mean(neg_elbo(x, enc["mu"], enc["logvar"], cls["logits"], decoder)))

    elbos = {"fp32": elbo(())}
    for combo in combinations:
        elbos[" + ".join(combo) + " int8"] = elbo(combo)
    return Evaluation(images=len(x), accuracy=accuracy, agreement=agreement, elbo=elbos)


# --- The rule ---------------------------------------------------------------------------


def judge(name: str, sizes: tuple[int, int], timing: dict[str, dict[int, float]],
          evaluation: Evaluation) -> dict[str, Any]:
    fp32_bytes, int8_bytes = sizes
    ratio = {b: timing["int8"][b] / timing["fp32"][b] for b in BATCH_SIZES}
    size_ratio = int8_bytes / fp32_bytes
    entry: dict[str, Any] = {
        "fp32_file": spec.GRAPH_FILES[name],
        "int8_file": spec.GRAPH_FILES[name].removesuffix(".onnx") + spec.INT8_SUFFIX,
        "fp32_bytes": fp32_bytes, "int8_bytes": int8_bytes, "size_ratio": round(size_ratio, 4),
        "latency_ms": {p: {f"batch_{b}": round(timing[p][b], 4) for b in BATCH_SIZES} for p in ("fp32", "int8")},
        "latency_ratio": {f"batch_{b}": round(ratio[b], 4) for b in BATCH_SIZES},
    }
    base = evaluation.elbo["fp32"]
    if name == "classifier":
        drop = evaluation.accuracy["fp32"] - evaluation.accuracy["int8"]
        within = drop <= BUDGET_ACCURACY_POINTS + 1e-9  # "within 0.1 points" includes 0.1 (10 of 10,000)
        entry["budget"] = {"metric": "accuracy_percent", "fp32": round(evaluation.accuracy["fp32"], 4),
                           "int8": round(evaluation.accuracy["int8"], 4), "drop_points": round(drop, 4),
                           "limit_points": BUDGET_ACCURACY_POINTS, "within": within,
                           "argmax_agreement_percent": round(evaluation.agreement, 4)}
        # For information: the score moves too, since the decoder reads the classifier.
        entry["negative_elbo_delta_nats"] = round(evaluation.elbo["classifier int8"] - base, 4)
    else:
        delta = evaluation.elbo[f"{name} int8"] - base
        within = abs(delta) <= BUDGET_NATS
        entry["budget"] = {"metric": "mean_negative_elbo_nats", "fp32": round(base, 4),
                           "int8": round(evaluation.elbo[f"{name} int8"], 4), "delta_nats": round(delta, 4),
                           "limit_nats": BUDGET_NATS, "within": within,
                           "note": "this graph int8, the other two fp32"}
    faster = all(r <= FASTER for r in ratio.values())
    smaller_same_speed = size_ratio <= MUCH_SMALLER and all(r <= EQUAL_SPEED for r in ratio.values())
    speed = ", ".join(f"{ratio[b]:.2f}x fp32's latency at batch {b}" for b in BATCH_SIZES)
    if not within:
        decision, why = "drop", "outside the accuracy budget"
    elif faster:
        decision, why = "keep", f"within budget and faster ({speed})"
    elif smaller_same_speed:
        decision, why = "keep", f"within budget, {1 / size_ratio:.1f}x smaller at equal speed ({speed})"
    else:
        small = f"{1 / size_ratio:.1f}x smaller" if size_ratio < 1 else "not smaller"
        decision, why = "drop", f"within budget but not worth it: {speed}; {small}"
    entry["decision"], entry["reason"] = decision, why
    return entry


def hold_together(fp32: dict[str, ort.InferenceSession], int8: dict[str, ort.InferenceSession],
                  images: np.ndarray, labels: np.ndarray, kept: tuple[str, ...], evaluation: Evaluation,
                  graphs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Hold the set of kept int8 graphs to the budget as the runtime loads them (all at once);
    while the set is over, drop the graph whose own ELBO change is largest."""
    kept = tuple(kept)
    while kept:
        key = " + ".join(kept) + " int8"
        if key not in evaluation.elbo:
            evaluation.elbo.update(evaluate(fp32, int8, images, labels, [kept]).elbo)
        delta = evaluation.elbo[key] - evaluation.elbo["fp32"]
        if abs(delta) <= BUDGET_NATS:
            return {"graphs": list(kept), "negative_elbo_delta_nats": round(delta, 4), "within": True}
        worst = max(kept, key=lambda n: abs(graphs[n].get("negative_elbo_delta_nats",
                                                           graphs[n]["budget"].get("delta_nats", 0.0))))
        graphs[worst]["decision"] = "drop"
        graphs[worst]["reason"] += f"; dropped because the kept set together moved the ELBO {delta:+.2f} nats"
        kept = tuple(n for n in kept if n != worst)
    return {"graphs": [], "negative_elbo_delta_nats": 0.0, "within": True}


def rule() -> str:
    """The rule that :func:`judge` and :func:`hold_together` apply, in words, for the manifest."""
    return (f"keep an int8 graph only if within budget (classifier accuracy within {BUDGET_ACCURACY_POINTS} points "
            f"of fp32; encoder/decoder mean negative ELBO within {BUDGET_NATS} nat of fp32) and either faster "
            f"(int8 latency <= {FASTER:.0%} of fp32 at batch 1 and 64) or much smaller at equal speed (file <= "
            f"{MUCH_SMALLER:.0%} of fp32 and latency <= {EQUAL_SPEED:.0%} of fp32 at batch 1 and 64); the kept "
            f"set is also held to the budget together")


# --- The machine ------------------------------------------------------------------------


def int8_features() -> list[str]:
    """The x86 flags that decide how fast onnxruntime's int8 kernels are (VNNI, AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f in ("avx2", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"))


def load_average() -> float | None:
    """The CPU's load while timing: other work on the machine slows fp32 and int8 alike."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


# --- The table ---------------------------------------------------------------------------


def table(record: dict[str, Any]) -> str:
    """The record as a plain-text table."""
    head = (f"{'graph':<11}{'fp32 KB':>9}{'int8 KB':>9}{'size':>7}  {'fp32 b1':>8}{'int8 b1':>8}  "
            f"{'fp32 b64':>9}{'int8 b64':>9}  {'budget':<34}decision")
    timing = record["timing"]
    lines = [f"int8 vs fp32 ({timing['cpu']}, {' '.join(timing['cpu_int8_features'])}; load {timing['load_average_1min']}; "
             f"1 thread, median ms; {record['evaluation']['data']})", head,
             "-" * len(head)]
    for name, g in record["graphs"].items():
        lat = g["latency_ms"]
        b = g["budget"]
        if b["metric"] == "accuracy_percent":
            budget = f"acc {b['fp32']:.2f}% -> {b['int8']:.2f}% ({-b['drop_points']:+.2f})"
        else:
            budget = f"-ELBO {b['fp32']:.2f} -> {b['int8']:.2f} ({b['delta_nats']:+.2f})"
        lines.append(f"{name:<11}{g['fp32_bytes'] / 1024:>9.1f}{g['int8_bytes'] / 1024:>9.1f}{g['size_ratio']:>7.2f}  "
                     f"{lat['fp32']['batch_1']:>8.3f}{lat['int8']['batch_1']:>8.3f}  "
                     f"{lat['fp32']['batch_64']:>9.3f}{lat['int8']['batch_64']:>9.3f}  {budget:<34}"
                     f"{g['decision']}: {g['reason']}")
    together = record["together"]
    lines.append(f"kept together: {', '.join(together['graphs']) or 'none'}"
                 + (f" (mean -ELBO {together['negative_elbo_delta_nats']:+.2f} nats vs fp32)" if together["graphs"] else ""))
    return "\n".join(lines)
