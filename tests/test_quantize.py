"""INT8 quantization and the ORT format, on a fresh export of the tiny model.

Fast: a 64-image calibration set, the budget evaluated on 200 test images instead of
10,000, and a handful of timed calls. The full measurement runs in ``digitvae export
--int8`` and lands in the manifest; here we check that the machinery produces graphs that
onnxruntime loads and that compute what the fp32 graphs compute, that the keep/drop rule
does what it says, and that the ORT-format files load and match.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_torch

pytestmark = needs_torch

CALIBRATION = 64
TEST_LIMIT = 200
QUICK_RUNS = {1: 5, 64: 2}
NAMES = ("encoder", "decoder", "classifier")


def fp32_copy(source: Path, target: Path) -> Path:
    """The three fp32 graphs only, as the exporter's staging folder holds them."""
    from digitvae.runtime import spec

    target.mkdir()
    for file in spec.GRAPH_FILES.values():
        shutil.copy2(source / file, target / file)
    return target


def sessions(folder: Path, suffix: str) -> dict:
    from digitvae.export.int8_report import session

    return {n: session(folder / f"{n}{suffix}") for n in NAMES}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny_artifacts, mnist) -> Path:
    """Every graph quantized (no keep/drop decision): fp32 and int8 side by side."""
    import tempfile

    from digitvae.export import quantize

    folder = fp32_copy(tiny_artifacts, tmp_path_factory.mktemp("quantized") / "graphs")
    calibration = quantize.calibration_set(sessions(folder, ".onnx"), mnist, CALIBRATION)
    with tempfile.TemporaryDirectory() as work:
        for name in NAMES:
            quantize.quantize_graph(folder / f"{name}.onnx", folder / f"{name}.int8.onnx", calibration.feeds[name],
                                    quantize.DEFAULT_SETTINGS, Path(work))
    return folder


