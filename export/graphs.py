"""Checkpoint -> three single-file ONNX graphs with the spec's names and a dynamic batch.

Each network is wrapped so that its graph computes exactly what the runtime needs: the
encoder gives ``mu`` and ``logvar`` (no sampling: the runtime samples in numpy, so the
graphs are deterministic), the classifier gives logits, and the decoder gives pixels in
[0, 1] (the sigmoid is inside the graph).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from digitvae.runtime import spec
from digitvae.train.model import DigitVAE, Decoder

from .errors import ExportError


class DecoderGraph(nn.Module):
    """The decoder as shipped: (z, digit vector) -> image (N, 1, 28, 28) in [0, 1]."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
        return self.decoder.decode_image(z, digit)


def example_inputs(model: DigitVAE, batch: int = 4) -> dict[str, tuple[torch.Tensor, ...]]:
    image = torch.rand(batch, 1, spec.IMAGE_SIZE, spec.IMAGE_SIZE)
    z = torch.randn(batch, model.args.latent_size)
    digit = torch.eye(spec.NUM_CLASSES)[torch.arange(batch) % spec.NUM_CLASSES]
    return {"encoder": (image,), "classifier": (image,), "decoder": (z, digit)}


def graph_modules(model: DigitVAE) -> dict[str, tuple[nn.Module, tuple[str, ...], tuple[str, ...]]]:
    """name -> (module in eval mode, input names, output names)."""
    model.eval()
    return {
        "encoder": (model.encoder, spec.ENCODER_INPUTS, spec.ENCODER_OUTPUTS),
        "classifier": (model.classifier, spec.CLASSIFIER_INPUTS, spec.CLASSIFIER_OUTPUTS),
        "decoder": (DecoderGraph(model.decoder).eval(), spec.DECODER_INPUTS, spec.DECODER_OUTPUTS),
    }


def to_onnx(module: nn.Module, args: tuple[torch.Tensor, ...], inputs: tuple[str, ...],
            outputs: tuple[str, ...], opset: int) -> onnx.ModelProto:
    """Export with the dynamo exporter (the default), batch axis dynamic on every input."""
    batch = torch.export.Dim(spec.BATCH_AXIS, min=1, max=spec.MAX_BATCH)
    dynamic_shapes = {name: {0: batch} for name in _forward_arg_names(module)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's chatter about its own internals
        try:
            program = torch.onnx.export(
                module, args, dynamo=True, input_names=list(inputs), output_names=list(outputs),
                opset_version=opset, dynamic_shapes=dynamic_shapes, external_data=False, verbose=False,
            )
        except Exception as exc:  # the exporter raises many types; the first line says why
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"torch.onnx.export failed at opset {opset}: {first}") from exc
    model = program.model_proto
    if model.opset_import[0].version != opset and not any(o.domain == "" and o.version == opset for o in model.opset_import):
        raise ExportError(f"the exporter cannot honour opset {opset}: it produced {[(o.domain, o.version) for o in model.opset_import]}")
    _name_batch_axis(model)
    return model


def _forward_arg_names(module: nn.Module) -> list[str]:
    import inspect

    return [p for p in inspect.signature(module.forward).parameters]


def _name_batch_axis(model: onnx.ModelProto) -> None:
    """Give the batch axis of every input and output the spec's name, not a symbol like s0."""
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = spec.BATCH_AXIS


def finish(model: onnx.ModelProto, name: str, metadata: dict[str, str], path: Path) -> None:
    """Attach metadata, run the full checker, and save as one file (weights inside)."""
    model.doc_string = f"{spec.PRODUCT} {name}: {metadata['pixel_contract']}"
    onnx.helper.set_model_props(model, {**metadata, "graph": name})
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported {name} graph fails onnx.checker: {str(exc).splitlines()[0]}") from exc
    onnx.save_model(model, str(path), save_as_external_data=False)


def export_graphs(model: DigitVAE, out: Path, opset: int, metadata: dict[str, str]) -> dict[str, Path]:
    """Write encoder.onnx, classifier.onnx and decoder.onnx into ``out``."""
    examples = example_inputs(model)
    written = {}
    for name, (module, inputs, outputs) in graph_modules(model).items():
        path = out / spec.GRAPH_FILES[name]
        finish(to_onnx(module, examples[name], inputs, outputs, opset), name, metadata, path)
        written[name] = path
    return written
