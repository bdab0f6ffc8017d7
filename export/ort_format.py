"""``digitvae export --ort``: the graphs in ORT format, for embedded (reduced) onnxruntime builds.

onnxruntime's own converter (``python -m onnxruntime.tools.convert_onnx_models_to_ort``)
turns every ``.onnx`` graph in the folder into ``<name>.ort`` and writes
``required_operators.config``, the operator list that a reduced build takes through
``build.sh --minimal_build --include_ops_by_config required_operators.config``.

The conversion runs in a private temporary folder (the converter may leave work files
beside its input), in the "Fixed" optimisation style with no target platform, so the
saved graphs carry no x86-only layout (NCHWc) and run on any CPU. Each ``.ort`` file is
then loaded by onnxruntime and checked against its ``.onnx`` source on the same inputs
before it is moved into the folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from digitvae.runtime import spec

from .errors import ExportError

CONFIG_FILE = "required_operators.config"
CONVERTER = "onnxruntime.tools.convert_onnx_models_to_ort"
CHECK_BATCH = 16
# Relative to the output's largest magnitude. int8 graphs come out bit-identical; fp32 ones
# differ by float rounding only, because the .onnx session may pick x86's NCHWc layout.
TOLERANCE = 1e-5


def convert(folder: Path) -> list[Path]:
    """Write ``<graph>.ort`` for every ``.onnx`` graph in ``folder`` (int8 variants too) and
    ``required_operators.config``; return the files written."""
    folder = Path(folder)
    graphs = sorted(p for p in folder.iterdir() if p.suffix == ".onnx" and p.is_file())
    if not graphs:
        raise ExportError(f"no .onnx graphs in {folder} to convert to ORT format")
    wanted = [p.with_suffix(".ort").name for p in graphs] + [CONFIG_FILE]
    with tempfile.TemporaryDirectory(prefix="digitvae-ort-") as work:
        source, target = Path(work) / "onnx", Path(work) / "ort"
        source.mkdir()
        for path in graphs:
            shutil.copy2(path, source / path.name)
        command = [sys.executable, "-m", CONVERTER, str(source), "--output_dir", str(target),
                   "--optimization_style", "Fixed"]
        result = subprocess.run(command, capture_output=True, text=True, cwd=work)
        if result.returncode != 0:
            lines = [line for line in (result.stderr + result.stdout).strip().splitlines() if line.strip()]
            raise ExportError(f"ORT-format conversion failed: {lines[-1] if lines else f'exit status {result.returncode}'}")
        missing = [name for name in wanted if not (target / name).is_file()]
        if missing:
            raise ExportError(f"ORT-format conversion did not write {', '.join(missing)}")
        for path in graphs:
            check_same_outputs(path, target / path.with_suffix(".ort").name)
        written = []
        _portable_header(target / CONFIG_FILE)
        for name in wanted:  # only what we asked for: anything else the converter wrote stays behind
            shutil.move(str(target / name), str(folder / name))
            written.append(folder / name)
    return written


def _portable_header(config: Path) -> None:
    """The converter lists the models it read by their temporary paths; keep the file names,
    so that the config is the same from one export to the next."""
    lines = []
    for line in config.read_text().splitlines():
        if line.startswith("# - "):
            line = "# - " + Path(line[4:].strip()).name
        lines.append(line)
    config.write_text("\n".join(lines) + "\n")


def _session(model: Path | bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def check_inputs(session: ort.InferenceSession, batch: int = CHECK_BATCH) -> dict[str, np.ndarray]:
    """Deterministic inputs for a graph: images in [0, 1]; z from N(0, I) with one-hot digits."""
    rng = np.random.default_rng(0)
    feeds = {}
    for value in session.get_inputs():
        if value.name == "digit":
            feeds[value.name] = np.eye(spec.NUM_CLASSES, dtype=np.float32)[np.arange(batch) % spec.NUM_CLASSES]
        elif value.name == "z":
            feeds[value.name] = rng.standard_normal((batch, value.shape[1]), dtype=np.float32)
        else:
            feeds[value.name] = rng.random((batch, *value.shape[1:]), dtype=np.float32)
    return feeds


def check_same_outputs(onnx_path: Path, ort_path: Path) -> float:
    """Load the ORT-format file (from its path and from bytes) and compare its outputs with
    the ONNX graph's; return the largest absolute difference."""
    try:
        reference = _session(onnx_path)
        converted = [_session(ort_path), _session(ort_path.read_bytes())]
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot load {ort_path.name}: {str(exc).splitlines()[0]}") from exc
    if [v.name for v in converted[0].get_inputs()] != [v.name for v in reference.get_inputs()] or \
            [v.name for v in converted[0].get_outputs()] != [v.name for v in reference.get_outputs()]:
        raise ExportError(f"{ort_path.name} has other inputs or outputs than {onnx_path.name}")
    feeds = check_inputs(reference)
    expected = reference.run(None, feeds)
    worst = 0.0
    for session in converted:
        for want, got in zip(expected, session.run(None, feeds)):
            difference = float(np.max(np.abs(want - got)))
            allowed = TOLERANCE * max(1.0, float(np.max(np.abs(want))))
            if not difference <= allowed:  # also catches NaN
                raise ExportError(f"{ort_path.name} differs from {onnx_path.name} by up to {difference:.3g} "
                                  f"(allowed {allowed:.3g})")
            worst = max(worst, difference)
    return worst
