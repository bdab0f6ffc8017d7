"""Training on a chosen device and on several processes (torchrun, gloo on the loopback):
the rules' CPU-side logic, a two-process run against a one-process run, and bad input."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys

import pytest

from conftest import TINY_RUN, needs_torch, run_cli

pytestmark = needs_torch

RUN_FILES = {"checkpoint.pt", "resume.pt", "metrics.jsonl", "generation.png", "reconstruction.png", "restyle.png"}


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node N -m digitvae.train ARGS`` (stdout and stderr together)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "digitvae.train", *args]
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def train_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitvae.train", *args], capture_output=True, text=True, timeout=600)


def metrics(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def checkpoint_sha256(path) -> str:
    """The weights' fingerprint, computed here from the file: model then judge, by name."""
    import torch

    state = torch.load(path, weights_only=True)
    digest = hashlib.sha256()
    for part in ("model", "judge"):
        for name, tensor in state[part].items():
            digest.update(f"{part}.{name}".encode())
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, mnist):
    """The tiny run of conftest (global batch 32), on two processes."""
    out = tmp_path_factory.mktemp("ddp-run")
    result = torchrun(*TINY_RUN, "--epochs", "1", "--out", str(out))
    assert result.returncode == 0, result.stdout
    return out, result.stdout


# --- two processes ------------------------------------------------------------------------


def test_two_processes_write_one_run_with_agreed_weights(ddp_run):
    out, output = ddp_run
    assert {p.name for p in out.iterdir()} == RUN_FILES  # one checkpoint, one metrics file, no rank-1 leftovers
    assert output.count("epoch  1 (") == 1 and output.count("trained in") == 1  # rank 0 alone reports
    (m,) = metrics(out)
    # Every rank hashed its own weights at the epoch's end and the run stops if they differ;
    # the recorded fingerprint is that of the weights in the checkpoint.
    assert m["weights_sha256"] == checkpoint_sha256(out / "checkpoint.pt")


def test_two_processes_match_one_process_of_the_same_global_batch(ddp_run, tiny_run):
    # Tolerance: the runs share the initial weights but not their random draws or batch-norm
    # batches (16 images per process). On this tiny run, seeds 0-3 gave test -ELBO within 1.3%
    # of the one-process run and accuracy within 0.13, while one-process accuracy alone
    # spread over 0.16 between those seeds (README, "Training on a GPU or on many processes").
    (two,), (one,) = metrics(ddp_run[0]), metrics(tiny_run)
    assert two["test_images"] == one["test_images"]
    for key in ("test_neg_elbo", "train_neg_elbo"):
        assert math.isclose(two[key], one[key], rel_tol=0.03), (key, two[key], one[key])
    assert abs(two["test_accuracy"] - one["test_accuracy"]) <= 0.2
    assert min(two["test_accuracy"], one["test_accuracy"]) > 0.3  # both learnt: chance is 0.1


def test_evaluation_does_not_depend_on_the_number_of_processes(ddp_run):
    # The same weights evaluated by one process, with the thread count the two ranks had
    # (torchrun gives each one), give the very figures the two processes gathered.
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = run_cli("train", "--evaluate", str(ddp_run[0] / "checkpoint.pt"), "--eval-limit", "500", "--json", env=env)
    alone, (gathered,) = json.loads(result.stdout), metrics(ddp_run[0])
    assert alone == {k: gathered[k] for k in alone}


def test_resume_under_torchrun(tmp_path, ddp_run):
    out = tmp_path / "resumed"
    shutil.copytree(ddp_run[0], out)
    result = torchrun(*TINY_RUN, "--epochs", "2", "--out", str(out), "--resume")
    assert result.returncode == 0, result.stdout
    assert [m["epoch"] for m in metrics(out)] == [1, 2]
    assert result.stdout.count("resuming") == 1


