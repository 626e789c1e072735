"""ONNX -> Network (the IR's DNN): a chain of linear layers and their activations.

Every node is checked before any work is done, so an unsupported model fails at once with the
operator and node named. Post-processing that exporters append after the class scores (Softmax,
ArgMax, ZipMap, label lookups, casts) is recognised and dropped: the SNN outputs the scores.
"""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Optional

import numpy as np

from ..engine.ops import conv_output_size
from ..ir import Layer, Network, Preprocessing, validate_network

SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "Clip", "BatchNormalization",
                 "AveragePool", "GlobalAveragePool", "MaxPool", "Flatten", "Reshape", "Identity", "Dropout", "Cast")
# Exporters' post-processing after the scores: dropped, whatever comes after them too.
POSTPROCESSING_OPS = ("Softmax", "LogSoftmax", "ArgMax", "ZipMap", "ArrayFeatureExtractor",
                      "LabelEncoder", "Normalizer", "Sigmoid")
FLOAT_TYPES = (1, 10, 11, 16)  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


class UnsupportedModelError(ValueError):
    """The model uses an operator or structure the converter cannot map to an SNN."""


def load_onnx(path: str, preprocessing: Optional[dict] = None) -> Network:
    """Read an ONNX file into a Network. `preprocessing` overrides the model's metadata."""
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # onnx raises DecodeError and others for corrupt files
        raise UnsupportedModelError(f"{path}: not a readable ONNX model ({exc})") from exc
    graph = proto.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    _check_operators(nodes)

    metadata = {p.key: p.value for p in proto.metadata_props}
    data_inputs = [i for i in graph.input if i.name not in constants]
    if len(data_inputs) != 1:
        raise UnsupportedModelError(f"{path}: expected one image input, found "
                                    f"{[i.name for i in data_inputs]}")
    pre = _preprocessing(data_inputs[0], metadata, preprocessing or {})
    return _build_chain(nodes, constants, data_inputs[0].name, pre, metadata, path)


def _check_operators(nodes) -> None:
    for node in nodes:
        if node.op_type not in SUPPORTED_OPS and node.op_type not in POSTPROCESSING_OPS:
            raise UnsupportedModelError(
                f"unsupported operator {node.op_type} at node {node.name or node.output[0]!r}; "
                f"supported: {', '.join(SUPPORTED_OPS)} (and post-processing "
                f"{', '.join(POSTPROCESSING_OPS)}, which is dropped)")


