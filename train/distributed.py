"""Training on several processes, as torchrun starts them: DistributedDataParallel with gloo
on CPUs and NCCL on GPUs.

Rules (README, "Training on a GPU or on many processes"):

* ``--batch-size`` is the global batch: each of the W processes takes ``batch_size / W``
  images per step, so the step count, the learning-rate schedule and the averaged gradient
  are those of one process with the same batch. W must divide the batch.
* Seed schedule: the model is initialised from ``--seed`` (rank 0's weights, which DDP
  broadcasts); each epoch's order is DistributedSampler's, seeded with ``--seed`` and the
  epoch; every other draw (augmentation, outliers, noise, dropout) comes from streams seeded
  with (seed, epoch, rank). A run is reproducible for a given world size, and resume needs
  no random state.
* Rank 0 alone writes; the figures are computed shard by shard and gathered, so every rank
  holds the same ones.

Without torchrun (or with one process) none of this runs: training is what it always was.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DistributedSampler, TensorDataset

from digitvae.runtime.errors import DigitVAEError

from .device import autocast_dtype, resolve


class WorldError(DigitVAEError):
    """A distributed run's settings are wrong in a way every rank finds alike: rank 0 alone reports it."""


@dataclass(frozen=True)
class World:
    """This process's place among those torchrun started (one process: size 1, rank 0)."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0  # index on this machine: picks the GPU

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "World":
        names = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
        try:
            size, rank, local = (int(env.get(name, default)) for name, default in zip(names, ("1", "0", "0")))
        except ValueError as exc:
            raise DigitVAEError(f"torchrun's {'/'.join(names)} must be integers, got {[env.get(n) for n in names]}") from exc
        if size < 1 or not 0 <= rank < size or local < 0:
            raise DigitVAEError(f"torchrun's environment is inconsistent: WORLD_SIZE {size}, RANK {rank}, LOCAL_RANK {local}")
        return cls(size, rank, local)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def batch_share(self, batch_size: int, images: int) -> int:
        """Images per process per step, for a global batch of ``batch_size``."""
        if images < self.size:
            raise WorldError(f"{self.size} processes but only {images} training image(s): each process needs at least one; "
                             f"start at most {images} processes or train on more images")
        if batch_size < 1 or batch_size % self.size:
            raise WorldError(f"--batch-size {batch_size} is the global batch and must split evenly over {self.size} "
                             f"processes: pass a multiple of {self.size}")
        return batch_size // self.size

    def owns(self, index: int) -> bool:
        """Round-robin sharding of numbered pieces of work."""
        return index % self.size == self.rank

    def gather(self, mine: dict[int, Any]) -> dict[int, Any]:
        """Every rank's pieces (keyed by their index), on every rank."""
        if not self.distributed:
            return mine
        parts: list[dict[int, Any]] = [{} for _ in range(self.size)]
        dist.all_gather_object(parts, mine)
        return {k: v for part in parts for k, v in part.items()}

    def from_main(self, read: Callable[[], Any]) -> Any:
        """``read()`` on rank 0, its result on every rank (files live on rank 0's machine)."""
        if not self.distributed:
            return read()
        box = [read() if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def once_per_machine(self, load: Callable[[], Any]) -> Any:
        """``load()`` on each machine's first process, then on the others, so that only one
        process at a time fills a cache on disk."""
        if not self.distributed:
            return load()
        first = load() if self.local_rank == 0 else None
        dist.barrier()
        return first if self.local_rank == 0 else load()

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """DDP around the whole training step (see ``train.Objective``). Every parameter gets
        a gradient every step, so unused-parameter search stays off; batch norm keeps
        per-process statistics, with rank 0's buffers broadcast at each step (DDP's default)."""
        if not self.distributed:
            return module
        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    def sync_buffers(self, module: nn.Module) -> None:
        """Rank 0's batch-norm statistics to every rank, as DDP does before each step, so that
        evaluation and the checkpoint see one model."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def agreed(self, value: str, what: str) -> str:
        """``value`` if every rank holds the same one; otherwise a bug, stopped here."""
        values = self.gather({self.rank: value})
        if len(set(values.values())) > 1:
            raise DigitVAEError(f"the processes disagree on {what}: {values}")
        return value


def rank_seeds(seed: int, epoch: int, rank: int) -> tuple[int, int]:
    """This rank's seeds for this epoch: (the training generator's, dropout's). Independent
    streams derived from one --seed (numpy's SeedSequence mixes the three numbers)."""
    first, second = np.random.SeedSequence([seed % 2**64, epoch, rank]).generate_state(2, dtype=np.uint64)
    return int(first), int(second)


class Batches:
    """Index batches of the training set for one epoch, on ``device``.

    One process: a permutation from the training generator, as it always was. Several:
    DistributedSampler's shard of a permutation seeded with (seed, epoch), in batches of
    the process's share of the global batch."""

    def __init__(self, images: int, batch_size: int, world: World, seed: int, device: torch.device) -> None:
        self.images, self.world, self.device = images, world, device
        self.share = world.batch_share(batch_size, images)
        self.sampler = None
        if world.distributed:
            self.sampler = DistributedSampler(TensorDataset(torch.arange(images)), num_replicas=world.size,
                                              rank=world.rank, shuffle=True, seed=seed, drop_last=False)

    def __len__(self) -> int:
        shard = len(self.sampler) if self.sampler is not None else self.images
        return -(-shard // self.share) - (shard > self.share and shard % self.share == 1)

    def epoch(self, epoch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        if self.sampler is None:
            batches = list(torch.randperm(self.images, generator=generator, device=self.device).split(self.share))
        else:
            self.sampler.set_epoch(epoch)
            batches = [torch.tensor(i, device=self.device) for i in BatchSampler(self.sampler, self.share, drop_last=False)]
        # Batch norm cannot train on one image: a last batch of one joins the batch before it
        # (every process's shard has the same length, so all of them do it together).
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches[-2:] = [torch.cat(batches[-2:])]
        yield from batches


@contextmanager
def session(world: World, device_text: str, amp: bool = False) -> Iterator[torch.device]:
    """This process's device, inside a process group when torchrun started several. The
    device and --amp are checked first, so that a bad one stops every process at once."""
    device = resolve(device_text, world.local_rank if world.distributed else None)
    autocast_dtype(device, amp)
    if not world.distributed:
        yield device
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    try:
        yield device
    finally:
        dist.destroy_process_group()
