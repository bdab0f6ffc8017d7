"""Where training runs: ``--device`` checked against what this machine has, mixed precision,
determinism and the device's random state.

Every function takes what it decides on as arguments (``Accelerators``), so the rules can be
tested on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, ContextManager

import torch

from digitvae.runtime.errors import DigitVAEError

CHOICES = "auto, cpu, cuda, cuda:N or mps"


class DeviceError(DigitVAEError):
    """--device or --amp asks for something this machine or this torch does not have."""


@dataclass(frozen=True)
class Accelerators:
    """What torch finds here: the number of CUDA GPUs, whether an Apple GPU (MPS) is usable,
    and whether the CUDA GPUs compute in bfloat16."""

    cuda: int = 0
    mps: bool = False
    bf16: bool = False

    @classmethod
    def present(cls) -> "Accelerators":
        cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return cls(cuda=cuda, mps=torch.backends.mps.is_available(), bf16=bool(cuda) and torch.cuda.is_bf16_supported())


def resolve(text: str, local_rank: int | None = None, found: Accelerators | None = None) -> torch.device:
    """``--device`` -> a torch.device. ``local_rank`` is given under torchrun with several
    processes: each then takes the GPU of its LOCAL_RANK (``cuda`` or ``auto``)."""
    found = found if found is not None else Accelerators.present()
    kind, colon, index = text.strip().lower().partition(":")
    if kind == "auto" and not colon:
        kind = "cuda" if found.cuda else "cpu"
    if kind == "cpu" and not colon:
        return torch.device("cpu")
    if kind == "mps" and not colon:
        return _mps(found, local_rank)
    if kind == "cuda" and (not colon or index.isdigit()):
        return _cuda(text, int(index) if colon else None, local_rank, found)
    raise DeviceError(f"unknown --device '{text}': expected {CHOICES}")


def _cuda(text: str, index: int | None, local_rank: int | None, found: Accelerators) -> torch.device:
    if not found.cuda:
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no GPU or driver is visible"
        raise DeviceError(f"--device {text} asks for a CUDA GPU, but torch finds none ({why}): use --device cpu or auto")
    if local_rank is not None:
        if index is not None:
            raise DeviceError(f"--device {text} under torchrun: each process takes the GPU of its LOCAL_RANK, so pass "
                              "--device cuda (choose the GPUs with CUDA_VISIBLE_DEVICES)")
        index = local_rank
        if index >= found.cuda:
            raise DeviceError(f"process with LOCAL_RANK {local_rank} has no GPU: this machine has {found.cuda}; "
                              f"pass --nproc-per-node {found.cuda} or fewer")
    index = index or 0
    if index >= found.cuda:
        raise DeviceError(f"--device {text} asks for GPU {index}, but torch finds {found.cuda} (cuda:0 to cuda:{found.cuda - 1})")
    return torch.device("cuda", index)


def _mps(found: Accelerators, local_rank: int | None) -> torch.device:
    if not found.mps:
        raise DeviceError("--device mps asks for an Apple GPU, but torch finds none: use --device cpu or auto")
    if local_rank is not None:
        raise DeviceError("--device mps cannot train on several processes (torch has no collective backend for MPS): "
                          "use --device cpu under torchrun")
    return torch.device("mps")


def autocast_dtype(device: torch.device, amp: bool, found: Accelerators | None = None) -> torch.dtype | None:
    """The dtype the training step autocasts to: bfloat16 with --amp on CUDA, else None (fp32).
    bf16 keeps fp32's exponent range, so no loss scaling is needed."""
    if not amp:
        return None
    if device.type != "cuda":
        raise DeviceError(f"--amp (bfloat16 autocast) needs a CUDA device, this run is on {device}: leave out --amp")
    found = found if found is not None else Accelerators.present()
    if not found.bf16:
        raise DeviceError(f"--amp needs a GPU that computes in bfloat16, and {device} does not: leave out --amp")
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager[Any]:
    """Mixed precision around the forward pass when ``dtype`` is set; otherwise nothing."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_deterministic(device: torch.device) -> None:
    """Same seed, same result. On the CPU every op is deterministic and any that is not is an
    error; CUDA and MPS lack deterministic kernels for a few ops, which then only warn."""
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
        return
    # cuBLAS needs a fixed workspace to be deterministic; read when its handle is made.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state(device: torch.device) -> torch.Tensor | None:
    """The device's global random state (dropout draws from it); None on the CPU, whose
    state ``torch.get_rng_state`` gives."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    if device.type == "mps":
        return torch.mps.get_rng_state()
    return None


def set_rng_state(device: torch.device, state: torch.Tensor | None) -> None:
    if state is None:
        return
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    elif device.type == "mps":
        torch.mps.set_rng_state(state)
