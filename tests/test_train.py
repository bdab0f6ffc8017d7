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
    assert "--epochs" in result.stdout and "(default: 20)" in result.stdout
