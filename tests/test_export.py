"""Export parity: onnxruntime computes what PyTorch computes, on real MNIST test images.

Run on the shipped graphs against the shipped checkpoint (a stale graph fails CI) and on a
fresh export of a freshly trained small model (a broken exporter fails CI).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from conftest import ARTIFACTS, needs_torch, run_cli

pytestmark = needs_torch

BATCH_SIZES = (1, 7, 64)
ATOL_STATS = 1e-5  # logits, mu, logvar (SPEC section 6)
ATOL_PIXELS = 1e-4


def ort_session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_batched(session, feeds: dict[str, np.ndarray], batch: int) -> list[np.ndarray]:
    n = len(next(iter(feeds.values())))
    parts = [session.run(None, {k: v[i : i + batch] for k, v in feeds.items()}) for i in range(0, n, batch)]
    return [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]


def torch_reference(checkpoint: Path, images: np.ndarray, z: np.ndarray, digits: np.ndarray):
    import torch

    from digitvae.train.checkpoint import load_model
    from digitvae.train.model import one_hot

    model, _, _ = load_model(checkpoint)
    with torch.no_grad():
        x = torch.from_numpy(images)
        mu, logvar = model.encoder(x)
        logits = model.classifier(x)
        pixels = model.decoder.decode_image(torch.from_numpy(z), one_hot(torch.from_numpy(digits)))
    return {"mu": mu.numpy(), "logvar": logvar.numpy(), "logits": logits.numpy(), "pixels": pixels.numpy()}


def check_parity(folder: Path, checkpoint: Path, images: np.ndarray) -> dict[str, float]:
    latent = json.loads((folder / "manifest.json").read_text())["latent_size"]
    rng = np.random.default_rng(0)
    z = rng.standard_normal((len(images), latent), dtype=np.float32)
    digits = np.arange(len(images)) % 10  # every digit
    want = torch_reference(checkpoint, images, z, digits)
    encoder, classifier, decoder = (ort_session(folder / f"{n}.onnx") for n in ("encoder", "classifier", "decoder"))
    worst = {"mu": 0.0, "logvar": 0.0, "logits": 0.0, "pixels": 0.0}
    for batch in BATCH_SIZES:
        mu, logvar = run_batched(encoder, {"image": images}, batch)
        (logits,) = run_batched(classifier, {"image": images}, batch)
        (pixels,) = run_batched(decoder, {"z": z, "digit": np.eye(10, dtype=np.float32)[digits]}, batch)
        got = {"mu": mu, "logvar": logvar, "logits": logits, "pixels": pixels}
        for key in worst:
            worst[key] = max(worst[key], float(np.abs(got[key] - want[key]).max()))
        assert np.array_equal(logits.argmax(1), want["logits"].argmax(1)), f"argmax differs at batch {batch}"
    for key in ("mu", "logvar", "logits"):
        assert worst[key] <= ATOL_STATS, f"{key}: largest difference {worst[key]:.2e} > {ATOL_STATS}"
    assert worst["pixels"] <= ATOL_PIXELS, f"pixels: largest difference {worst['pixels']:.2e} > {ATOL_PIXELS}"
    return worst


def test_shipped_graphs_match_shipped_checkpoint(shipped_folder, test_images):
    checkpoint = ARTIFACTS / "checkpoint.pt"
    assert checkpoint.is_file(), "artifacts/checkpoint.pt is missing from the repository"
    worst = check_parity(shipped_folder, checkpoint, test_images[0])
    print("largest differences, shipped graphs vs checkpoint:", worst)


def test_fresh_export_matches_fresh_model(tiny_artifacts, tiny_run, test_images):
    check_parity(tiny_artifacts, tiny_run / "checkpoint.pt", test_images[0])


def test_graphs_are_single_checked_files_with_metadata(tiny_artifacts):
    import onnx

    from digitvae.runtime import spec

    assert not list(tiny_artifacts.glob("*.onnx.data")) and not list(tiny_artifacts.glob(".export-*"))
    for name, file in spec.GRAPH_FILES.items():
        model = onnx.load(str(tiny_artifacts / file))
        onnx.checker.check_model(model, full_check=True)
        props = {p.key: p.value for p in model.metadata_props}
        assert props["product"] == "digitvae" and props["graph"] == name and "pixel_contract" in props
        assert all(v.type.tensor_type.shape.dim[0].dim_param == "batch" for v in [*model.graph.input, *model.graph.output])
        assert not any(n.op_type in ("RandomNormal", "RandomNormalLike", "RandomUniform") for n in model.graph.node)


def test_manifest_describes_the_files(tiny_artifacts):
    manifest = json.loads((tiny_artifacts / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        data = (tiny_artifacts / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    assert manifest["files"]["encoder.onnx"]["outputs"][0] == {"name": "mu", "dtype": "float32", "shape": ["batch", 16]}
    assert {"features", "mean", "covariance", "floors", "max_distance", "method"} <= set(manifest["thresholds"])
    assert "validation" in manifest["thresholds"]["method"]
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest["versions"])
    assert manifest["training"]["config"]["limit"] == 1024


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def test_failed_export_leaves_previous_artifacts_untouched(tmp_path, tiny_run, tiny_artifacts):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(tiny_artifacts, out)
    before = hashes(out)
    result = run_cli("export", "--checkpoint", str(tiny_run / "checkpoint.pt"), "--out", str(out), "--opset", "5", check=False)
    assert result.returncode == 2 and "opset 5" in result.stderr and "Traceback" not in result.stderr
    assert hashes(out) == before
    assert not list(out.glob(".export-*"))


def test_export_errors_are_one_line(tmp_path, tiny_run):
    missing = run_cli("export", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o"), check=False)
    assert missing.returncode == 2 and "no checkpoint" in missing.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = run_cli("export", "--checkpoint", str(tiny_run / "checkpoint.pt"), "--out", str(blocker / "o"), check=False)
    assert unwritable.returncode == 2 and "cannot write to the output folder" in unwritable.stderr


def test_a_bad_calibration_folder_stops_the_export_before_anything_is_written(tmp_path, tiny_run):
    out = tmp_path / "o"
    result = run_cli("export", "--checkpoint", str(tiny_run / "checkpoint.pt"), "--out", str(out),
                     "--calibrate-extra", str(tmp_path / "missing"), check=False)
    assert result.returncode == 2 and "no such folder" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_calibration_digits_are_mnist_camera_copies_and_extra_digits(mnist):
    from digitvae.export.export import calibration_digits

    validation = len(mnist.validation_split()[0])
    plain, said = calibration_digits(mnist)
    assert plain.shape == (validation, 28, 28) and said == f"{validation} MNIST validation digits"
    extra = (np.full((3, 28, 28), 255, np.uint8), "crops")
    images, said = calibration_digits(mnist, camera_share=0.1, extra=extra)
    photographed = int(round(0.1 * validation))
    assert images.shape == (validation + photographed + 3, 28, 28) and images.dtype == np.float32
    assert said == f"{validation} MNIST validation digits, {photographed} of them through the camera model, 3 digits of crops"
    np.testing.assert_array_equal(images[:validation], plain)
    assert not np.allclose(images[validation:validation + photographed], plain[:photographed])  # changed by the model
    assert (images[-3:] == 1.0).all() and 0 <= images.min() and images.max() <= 1
