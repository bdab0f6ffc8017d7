"""Optional dependencies, imported on demand with a one-line install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

# module name -> (what needs it, the extra that installs it)
_EXTRAS = {
    "cv2": "camera",
    "torch": "train",
    "onnx": "train",
    "onnxscript": "train",
    "tqdm": "train",
}


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message says how to install it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ``MissingDependency`` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module, "dev")
        raise MissingDependency(
            f"{purpose} needs the Python module '{module}', which is not installed: "
            f"pip install 'digitvae[{extra}]'"
        ) from exc
