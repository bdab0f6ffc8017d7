"""Checkpoints that carry their own architecture, so that loading never guesses.

``checkpoint.pt`` holds weights, architecture arguments, training config and metrics: what
export and evaluation need, small enough to commit. ``resume.pt`` adds the optimizer,
schedule and random state that ``--resume`` needs to continue bit-for-bit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.spec import FORMAT_VERSION, PRODUCT

from .model import DigitVAE, Judge, ModelArgs

KIND = f"{PRODUCT}-checkpoint"


class CheckpointError(DigitVAEError):
    """A checkpoint is missing, unreadable, or of another architecture or format."""


def save(path: Path, model: DigitVAE, judge: Judge, config: dict[str, Any], metrics: list[dict[str, Any]],
         extra: dict[str, Any] | None = None) -> None:
    """Write atomically (temporary file, then rename) so a crash never leaves half a file.
    Tensors are moved to the CPU first: export and the runtime never need a GPU."""
    state = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "model_args": model.args.to_dict(),
        "config": config,
        "metrics": metrics,
        "model": model.state_dict(),
        "judge": judge.state_dict(),
        "torch_version": str(torch.__version__),
        **(extra or {}),
    }
    state = to_cpu(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor inside (dicts, lists, tuples) on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


def weights_sha256(model: DigitVAE, judge: Judge) -> str:
    """A fingerprint of the weights and batch-norm statistics, by name, in state-dict order:
    equal on every rank of a distributed run, equal across runs that train alike."""
    digest = hashlib.sha256()
    for prefix, module in (("model", model), ("judge", judge)):
        for name, tensor in module.state_dict().items():
            digest.update(f"{prefix}.{name}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint's dictionary, refusing anything that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train one with 'digitvae train' or pass --checkpoint")
    try:
        # weights_only: a checkpoint is data; never run code from a file.
        # TorchVersion (a str subclass) is admitted for checkpoints written before it was str().
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(f"cannot read checkpoint {path} ({type(exc).__name__}): the file is damaged or not a PyTorch checkpoint") from exc
    if not isinstance(state, dict) or state.get("kind") != KIND:
        raise CheckpointError(f"{path} is not a {PRODUCT} checkpoint (expected kind '{KIND}')")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {state.get('format_version')}, this {PRODUCT} reads version {FORMAT_VERSION}: re-train or use a matching release")
    return state


def load_model(path: str | os.PathLike[str]) -> tuple[DigitVAE, Judge, dict[str, Any]]:
    """Rebuild the model (in eval mode) and the judge from a checkpoint."""
    state = read(path)
    try:
        args = ModelArgs(**state["model_args"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} has architecture arguments this version does not know: {exc}") from exc
    model, judge = DigitVAE(args), Judge()
    for name, module in (("model", model), ("judge", judge)):
        try:
            module.load_state_dict(state[name])
        except (KeyError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{path}: weights do not fit the architecture it declares ({name}): {first}") from exc
    return model.eval(), judge.eval(), state
