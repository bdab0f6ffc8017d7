"""Exact rewrites of an fp32 graph before it is quantized, so that onnxruntime's int8
kernels run where they pay and its float kernels where they are faster.

- :func:`float_input_convs`: the conv on the one-channel image stays float (and a ReLU ->
  MaxPool after it is swapped, so that conv and pool run in onnxruntime's blocked layout);
- :func:`phase_conv_transposes`: a pair of stride-2 ConvTransposes (kernel 4, padding 1)
  with a ReLU between becomes a 3x3 Conv to the four output phases and one stride-4
  ConvTranspose. onnxruntime has no int8 ConvTranspose, so the first, the decoder's costliest
  layer, ran in float; as a Conv it runs in int8 (the decoder: 0.50 -> 0.24 ms, 10 images).

Each rewrite computes what the graph computed (up to float rounding), and the fp32 graph
that ships is never rewritten: only the copy that is quantized.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

#: For a ConvTranspose with kernel 4, stride 2 and padding 1: output row 2i + a reads input
#: row i + u through kernel row TAP[(a, u)] (the other rows of a 3x3 window read nothing).
TAP = {(0, 0): 1, (0, -1): 3, (1, 1): 0, (1, 0): 2}


def float_input_convs(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes that read a one-channel graph input (the image), which stay
    float; where such a conv feeds ReLU -> MaxPool alone, the two are swapped in ``model``
    (exactly: max commutes with a monotone function), so that onnxruntime runs the conv, its
    pool and the ReLU in its blocked float layout, not a slow plain MaxPool."""
    inputs = {i.name for i in model.graph.input}
    weights = {t.name: t for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[0] in inputs
             and n.input[1] in weights and weights[n.input[1]].dims[1] == 1]
    for conv in convs:
        relu = _sole_consumer(model, conv.output[0], "Relu")
        pool = relu and _sole_consumer(model, relu.output[0], "MaxPool")
        if relu is None or pool is None:
            continue
        # conv -> A -> ReLU -> B -> MaxPool -> C  becomes  conv -> A -> MaxPool -> P -> ReLU -> C
        stale, pooled = relu.output[0], f"{conv.output[0]}_pooled"
        relu.output[0], pool.input[0] = pool.output[0], conv.output[0]
        pool.output[0] = relu.input[0] = pooled
        _forget_shapes(model, {stale})
        nodes = list(model.graph.node)
        i, j = nodes.index(relu), nodes.index(pool)
        nodes[i], nodes[j] = pool, relu  # topological order: the pool now comes first
        _set_nodes(model, nodes)
    return [n.name for n in convs]


