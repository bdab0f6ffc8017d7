"""INT8: static QDQ quantization of the three graphs, measured against fp32 on this CPU.

For each fp32 graph in the staging folder: onnxruntime's ``quant_pre_process`` (symbolic
shape inference, optimisation), then ``quantize_static`` in QDQ format with per-channel
int8 weights, calibrated on training images (the fit split, never the test set). The
decoder is calibrated on what it is fed in use: the fp32 encoder's ``mu`` of those
images with their one-hot labels, posterior samples with the fp32 classifier's
probabilities (what ``score`` feeds it), and draws from the N(0, I) prior with random
digits (what ``generate`` feeds it).

Each int8 graph is then measured beside its fp32 graph in one run: file size, median
latency at batch 1 and 64 on one thread, and the accuracy budget on the full test set
(classifier accuracy within 0.1 points; negative ELBO within 1 nat, computed as the
runtime's ``score`` computes it). An int8 graph stays in the folder only where it earns
its place: within budget, and faster, or much smaller at equal speed. The measurements go
into the manifest either way.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from digitvae.runtime import spec
from digitvae.data.mnist import Mnist
from digitvae.runtime.model import bernoulli_nats, kl_nats, posterior_sample, softmax

from .errors import ExportError

# --- The rules ------------------------------------------------------------------------

CALIBRATION_SIZE = 1024  # training images (fit split) the calibration sees; the issue asks >= 1,000
CALIBRATION_BATCH = 128  # images per calibration feed
PRIOR_FRACTION = 0.25  # decoder calibration: this many extra z drawn from N(0, I), per image used
SEED = 0  # calibration sample, prior draws; the score's noise uses seed 0 as the runtime does

BUDGET_ACCURACY_POINTS = 0.1  # int8 classifier accuracy may drop at most this (percentage points)
BUDGET_NATS = 1.0  # int8 encoder/decoder: mean negative ELBO within this of fp32

FASTER = 0.90  # "faster": int8 median latency <= 90% of fp32's at batch 1 and at batch 64
EQUAL_SPEED = 1.10  # "equal speed": int8 no more than 10% slower at either batch size ...
MUCH_SMALLER = 0.50  # ... and "much smaller": int8 file at most half the fp32 file

BATCH_SIZES = (1, 64)
LATENCY_RUNS = {1: 400, 64: 100}  # timed calls per graph, precision and batch size
WARMUP_RUNS = 20
EVAL_CHUNK = 1000  # images per evaluation call


@dataclass(frozen=True)
class Settings:
    """How the graphs are quantized (recorded in the manifest)."""

    activation_type: QuantType = QuantType.QUInt8
    weight_type: QuantType = QuantType.QInt8
    per_channel: bool = True
    reduce_range: bool = False  # 7-bit weights: only for pre-VNNI x86, where U8S8 can saturate
    activation_symmetric: bool = False
    calibrate_method: CalibrationMethod = CalibrationMethod.MinMax
    float_outputs: bool = True  # leave each graph's outputs unquantized (no Q/DQ after the last op)
    # Op types left in float: onnxruntime's CPU provider has no int8 ConvTranspose kernel, so
    # a quantized ConvTranspose runs in float between extra Q/DQ nodes, slower than fp32.
    float_op_types: tuple[str, ...] = ("ConvTranspose",)

    def to_manifest(self) -> dict[str, Any]:
        return {
            "tool": f"onnxruntime.quantization {ort.__version__}: quant_pre_process, then quantize_static",
            "format": "QDQ",
            "activations": self.activation_type.name, "weights": self.weight_type.name,
            "per_channel_weights": self.per_channel, "reduce_range": self.reduce_range,
            "activation_symmetric": self.activation_symmetric,
            "calibration_method": self.calibrate_method.name,
            "float_outputs": self.float_outputs, "float_op_types": list(self.float_op_types),
        }


DEFAULT_SETTINGS = Settings()


# --- Calibration ----------------------------------------------------------------------


class FeedReader(CalibrationDataReader):
    """onnxruntime's calibration reader over a list of ready feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self._iter: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)


