"""Finding the artifacts and trusting them: every byte is checked before onnxruntime sees it.

Order of the folder: the one given, else ``$DIGITVAE_ARTIFACTS``, else the graphs shipped
inside the installed package. The manifest is checked against the spec, every graph's
sha256 and size against the manifest, and the checked bytes (not the file, which could
change in between) are what the sessions are built from.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from . import spec
from .errors import DigitVAEError

ENV_ARTIFACTS = "DIGITVAE_ARTIFACTS"
MAX_GRAPH_BYTES = 64 * 1024 * 1024  # our graphs are a few MB; refuse to hash a huge stray file


class ArtifactError(DigitVAEError):
    """A graph or the manifest is missing, tampered with, or from an incompatible version."""


def expected_io(latent_size: int) -> dict[str, dict[str, list[tuple[str, list[Any]]]]]:
    """What each graph's inputs and outputs must be, by the spec: name and shape."""
    image = [spec.BATCH_AXIS, 1, spec.IMAGE_SIZE, spec.IMAGE_SIZE]
    latent = [spec.BATCH_AXIS, latent_size]
    return {
        "encoder": {"inputs": [("image", image)], "outputs": [("mu", latent), ("logvar", latent)]},
        "classifier": {"inputs": [("image", image)], "outputs": [("logits", [spec.BATCH_AXIS, spec.NUM_CLASSES])]},
        "decoder": {"inputs": [("z", latent), ("digit", [spec.BATCH_AXIS, spec.NUM_CLASSES])], "outputs": [("image", image)]},
    }


@dataclass(frozen=True)
class Artifacts:
    folder: Path
    manifest: dict[str, Any]
    graphs: dict[str, bytes]  # graph name -> verified ONNX bytes
    files: dict[str, str]  # graph name -> file name it came from

    @property
    def latent_size(self) -> int:
        return int(self.manifest["latent_size"])


def resolve_folder(folder: str | os.PathLike[str] | None) -> Path:
    if folder is not None:
        return Path(folder)
    if os.environ.get(ENV_ARTIFACTS):
        return Path(os.environ[ENV_ARTIFACTS])
    return Path(str(resources.files("digitvae.runtime.shipped")))


def graph_file(name: str, precision: str) -> str:
    base = spec.GRAPH_FILES[name]
    return base if precision == "fp32" else base.removesuffix(".onnx") + spec.INT8_SUFFIX


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / spec.MANIFEST_FILE
    if not folder.is_dir():
        raise ArtifactError(f"artifacts folder {folder} does not exist: pass a folder that holds {spec.MANIFEST_FILE} and the graphs")
    try:
        manifest = json.loads(_read_inside(folder, spec.MANIFEST_FILE, 1024 * 1024))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}): restore it from the release") from exc
    check_manifest(manifest, path)
    return manifest


def check_manifest(manifest: Any, path: Path) -> None:
    """The manifest must describe what this version of the runtime was built for."""
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    wanted = {"product": spec.PRODUCT, "format_version": spec.FORMAT_VERSION, "num_classes": spec.NUM_CLASSES,
              "image_size": spec.IMAGE_SIZE}
    for key, value in wanted.items():
        if manifest.get(key) != value:
            raise ArtifactError(f"{path}: '{key}' is {manifest.get(key)!r}, this runtime needs {value!r} (incompatible artifacts)")
    latent = manifest.get("latent_size")
    if not isinstance(latent, int) or isinstance(latent, bool) or latent < spec.MIN_LATENT_SIZE:
        raise ArtifactError(f"{path}: 'latent_size' must be an integer >= {spec.MIN_LATENT_SIZE}, got {latent!r}")
    if not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{path}: 'files' must map file names to their sha256 and size")
    for name in manifest["files"]:
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
            raise ArtifactError(f"{path}: names '{name}', which is not a plain file name inside the artifacts folder: refused")


def _read_inside(folder: Path, name: str, limit: int) -> bytes:
    """Read ``folder/name``, refusing names and symlinks that lead outside the folder."""
    if not name or os.path.basename(name) != name or name in (".", ".."):
        raise ArtifactError(f"the manifest names '{name}', which is not a plain file name inside {folder}")
    path = folder / name
    if path.is_symlink() and path.resolve().parent != folder.resolve():
        raise ArtifactError(f"{path} is a symlink to {path.resolve()}, outside the artifacts folder: refused")
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: restore the artifacts folder (or reinstall digitvae)")
    size = path.stat().st_size
    if size > limit:
        raise ArtifactError(f"{path} is {size} bytes, more than the {limit} expected: refused")
    return path.read_bytes()


def verified_graph(folder: Path, manifest: dict[str, Any], name: str, file: str) -> bytes:
    entry = manifest["files"].get(file)
    if not isinstance(entry, dict) or "sha256" not in entry:
        raise ArtifactError(f"{folder / spec.MANIFEST_FILE} does not list {file}: cannot verify it, refused")
    _check_io(folder / file, name, entry, manifest["latent_size"])
    data = _read_inside(folder, file, MAX_GRAPH_BYTES)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"] or len(data) != entry.get("size"):
        raise ArtifactError(f"{folder / file} does not match the manifest (sha256 {digest[:12]}..., {len(data)} bytes; "
                            f"expected {str(entry['sha256'])[:12]}..., {entry.get('size')} bytes): the file is damaged or was replaced")
    return data


def _check_io(path: Path, name: str, entry: dict[str, Any], latent_size: int) -> None:
    want = expected_io(latent_size)[name]
    for kind in ("inputs", "outputs"):
        got = [(v.get("name"), v.get("shape")) for v in entry.get(kind, []) if isinstance(v, dict)]
        if got != [(n, s) for n, s in want[kind]]:
            raise ArtifactError(f"{path}: manifest lists {kind} {got}, the spec needs {want[kind]} for the {name} graph")


def ships_int8(folder: str | os.PathLike[str] | None = None) -> bool:
    """Does the artifacts folder (resolved as :func:`load_artifacts` does) ship int8 graphs?"""
    return any(f.endswith(spec.INT8_SUFFIX) for f in read_manifest(resolve_folder(folder))["files"])


def load_artifacts(folder: str | os.PathLike[str] | None = None, precision: str = "fp32") -> Artifacts:
    """Read and verify the manifest and the three graphs of the requested precision."""
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    root = resolve_folder(folder)
    manifest = read_manifest(root)
    files = {name: graph_file(name, precision) for name in spec.GRAPH_FILES}
    if precision == "int8":  # only graphs that earned an int8 variant ship one
        files = {n: f if f in manifest["files"] else spec.GRAPH_FILES[n] for n, f in files.items()}
    graphs = {name: verified_graph(root, manifest, name, file) for name, file in files.items()}
    return Artifacts(folder=root, manifest=manifest, graphs=graphs, files=files)
