"""ONNX -> Network (the IR's DNN): linear layers and their activations, a chain or a graph
(residual Add, Concat).

Every node is checked before any work is done, so an unsupported model fails at once with the
operator and node named. Post-processing that exporters append after the class scores (Softmax,
ArgMax, ZipMap, label lookups, casts) is recognised and dropped: the SNN outputs the scores.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ..engine.ops import conv_output_size
from ..ir import NETWORK_INPUT, Layer, Network, Preprocessing, Synapse, validate_network

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
    return _build_graph(nodes, constants, data_inputs[0].name, pre, metadata, path)


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


@dataclass
class _Ref:
    """A layer's output read by the next linear operation; -1 is the network input."""

    layer: int
    # > 0: the output of a lowered MaxPool, whose every channel (this many) arrives as a (u, w)
    # pair that the reader adds (see _read_channel_pairs)
    pairs: int = 0


@dataclass(frozen=True)
class _Pool:
    """An average pooling not yet applied: the linear layer that reads the pooled part takes it
    into its own weights (_through_pool), so the mean is never quantized by a spiking layer of its own."""

    kernel: tuple
    stride: tuple
    pads: tuple  # top, left, bottom, right
    input_shape: tuple  # (C, H, W) before pooling


@dataclass
class _Part:
    refs: list  # _Ref: the part is the sum of their outputs (an Add of activations)
    shape: tuple  # the DNN's shape of the part, (C, H, W) or (features,)
    pool: Optional[_Pool] = None  # an average pooling of the refs' sum, applied by the reader


@dataclass
class _Act:
    """A tensor after an activation (or the network input): the concatenation of its parts along
    the channel axis, or along the features once flattened."""

    parts: list
    flat: bool = False

    @property
    def shape(self) -> tuple:
        if self.flat:
            return (sum(int(np.prod(p.shape)) for p in self.parts),)
        return (sum(p.shape[0] for p in self.parts),) + tuple(self.parts[0].shape[1:])

    def reads_input(self) -> bool:
        return any(ref.layer < 0 for part in self.parts for ref in part.refs)


@dataclass
class _Pending:
    """A linear layer before its activation: bias + the sum of its blocks, (source index, Layer
    holding that source's weights)."""

    name: str
    blocks: list
    bias: np.ndarray
    shape: tuple

    def map_blocks(self, fn) -> "_Pending":
        return replace(self, blocks=[(ref, replace(block, weight=fn(block.weight))) for ref, block in self.blocks])


def _blocks(template: Layer, value: _Act, where: str) -> list:
    """A linear operation on `value` as one weight block per source: the template's weight split
    along its input axis where the value is a concatenation, repeated for the terms of a sum."""
    blocks, offset = [], 0
    for part in value.parts:
        if template.kind == "conv":
            size = part.shape[0]
            if len(value.parts) > 1 and template.groups != 1:
                raise UnsupportedModelError(f"{where}: a grouped convolution of a Concat is not supported")
            input_shape = tuple(part.shape)
        else:
            size = int(np.prod(part.shape))
            input_shape = (size,)
        weight = template.weight if len(value.parts) == 1 else \
            np.ascontiguousarray(template.weight[:, offset:offset + size])
        offset += size
        for ref in part.refs:
            block = replace(template, weight=weight, input_shape=input_shape)
            if part.pool is not None:
                block = _through_pool(block, part.pool)
            blocks.append((ref.layer, _read_channel_pairs(block, ref.pairs) if ref.pairs else block))
    return blocks