def phase_conv_transposes(model: onnx.ModelProto) -> int:
    """Rewrite each ConvTranspose (kernel 4, stride 2, padding 1) -> ReLU -> ConvTranspose
    (the same) chain of ``model`` as Conv (3x3, padding 1, four times the channels: one per
    output phase) -> ReLU -> ConvTranspose (kernel 6, stride 4, padding 1), which computes
    the same numbers (the ReLU acts on each value, wherever the phases put it). Returns how
    many chains were rewritten."""
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    done = 0
    while (chain := next(filter(None, (_upsampling_chain(model, n, weights) for n in model.graph.node)), None)):
        first, relu, second = chain
        kernel, bias = _phase_kernel(weights[first.input[1]], _bias(first, weights))
        spread = _spread_kernel(weights[second.input[1]])
        names = [f"{first.name}_phase_weight", f"{first.name}_phase_bias", f"{second.name}_spread_weight"]
        model.graph.initializer.extend(numpy_helper.from_array(a, n) for a, n in zip((kernel, bias, spread), names))
        conv = helper.make_node("Conv", [first.input[0], names[0], names[1]], list(first.output), name=f"{first.name}_phase",
                                kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        upsample = helper.make_node("ConvTranspose", [relu.output[0], names[2], *second.input[2:]], list(second.output),
                                    name=f"{second.name}_spread", kernel_shape=[6, 6], strides=[4, 4], pads=[1, 1, 1, 1])
        _set_nodes(model, [conv if n is first else upsample if n is second else n for n in model.graph.node])
        _forget_shapes(model, {first.output[0], relu.output[0]})
        done += 1
    _drop_unused_initializers(model)
    return done


def _upsampling_chain(model: onnx.ModelProto, node: onnx.NodeProto, weights: dict[str, np.ndarray]
                      ) -> tuple[onnx.NodeProto, onnx.NodeProto, onnx.NodeProto] | None:
    """(first, relu, second) where ``node`` starts an upsampler -> ReLU -> upsampler chain."""
    if not _is_upsampler(node, weights):
        return None
    relu = _sole_consumer(model, node.output[0], "Relu")
    second = relu and _sole_consumer(model, relu.output[0], "ConvTranspose")
    return (node, relu, second) if relu is not None and second is not None and _is_upsampler(second, weights) else None


def _is_upsampler(node: onnx.NodeProto, weights: dict[str, np.ndarray]) -> bool:
    """A plain ConvTranspose with kernel 4, stride 2, padding 1 and constant weights."""
    if node.op_type != "ConvTranspose" or node.input[1] not in weights or any(i not in weights for i in node.input[2:]):
        return False
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    return (list(a.get("kernel_shape", [4, 4])) == [4, 4] and list(a.get("strides", [1, 1])) == [2, 2]
            and list(a.get("pads", [0, 0, 0, 0])) == [1, 1, 1, 1] and a.get("group", 1) == 1
            and list(a.get("dilations", [1, 1])) == [1, 1] and not any(a.get("output_padding", []))
            and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET") and "output_shape" not in a
            and weights[node.input[1]].shape[2:] == (4, 4))


def _bias(node: onnx.NodeProto, weights: dict[str, np.ndarray]) -> np.ndarray:
    out_channels = weights[node.input[1]].shape[1]
    return weights[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(out_channels, np.float32)


def _phase_kernel(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ConvTranspose weight (in, out, 4, 4) -> Conv weight (4 * out, in, 3, 3), output channel
    4 * o + 2 * a + b computing phase (a, b) of output channel o, and its bias."""
    cin, cout = weight.shape[:2]
    kernel = np.zeros((cout, 2, 2, cin, 3, 3), np.float32)
    for (a, u), ki in TAP.items():
        for (b, v), kj in TAP.items():
            kernel[:, a, b, :, u + 1, v + 1] = weight[:, :, ki, kj].T
    return kernel.reshape(4 * cout, cin, 3, 3), np.repeat(bias.astype(np.float32), 4)


def _spread_kernel(weight: np.ndarray) -> np.ndarray:
    """The second ConvTranspose's weight (in, out, 4, 4) -> (4 * in, out, 6, 6): phase (a, b)
    of input channel c sits 2a rows and 2b columns further on, at stride 4."""
    cin, cout = weight.shape[:2]
    spread = np.zeros((cin, 2, 2, cout, 6, 6), np.float32)
    for a in range(2):
        for b in range(2):
            spread[:, a, b, :, 2 * a:2 * a + 4, 2 * b:2 * b + 4] = weight
    return spread.reshape(4 * cin, cout, 6, 6)


def _sole_consumer(model: onnx.ModelProto, tensor: str, op_type: str) -> onnx.NodeProto | None:
    """The node of ``op_type`` that alone reads ``tensor`` (and no graph output is it), else None."""
    readers = [n for n in model.graph.node if tensor in n.input]
    if len(readers) != 1 or readers[0].op_type != op_type or tensor in {o.name for o in model.graph.output}:
        return None
    return readers[0]


def _set_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]  # protobuf moves, not shares
    del model.graph.node[:]
    model.graph.node.extend(copies)


def _forget_shapes(model: onnx.ModelProto, names: set[str]) -> None:
    """Drop the recorded shapes of tensors a rewrite changed (shape inference redoes them)."""
    kept = [v for v in model.graph.value_info if v.name not in names]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {i for n in model.graph.node for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
