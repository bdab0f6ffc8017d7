"""INT8: static QDQ quantization of the three graphs, measured against fp32 on this CPU.

For each fp32 graph in the staging folder: onnxruntime's ``quant_pre_process`` (symbolic
shape inference, optimisation), then ``quantize_static`` in QDQ format with per-channel
int8 weights, calibrated on training images (the fit split, never the test set). The
decoder is calibrated on what it is fed in use: the fp32 encoder's ``mu`` of those
images with their one-hot labels, posterior samples with the fp32 classifier's
probabilities (what ``score`` feeds it), and draws from the N(0, I) prior with random
digits (what ``generate`` feeds it).

- :class:`Settings`: how the graphs are quantized (recorded in the manifest);
- :func:`calibration_set`: the calibration feeds of each graph;
- :func:`quantize_graph`: one fp32 graph to one checked int8 graph;
- :func:`quantize_all`: the whole step: quantize, measure, keep what earns its place,
  and return the record for the manifest.

The measurements against fp32 (latency, the accuracy budget), the keep/drop rule and its
table are in :mod:`digitvae.export.int8_report`: each int8 graph stays in the folder only
where it earns its place, within budget, and faster, or much smaller at equal speed. The
measurements go into the manifest either way.
"""

from __future__ import annotations

import tempfile
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

from digitvae.data.mnist import Mnist
from digitvae.runtime import spec
from digitvae.runtime.model import softmax

from . import int8_report as report
from . import rewrites
from .errors import ExportError

# --- Calibration constants ----------------------------------------------------------------

# Training images (fit split) the calibration sees: the issue asks for at least 1,000;
# 1,024 is 8 feeds of CALIBRATION_BATCH.
CALIBRATION_SIZE = 1024
# Images per calibration feed. MinMax calibration keeps the global minimum and maximum
# over all feeds, so this bounds the memory of one feed, not the ranges found.
CALIBRATION_BATCH = 128
# Decoder calibration: extra z drawn from the N(0, I) prior, per calibration image (256
# for 1,024), so that the ranges also cover what generate() feeds. With MinMax a range is
# set by its extremes: more draws reach further into the prior's tails and widen the
# ranges, coarsening the int8 grid for the codes of real images.
PRIOR_FRACTION = 0.25


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
    # A Conv on the one-channel input image stays float: onnxruntime's int8 kernel does little
    # with one input channel (the classifier's first conv: 228 us int8 against 40 us float, 10
    # crops), and a ReLU -> MaxPool after it is swapped (they commute) so that conv and pool
    # run in onnxruntime's blocked float layout.
    float_input_convs: bool = True
    # Upsampling ConvTranspose pairs rewritten as a Conv (which runs in int8) and one
    # ConvTranspose (exactly: see digitvae.export.rewrites): the decoder 0.50 -> 0.24 ms.
    phase_conv_transposes: bool = True

    def to_manifest(self) -> dict[str, Any]:
        return {
            "tool": f"onnxruntime.quantization {ort.__version__}: quant_pre_process, then quantize_static",
            "format": "QDQ",
            "activations": self.activation_type.name, "weights": self.weight_type.name,
            "per_channel_weights": self.per_channel, "reduce_range": self.reduce_range,
            "activation_symmetric": self.activation_symmetric,
            "calibration_method": self.calibrate_method.name,
            "float_outputs": self.float_outputs, "float_op_types": list(self.float_op_types),
            "float_input_convs": self.float_input_convs, "phase_conv_transposes": self.phase_conv_transposes,
        }