def _through_pool(block: Layer, pool: _Pool) -> Layer:
    """A linear block reading an average-pooled map, as one block reading the map before pooling:
    both are linear, so the composition is exact (a conv's kernel grows to (k - 1) x pool stride +
    pool kernel, its stride multiplies; a dense layer's weight spreads each pooled input over its
    window). A conv composes exactly only where _pool_composable says so."""
    c, h, w = pool.input_shape
    (ph, pw), (sh, sw), (pt, pl, pb, pr) = pool.kernel, pool.stride, pool.pads
    area = np.float32(ph * pw)
    if block.kind == "dense":
        out, (hp, wp) = block.weight.shape[0], _pooled_size(pool)
        pooled = block.weight.reshape(out, c, hp, wp)
        padded = np.zeros((out, c, h + pt + pb + ph, w + pl + pr + pw), np.float32)
        for i in range(hp):
            for j in range(wp):
                padded[:, :, i * sh:i * sh + ph, j * sw:j * sw + pw] += pooled[:, :, i:i + 1, j:j + 1] / area
        weight = padded[:, :, pt:pt + h, pl:pl + w].reshape(out, -1)
        return replace(block, weight=np.ascontiguousarray(weight), input_shape=(c * h * w,))
    o, cg, kh, kw = block.weight.shape
    weight = np.zeros((o, cg, (kh - 1) * sh + ph, (kw - 1) * sw + pw), np.float32)
    for i in range(kh):
        for j in range(kw):
            weight[:, :, i * sh:i * sh + ph, j * sw:j * sw + pw] += block.weight[:, :, i:i + 1, j:j + 1] / area
    top, left, bottom, right = block.padding
    return replace(block, weight=weight, input_shape=tuple(pool.input_shape),
                   stride=(block.stride[0] * sh, block.stride[1] * sw),
                   padding=(top * sh + pt, left * sw + pl, bottom * sh + pb, right * sw + pr))


def _pooled_size(pool: _Pool) -> tuple:
    _, h, w = pool.input_shape
    (ph, pw), (sh, sw), (pt, pl, pb, pr) = pool.kernel, pool.stride, pool.pads
    return conv_output_size(h, ph, sh, pt, pb), conv_output_size(w, pw, sw, pl, pr)


def _pool_composable(template: Layer, pool: _Pool) -> bool:
    """Whether a conv reading the pooled map composes with the pooling exactly: the pooled map's
    zero padding must lie where the composed kernel reads only zeros (windows wholly outside the
    map: no overlapping pooling into the padding, no rows the pooling dropped), and the composed
    conv must give the same output size."""
    if template.kind == "dense":
        return True
    _, h, w = pool.input_shape
    hp, wp = _pooled_size(pool)
    (ph, pw), (sh, sw), (pt, pl, _, _) = pool.kernel, pool.stride, pool.pads
    top, left, bottom, right = template.padding
    # the first padded pooled row's window ends before the map; the last's starts after it
    fits = all(not before or k <= s + p for before, k, s, p in ((top, ph, sh, pt), (left, pw, sw, pl))) and \
        (not bottom or hp * sh - pt >= h) and (not right or wp * sw - pl >= w)
    composed = _through_pool(template, pool)
    kh, kw = composed.weight.shape[2:]
    same_size = tuple(template.output_shape[1:]) == (
        conv_output_size(h, kh, composed.stride[0], composed.padding[0], composed.padding[2]),
        conv_output_size(w, kw, composed.stride[1], composed.padding[1], composed.padding[3]))
    return fits and same_size


def _identity_blocks(value: _Act, name: str, where: str) -> list:
    """The skip path of a residual Add: `value` through identity weights (a depthwise 1x1
    convolution of ones for feature maps: no more than a multiply per neuron)."""
    shape = value.shape
    if value.flat:
        template = Layer(name, "dense", np.eye(shape[0], dtype=np.float32), np.zeros(shape[0], np.float32),
                         shape, shape)
    elif len(value.parts) == 1:
        c = shape[0]
        template = Layer(name, "conv", np.ones((c, 1, 1, 1), np.float32), np.zeros(c, np.float32), shape, shape,
                         groups=c)
    else:
        c = shape[0]
        template = Layer(name, "conv", np.eye(c, dtype=np.float32).reshape(c, c, 1, 1), np.zeros(c, np.float32),
                         shape, shape)
    return _blocks(template, value, where)


