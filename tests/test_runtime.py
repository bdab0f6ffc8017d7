"""The runtime on the shipped graphs, without torch: golden numbers, the seed's use cases,
strict inputs, tampered artifacts, and thread safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from digitvae.runtime import ArtifactError, DigitVAE
from digitvae.runtime.model import softmax


@pytest.fixture(scope="module")
def golden(shipped_folder):
    with np.load(shipped_folder / "golden.npz") as data:
        return {k: data[k] for k in data.files}


# --- golden numbers -------------------------------------------------------------------


def test_classify_matches_golden(shipped_vae, golden):
    np.testing.assert_allclose(shipped_vae.classify(golden["images"]), softmax(golden["logits"]), atol=1e-5)


def test_encode_matches_golden(shipped_vae, golden):
    mu, logvar = shipped_vae.encode(golden["images"])
    np.testing.assert_allclose(mu, golden["mu"], atol=1e-5)
    np.testing.assert_allclose(logvar, golden["logvar"], atol=1e-5)


def test_decode_matches_golden(shipped_vae, golden):
    np.testing.assert_allclose(shipped_vae.decode(golden["z"], golden["digits"]), golden["decoded"][:, 0], atol=1e-4)


def test_every_accepted_image_layout_gives_the_same_answer(shipped_vae, golden):
    image = golden["images"][0]
    want = shipped_vae.classify(image[None])
    for variant in (image, image[0], image[0][None], (image[0] * 255).round().astype(np.uint8)):
        np.testing.assert_allclose(shipped_vae.classify(variant), want, atol=2e-3)


# --- the seed's use cases ----------------------------------------------------------------


def test_classifies_test_digits(shipped_vae, test_images):
    images, labels = test_images
    assert (shipped_vae.classify(images).argmax(1) == labels).mean() >= 0.99


def test_restyle_draws_every_digit_in_the_same_handwriting(shipped_vae, test_images):
    images, _ = test_images
    for image in images[:5]:
        drawn = shipped_vae.restyle(image, digits=range(10))
        assert drawn.shape == (10, 28, 28) and drawn.dtype == np.float32
        assert (shipped_vae.classify(drawn).argmax(1) == np.arange(10)).sum() >= 9


def test_generate_each_digit(shipped_vae):
    for digit in range(10):
        drawn = shipped_vae.generate(digit, n=20, seed=digit)
        assert drawn.shape == (20, 28, 28) and 0 <= drawn.min() and drawn.max() <= 1
        assert (shipped_vae.classify(drawn).argmax(1) == digit).mean() >= 0.9


def test_image_to_latent_and_back(shipped_vae, test_images):
    images, labels = test_images
    mu, _ = shipped_vae.encode(images[:50])
    again = shipped_vae.decode(mu, labels[:50])
    assert (shipped_vae.classify(again).argmax(1) == labels[:50]).mean() >= 0.95
    recon = shipped_vae.reconstruct(images[:50])
    assert np.abs(recon - images[:50, 0]).mean() < 0.1


def test_sampling_is_seeded(shipped_vae, test_images):
    images, _ = test_images
    np.testing.assert_array_equal(shipped_vae.generate(3, n=4, seed=1), shipped_vae.generate(3, n=4, seed=1))
    assert not np.array_equal(shipped_vae.generate(3, n=4, seed=1), shipped_vae.generate(3, n=4, seed=2))
    np.testing.assert_array_equal(shipped_vae.score(images[:8], seed=5), shipped_vae.score(images[:8], seed=5))


def test_an_images_score_and_verdict_do_not_depend_on_its_batch(shipped_vae, test_images):
    images, _ = test_images
    x = images[:64]
    together = shipped_vae.assess(x)
    backwards = shipped_vae.assess(x[::-1])
    np.testing.assert_allclose(backwards.score[::-1], together.score, rtol=1e-5)
    np.testing.assert_allclose(shipped_vae.score(x[5:6]), together.score[5:6], rtol=1e-5)
    assert (backwards.is_digit[::-1] == together.is_digit).all()


def test_is_digit_accepts_digits_and_rejects_blank(shipped_vae, test_images):
    images, _ = test_images
    assert shipped_vae.is_digit(images).mean() >= 0.98
    blank = np.zeros((20, 28, 28), np.float32)
    assert not shipped_vae.is_digit(blank).any()
    # The measured pitfall: blank crops typically have a *lower* negative ELBO than digits,
    # so the score alone would accept them.
    assert np.median(shipped_vae.score(blank)) < np.median(shipped_vae.score(images[:100]))


# --- bad input ----------------------------------------------------------------------


GOOD = np.zeros((2, 28, 28), np.float32)


@pytest.mark.parametrize("value, error, words", [
    ("not an array", TypeError, "expected a numpy array"),
    (None, TypeError, "expected a numpy array"),
    (np.zeros((2, 28, 27), np.float32), ValueError, "expected shape"),
    (np.zeros((2, 3, 28, 28), np.float32), ValueError, "expected shape"),
    (np.zeros((0, 28, 28), np.float32), ValueError, "empty batch"),
    (np.zeros((2, 28, 28), bool), TypeError, "dtype bool"),
    (np.zeros((2, 28, 28), object), TypeError, "dtype object"),
    (np.full((2, 28, 28), np.nan, np.float32), ValueError, "NaN"),
    (np.full((2, 28, 28), np.inf, np.float32), ValueError, "NaN or infinite"),
    (np.full((2, 28, 28), 2.0, np.float32), ValueError, "in [0, 1]"),
    (np.full((2, 28, 28), -0.5, np.float64), ValueError, "in [0, 1]"),
])
def test_bad_images_are_refused(shipped_vae, value, error, words):
    for call in (shipped_vae.classify, shipped_vae.encode, shipped_vae.reconstruct, shipped_vae.score):
        with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
            call(value)


def test_absurd_batch_is_refused_before_allocating(shipped_vae):
    huge = np.broadcast_to(np.zeros((28, 28), np.float32), (10**6, 28, 28))  # no memory behind it
    with pytest.raises(ValueError, match="larger than the 65536 allowed"):
        shipped_vae.classify(huge)


def test_non_contiguous_and_read_only_inputs_work(shipped_vae, golden):
    images = np.asfortranarray(golden["images"][:4])
    images.setflags(write=False)
    np.testing.assert_allclose(shipped_vae.classify(images), shipped_vae.classify(golden["images"][:4].copy()), atol=1e-6)


@pytest.mark.parametrize("digits, words", [
    (np.array([10, 1]), "digits 0-9"),
    (np.array([-1, 1]), "digits 0-9"),
    (np.array([1]), "expected 2 digits"),
    (np.full((2, 10), 0.5, np.float32), "summing to 1"),
    (np.ones((2, 9), np.float32) / 9, "shape \\(N, 10\\)"),
    (np.array([0.5, 0.5]), "integers 0-9"),
])
def test_bad_digits_are_refused(shipped_vae, digits, words):
    z = np.zeros((2, shipped_vae.latent_size), np.float32)
    with pytest.raises(ValueError, match=words):
        shipped_vae.decode(z, digits)


def test_bad_latents_and_counts_are_refused(shipped_vae):
    with pytest.raises(ValueError, match="expected shape"):
        shipped_vae.decode(np.zeros((2, 3), np.float32), [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        shipped_vae.decode(np.full((1, shipped_vae.latent_size), np.nan, np.float32), [1])
    with pytest.raises(ValueError, match="digits 0-9"):
        shipped_vae.generate(12)
    with pytest.raises(ValueError, match="empty batch"):
        shipped_vae.generate(1, n=0)
    with pytest.raises(TypeError, match="integer"):
        shipped_vae.generate(1, n=2.5)
    with pytest.raises(TypeError, match="seed"):
        shipped_vae.generate(1, seed=-1)
    with pytest.raises(ValueError, match="one image"):
        shipped_vae.restyle(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match="threads"):
        DigitVAE.load(threads=0)


# --- tampered artifacts ------------------------------------------------------------------


def flip_byte(path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("graph", ["encoder.onnx", "decoder.onnx", "classifier.onnx"])
def test_flipped_byte_is_refused_with_the_file_named(artifacts_copy, graph):
    flip_byte(artifacts_copy / graph)
    with pytest.raises(ArtifactError, match=graph.replace(".", r"\.") + " does not match the manifest"):
        DigitVAE.load(artifacts_copy)


def test_truncated_graph_is_refused(artifacts_copy):
    path = artifacts_copy / "decoder.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="decoder.onnx does not match"):
        DigitVAE.load(artifacts_copy)


def test_swapped_graph_is_refused(artifacts_copy):
    (artifacts_copy / "encoder.onnx").write_bytes((artifacts_copy / "classifier.onnx").read_bytes())
    with pytest.raises(ArtifactError, match="encoder.onnx"):
        DigitVAE.load(artifacts_copy)


def test_missing_graph_and_manifest(artifacts_copy):
    (artifacts_copy / "classifier.onnx").unlink()
    with pytest.raises(ArtifactError, match="classifier.onnx is missing"):
        DigitVAE.load(artifacts_copy)
    (artifacts_copy / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        DigitVAE.load(artifacts_copy)


def edit_manifest(folder, change) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_incompatible_manifest_is_refused(artifacts_copy):
    edit_manifest(artifacts_copy, lambda m: m.update(format_version=99))
    with pytest.raises(ArtifactError, match="format_version.*incompatible"):
        DigitVAE.load(artifacts_copy)


def test_manifest_with_thresholds_of_an_older_runtime_is_refused(artifacts_copy):
    edit_manifest(artifacts_copy, lambda m: m["thresholds"].pop("max_joint"))
    with pytest.raises(ArtifactError, match=r"manifest\.json: manifest thresholds are incomplete: no 'max_joint'"):
        DigitVAE.load(artifacts_copy)


def test_edited_hash_in_manifest_is_refused(artifacts_copy):
    edit_manifest(artifacts_copy, lambda m: m["files"]["encoder.onnx"].update(sha256="0" * 64))
    with pytest.raises(ArtifactError, match="encoder.onnx does not match"):
        DigitVAE.load(artifacts_copy)


def test_edited_shapes_in_manifest_are_refused(artifacts_copy):
    edit_manifest(artifacts_copy, lambda m: m.update(latent_size=m["latent_size"] + 1))
    with pytest.raises(ArtifactError, match="the spec needs"):
        DigitVAE.load(artifacts_copy)


def test_manifest_that_is_not_json(artifacts_copy):
    (artifacts_copy / "manifest.json").write_text("{ not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        DigitVAE.load(artifacts_copy)


def test_manifest_naming_a_file_outside_the_folder(artifacts_copy, tmp_path):
    outside = tmp_path / "evil.onnx"
    outside.write_bytes((artifacts_copy / "encoder.onnx").read_bytes())

    def point_outside(m):
        m["files"]["../evil.onnx"] = m["files"]["encoder.onnx"]
    edit_manifest(artifacts_copy, point_outside)
    with pytest.raises(ArtifactError, match=r"'\.\./evil\.onnx', which is not a plain file name"):
        DigitVAE.load(artifacts_copy)


def test_symlink_pointing_elsewhere_is_refused(artifacts_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere.onnx"
    (artifacts_copy / "encoder.onnx").rename(elsewhere)
    os.symlink(elsewhere, artifacts_copy / "encoder.onnx")
    with pytest.raises(ArtifactError, match="symlink"):
        DigitVAE.load(artifacts_copy)


def test_missing_folder_and_environment_variable(tmp_path, monkeypatch):
    with pytest.raises(ArtifactError, match="does not exist"):
        DigitVAE.load(tmp_path / "nothing-here")
    monkeypatch.setenv("DIGITVAE_ARTIFACTS", str(tmp_path / "also-nothing"))
    with pytest.raises(ArtifactError, match="also-nothing"):
        DigitVAE.load()


# --- no torch, no OpenCV; threads ------------------------------------------------------------


def test_runtime_core_runs_where_torch_and_cv2_cannot_be_imported(shipped_folder):
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "cv2"):
                    raise ImportError(f"{{name}} is blocked in this test")
        sys.meta_path.insert(0, Block())
        import numpy as np
        import digitvae.runtime as rt
        vae = rt.DigitVAE.load({str(shipped_folder)!r})
        with np.load({str(shipped_folder / "golden.npz")!r}) as g:
            images = g["images"]
        p = vae.classify(images); mu, lv = vae.encode(images)
        vae.decode(mu, p.argmax(1)); vae.generate(7, n=3, seed=0); vae.reconstruct(images)
        vae.restyle(images[0]); vae.score(images); vae.is_digit(images)
        assert not any(m.split(".")[0] in ("torch", "cv2") for m in sys.modules), "torch or cv2 was imported"
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_one_instance_from_four_threads_gives_the_serial_results(shipped_vae, test_images):
    images, _ = test_images
    chunks = [images[i * 50 : (i + 1) * 50] for i in range(8)]
    calls = [lambda c=c: (shipped_vae.classify(c), shipped_vae.score(c, seed=3), shipped_vae.reconstruct(c)) for c in chunks]
    serial = [call() for call in calls]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda call: call(), calls))
    for want, got in zip(serial, parallel):
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)