# What every export uses (each field's default above); a test or an experiment passes others.
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
    rng = np.random.default_rng(report.SEED)
    index = np.sort(rng.choice(len(fit_images), size=size, replace=False))
    x, labels = report.as_images(fit_images[index]), fit_labels[index]

    mu, logvar = report.run(sessions["encoder"], {"image": x})
    probabilities = softmax(report.run(sessions["classifier"], {"image": x})[0])
    eps = rng.standard_normal(mu.shape, dtype=np.float32)
    sampled = (mu + eps * np.exp(0.5 * logvar)).astype(np.float32)
    n_prior = max(1, round(PRIOR_FRACTION * size))
    prior = rng.standard_normal((n_prior, mu.shape[1]), dtype=np.float32)
    prior_digits = report.one_hot(rng.integers(0, spec.NUM_CLASSES, n_prior))
    z = np.concatenate([mu, sampled, prior])
    digit = np.concatenate([report.one_hot(labels), probabilities, prior_digits])

    feeds = {
        "encoder": batches({"image": x}, CALIBRATION_BATCH),
        "classifier": batches({"image": x}, CALIBRATION_BATCH),
        "decoder": batches({"z": z, "digit": digit}, CALIBRATION_BATCH),
    }
    description = {
        "source": (f"MNIST training set, fit split (the first {len(fit_images)} training images; never the "
                   f"validation slice or the test set)"),
        "images": size,
        "selection": f"uniform random sample without replacement, numpy default_rng({report.SEED})",
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
    # The exact rewrites first (they name the image convs to keep float), then what stays float.
    nodes_to_exclude = rewrites.float_input_convs(pre_model) if settings.float_input_convs else []
    if settings.phase_conv_transposes:
        rewrites.phase_conv_transposes(pre_model)
    onnx.save_model(pre_model, str(pre))
    extra = {"ActivationSymmetric": settings.activation_symmetric, "WeightSymmetric": True}
    if settings.float_outputs:
        # No QuantizeLinear after the nodes that produce the graph's outputs: the runtime
        # reads them as float anyway, and an 8-bit grid on pixels near 0 or 1 (or on logvar)
        # costs nats for no speed.
        nodes_to_exclude += [n for n in output_producers(pre_model) if _is_elementwise(pre_model, n)]
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
    runs = dict(report.LATENCY_RUNS if latency_runs is None else latency_runs)
    names = list(spec.GRAPH_FILES)
    fp32_paths = {n: staging / spec.GRAPH_FILES[n] for n in names}
    int8_paths = {n: staging / (spec.GRAPH_FILES[n].removesuffix(".onnx") + spec.INT8_SUFFIX) for n in names}
    missing = [str(p) for p in fp32_paths.values() if not p.is_file()]
    if missing:
        raise ExportError(f"cannot quantize: {', '.join(missing)} missing")

    fp32 = {n: report.session(fp32_paths[n]) for n in names}
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
    int8 = {n: report.session(int8_paths[n]) for n in names}

    # Speed and size, side by side in one run.
    timing = report.time_graphs(fp32, int8, data, names, runs)
    load = report.load_average()
    sizes = {n: (fp32_paths[n].stat().st_size, int8_paths[n].stat().st_size) for n in names}

    # The budget, on the test set (the full one unless a test asks for less).
    limit = len(data.test_images) if test_limit is None else min(test_limit, len(data.test_images))
    test_images, test_labels = data.test_images[:limit], data.test_labels[:limit].astype(np.int64)
    singles = [(n,) for n in names]
    evaluation = report.evaluate(fp32, int8, test_images, test_labels, singles + [tuple(names)])

    graphs = {n: report.judge(n, sizes[n], timing[n], evaluation) for n in names}
    kept = tuple(n for n in names if graphs[n]["decision"] == "keep")
    # The runtime loads every int8 graph that ships at once: hold the set to the budget too.
    together = report.hold_together(fp32, int8, test_images, test_labels, kept, evaluation, graphs)
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
            "cpu": report.cpu_name(), "cpu_int8_features": report.int8_features(), "threads": 1,
            "load_average_1min": load, "batch_sizes": list(report.BATCH_SIZES),
            "runs": {str(b): runs[b] for b in report.BATCH_SIZES}, "warmup": report.WARMUP_RUNS,
            "statistic": "median milliseconds per call; fp32 and int8 timed in alternating rounds in one process",
            "onnxruntime": ort.__version__,
        },
        "rule": report.rule(),
        "graphs": graphs,
        "kept": [int8_paths[n].name for n in kept],
        "together": together,
    }
    if echo is not None:
        echo(report.table(record))
    return record