class _GraphBuilder:
    """Symbolic execution of the ONNX graph: every tensor is either activated (_Act: sources a
    following linear operation reads through its weights) or a layer before its activation
    (_Pending); an activation turns a _Pending into a layer of the network."""

    def __init__(self, constants: dict, input_name: str, pre: Preprocessing):
        self.constants = constants
        self.layers: list = []
        self.sources: list = []  # per layer: the indices it reads, one per weight block
        self.max_pool: set = set()  # indices of the layers made of a MaxPool
        shape = tuple(pre.input_shape)
        self.values = {input_name: _Act([_Part([_Ref(-1)], shape)], flat=len(shape) == 1)}

    def close(self, pending: _Pending, spiking=True, activation_max=None) -> int:
        """The pending layer becomes a layer of the network; -> its index."""
        (_, first), rest = pending.blocks[0], pending.blocks[1:]
        self.layers.append(replace(first, name=pending.name, bias=pending.bias, output_shape=tuple(pending.shape),
                                   spiking=spiking, activation_max=activation_max,
                                   extra_synapses=[Synapse(b.kind, b.weight, tuple(b.input_shape), tuple(b.stride),
                                                           tuple(b.padding), b.groups) for _, b in rest]))
        self.sources.append([ref for ref, _ in pending.blocks])
        return len(self.layers) - 1

    def activated(self, layer_template: Layer, part: _Part, max_pool: bool = False) -> int:
        """A pooling layer (spiking: exact on non-negative inputs) on one part of an activation."""
        blocks = _blocks(layer_template, _Act([part]), layer_template.name)
        index = self.close(_Pending(layer_template.name, blocks, layer_template.bias, layer_template.output_shape))
        if max_pool:
            self.max_pool.add(index)
        return index

    def closed(self, pending: _Pending, activation_max=None) -> _Act:
        """The activation of a pending layer: the layer closed, read as one part."""
        return _Act([_Part([_Ref(self.close(pending, activation_max=activation_max))], pending.shape)],
                    flat=len(pending.shape) == 1)


@dataclass
class _Node:
    """What a handler gets of one ONNX node."""

    proto: object  # the onnx NodeProto
    attrs: dict
    data_inputs: list  # its inputs computed from the network's input (not constants)
    x: object  # the value of its first data input: _Act or _Pending

    @property
    def where(self) -> str:
        return f"node {self.proto.name or self.proto.output[0]!r} ({self.proto.op_type})"

    def name(self, default_prefix: str, builder: _GraphBuilder) -> str:
        return self.proto.name or f"{default_prefix}{len(builder.layers)}"


def _build_graph(nodes, constants, input_name, pre, metadata, path) -> Network:
    """Runs each node's handler (_HANDLERS) on the values it reads; post-processing after the
    class scores is dropped; the score tensor's pending layer becomes the output layer."""
    builder = _GraphBuilder(constants, input_name, pre)
    kept, dropped, score_tensor = _split_postprocessing(nodes, constants)
    for proto in kept:
        data_inputs = [i for i in proto.input if i and i not in constants]
        missing = [i for i in data_inputs if i not in builder.values]
        where = f"node {proto.name or proto.output[0]!r} ({proto.op_type})"
        if missing or not data_inputs:
            raise UnsupportedModelError(f"{where}: reads {missing or proto.input}, which is not computed "
                                        f"from the model's input")
        if proto.op_type not in ("Add", "Concat") and len(data_inputs) != 1:
            raise UnsupportedModelError(f"{where}: only its first input may be data, found {data_inputs}")
        node = _Node(proto, _attrs(proto), data_inputs, builder.values[data_inputs[0]])
        builder.values[proto.output[0]] = _HANDLERS[proto.op_type](builder, node)

    scores = builder.values.get(score_tensor or input_name)
    if not isinstance(scores, _Pending):
        raise UnsupportedModelError(f"{path}: the model must end with a linear layer giving the class "
                                    f"scores (found an activation or nothing)")
    layers, sources = builder.layers, builder.sources
    builder.close(scores, spiking=False)
    _check_reaches_scores(layers, sources)
    _name_sources(layers, sources)
    class_names = json.loads(metadata["snn_agent.class_names"]) if "snn_agent.class_names" in metadata \
        else [str(i) for i in range(layers[-1].output_shape[0])]
    network = Network(layers, pre, class_names, dropped, [layers[i].name for i in sorted(builder.max_pool)])
    validate_network(network)
    return network


def _split_postprocessing(nodes, constants) -> tuple:
    """-> (the nodes up to the class scores, the op types of the post-processing dropped after
    them, the score tensor's name: the first data input of the first post-processing node, else
    the last node's output; None for a graph without nodes)."""
    for index, node in enumerate(nodes):
        if _is_postprocessing(node):
            score = next((i for i in node.input if i and i not in constants), None)
            return nodes[:index], [n.op_type for n in nodes[index:]], score
    return list(nodes), [], nodes[-1].output[0] if nodes else None


def _is_postprocessing(node) -> bool:
    if node.op_type in POSTPROCESSING_OPS:
        return True
    return node.op_type == "Cast" and _attrs(node).get("to") not in FLOAT_TYPES