def test_resume_with_another_world_size_is_refused(tmp_path, ddp_run):
    out = tmp_path / "resumed"
    shutil.copytree(ddp_run[0], out)
    result = train_module(*TINY_RUN, "--epochs", "2", "--out", str(out), "--resume", "--threads", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "written by 2 process(es) on cpu" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert len(metrics(out)) == 1


# --- bad input ----------------------------------------------------------------------------


def test_more_processes_than_images_is_one_error_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = torchrun("--limit", "1", "--epochs", "1", "--out", str(out))
    assert result.returncode != 0
    # torchrun adds its own report of the failed worker; ours is one line, from rank 0 alone.
    assert result.stdout.count("digitvae train: error: 2 processes but only 1 training image(s)") == 1, result.stdout
    assert not out.exists()


@pytest.mark.parametrize("device, message", [
    ("gpu", "unknown --device 'gpu': expected auto, cpu, cuda, cuda:N or mps"),
    ("cuda:x", "unknown --device 'cuda:x'"),
    ("cuda", "asks for a CUDA GPU, but torch finds none"),
])
def test_bad_device_is_one_line_and_writes_nothing(tmp_path, device, message):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    out = tmp_path / "run"
    result = train_module("--device", device, "--limit", "64", "--epochs", "1", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr
    assert not out.exists()


def test_amp_on_the_cpu_is_refused(tmp_path):
    out = tmp_path / "run"
    result = train_module("--device", "cpu", "--amp", "--limit", "64", "--epochs", "1", "--out", str(out))
    assert result.returncode == 2 and "--amp (bfloat16 autocast) needs a CUDA device" in result.stderr
    assert not out.exists()


def test_module_entry_point_has_the_command_flags():
    module, command = train_module("--help"), run_cli("train", "--help")
    assert module.returncode == 0
    flags = {word for word in command.stdout.split() if word.startswith("--")}
    assert {"--device", "--amp", "--batch-size"} <= flags
    assert flags == {word for word in module.stdout.split() if word.startswith("--")}


# --- the rules, without a GPU or a process group ----------------------------------------------


def test_device_resolution():
    import torch

    from digitvae.train.device import Accelerators, DeviceError, resolve

    none, two = Accelerators(), Accelerators(cuda=2, bf16=True)
    assert resolve("auto", found=none) == torch.device("cpu")
    assert resolve("auto", found=two) == torch.device("cuda", 0)
    assert resolve(" CUDA:1 ", found=two) == torch.device("cuda", 1)
    assert resolve("cuda", local_rank=1, found=two) == torch.device("cuda", 1)  # torchrun: LOCAL_RANK's GPU
    assert resolve("auto", local_rank=1, found=two) == torch.device("cuda", 1)
    assert resolve("cpu", local_rank=3, found=two) == torch.device("cpu")
    assert resolve("mps", found=Accelerators(mps=True)) == torch.device("mps")
    for text, found, local, message in [
        ("cuda:2", two, None, "asks for GPU 2, but torch finds 2 (cuda:0 to cuda:1)"),
        ("cuda", two, 2, "LOCAL_RANK 2 has no GPU: this machine has 2"),
        ("cuda:0", two, 0, "each process takes the GPU of its LOCAL_RANK"),
        ("mps", none, None, "asks for an Apple GPU, but torch finds none"),
        ("mps", Accelerators(mps=True), 0, "cannot train on several processes"),
        ("cpu:0", none, None, "unknown --device 'cpu:0'"),
        ("cuda:-1", two, None, "unknown --device"),
        ("", none, None, "unknown --device ''"),
    ]:
        with pytest.raises(DeviceError, match=message.replace("(", r"\(").replace(")", r"\)")):
            resolve(text, local_rank=local, found=found)


def test_autocast_choice():
    import contextlib

    import torch

    from digitvae.train.device import Accelerators, DeviceError, autocast, autocast_dtype

    cuda = torch.device("cuda", 0)
    assert autocast_dtype(cuda, amp=False) is None and autocast_dtype(torch.device("cpu"), amp=False) is None
    assert autocast_dtype(cuda, amp=True, found=Accelerators(cuda=1, bf16=True)) is torch.bfloat16
    with pytest.raises(DeviceError, match="needs a GPU that computes in bfloat16"):
        autocast_dtype(cuda, amp=True, found=Accelerators(cuda=1, bf16=False))
    with pytest.raises(DeviceError, match="needs a CUDA device"):
        autocast_dtype(torch.device("cpu"), amp=True)
    assert isinstance(autocast(torch.device("cpu"), None), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cpu"), torch.bfloat16), torch.autocast)


def test_world_from_torchrun_environment():
    from digitvae.runtime.errors import DigitVAEError
    from digitvae.train.distributed import World

    assert World.from_env({}) == World(1, 0, 0) and not World.from_env({}).distributed
    world = World.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (world.size, world.rank, world.local_rank, world.distributed, world.is_main) == (4, 3, 1, True, False)
    for env in ({"WORLD_SIZE": "two"}, {"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "0"}):
        with pytest.raises(DigitVAEError):
            World.from_env(env)


def test_global_batch_rule():
    from digitvae.train.distributed import World, WorldError

    assert World(4).batch_share(128, 1000) == 32 and World().batch_share(7, 10) == 7
    with pytest.raises(WorldError, match="must split evenly over 3 processes: pass a multiple of 3"):
        World(3).batch_share(128, 1000)
    with pytest.raises(WorldError, match="4 processes but only 3 training image"):
        World(4).batch_share(128, 3)


@pytest.mark.parametrize("images, batch, size", [(1024, 32, 2), (1000, 64, 4), (513, 12, 3), (50_000, 128, 2)])
def test_shards_cover_the_data_in_the_steps_of_one_process(images, batch, size):
    import torch

    from digitvae.train.distributed import Batches, World

    cpu = torch.device("cpu")
    single = Batches(images, batch, World(), seed=0, device=cpu)
    shards = [Batches(images, batch, World(size, rank), seed=0, device=cpu) for rank in range(size)]
    assert {len(s) for s in shards} == {len(single)} == {math.ceil(images / batch)}  # same schedule length
    epochs = [[b.tolist() for b in s.epoch(3, torch.Generator())] for s in shards]
    for step in zip(*epochs):  # each step: the global batch, split evenly
        assert len({len(b) for b in step}) == 1 and sum(map(len, step)) <= batch
    seen = [i for rank in epochs for b in rank for i in b]
    assert set(seen) == set(range(images)) and len(seen) - images < size  # padding: fewer than one per process
    again = [b.tolist() for b in shards[0].epoch(3, torch.Generator())]
    other = [b.tolist() for b in shards[0].epoch(4, torch.Generator())]
    assert again == epochs[0] and other != epochs[0]  # the order follows (seed, epoch) alone


def test_seed_schedule_gives_each_rank_and_epoch_its_own_streams():
    from digitvae.train.distributed import rank_seeds

    seeds = [rank_seeds(seed, epoch, rank) for seed in (0, 1, -1) for epoch in (1, 2) for rank in (0, 1, 2)]
    flat = [s for pair in seeds for s in pair]
    assert len(set(flat)) == len(flat)
    assert rank_seeds(0, 1, 1) == rank_seeds(0, 1, 1)


def test_ranks_that_disagree_stop_the_run(monkeypatch):
    from digitvae.runtime.errors import DigitVAEError
    from digitvae.train.distributed import World

    world = World(2, 0)
    monkeypatch.setattr(World, "gather", lambda self, mine: {0: "aa", 1: "bb"})
    with pytest.raises(DigitVAEError, match="disagree on the weights"):
        world.agreed("aa", "the weights")
    monkeypatch.setattr(World, "gather", lambda self, mine: {0: "aa", 1: "aa"})
    assert world.agreed("aa", "the weights") == "aa"