def test_int8_graphs_are_checked_quantized_files_with_the_same_interface(quantized):
    import onnx

    for name in NAMES:
        fp32, int8 = (onnx.load(str(quantized / f"{name}{s}")) for s in (".onnx", ".int8.onnx"))
        onnx.checker.check_model(int8, full_check=True)
        ops = {n.op_type for n in int8.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops, f"{name}: no QDQ nodes"
        assert [(v.name, v.type) for v in int8.graph.input] == [(v.name, v.type) for v in fp32.graph.input]
        assert [(v.name, v.type) for v in int8.graph.output] == [(v.name, v.type) for v in fp32.graph.output]
        props = {p.key: p.value for p in int8.metadata_props}
        assert props["graph"] == name and props["precision"] == "int8" and props["product"] == "digitvae"
        assert (quantized / f"{name}.int8.onnx").stat().st_size < 0.5 * (quantized / f"{name}.onnx").stat().st_size
        # Per-channel weights: some DequantizeLinear carries a vector of scales.
        scales = {i.name: i for i in int8.graph.initializer}
        assert any(len(scales[n.input[1]].dims) == 1 and scales[n.input[1]].dims[0] > 1
                   for n in int8.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in scales)
        # The conv on the one-channel image stays float, read straight from the input.
        if name != "decoder":
            assert [n.op_type for n in int8.graph.node if "image" in n.input] == ["Conv"]
        else:  # the first upsampler became a conv that runs in int8; one ConvTranspose is left, float
            assert [n.op_type for n in int8.graph.node].count("ConvTranspose") == 1


def test_float_input_convs_keeps_the_image_conv_float_and_swaps_relu_and_pool_exactly():
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from digitvae.export.rewrites import float_input_convs

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w1", (4, 1, 3, 3)), ("w2", (2, 4, 3, 3)))]
    nodes = [helper.make_node("Conv", ["image", "w1"], ["a"], name="first", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("MaxPool", ["b"], ["c"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["c", "w2"], ["out"], name="second", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 1, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 2, 4, 4])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.random((3, 1, 8, 8), dtype=np.float32)

    def output(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]

    before = output(model)
    assert float_input_convs(model) == ["first"]  # the second conv reads four channels: quantized as usual
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Conv", "MaxPool", "Relu", "Conv"]
    np.testing.assert_array_equal(output(model), before)


def test_phase_conv_transposes_computes_what_the_convtranspose_pair_did():
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from digitvae.export.rewrites import phase_conv_transposes

    rng = np.random.default_rng(0)
    arrays = {"w1": (6, 4, 4, 4), "b1": (4,), "w2": (4, 1, 4, 4), "b2": (1,)}
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), n) for n, shape in arrays.items()]
    up = dict(kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])
    nodes = [helper.make_node("ConvTranspose", ["x", "w1", "b1"], ["a"], name="up1", **up),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("ConvTranspose", ["b", "w2", "b2"], ["y"], name="up2", **up)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 6, 7, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1, 28, 28])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = rng.standard_normal((3, 6, 7, 7)).astype(np.float32)

    def output(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    before = output(model)
    assert phase_conv_transposes(model) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu", "ConvTranspose"]
    assert {t.name for t in model.graph.initializer} >= {"b2"} and "w1" not in {t.name for t in model.graph.initializer}
    np.testing.assert_allclose(output(model), before, rtol=1e-5, atol=1e-5)
    assert phase_conv_transposes(model) == 0  # nothing left to rewrite


def test_int8_outputs_are_close_to_fp32(quantized, test_images, mnist):
    from digitvae.export.int8_report import evaluate, run

    images, labels = test_images[0][:TEST_LIMIT], test_images[1][:TEST_LIMIT]
    fp32, int8 = sessions(quantized, ".onnx"), sessions(quantized, ".int8.onnx")
    (a,), (b,) = run(fp32["classifier"], {"image": images}), run(int8["classifier"], {"image": images})
    agreement = np.mean(a.argmax(1) == b.argmax(1))
    assert agreement >= 0.95, f"int8 and fp32 classifier agree on only {agreement:.1%} of {TEST_LIMIT} test images"
    mu, logvar = run(fp32["encoder"], {"image": images})
    mu8, logvar8 = run(int8["encoder"], {"image": images})
    assert np.abs(mu8 - mu).max() <= 0.1 * max(1.0, np.abs(mu).max())
    assert np.abs(logvar8 - logvar).max() <= 0.1 * max(1.0, np.abs(logvar).max())
    z = np.random.default_rng(1).standard_normal(mu.shape, dtype=np.float32)
    digit = np.eye(10, dtype=np.float32)[np.arange(len(z)) % 10]
    (p,), (p8,) = run(fp32["decoder"], {"z": z, "digit": digit}), run(int8["decoder"], {"z": z, "digit": digit})
    assert p8.min() >= 0.0 and p8.max() <= 1.0 and np.abs(p8 - p).mean() < 0.01
    # The score, as the runtime computes it: within a nat or two on this small slice.
    result = evaluate(fp32, int8, mnist.test_images[:TEST_LIMIT], labels, [(n,) for n in NAMES])
    for name in ("encoder", "decoder"):
        assert abs(result.elbo[f"{name} int8"] - result.elbo["fp32"]) < 2.0, result.elbo


@pytest.fixture(scope="module")
def record(tmp_path_factory, tiny_artifacts, mnist) -> tuple[Path, dict]:
    from digitvae.export.quantize import quantize_all

    folder = fp32_copy(tiny_artifacts, tmp_path_factory.mktemp("record") / "staging")
    result = quantize_all(folder, mnist, calibration_size=CALIBRATION, test_limit=TEST_LIMIT, latency_runs=QUICK_RUNS,
                          echo=None)
    return folder, result


def test_quantize_all_keeps_only_what_it_records(record):
    folder, result = record
    json.dumps(result)  # goes into manifest.json as it is
    kept = {g["int8_file"] for g in result["graphs"].values() if g["decision"] == "keep"}
    assert set(result["kept"]) == kept
    assert {p.name for p in folder.glob("*.int8.onnx")} == kept
    assert {p.name for p in folder.iterdir()} == kept | {f"{n}.onnx" for n in NAMES}  # no stray files
    for name, graph in result["graphs"].items():
        assert graph["decision"] in ("keep", "drop") and graph["reason"]
        assert graph["fp32_bytes"] == (folder / f"{name}.onnx").stat().st_size
        assert 0 < graph["int8_bytes"] < graph["fp32_bytes"]
        for precision in ("fp32", "int8"):
            assert set(graph["latency_ms"][precision]) == {"batch_1", "batch_64"}
            assert all(v > 0 for v in graph["latency_ms"][precision].values())
        assert "within" in graph["budget"]
    assert result["calibration"]["images"] == CALIBRATION
    assert sum(result["calibration"]["labels_per_digit"]) == CALIBRATION
    assert "fit split" in result["calibration"]["source"]
    assert result["evaluation"]["data"] == f"MNIST test set, first {TEST_LIMIT} images"
    assert result["settings"]["format"] == "QDQ" and result["settings"]["per_channel_weights"] is True


def test_shipping_defaults_follow_the_issue():
    from digitvae.export import int8_report, quantize

    assert quantize.CALIBRATION_SIZE >= 1000
    assert int8_report.BUDGET_ACCURACY_POINTS == 0.1 and int8_report.BUDGET_NATS == 1.0
    assert int8_report.BATCH_SIZES == (1, 64)


def judged(name: str, *, fp32_ms=(1.0, 10.0), int8_ms=(1.0, 10.0), size=(1000, 300), elbo_delta=0.0,
           accuracy=(98.0, 98.0)) -> dict:
    from digitvae.export.int8_report import Evaluation, judge

    timing = {"fp32": dict(zip((1, 64), fp32_ms)), "int8": dict(zip((1, 64), int8_ms))}
    elbos = {"fp32": 100.0, f"{name} int8": 100.0 + elbo_delta, "classifier int8": 100.0}
    evaluation = Evaluation(images=10_000, accuracy={"fp32": accuracy[0], "int8": accuracy[1]}, agreement=99.9,
                            elbo=elbos)
    return judge(name, size, timing, evaluation)


def test_the_rule():
    assert judged("encoder", int8_ms=(0.5, 5.0), size=(1000, 1000))["decision"] == "keep"  # faster
    assert judged("decoder", int8_ms=(1.05, 10.5))["decision"] == "keep"  # 3.3x smaller, equal speed
    assert judged("decoder", int8_ms=(1.05, 10.5), size=(1000, 600))["decision"] == "drop"  # not much smaller
    assert judged("decoder", int8_ms=(1.3, 13.0))["decision"] == "drop"  # smaller but slower
    assert judged("encoder", int8_ms=(0.5, 5.0), elbo_delta=1.2)["decision"] == "drop"  # over budget
    assert judged("encoder", int8_ms=(0.5, 5.0), elbo_delta=-1.2)["decision"] == "drop"
    assert judged("classifier", int8_ms=(0.5, 5.0), accuracy=(98.0, 97.9))["decision"] == "keep"  # 0.1 is within
    assert judged("classifier", int8_ms=(0.5, 5.0), accuracy=(98.0, 97.89))["decision"] == "drop"


# --- ORT format ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory, quantized) -> tuple[Path, list[Path]]:
    from digitvae.export.ort_format import convert

    folder = tmp_path_factory.mktemp("ort") / "graphs"
    shutil.copytree(quantized, folder)
    return folder, convert(folder)


def test_ort_format_files_and_operator_config(converted):
    folder, written = converted
    onnx_files = sorted(p.name for p in folder.glob("*.onnx"))
    expected = {n.removesuffix(".onnx") + ".ort" for n in onnx_files} | {"required_operators.config"}
    assert {p.name for p in written} == expected
    assert {p.name for p in folder.iterdir()} == expected | set(onnx_files)  # nothing else left behind
    config = (folder / "required_operators.config").read_text()
    assert "/tmp" not in config and "digitvae-ort-" not in config
    ops = [line for line in config.splitlines() if line and not line.startswith("#")]
    assert any(line.startswith("ai.onnx;") and "Gemm" in line for line in ops)
    assert any("QuantizeLinear" in line or "QLinear" in line or "QGemm" in line for line in ops)


def test_ort_files_load_and_match_the_onnx_graphs(converted, test_images):
    import onnxruntime as ort

    folder, _ = converted
    images = test_images[0][:64]
    z = np.random.default_rng(2).standard_normal((64, 16), dtype=np.float32)
    digit = np.eye(10, dtype=np.float32)[np.arange(64) % 10]
    for onnx_path in sorted(folder.glob("*.onnx")):
        reference = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        ort_file = ort.InferenceSession(str(onnx_path.with_suffix(".ort")), providers=["CPUExecutionProvider"])
        feeds = {"z": z, "digit": digit} if onnx_path.name.startswith("decoder") else {"image": images}
        for want, got in zip(reference.run(None, feeds), ort_file.run(None, feeds)):
            assert np.allclose(got, want, rtol=1e-5, atol=1e-5), f"{onnx_path.name}: {np.abs(got - want).max():.2e}"


def test_ort_conversion_refuses_an_empty_folder(tmp_path):
    from digitvae.export.errors import ExportError
    from digitvae.export.ort_format import convert

    with pytest.raises(ExportError, match="no .onnx graphs"):
        convert(tmp_path)


# --- Through the exporter -------------------------------------------------------------------


def test_export_int8_ort_lists_everything_and_the_runtime_loads_it(tmp_path, tiny_run, mnist, monkeypatch):
    """``run_export(int8=True, ort_format=True)``: the manifest lists the kept int8 graphs and
    the ORT files with their hashes, records the measurements, and ``DigitVAE.load(...,
    precision="int8")`` runs. The rule is relaxed here so that the plumbing is tested, not
    this machine's timing on a tiny slice."""
    from digitvae.export import int8_report, quantize
    from digitvae.export.export import run_export
    from digitvae.runtime import DigitVAE

    monkeypatch.setattr(quantize, "quantize_all", functools.partial(
        quantize.quantize_all, calibration_size=CALIBRATION, test_limit=TEST_LIMIT, latency_runs=QUICK_RUNS, echo=None))
    monkeypatch.setattr(int8_report, "EQUAL_SPEED", 1e9)  # any speed counts as equal ...
    monkeypatch.setattr(int8_report, "BUDGET_ACCURACY_POINTS", 100.0)  # ... and the tiny model is within budget
    monkeypatch.setattr(int8_report, "BUDGET_NATS", 1e9)
    out = tmp_path / "out"
    run_export(tiny_run / "checkpoint.pt", out, mnist, int8=True, ort_format=True)
    manifest = json.loads((out / "manifest.json").read_text())
    files = manifest["files"]
    assert {f"{n}.int8.onnx" for n in NAMES} <= set(files)
    assert {f"{n}.int8.ort" for n in NAMES} | {f"{n}.ort" for n in NAMES} | {"required_operators.config"} <= set(files)
    assert all(files[f"{n}.int8.onnx"]["precision"] == "int8" for n in NAMES)
    assert files["encoder.ort"]["role"] == "ort-format"
    assert set(manifest["quantization"]["graphs"]) == set(NAMES)
    assert {p.name for p in out.iterdir()} == set(files) | {"manifest.json"}
    vae = DigitVAE.load(out, precision="int8", threads=1)
    assert vae.artifacts.files == {n: f"{n}.int8.onnx" for n in NAMES}
    probabilities = vae.classify(mnist.test_images[:20])
    assert probabilities.shape == (20, 10) and np.allclose(probabilities.sum(1), 1.0, atol=1e-5)
    assert vae.score(mnist.test_images[:20]).shape == (20,)
