"""The training command: a smoke run, its checkpoint, evaluation, resume, and its errors."""

from __future__ import annotations

import json
import os

import pytest

from conftest import TINY_RUN, needs_torch, run_cli

pytestmark = needs_torch


def test_smoke_run_writes_checkpoint_metrics_and_pictures(tiny_run):
    for name in ("checkpoint.pt", "resume.pt", "metrics.jsonl", "generation.png", "reconstruction.png", "restyle.png"):
        assert (tiny_run / name).is_file(), name
    metrics = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1
    m = metrics[0]
    assert m["test_images"] == 500
    assert 0.4 < m["test_accuracy"] <= 1.0  # 1,024 images, one epoch: far above chance (0.1)
    assert 100 < m["test_neg_elbo"] < 600


def test_evaluator_loads_the_checkpoint(tiny_run):
    result = run_cli("train", "--evaluate", str(tiny_run / "checkpoint.pt"), "--eval-limit", "300", "--json")
    figures = json.loads(result.stdout)
    assert figures["test_images"] == 300
    assert set(figures) >= {"test_accuracy", "test_neg_elbo", "test_reconstruction", "test_kl", "generation_accuracy"}


def test_same_seed_same_result(tmp_path, tiny_run):
    out = tmp_path / "again"
    run_cli("train", *TINY_RUN, "--epochs", "1", "--out", str(out))
    first = json.loads((tiny_run / "metrics.jsonl").read_text())
    second = json.loads((out / "metrics.jsonl").read_text())
    for key in ("train_neg_elbo", "test_accuracy", "test_neg_elbo", "generation_accuracy"):
        assert first[key] == second[key], key


def test_resume_continues_from_the_last_epoch(tmp_path, tiny_run):
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(tiny_run, out)
    run_cli("train", *TINY_RUN, "--epochs", "2", "--out", str(out), "--resume")
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_checkpoint_of_another_architecture_is_refused(tmp_path, tiny_run):
    import torch

    state = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    state["model_args"]["vae_hidden"] = 64  # declared architecture no longer fits the weights
    bad = tmp_path / "other.pt"
    torch.save(state, bad)
    result = run_cli("train", "--evaluate", str(bad), check=False)
    assert result.returncode == 2
    assert "do not fit the architecture" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_damaged_checkpoint_is_one_line(tmp_path, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    result = run_cli("train", "--evaluate", str(bad), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "damaged" in result.stderr


def test_missing_checkpoint(tmp_path):
    result = run_cli("train", "--evaluate", str(tmp_path / "nope.pt"), check=False)
    assert result.returncode == 2 and "no checkpoint" in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_non_writable_output(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run_cli("train", "--limit", "64", "--epochs", "1", "--out", str(locked / "run"), check=False)
    assert result.returncode == 2 and "cannot write to the output folder" in result.stderr


def test_output_under_a_file_is_refused(tmp_path):
    # Works for root too: a folder cannot be made below a regular file.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("train", "--limit", "64", "--epochs", "1", "--out", str(blocker / "run"), check=False)
    assert result.returncode == 2 and "cannot write to the output folder" in result.stderr


def test_help_shows_defaults():
    result = run_cli("train", "--help")
    assert "--epochs" in result.stdout and "(default: 30)" in result.stdout
    assert "--flagged-ones" in result.stdout and "(default: 0.25)" in result.stdout


def _extra_folder(root, mnist, per_digit=3):
    import numpy as np

    cv2 = pytest.importorskip("cv2")
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True)
        for k, i in enumerate(np.nonzero(mnist.test_labels == digit)[0][:per_digit]):
            assert cv2.imwrite(str(root / str(digit) / f"{k}.png"), 255 - mnist.test_images[i])  # dark on light
    return root


def test_extra_digits_camera_model_and_flagged_ones_train(tmp_path, mnist):
    extra = _extra_folder(tmp_path / "extra", mnist)
    out = tmp_path / "run"
    run_cli("train", "--limit", "256", "--batch-size", "32", "--eval-limit", "100", "--epochs", "1",
            "--camera", "0.5", "--flagged-ones", "0.5", "--extra", str(extra), "--extra-share", "0.25", "--out", str(out))
    import torch

    config = torch.load(out / "checkpoint.pt", weights_only=False)["config"]
    assert config["extra"] == str(extra) and config["camera"] == 0.5 and config["extra_share"] == 0.25
    assert config["flagged_ones"] == 0.5


@pytest.mark.parametrize("make, message", [
    (lambda root: None, "no such folder"),
    (lambda root: (root / "ten").mkdir(parents=True), "named 0-9"),
    (lambda root: ((root / "3").mkdir(parents=True), (root / "3" / "x.png").write_bytes(b"junk")), "not an image"),
])
def test_bad_extra_folder_stops_before_anything_is_written(tmp_path, make, message):
    root = tmp_path / "extra"
    make(root)
    out = tmp_path / "run"
    result = run_cli("train", "--limit", "64", "--epochs", "1", "--extra", str(root), "--out", str(out), check=False)
    assert result.returncode == 2 and message in result.stderr and "--extra" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_classifier_view_adds_the_extra_share_and_is_the_old_batch_without_it(mnist):
    import torch

    from digitvae.train.augment import augment
    from digitvae.train.config import TrainConfig
    from digitvae.train.train import as_tensors, classifier_view

    x, y = as_tensors(mnist.test_images[:40], mnist.test_labels[:40])
    extra = as_tensors(mnist.test_images[40:50], mnist.test_labels[40:50])
    unflagged = TrainConfig(flagged_ones=0.0)
    plain, labels = classifier_view(x, y, unflagged, torch.Generator().manual_seed(1), None)
    assert torch.equal(plain, augment(x, unflagged.augment, torch.Generator().manual_seed(1))) and torch.equal(labels, y)
    view, labels = classifier_view(x, y, TrainConfig(camera=1.0, extra_share=0.25), torch.Generator().manual_seed(1), extra)
    assert view.shape == (50, 1, 28, 28) and torch.equal(labels[:40], y)
    assert set(labels[40:].tolist()) <= set(extra[1].tolist()) and 0 <= float(view.min()) and float(view.max()) <= 1


def test_a_last_batch_of_one_image_joins_the_batch_before_it():
    import torch

    from digitvae.train.distributed import Batches, World

    cpu = torch.device("cpu")
    single = Batches(1025, 32, World(), seed=0, device=cpu)
    sizes = [len(b) for b in single.epoch(1, torch.Generator())]
    assert len(single) == len(sizes) == 32 and sizes[-1] == 33 and sum(sizes) == 1025
    shards = [Batches(2050, 64, World(2, rank), seed=0, device=cpu) for rank in range(2)]
    steps = [[len(b) for b in s.epoch(1, torch.Generator())] for s in shards]
    assert steps[0] == steps[1] and len(steps[0]) == len(shards[0]) and steps[0][-1] == 33


@pytest.mark.parametrize("flag, value", [("--camera", "1.5"), ("--augment", "-0.1"), ("--extra-share", "0"),
                                         ("--flagged-ones", "2")])
def test_shares_outside_their_range_are_refused(tmp_path, flag, value):
    out = tmp_path / "run"
    result = run_cli("train", "--limit", "64", "--epochs", "1", flag, value, "--out", str(out), check=False)
    assert result.returncode == 2 and f"{flag} " in result.stderr and "expected a share" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