# --- one handler per operator: (builder, node) -> the value of the node's output ---------------

def _ensure_activated(node: _Node, what: str) -> None:
    if isinstance(node.x, _Pending):
        raise UnsupportedModelError(
            f"{node.where}: reads {node.data_inputs[0]!r}, the output of a linear layer (or of an Add "
            f"with one) that no activation follows; {what}")


def _conv(builder: _GraphBuilder, node: _Node) -> _Pending:
    _ensure_activated(node, "two linear layers in a row without an activation between them are not supported")
    x, a, proto, constants = node.x, node.attrs, node.proto, builder.constants
    shape = x.shape
    if x.flat or len(shape) != 3:
        raise UnsupportedModelError(f"{node.where}: convolution on a flat input")
    if proto.input[1] not in constants:
        raise UnsupportedModelError(f"{node.where}: the weight must be a constant")
    w = constants[proto.input[1]].astype(np.float32)
    b = constants[proto.input[2]].astype(np.float32) if len(proto.input) > 2 else np.zeros(w.shape[0], np.float32)
    kh, kw = w.shape[2:]
    stride = tuple(a.get("strides", [1, 1]))
    pads = a.get("pads", [0, 0, 0, 0])  # ONNX: top, left, bottom, right
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedModelError(f"{node.where}: auto_pad is not supported; export with explicit pads")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise UnsupportedModelError(f"{node.where}: dilated convolution is not supported")
    out_shape = (w.shape[0], conv_output_size(shape[1], kh, stride[0], pads[0], pads[2]),
                 conv_output_size(shape[2], kw, stride[1], pads[1], pads[3]))
    template = Layer(node.name("conv", builder), "conv", w, b, shape, out_shape, stride,
                     (pads[0], pads[1], pads[2], pads[3]), int(a.get("group", 1)))
    # a pooled part whose pooling does not compose with this conv is pooled by a layer of its own
    x = replace(x, parts=[_pool_layer(builder, p, f"{template.name}/pool{j}")
                          if p.pool is not None and not _pool_composable(template, p.pool) else p
                          for j, p in enumerate(x.parts)])
    return _Pending(template.name, _blocks(template, x, node.where), template.bias, template.output_shape)


def _dense(builder: _GraphBuilder, node: _Node) -> _Pending:
    """Gemm or MatMul with a constant weight."""
    _ensure_activated(node, "two linear layers in a row without an activation between them are not supported")
    x, a, proto = node.x, node.attrs, node.proto
    w = builder.constants.get(proto.input[1])
    if w is None:
        raise UnsupportedModelError(f"{node.where}: the weight must be a constant")
    w = w.astype(np.float32)
    if proto.op_type == "Gemm":
        if a.get("transA", 0):
            raise UnsupportedModelError(f"{node.where}: transA is not supported")
        w = w if a.get("transB", 0) else w.T  # -> (out, in)
        w = w * a.get("alpha", 1.0)
        b = builder.constants[proto.input[2]].astype(np.float32) * a.get("beta", 1.0) if len(proto.input) > 2 \
            else np.zeros(w.shape[0], np.float32)
    else:
        w, b = w.T, np.zeros(w.shape[1], np.float32)
    n_in = int(np.prod(x.shape))
    if w.shape[1] != n_in:
        raise UnsupportedModelError(f"{node.where}: weight takes {w.shape[1]} inputs, data has {n_in}")
    template = Layer(node.name("dense", builder), "dense", w, np.broadcast_to(b, (w.shape[0],)).copy(),
                     (n_in,), (w.shape[0],))
    return _Pending(template.name, _blocks(template, x, node.where), template.bias, template.output_shape)


def _add_node(builder: _GraphBuilder, node: _Node):
    """A bias added to a linear layer, or a residual Add of two tensors."""
    x = node.x
    bias = [builder.constants[i] for i in node.proto.input if i in builder.constants]
    if len(node.data_inputs) == 1 and len(bias) == 1:
        if not isinstance(x, _Pending):
            raise UnsupportedModelError(f"{node.where}: a constant added to an activation is not "
                                        f"supported (only a bias added to a linear layer)")
        return replace(x, bias=x.bias + _per_channel(bias[0], x.bias.shape[0], node.where))
    if len(node.data_inputs) == 2 and not bias:
        return _add(builder, x, builder.values[node.data_inputs[1]], node.name("add", builder), node.where)
    raise UnsupportedModelError(f"{node.where}: an Add of {len(node.data_inputs)} tensors and "
                                f"{len(bias)} constants is not supported")