def as_images(uint8_images: np.ndarray) -> np.ndarray:
    return (uint8_images.astype(np.float32) / 255.0)[:, None]


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(spec.NUM_CLASSES, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def batches(arrays: dict[str, np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(arrays.values())))
    return [{k: np.ascontiguousarray(v[i : i + size]) for k, v in arrays.items()} for i in range(0, n, size)]


@dataclass
class Calibration:
    """The calibration feeds of each graph, and how they were drawn."""

    feeds: dict[str, list[dict[str, np.ndarray]]]
    description: dict[str, Any] = field(default_factory=dict)


def calibration_set(sessions: dict[str, ort.InferenceSession], data: Mnist, size: int) -> Calibration:
    fit_images, fit_labels = data.fit_split()
    if not 1 <= size <= len(fit_images):
        raise ExportError(f"calibration size {size}: expected 1 to {len(fit_images)} training images")
    rng = np.random.default_rng(SEED)
    index = np.sort(rng.choice(len(fit_images), size=size, replace=False))
    x, labels = as_images(fit_images[index]), fit_labels[index]

    mu, logvar = run(sessions["encoder"], {"image": x})
    probabilities = softmax(run(sessions["classifier"], {"image": x})[0])
    eps = rng.standard_normal(mu.shape, dtype=np.float32)
    sampled = (mu + eps * np.exp(0.5 * logvar)).astype(np.float32)
    n_prior = max(1, round(PRIOR_FRACTION * size))
    prior = rng.standard_normal((n_prior, mu.shape[1]), dtype=np.float32)
    prior_digits = one_hot(rng.integers(0, spec.NUM_CLASSES, n_prior))
    z = np.concatenate([mu, sampled, prior])
    digit = np.concatenate([one_hot(labels), probabilities, prior_digits])

    feeds = {
        "encoder": batches({"image": x}, CALIBRATION_BATCH),
        "classifier": batches({"image": x}, CALIBRATION_BATCH),
        "decoder": batches({"z": z, "digit": digit}, CALIBRATION_BATCH),
    }
    description = {
        "source": (f"MNIST training set, fit split (the first {len(fit_images)} training images; never the "
                   f"validation slice or the test set)"),
        "images": size,
        "selection": f"uniform random sample without replacement, numpy default_rng({SEED})",
        "labels_per_digit": np.bincount(labels, minlength=spec.NUM_CLASSES).tolist(),
        "encoder_and_classifier": f"the {size} images, float32 in [0, 1]",
        "decoder": (f"{len(z)} (z, digit) pairs: the fp32 encoder's mu of the {size} images with their one-hot "
                    f"labels; a posterior sample mu + eps*exp(logvar/2) of each with the fp32 classifier's "
                    f"probabilities (as score() feeds it); {n_prior} z from the N(0, I) prior with random one-hot "
                    f"digits (as generate() feeds it)"),
        "batch": CALIBRATION_BATCH,
    }
    return Calibration(feeds=feeds, description=description)


# --- Quantizing one graph ---------------------------------------------------------------


def output_producers(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes whose outputs are the graph's outputs."""
    outputs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if outputs & set(n.output)]


def quantize_graph(fp32_path: Path, target: Path, feeds: list[dict[str, np.ndarray]], settings: Settings,
                   work: Path) -> None:
    """fp32 graph -> pre-processed -> QDQ int8 graph at ``target``, with the fp32 graph's
    metadata, checked by onnx.checker."""
    pre = work / f"{fp32_path.stem}.pre.onnx"
    raw = work / f"{fp32_path.stem}.qdq.onnx"
    quant_pre_process(str(fp32_path), str(pre))
    pre_model = onnx.load(str(pre))
    if any(not n.name for n in pre_model.graph.node):  # node exclusion goes by name: give every node one
        taken = {n.name for n in pre_model.graph.node}
        for i, node in enumerate(pre_model.graph.node):
            if not node.name:
                node.name = next(c for c in (f"{node.op_type}_{i}_{k}" for k in range(len(taken) + 1)) if c not in taken)
                taken.add(node.name)
        onnx.save_model(pre_model, str(pre))
    extra = {"ActivationSymmetric": settings.activation_symmetric, "WeightSymmetric": True}
    if settings.float_outputs:
        # No QuantizeLinear after the nodes that produce the graph's outputs: the runtime
        # reads them as float anyway, and an 8-bit grid on pixels near 0 or 1 (or on logvar)
        # costs nats for no speed.
        nodes_to_exclude = [n for n in output_producers(pre_model) if _is_elementwise(pre_model, n)]
    else:
        nodes_to_exclude = []
    nodes_to_exclude += [n.name for n in pre_model.graph.node if n.op_type in settings.float_op_types]
    quantize_static(
        str(pre), str(raw), FeedReader(feeds), quant_format=QuantFormat.QDQ, per_channel=settings.per_channel,
        reduce_range=settings.reduce_range, activation_type=settings.activation_type,
        weight_type=settings.weight_type, calibrate_method=settings.calibrate_method,
        nodes_to_exclude=nodes_to_exclude, extra_options=extra,
    )
    model = onnx.load(str(raw))
    if settings.float_outputs:
        _drop_output_qdq(model)
    _finish(model, onnx.load(str(fp32_path)), settings, target)


def _is_elementwise(model: onnx.ModelProto, node_name: str) -> bool:
    """An activation at the very end (the decoder's Sigmoid) stays float: fed by float."""
    node = next(n for n in model.graph.node if n.name == node_name)
    return node.op_type in ("Sigmoid", "Relu", "Tanh", "Softmax")


def _drop_output_qdq(model: onnx.ModelProto) -> None:
    """Remove QuantizeLinear -> DequantizeLinear pairs that only feed a graph output, so the
    last layer writes float directly (onnxruntime fuses DQ -> Gemm/Conv into a quantized
    kernel with float output)."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    producer = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for dq in [n for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0] in outputs]:
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or len(consumers.get(q.output[0], [])) != 1:
            continue
        source = producer.get(q.input[0])
        if source is None or len(consumers.get(q.input[0], [])) != 1:
            continue
        # The float tensor before Q becomes the graph output itself.
        old, new = q.input[0], dq.output[0]
        for i, name in enumerate(source.output):
            if name == old:
                source.output[i] = new
        graph.node.remove(q)
        graph.node.remove(dq)


def _finish(model: onnx.ModelProto, fp32: onnx.ModelProto, settings: Settings, target: Path) -> None:
    """Same inputs and outputs as the fp32 graph (names, batch axis), its metadata plus
    the precision, checked, one file."""
    for mine, theirs in zip(list(model.graph.input) + list(model.graph.output),
                            list(fp32.graph.input) + list(fp32.graph.output)):
        if mine.name != theirs.name:
            raise ExportError(f"quantizing {target.name} renamed {theirs.name} to {mine.name}")
        mine.type.CopyFrom(theirs.type)
    model.doc_string = fp32.doc_string + " (int8, static QDQ quantization)"
    props = {p.key: p.value for p in fp32.metadata_props}
    props.update({"precision": "int8", "quantization": "static QDQ, per-channel weights, "
                  f"{settings.activation_type.name} activations, {settings.weight_type.name} weights"})
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the int8 {target.name} fails onnx.checker: {str(exc).splitlines()[0]}") from exc
    onnx.save_model(model, str(target), save_as_external_data=False)


# --- Sessions and measurements ------------------------------------------------------------


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


# --- The whole step -----------------------------------------------------------------------


def quantize_all(staging: Path, data: Mnist, *, calibration_size: int = CALIBRATION_SIZE,
                 test_limit: int | None = None, latency_runs: dict[int, int] | None = None,
                 settings: Settings = DEFAULT_SETTINGS, echo: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Quantize the fp32 graphs in ``staging``, measure them, keep the int8 graphs that earn
    their place (as ``<name>.int8.onnx``) and return the record for the manifest.

    ``test_limit`` evaluates the budget on the first N test images instead of all 10,000,
    and ``latency_runs`` shortens the timing: both for tests only; the record says so.
    """
    staging = Path(staging)
    runs = dict(LATENCY_RUNS if latency_runs is None else latency_runs)
    names = list(spec.GRAPH_FILES)
    fp32_paths = {n: staging / spec.GRAPH_FILES[n] for n in names}
    int8_paths = {n: staging / (spec.GRAPH_FILES[n].removesuffix(".onnx") + spec.INT8_SUFFIX) for n in names}
    missing = [str(p) for p in fp32_paths.values() if not p.is_file()]
    if missing:
        raise ExportError(f"cannot quantize: {', '.join(missing)} missing")

    fp32 = {n: session(fp32_paths[n]) for n in names}
    calibration = calibration_set(fp32, data, calibration_size)
    with tempfile.TemporaryDirectory(prefix="digitvae-quantize-") as work:
        for name in names:
            try:
                quantize_graph(fp32_paths[name], int8_paths[name], calibration.feeds[name], settings, Path(work))
            except ExportError:
                raise
            except Exception as exc:  # onnxruntime's quantizer raises many types
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ExportError(f"quantizing {fp32_paths[name].name} failed: {first}") from exc
    int8 = {n: session(int8_paths[n]) for n in names}

    # Speed and size, side by side in one run.
    latent_size = fp32["decoder"].get_inputs()[0].shape[1]
    timing: dict[str, dict[str, dict[int, float]]] = {}
    for name in names:
        timing[name] = {"fp32": {}, "int8": {}}
        for batch in BATCH_SIZES:
            feeds = latency_feeds(name, data, batch, latent_size)
            a, b = latencies(fp32[name], int8[name], feeds, runs[batch])
            timing[name]["fp32"][batch], timing[name]["int8"][batch] = a, b
    load = _load_average()
    sizes = {n: (fp32_paths[n].stat().st_size, int8_paths[n].stat().st_size) for n in names}

    # The budget, on the test set (the full one unless a test asks for less).
    limit = len(data.test_images) if test_limit is None else min(test_limit, len(data.test_images))
    test_images, test_labels = data.test_images[:limit], data.test_labels[:limit].astype(np.int64)
    singles = [(n,) for n in names]
    evaluation = evaluate(fp32, int8, test_images, test_labels, singles + [tuple(names)])

    graphs = {n: judge(n, sizes[n], timing[n], evaluation) for n in names}
    kept = tuple(n for n in names if graphs[n]["decision"] == "keep")
    # The runtime loads every int8 graph that ships at once: hold the set to the budget too.
    together = _together(fp32, int8, test_images, test_labels, kept, evaluation, graphs)
    kept = tuple(n for n in names if graphs[n]["decision"] == "keep")
    for name in names:
        if name not in kept:
            int8_paths[name].unlink()

    record = {
        "settings": settings.to_manifest(),
        "calibration": calibration.description,
        "evaluation": {
            "data": ("MNIST official test set, all 10,000 images" if limit == len(data.test_images) == 10_000
                     else f"MNIST test set, first {limit} images"),
            "negative_elbo": "mean per image, nats, one posterior sample with seed 0, computed as the runtime's score()",
            "classifier_accuracy_percent": evaluation.accuracy,
            "classifier_argmax_agreement_percent": evaluation.agreement,
            "mean_negative_elbo": evaluation.elbo,
        },
        "timing": {
            "cpu": _cpu_name(), "cpu_int8_features": _int8_features(), "threads": 1,
            "load_average_1min": load, "batch_sizes": list(BATCH_SIZES),
            "runs": {str(b): runs[b] for b in BATCH_SIZES}, "warmup": WARMUP_RUNS,
            "statistic": "median milliseconds per call; fp32 and int8 timed in alternating rounds in one process",
            "onnxruntime": ort.__version__,
        },
        "rule": (f"keep an int8 graph only if within budget (classifier accuracy within {BUDGET_ACCURACY_POINTS} points "
                 f"of fp32; encoder/decoder mean negative ELBO within {BUDGET_NATS} nat of fp32) and either faster "
                 f"(int8 latency <= {FASTER:.0%} of fp32 at batch 1 and 64) or much smaller at equal speed (file <= "
                 f"{MUCH_SMALLER:.0%} of fp32 and latency <= {EQUAL_SPEED:.0%} of fp32 at batch 1 and 64); the kept "
                 f"set is also held to the budget together"),
        "graphs": graphs,
        "kept": [int8_paths[n].name for n in kept],
        "together": together,
    }
    if echo is not None:
        echo(table(record))
    return record


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


def _together(fp32: dict[str, ort.InferenceSession], int8: dict[str, ort.InferenceSession], images: np.ndarray,
              labels: np.ndarray, kept: tuple[str, ...], evaluation: Evaluation,
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


def _int8_features() -> list[str]:
    """The x86 flags that decide how fast onnxruntime's int8 kernels are (VNNI, AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in flags if f in ("avx2", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"))


def _load_average() -> float | None:
    """The CPU's load while timing: other work on the machine slows fp32 and int8 alike."""
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


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
