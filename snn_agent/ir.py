"""The network IR shared by conversion, the engines and the backends.

Plain dataclasses over numpy arrays (in the spirit of NIR): a feed-forward network of linear
layers (convolution or dense), each followed by a ReLU in the DNN and by a spiking neuron in the
SNN, except the last, whose output is the class scores. Saved as JSON + a .npz of arrays, never
pickle, so a model directory can be read by any tool and cannot execute code when loaded.

Most networks are a chain: each layer reads the one before it (the first reads the network input).
A graph (residual Add, Concat) is the same list of layers in topological order, where a layer may
name its sources in `inputs` and read each through its own weight block: its synaptic input is the
sum of every source's contribution, plus the bias. A residual relu(conv(h) + x) is one layer with
blocks conv(h) and an identity (depthwise 1x1 of ones) from x; a layer after a Concat reads each
concatenated source through its slice of the weight (split along the input axis). `Network.is_chain`
tells the consumers that only take chains (netx, NIR and Loihi exports) whether they can.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import numpy as np

FORMAT_VERSION = 1  # chains; a graph (a layer with `inputs`) is saved as version 2
GRAPH_FORMAT_VERSION = 2
READABLE_VERSIONS = (FORMAT_VERSION, GRAPH_FORMAT_VERSION)
NETWORK_INPUT = "input"  # the name by which a layer's `inputs` refers to the network input
MODEL_JSON = "snn.json"
MODEL_ARRAYS = "weights.npz"
CONVERGED_PREFIX = "converged."  # SNNModel.converged's arrays in weights.npz


class ModelFormatError(ValueError):
    """A model file or directory is missing, corrupt or of an unknown version."""


@dataclass
class Preprocessing:
    """How raw uint8 camera pixels become the network's input: x = (pixel * scale - mean) / std."""

    input_shape: tuple  # (channels, height, width) the network expects
    scale: float = 1.0 / 255.0
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    channel_order: str = "rgb"  # for 3-channel models: order of the input channels

    def apply(self, images_hwc_uint8: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 of the right size -> (N, C, H, W) float32 network input."""
        x = images_hwc_uint8.astype(np.float32) * np.float32(self.scale)
        mean = np.asarray(self.mean, np.float32).reshape(1, 1, 1, -1)
        std = np.asarray(self.std, np.float32).reshape(1, 1, 1, -1)
        x = (x - mean) / std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@dataclass
class FixedPoint:
    """How one layer runs in Loihi's fixed point (Lava's CUBA LIF); set only in the `loihi` target.

    The layer's weight and bias then hold integers: weights as the synapses hold them (8-bit) and
    bias mantissas. Per step, with a_in the synaptic sum of the previous step's input scaled by
    2**weight_exp (Lava's Dense shifts it; its Conv ignores the exponent, so conv layers keep 0):
        u = u * (4095 - du) / 4096 + (a_in << 6)     (du = 4095: u is this step's input only)
        v = v * (4096 - dv) / 4096 + u + (bias << bias_exp)   (dv = 0: no leak)
        spike when v > vth << 6, then v = 0
    """

    vth: int  # threshold mantissa
    weight_exp: int = 0
    bias_exp: int = 6  # lava-dl netx always uses 6
    du: int = 4095
    dv: int = 0
    # a_in units per unit of the ideal model's input current: scores = v / (64 * unit * T)
    unit: float = 1.0
    # First layer only: the host sends graded spikes round(x * input_scale) at every step of a frame;
    # 0 means the input is binary spikes (a non-zero x is a spike).
    input_scale: float = 0.0
    # Steps of bias the layer integrates before its first input arrives (one step per synapse layer
    # from the input); the neurons start that many biases lower, so that the input meets v_init.
    start_delay: int = 0


@dataclass
class Synapse:
    """A layer's weights from one more of its sources (graphs only); fields as in Layer."""

    kind: str  # "conv" or "dense"
    weight: np.ndarray
    input_shape: tuple  # the source's output as this block reads it
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    groups: int = 1


@dataclass
class Layer:
    """One linear operation; `spiking` is False only for the output (score) layer.

    kind, weight, input_shape, stride, padding, groups describe the synapses from the layer's
    (first) source. In a graph, `inputs` names the sources (layer names, or NETWORK_INPUT) and
    `extra_synapses[k]` holds the weights from inputs[k + 1]; the layer's input current is the sum
    over its sources. inputs=None (every chain layer): the previous layer, or the network input.
    """

    name: str
    kind: str  # "conv" or "dense"
    weight: np.ndarray  # conv: (out, in/groups, kh, kw); dense: (out, in)
    bias: np.ndarray  # (out,)
    input_shape: tuple  # per sample, without batch: (C, H, W) or (features,)
    output_shape: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)  # top, left, bottom, right
    groups: int = 1
    spiking: bool = True
    # Ceiling of a clipped ReLU (ONNX Clip, ReLU6) in the DNN; None for a plain ReLU.
    activation_max: Optional[float] = None
    fixed_point: Optional[FixedPoint] = None  # the `loihi` target's integer parameters
    inputs: Optional[list] = None  # graphs: names of the sources, one per weight block
    extra_synapses: list = field(default_factory=list)  # graphs: Synapse from inputs[1:]
    # Spiking layers: a fraction of the threshold added to the operating point's v_init at the
    # start of a frame (conversion/calibrate.py), per output channel (out,) or per neuron
    # (output_shape); None: nothing added.
    initial_potential: Optional[np.ndarray] = None

    @property
    def n_neurons(self) -> int:
        return int(np.prod(self.output_shape))

    def initial_potential_map(self) -> Optional[np.ndarray]:
        """initial_potential for every neuron, shape output_shape (channels first), or None."""
        if self.initial_potential is None:
            return None
        if self.initial_potential.size == self.n_neurons:
            return self.initial_potential.reshape(self.output_shape)
        per_channel = self.initial_potential.reshape((-1,) + (1,) * (len(self.output_shape) - 1))
        return np.broadcast_to(per_channel, tuple(self.output_shape))

    def blocks(self) -> list:
        """One Layer per source, each with only that source's weights (the first is the layer itself;
        the others have zero bias): what ops.linear and ops.fan_out take."""
        if not self.extra_synapses:
            return [self]
        zero = np.zeros_like(self.bias)
        return [self] + [replace(self, kind=s.kind, weight=s.weight, bias=zero, input_shape=tuple(s.input_shape),
                                 stride=tuple(s.stride), padding=tuple(s.padding), groups=s.groups,
                                 inputs=None, extra_synapses=[]) for s in self.extra_synapses]


@dataclass
class Network:
    """A DNN as a chain of layers with ReLU after every layer but the last."""

    layers: list
    preprocessing: Preprocessing
    class_names: list = field(default_factory=list)
    # Exporters' post-processing ops (Softmax, ArgMax, ...) the importer dropped; reported, not saved.
    dropped_postprocessing: list = field(default_factory=list)
    # Names of the layers the importer made of a MaxPool: their output never exceeds their source's
    # and reaches it, which conversion uses; not saved (conversion starts from the DNN).
    max_pool_layers: list = field(default_factory=list)

    @property
    def is_chain(self) -> bool:
        """True when every layer reads only the layer before it (the first: the network input).
        Consumers that only take chains (netx, NIR, Loihi) must refuse a network where it is False."""
        return all(sources == [i - 1] for i, sources in enumerate(self.source_indices()))

    def source_indices(self) -> list:
        """Per layer, the indices of the layers it reads, one per weight block; -1 is the network input."""
        index = {layer.name: i for i, layer in enumerate(self.layers)}
        result = []
        for i, layer in enumerate(self.layers):
            if layer.inputs is None:
                result.append([i - 1])
                continue
            sources = []
            for name in layer.inputs:
                if name == NETWORK_INPUT:
                    sources.append(-1)
                elif name in index and index[name] < i:
                    sources.append(index[name])
                else:
                    raise ModelFormatError(f"layer {layer.name}: input {name!r} is not an earlier layer "
                                           f"or {NETWORK_INPUT!r}")
            result.append(sources)
        return result


@dataclass
class NeuronConfig:
    """Neuron parameters of one operating point (TopSpark adapts these together with T).

    threshold_scale multiplies every layer's threshold; v_init is the initial membrane potential
    as a fraction of the threshold (0.5 halves the quantization error of rate coding).
    layer_threshold_scales (one per spiking layer, on top of threshold_scale): at small T the layers
    quantize differently, so each gets its own. bias_shifts (one list per spiking layer, one value
    per output channel) move the layer's bias by that fraction of its threshold per step: the bias
    calibration that brings the SNN's firing rates back to the DNN's activations at small T.
    Empty tuples mean 1 and 0. v_decay: the spiking layers' voltage leak as Loihi's 12-bit dv (v
    keeps (4096 - dv) / 4096 of itself each step; 0: none; None: each layer's own, which is none
    for our conversion and the trained leak of a lava-dl network); only the loihi target has one.
    """

    reset: str = "subtract"  # "subtract" (ideal target) or "zero" (Loihi's CUBA LIF)
    v_init: float = 0.5
    threshold_scale: float = 1.0
    layer_threshold_scales: tuple = ()
    bias_shifts: tuple = ()
    v_decay: Optional[int] = None

    def __post_init__(self):
        # JSON gives lists; tuples keep configurations comparable and hashable-looking
        self.layer_threshold_scales = tuple(float(s) for s in self.layer_threshold_scales)
        self.bias_shifts = tuple(tuple(float(b) for b in shift) for shift in self.bias_shifts)

    def scale_of(self, spiking_index: int) -> float:
        """The factor on the threshold of the spiking_index-th spiking layer."""
        if spiking_index < len(self.layer_threshold_scales):
            return self.threshold_scale * self.layer_threshold_scales[spiking_index]
        return self.threshold_scale

    def bias_shift_of(self, spiking_index: int) -> Optional[np.ndarray]:
        """Per output channel, in fractions of the threshold per step; None when unshifted."""
        if spiking_index < len(self.bias_shifts) and any(self.bias_shifts[spiking_index]):
            return np.asarray(self.bias_shifts[spiking_index])
        return None


@dataclass
class SNNModel:
    """A converted network: normalized layers plus the neuron model that runs them."""

    network: Network
    thresholds: list  # one float per spiking layer, after normalization
    neuron: NeuronConfig
    target: str = "ideal"
    info: dict = field(default_factory=dict)  # conversion report: scales, source, calibration
    # The same network with weights refit for large T, run from T = converged_from_t on (the
    # conversion's first refit corrects small T's rounding and leaves a floor at large T)
    converged: Optional["SNNModel"] = None
    converged_from_t: int = 0

    @property
    def layers(self) -> list:
        return self.network.layers

    @property
    def class_names(self) -> list:
        return self.network.class_names

    # --- persistence -------------------------------------------------------------------------
    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        arrays = _layer_arrays(self.layers, "")
        if self.converged is not None:
            arrays.update(_layer_arrays(self.converged.layers, CONVERGED_PREFIX))
        layer_meta = []
        for layer in self.layers:
            meta = {k: v for k, v in asdict(layer).items()
                    if k not in ("weight", "bias", "inputs", "extra_synapses", "initial_potential")}
            if layer.inputs is not None:  # graphs only: chain files stay as they were
                meta["inputs"] = list(layer.inputs)
            if layer.extra_synapses:
                meta["extra_synapses"] = [{k_: v for k_, v in asdict(synapse).items() if k_ != "weight"}
                                          for synapse in layer.extra_synapses]
            layer_meta.append(meta)
        graph = any(layer.inputs is not None or layer.extra_synapses for layer in self.layers)
        doc = {
            "format_version": GRAPH_FORMAT_VERSION if graph else FORMAT_VERSION,
            "target": self.target,
            "layers": layer_meta,
            "thresholds": [float(t) for t in self.thresholds],
            "neuron": asdict(self.neuron),
            "preprocessing": asdict(self.network.preprocessing),
            "class_names": list(self.network.class_names),
            "info": self.info,
        }
        if self.converged is not None:
            doc["converged_from_t"] = self.converged_from_t
        np.savez(os.path.join(directory, MODEL_ARRAYS), **arrays)
        with open(os.path.join(directory, MODEL_JSON), "w") as f:
            json.dump(doc, f, indent=1, default=_json_default)

    @staticmethod
    def files_problem(directory: str) -> Optional[str]:
        """What can be told about a model directory without loading its arrays: that it is one, has
        both files, and a readable snn.json of a known format. None when nothing is wrong so far."""
        if not os.path.isdir(directory):
            return f"{directory} is {'a file' if os.path.exists(directory) else 'missing'}, not a model directory"
        json_path = os.path.join(directory, MODEL_JSON)
        for path in (json_path, os.path.join(directory, MODEL_ARRAYS)):
            if not os.path.isfile(path):
                return f"model file missing: {path}"
        try:
            with open(json_path) as f:
                version = json.load(f).get("format_version")
        except (ValueError, OSError, AttributeError) as exc:
            return f"{json_path} is not a model description: {exc}"
        if version not in READABLE_VERSIONS:
            return f"{json_path}: format_version {version!r}, this snn_agent reads {', '.join(map(str, READABLE_VERSIONS))}"
        return None

    @classmethod
    def load(cls, directory: str) -> "SNNModel":
        json_path = os.path.join(directory, MODEL_JSON)
        npz_path = os.path.join(directory, MODEL_ARRAYS)
        for path in (json_path, npz_path):
            if not os.path.isfile(path):
                raise ModelFormatError(f"model file missing: {path} (convert a model first: "
                                       f"snn-agent convert MODEL.onnx -o DIR)")
        try:
            with open(json_path) as f:
                doc = json.load(f)
        except (ValueError, OSError) as exc:
            raise ModelFormatError(f"corrupt model in {directory}: {json_path}: {exc}") from exc
        try:
            arrays = dict(np.load(npz_path, allow_pickle=False))
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # zip and npy errors
            raise ModelFormatError(f"corrupt model in {directory}: {npz_path}: {exc}") from exc
        if doc.get("format_version") not in READABLE_VERSIONS:
            raise ModelFormatError(f"{json_path}: format_version {doc.get('format_version')!r}, "
                                   f"this snn_agent reads {', '.join(map(str, READABLE_VERSIONS))}")
        try:
            layers = []
            for i, meta in enumerate(doc["layers"]):
                meta = dict(meta)
                for key in ("input_shape", "output_shape", "stride", "padding"):
                    meta[key] = tuple(meta[key])
                if meta.get("fixed_point") is not None:
                    meta["fixed_point"] = FixedPoint(**meta["fixed_point"])
                extra = []
                for synapse in meta.get("extra_synapses") or []:
                    synapse = dict(synapse)
                    for key in ("input_shape", "stride", "padding"):
                        synapse[key] = tuple(synapse[key])
                    extra.append(Synapse(weight=None, **synapse))
                meta["extra_synapses"] = extra
                layers.append(_with_arrays(Layer(weight=None, bias=None, **meta), i, arrays, ""))
            pre = dict(doc["preprocessing"])
            for key in ("input_shape", "mean", "std"):
                pre[key] = tuple(pre[key])
            network = Network(layers, Preprocessing(**pre), doc["class_names"])
            model = cls(network, doc["thresholds"], NeuronConfig(**doc["neuron"]),
                        doc["target"], doc.get("info", {}))
            if "converged_from_t" in doc:
                converged = [_with_arrays(layer, i, arrays, CONVERGED_PREFIX) for i, layer in enumerate(layers)]
                model.converged = replace(model, network=replace(network, layers=converged))
                model.converged_from_t = int(doc["converged_from_t"])
        except (KeyError, TypeError) as exc:
            raise ModelFormatError(f"corrupt model in {directory}: missing or bad field {exc}") from exc
        try:
            for each in (model, model.converged):
                if each is not None:
                    validate_network(each.network)
        except ModelFormatError as exc:  # the arrays do not fit the description, or hold NaN
            raise ModelFormatError(f"{npz_path}: {exc}") from exc
        return model


def _layer_arrays(layers: list, prefix: str) -> dict:
    """Every array of `layers` by its name in weights.npz: `{prefix}{i}.weight`, `.bias`,
    `.initial_potential` and `.extra{k}.weight`."""
    arrays = {}
    for i, layer in enumerate(layers):
        arrays[f"{prefix}{i}.weight"] = layer.weight
        arrays[f"{prefix}{i}.bias"] = layer.bias
        if layer.initial_potential is not None:
            arrays[f"{prefix}{i}.initial_potential"] = layer.initial_potential
        for k, synapse in enumerate(layer.extra_synapses):
            arrays[f"{prefix}{i}.extra{k}.weight"] = synapse.weight
    return arrays


def _with_arrays(layer: Layer, i: int, arrays: dict, prefix: str) -> Layer:
    """`layer` (the i-th) with its arrays from weights.npz under `prefix` (_layer_arrays' names)."""
    return replace(layer, weight=arrays[f"{prefix}{i}.weight"], bias=arrays[f"{prefix}{i}.bias"],
                   initial_potential=arrays.get(f"{prefix}{i}.initial_potential"),
                   extra_synapses=[replace(synapse, weight=arrays[f"{prefix}{i}.extra{k}.weight"])
                                   for k, synapse in enumerate(layer.extra_synapses)])


def validate_network(network: Network) -> None:
    """Shapes must fit their sources; raises ModelFormatError naming the first layer that does not."""
    if not network.layers:
        raise ModelFormatError("network has no layers")
    input_shape = tuple(network.preprocessing.input_shape)
    names = [layer.name for layer in network.layers]
    if len(set(names)) != len(names) or NETWORK_INPUT in names:
        duplicates = sorted({n for n in names if names.count(n) > 1 or n == NETWORK_INPUT})
        raise ModelFormatError(f"layer names must be unique and not {NETWORK_INPUT!r}: {duplicates}")
    for i, (layer, sources) in enumerate(zip(network.layers, network.source_indices())):
        if layer.weight.shape[0] != layer.bias.shape[0]:
            raise ModelFormatError(f"layer {layer.name}: {layer.weight.shape[0]} outputs but "
                                   f"{layer.bias.shape[0]} biases")
        if len(sources) != 1 + len(layer.extra_synapses):
            raise ModelFormatError(f"layer {layer.name}: {len(sources)} inputs but "
                                   f"{1 + len(layer.extra_synapses)} weight blocks")
        for source, block in zip(sources, layer.blocks()):
            given = input_shape if source < 0 else tuple(network.layers[source].output_shape)
            origin = "the network input" if source < 0 else f"layer {network.layers[source].name}"
            if layer.inputs is not None and source >= 0 and not network.layers[source].spiking:
                raise ModelFormatError(f"layer {layer.name}: reads the score layer {network.layers[source].name}")
            if int(np.prod(block.input_shape)) != int(np.prod(given)) or \
                    (layer.inputs is not None and block.kind == "conv" and tuple(block.input_shape) != given):
                raise ModelFormatError(f"layer {layer.name}: expects input {tuple(block.input_shape)}, "
                                       f"{origin} gives {given}")
            if block.weight.shape[0] != layer.weight.shape[0]:
                raise ModelFormatError(f"layer {layer.name}: weight blocks with different output counts")
            if not np.all(np.isfinite(block.weight)):
                raise ModelFormatError(f"layer {layer.name}: weights contain NaN or Inf")
        if not np.all(np.isfinite(layer.bias)):
            raise ModelFormatError(f"layer {layer.name}: weights contain NaN or Inf")
        if layer.initial_potential is not None and (
                layer.initial_potential.shape not in (layer.bias.shape, tuple(layer.output_shape)) or
                not np.all(np.isfinite(layer.initial_potential))):
            raise ModelFormatError(f"layer {layer.name}: initial potentials must be finite, one per output channel "
                                   f"{layer.bias.shape} or one per neuron {tuple(layer.output_shape)}")
    if network.layers[-1].spiking:
        raise ModelFormatError("the last layer must be the (non-spiking) score layer")


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj)}")