def _concat(builder: _GraphBuilder, node: _Node) -> _Act:
    parts = [builder.values[i] for i in node.data_inputs]
    if len(node.data_inputs) != len(node.proto.input) or any(isinstance(p, _Pending) for p in parts):
        raise UnsupportedModelError(
            f"{node.where}: only a Concat of activated tensors (after a ReLU, a pooling or a flatten) "
            f"is supported; put the activation before the Concat")
    axis = int(node.attrs.get("axis", 1))
    flat = parts[0].flat
    rank = 1 + len(parts[0].shape)  # with the batch axis
    if any(p.flat != flat or len(p.shape) != len(parts[0].shape) for p in parts) or \
            axis not in (1, 1 - rank) or any(p.shape[1:] != parts[0].shape[1:] for p in parts):
        raise UnsupportedModelError(
            f"{node.where}: only a Concat along the channels (or the features after a flatten) of "
            f"tensors of matching shapes is supported (axis {axis}, shapes {[p.shape for p in parts]})")
    return _Act([part for p in parts for part in p.parts], flat)


def _batch_norm(builder: _GraphBuilder, node: _Node) -> _Pending:
    """Folded into the weights and bias of the linear layer it follows."""
    x = node.x
    if not isinstance(x, _Pending):
        raise UnsupportedModelError(f"{node.where}: BatchNormalization must follow a conv or dense layer")
    gamma, beta, mean, var = (builder.constants[i].astype(np.float64) for i in node.proto.input[1:5])
    k = gamma / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
    y = x.map_blocks(lambda w: (w * k.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32))
    y.bias = ((x.bias - mean) * k + beta).astype(np.float32)
    return y


def _relu(builder: _GraphBuilder, node: _Node) -> _Act:
    x = node.x
    if isinstance(x, _Pending):
        return builder.closed(x)
    if x.reads_input():
        raise UnsupportedModelError(f"{node.where}: activation without a preceding linear layer")
    return x  # a ReLU of activations (non-negative) changes nothing


def _clip(builder: _GraphBuilder, node: _Node) -> _Act:
    """Clip(0, c) after a linear layer: a clipped ReLU, whose ceiling the layer keeps."""
    a, proto, constants = node.attrs, node.proto, builder.constants
    lo = a.get("min", constants[proto.input[1]] if len(proto.input) > 1 and proto.input[1] else -np.inf)
    hi = a.get("max", constants[proto.input[2]] if len(proto.input) > 2 and proto.input[2] else np.inf)
    if not isinstance(node.x, _Pending) or float(lo) != 0.0:
        raise UnsupportedModelError(f"{node.where}: only Clip(min=0, max=c) after a linear layer "
                                    f"(a clipped ReLU) is supported")
    return builder.closed(node.x, activation_max=None if np.isinf(float(hi)) else float(hi))


def _max_pool(builder: _GraphBuilder, node: _Node) -> _Act:
    """2x2 max pooling as two spiking layers per part (_max_pool_as_relu_layers)."""
    x, a = node.x, node.attrs
    if isinstance(x, _Pending) or x.flat:
        raise UnsupportedModelError(f"{node.where}: MaxPool must follow an activation, on feature maps")
    k = tuple(a["kernel_shape"])
    pads = a.get("pads", [0, 0, 0, 0])
    if k != (2, 2) or any(pads) or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise UnsupportedModelError(f"{node.where}: only 2x2 MaxPool without padding, dilation or "
                                    f"ceil_mode is supported (got kernel {list(k)}, pads {list(pads)})")
    pooled = []
    for j, part in enumerate(x.parts):
        base = node.name("maxpool", builder) + (f"/{j}" if len(x.parts) > 1 else "")
        first, second = _max_pool_as_relu_layers(base, part.shape, tuple(a.get("strides", [1, 1])))
        pairs = builder.activated(first, part, max_pool=True)
        top = builder.activated(second, _Part([_Ref(pairs)], first.output_shape), max_pool=True)
        pooled.append(_Part([_Ref(top, pairs=part.shape[0])], (part.shape[0],) + second.output_shape[1:]))
    return _Act(pooled)