def _preprocessing(graph_input, metadata: dict, overrides: dict) -> Preprocessing:
    def meta(key, default):
        return json.loads(metadata[f"snn_agent.{key}"]) if f"snn_agent.{key}" in metadata else default

    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    shape = meta("input_shape", None)
    if shape is None:
        if len(dims) == 4 and all(dims[1:]):
            shape = dims[1:]
        elif len(dims) == 2 and dims[1]:  # flat feature vector (scikit-learn models)
            shape = [dims[1]]
        else:
            raise UnsupportedModelError(f"cannot infer the input shape from {dims}; pass it as an option")
    values = {
        "input_shape": tuple(shape),
        "scale": meta("scale", 1.0 / 255.0),
        "mean": tuple(meta("mean", [0.0])),
        "std": tuple(meta("std", [1.0])),
        "channel_order": metadata.get("snn_agent.channel_order", "rgb"),
    }
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    return Preprocessing(**values)


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _build_chain(nodes, constants, input_name, pre, metadata, path) -> Network:
    layers: list = []
    shape = tuple(pre.input_shape)
    current = input_name  # the tensor carrying the data through the chain
    pending: Optional[Layer] = None  # last linear layer, not yet closed by an activation
    dropped = []

    def where(node):
        return f"node {node.name or node.output[0]!r} ({node.op_type})"

    # After a MaxPool: its channel count. The pool's layers emit two channels per pooled channel,
    # which the next linear layer adds; `shape` stays the DNN's own (what its weights expect).
    sum_channel_pairs = 0

    def push(layer: Layer):
        nonlocal pending, sum_channel_pairs
        if pending is not None:
            raise UnsupportedModelError(f"{layer.name}: two linear layers in a row without an "
                                        f"activation between them are not supported")
        if sum_channel_pairs:
            layer = _read_channel_pairs(layer, sum_channel_pairs)
            sum_channel_pairs = 0
        pending = layer

    def close(activation_max=None):
        nonlocal pending
        layers.append(replace(pending, spiking=True, activation_max=activation_max))
        pending = None

    for node in nodes:
        data_inputs = [i for i in node.input if i and i not in constants]
        a = _attrs(node)
        op = node.op_type
        is_postprocessing = op in POSTPROCESSING_OPS or (op == "Cast" and a.get("to") not in FLOAT_TYPES)
        if is_postprocessing or dropped:
            dropped.append(op)
            continue
        if data_inputs != [current]:
            raise UnsupportedModelError(f"{where(node)}: the converter takes a chain of layers; this "
                                        f"node reads {data_inputs}, the chain is at {current!r}")
        a = _attrs(node)
        op = node.op_type
        if op == "Conv":
            if len(shape) != 3:
                raise UnsupportedModelError(f"{where(node)}: convolution on a flat input")
            w = constants[node.input[1]].astype(np.float32)
            b = constants[node.input[2]].astype(np.float32) if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            kh, kw = w.shape[2:]
            stride = tuple(a.get("strides", [1, 1]))
            pads = a.get("pads", [0, 0, 0, 0])  # ONNX: top, left, bottom, right
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise UnsupportedModelError(f"{where(node)}: auto_pad is not supported; export with explicit pads")
            if any(d != 1 for d in a.get("dilations", [1, 1])):
                raise UnsupportedModelError(f"{where(node)}: dilated convolution is not supported")
            padding = (pads[0], pads[1], pads[2], pads[3])
            out_shape = (w.shape[0], conv_output_size(shape[1], kh, stride[0], pads[0], pads[2]),
                         conv_output_size(shape[2], kw, stride[1], pads[1], pads[3]))
            push(Layer(node.name or f"conv{len(layers)}", "conv", w, b, shape, out_shape, stride,
                       padding, int(a.get("group", 1))))
            shape = out_shape
        elif op in ("Gemm", "MatMul"):
            w = constants.get(node.input[1])
            if w is None:
                raise UnsupportedModelError(f"{where(node)}: the weight must be a constant")
            w = w.astype(np.float32)
            if op == "Gemm":
                if a.get("transA", 0):
                    raise UnsupportedModelError(f"{where(node)}: transA is not supported")
                w = w if a.get("transB", 0) else w.T  # -> (out, in)
                w = w * a.get("alpha", 1.0)
                b = constants[node.input[2]].astype(np.float32) * a.get("beta", 1.0) if len(node.input) > 2 \
                    else np.zeros(w.shape[0], np.float32)
            else:
                w, b = w.T, np.zeros(w.shape[1], np.float32)
            n_in = int(np.prod(shape))
            if w.shape[1] != n_in:
                raise UnsupportedModelError(f"{where(node)}: weight takes {w.shape[1]} inputs, data has {n_in}")
            push(Layer(node.name or f"dense{len(layers)}", "dense", w, np.broadcast_to(b, (w.shape[0],)).copy(),
                       (n_in,), (w.shape[0],)))
            shape = (w.shape[0],)
        elif op == "Add":
            bias = [constants[i] for i in node.input if i in constants]
            if pending is None or len(bias) != 1:
                raise UnsupportedModelError(f"{where(node)}: only a bias added to a linear layer is "
                                            f"supported (residual Add is not yet)")
            pending.bias = pending.bias + _per_channel(bias[0], pending, where(node))
        elif op == "BatchNormalization":
            if pending is None:
                raise UnsupportedModelError(f"{where(node)}: BatchNormalization must follow a conv or dense layer")
            gamma, beta, mean, var = (constants[i].astype(np.float64) for i in node.input[1:5])
            k = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
            w_shape = (-1,) + (1,) * (pending.weight.ndim - 1)
            pending.weight = (pending.weight * k.reshape(w_shape)).astype(np.float32)
            pending.bias = ((pending.bias - mean) * k + beta).astype(np.float32)
        elif op == "Relu":
            if pending is None:
                raise UnsupportedModelError(f"{where(node)}: activation without a preceding linear layer")
            close()
        elif op == "Clip":
            lo = a.get("min", constants[node.input[1]] if len(node.input) > 1 and node.input[1] else -np.inf)
            hi = a.get("max", constants[node.input[2]] if len(node.input) > 2 and node.input[2] else np.inf)
            if pending is None or float(lo) != 0.0:
                raise UnsupportedModelError(f"{where(node)}: only Clip(min=0, max=c) after a linear layer "
                                            f"(a clipped ReLU) is supported")
            close(None if np.isinf(float(hi)) else float(hi))
        elif op == "MaxPool":
            if pending is not None or len(shape) != 3 or sum_channel_pairs:
                raise UnsupportedModelError(f"{where(node)}: MaxPool must follow an activation, on feature maps")
            k = tuple(a["kernel_shape"])
            pads = a.get("pads", [0, 0, 0, 0])
            if k != (2, 2) or any(pads) or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
                raise UnsupportedModelError(f"{where(node)}: only 2x2 MaxPool without padding, dilation or "
                                            f"ceil_mode is supported (got kernel {list(k)}, pads {list(pads)})")
            pool_layers = _max_pool_as_relu_layers(node.name or f"maxpool{len(layers)}", shape,
                                                   tuple(a.get("strides", [1, 1])))
            layers.extend(pool_layers)
            shape = (shape[0],) + pool_layers[-1].output_shape[1:]
            sum_channel_pairs = shape[0]
        elif op in ("AveragePool", "GlobalAveragePool"):
            if pending is not None or len(shape) != 3 or sum_channel_pairs:
                raise UnsupportedModelError(f"{where(node)}: pooling must follow an activation, on feature maps")
            c, h, w_ = shape
            if op == "GlobalAveragePool":
                k, stride, pads = (h, w_), (1, 1), [0, 0, 0, 0]
            else:
                k = tuple(a["kernel_shape"])
                stride = tuple(a.get("strides", [1, 1]))
                pads = a.get("pads", [0, 0, 0, 0])
                if any(pads) and not a.get("count_include_pad", 0):
                    raise UnsupportedModelError(f"{where(node)}: padded AveragePool needs count_include_pad=1")
            # Lowered to a depthwise convolution (netx cannot load pooling). The mean of ReLU outputs
            # is non-negative, so its spiking neuron (a ReLU) computes it exactly.
            weight = np.zeros((c, 1) + k, np.float32) + 1.0 / (k[0] * k[1])
            out_shape = (c, conv_output_size(h, k[0], stride[0], pads[0], pads[2]),
                         conv_output_size(w_, k[1], stride[1], pads[1], pads[3]))
            layers.append(Layer(node.name or f"pool{len(layers)}", "conv", weight, np.zeros(c, np.float32),
                                shape, out_shape, stride, tuple(pads), groups=c, spiking=True))
            shape = out_shape
        elif op in ("Flatten", "Reshape"):
            if op == "Reshape":
                target = constants[node.input[1]]
                if not (len(target) == 2 and target[1] in (-1, int(np.prod(shape)))):
                    raise UnsupportedModelError(f"{where(node)}: only a reshape to (batch, features) is supported")
            if pending is not None:
                raise UnsupportedModelError(f"{where(node)}: flatten between a layer and its activation")
            shape = (int(np.prod(shape)),)
        # Identity, Dropout and a Cast between float types pass the data through unchanged
        current = node.output[0]

    if pending is None or sum_channel_pairs:
        raise UnsupportedModelError(f"{path}: the model must end with a linear layer giving the class "
                                    f"scores (found an activation or nothing)")
    layers.append(replace(pending, spiking=False))
    class_names = json.loads(metadata["snn_agent.class_names"]) if "snn_agent.class_names" in metadata \
        else [str(i) for i in range(layers[-1].output_shape[0])]
    network = Network(layers, pre, class_names, dropped)
    validate_network(network)
    return network