def _average_pool(builder: _GraphBuilder, node: _Node) -> _Act:
    """AveragePool or GlobalAveragePool: linear, so the layer that reads it takes it into its
    weights (_Part.pool, _through_pool) instead of a spiking layer quantizing the mean (the global
    pool before the scores most of all: its T + 1 levels per channel were all the score layer
    saw). A pooling of a pooled part, and a conv reading a pooled part where the two do not
    compose, get the pooling as a spiking layer (_pool_layer)."""
    x, a, op = node.x, node.attrs, node.proto.op_type
    if isinstance(x, _Pending) or x.flat:
        raise UnsupportedModelError(f"{node.where}: pooling must follow an activation, on feature maps")
    pooled = []
    for j, part in enumerate(x.parts):
        if part.pool is not None:
            part = _pool_layer(builder, part, node.name("pool", builder) + (f"/{j}" if len(x.parts) > 1 else ""))
        c, h, w = part.shape
        if op == "GlobalAveragePool":
            k, stride, pads = (h, w), (1, 1), (0, 0, 0, 0)
        else:
            k = tuple(a["kernel_shape"])
            stride = tuple(a.get("strides", [1, 1]))
            pads = tuple(a.get("pads", [0, 0, 0, 0]))
            if any(pads) and not a.get("count_include_pad", 0):
                raise UnsupportedModelError(f"{node.where}: padded AveragePool needs count_include_pad=1")
        pool = _Pool(k, stride, pads, tuple(part.shape))
        pooled.append(_Part(part.refs, (c,) + _pooled_size(pool), pool))
    return _Act(pooled)


def _pool_layer(builder: _GraphBuilder, part: _Part, name: str) -> _Part:
    """A pooled part's pooling as a depthwise convolution in a spiking layer of its own (exact in
    the DNN: the mean of ReLU outputs is non-negative); -> the part reading that layer."""
    pool = part.pool
    c = pool.input_shape[0]
    weight = np.full((c, 1) + tuple(pool.kernel), 1.0 / (pool.kernel[0] * pool.kernel[1]), np.float32)
    layer = Layer(name, "conv", weight, np.zeros(c, np.float32), tuple(pool.input_shape), tuple(part.shape),
                  tuple(pool.stride), tuple(pool.pads), groups=c, spiking=True)
    return _Part([_Ref(builder.activated(layer, replace(part, shape=tuple(pool.input_shape), pool=None)))],
                 tuple(part.shape))


def _flatten(builder: _GraphBuilder, node: _Node) -> _Act:
    """Flatten, or a Reshape to (batch, features)."""
    x = node.x
    if node.proto.op_type == "Reshape":
        target = builder.constants[node.proto.input[1]]
        if not (len(target) == 2 and target[1] in (-1, int(np.prod(x.shape)))):
            raise UnsupportedModelError(f"{node.where}: only a reshape to (batch, features) is supported")
    if isinstance(x, _Pending):
        raise UnsupportedModelError(f"{node.where}: flatten between a layer and its activation")
    return replace(x, flat=True)


def _pass_through(builder: _GraphBuilder, node: _Node):
    """Identity, Dropout (inference) and a Cast between float types leave the data unchanged."""
    return node.x


_HANDLERS = {
    "Conv": _conv, "Gemm": _dense, "MatMul": _dense, "Add": _add_node, "Concat": _concat,
    "BatchNormalization": _batch_norm, "Relu": _relu, "Clip": _clip, "MaxPool": _max_pool,
    "AveragePool": _average_pool, "GlobalAveragePool": _average_pool, "Flatten": _flatten, "Reshape": _flatten,
    "Identity": _pass_through, "Dropout": _pass_through, "Cast": _pass_through,
}
SUPPORTED_OPS = tuple(_HANDLERS)


def _add(builder: _GraphBuilder, x, y, name: str, where: str):
    """A residual Add of two tensors: a layer before its activation adds the other tensor's blocks
    (an activation through identity weights); two activations add up part by part (a following
    linear layer reads both through the same weights; parts pooled differently get their pooling
    as a layer first)."""
    if tuple(x.shape) != tuple(y.shape):
        raise UnsupportedModelError(f"{where}: adds tensors of shapes {x.shape} and {y.shape}")
    if isinstance(x, _Act) and isinstance(y, _Act):
        if x.flat != y.flat or [p.shape for p in x.parts] != [p.shape for p in y.parts]:
            raise UnsupportedModelError(f"{where}: adds concatenations of different parts")
        summed = []
        for j, (p, q) in enumerate(zip(x.parts, y.parts)):
            if p.pool != q.pool:
                p, q = (_pool_layer(builder, r, f"{name}/pool{j}{side}") if r.pool is not None else r
                        for r, side in ((p, "a"), (q, "b")))
            summed.append(_Part(p.refs + q.refs, p.shape, p.pool))
        return _Act(summed, x.flat)
    if isinstance(x, _Act):
        x, y = y, x
    if isinstance(y, _Act):
        blocks = _identity_blocks(y, f"{name}/skip", where)
        return replace(x, blocks=x.blocks + blocks)
    return replace(x, blocks=x.blocks + y.blocks, bias=(x.bias + y.bias).astype(np.float32))


def _check_reaches_scores(layers: list, sources: list) -> None:
    needed = {len(layers) - 1}
    for index in range(len(layers) - 1, -1, -1):
        if index in needed:
            needed.update(s for s in sources[index] if s >= 0)
    unused = [layer.name for i, layer in enumerate(layers) if i not in needed]
    if unused:
        raise UnsupportedModelError(f"the outputs of {unused} do not reach the class scores (a model with "
                                    f"several outputs?); export the classifier alone")


def _name_sources(layers: list, sources: list) -> None:
    """Unique layer names, and `inputs` wherever a layer reads anything but the previous layer."""
    seen = {NETWORK_INPUT}
    for i, layer in enumerate(layers):
        name, k = layer.name, 1
        while name in seen:
            name, k = f"{layer.name}_{k}", k + 1
        seen.add(name)
        layer.name = name
    for i, layer in enumerate(layers):
        if sources[i] != [i - 1]:
            layer.inputs = [NETWORK_INPUT if s < 0 else layers[s].name for s in sources[i]]


def _per_channel(bias: np.ndarray, out: int, where: str) -> np.ndarray:
    """An Add's constant as one value per output channel of the layer it follows."""
    bias = np.asarray(bias, np.float32)
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
    every input channel's weights are used twice. A pair is two adjacent channels, so a grouped
    convolution (a depthwise pooling or identity skip, say) keeps each pair in its group."""
    if layer.kind == "conv":
        c, h, w = layer.input_shape
        return replace(layer, weight=np.repeat(layer.weight, 2, axis=1), input_shape=(2 * c, h, w))
    # dense after a flatten of (C, H, W): channel c's block of H*W columns is repeated
    out = layer.weight.shape[0]
    weight = np.repeat(layer.weight.reshape(out, channels, -1), 2, axis=1).reshape(out, -1)
    return replace(layer, weight=weight, input_shape=(weight.shape[1],))


def scores_model(path: str):
    """The ONNX model up to the class scores, as the importer reads it: an exporter's
    post-processing (ZipMap, ArgMax, ...) and what follows it dropped, the score tensor the only
    output. What every other format of the DNN (OpenVINO IR) is made from, so that all of them
    compute what the SNN does. -> (onnx ModelProto, the dropped op types)."""
    import onnx
    from onnx import helper

    proto = onnx.load(path)
    graph = proto.graph
    constants = {t.name for t in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    kept, dropped, score = _split_postprocessing([n for n in graph.node if n.op_type != "Constant"], constants)
    if not dropped:
        return proto, []
    kept_ids = {id(n) for n in kept}
    nodes = [n for n in graph.node if n.op_type == "Constant" or id(n) in kept_ids]
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph.value_info
    except Exception:  # noqa: BLE001 - an exporter's odd types; the shape below serves
        inferred = []
    known = {v.name: v for v in list(inferred) + list(graph.value_info) + list(graph.output)}
    # the scores of a batch: (batch, classes), as the importer requires them
    output = known.get(score) or helper.make_tensor_value_info(score, onnx.TensorProto.FLOAT, [None, None])
    pruned = helper.make_graph(nodes, graph.name, graph.input, [output], graph.initializer)
    model = helper.make_model(pruned, opset_imports=proto.opset_import, ir_version=proto.ir_version)
    model.metadata_props.extend(proto.metadata_props)
    return model, dropped