def _per_channel(bias: np.ndarray, layer: Layer, where: str) -> np.ndarray:
    """An Add's constant as one value per output channel of the layer it follows."""
    bias = np.asarray(bias, np.float32)
    out = layer.weight.shape[0]
    if bias.size == 1:
        return np.full(out, float(bias.reshape(-1)[0]), np.float32)
    if bias.size == out:
        return bias.reshape(out)
    raise UnsupportedModelError(f"{where}: a bias of shape {bias.shape} does not match {out} outputs")


def _max_pool_as_relu_layers(name: str, shape: tuple, stride: tuple) -> list:
    """2x2 max pooling as two ReLU layers, which convert to spiking layers like any other.

    For a window (a, b, c, d) of non-negative inputs: max(a, b) = relu(a - b) + relu(b), so the
    first layer computes p, q, r, s = relu(a - b), relu(b), relu(c - d), relu(d) (4 channels per
    input channel), the second u = relu(p + q - r - s) = relu(max(a,b) - max(c,d)) and
    w = relu(r + s) = max(c, d), and max(a, b, c, d) = u + w: the layer after the pool reads each
    (u, w) pair with the same weight (see _read_channel_pairs). Exact in the DNN; the price is two
    more spiking layers (latency of a few steps and more quantization error at small T), measured
    in the conversion tests.
    """
    c, h, w = shape
    window = np.zeros((4, 1, 2, 2), np.float32)
    window[0, 0, 0, 0], window[0, 0, 0, 1] = 1, -1  # a - b
    window[1, 0, 0, 1] = 1  # b
    window[2, 0, 1, 0], window[2, 0, 1, 1] = 1, -1  # c - d
    window[3, 0, 1, 1] = 1  # d
    out_hw = (conv_output_size(h, 2, stride[0], 0, 0), conv_output_size(w, 2, stride[1], 0, 0))
    first = Layer(f"{name}/pairs", "conv", np.tile(window, (c, 1, 1, 1)), np.zeros(4 * c, np.float32),
                  shape, (4 * c,) + out_hw, stride, (0, 0, 0, 0), groups=c, spiking=True)
    combine = np.array([[1, 1, -1, -1], [0, 0, 1, 1]], np.float32).reshape(2, 4, 1, 1)
    second = Layer(f"{name}/max", "conv", np.tile(combine, (c, 1, 1, 1)), np.zeros(2 * c, np.float32),
                   (4 * c,) + out_hw, (2 * c,) + out_hw, (1, 1), (0, 0, 0, 0), groups=c, spiking=True)
    return [first, second]


def _read_channel_pairs(layer: Layer, channels: int) -> Layer:
    """The layer after a max pool: each pooled channel arrives as a (u, w) pair that it adds, so
    every input channel's weights are used twice."""
    if layer.kind == "conv":
        if layer.groups != 1:
            raise UnsupportedModelError(f"{layer.name}: a grouped convolution right after MaxPool is not supported")
        c, h, w = layer.input_shape
        return replace(layer, weight=np.repeat(layer.weight, 2, axis=1), input_shape=(2 * c, h, w))
    # dense after a flatten of (C, H, W): channel c's block of H*W columns is repeated
    out = layer.weight.shape[0]
    weight = np.repeat(layer.weight.reshape(out, channels, -1), 2, axis=1).reshape(out, -1)
    return replace(layer, weight=weight, input_shape=(weight.shape[1],))
