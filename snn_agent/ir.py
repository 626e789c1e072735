"""The network IR shared by conversion, the engines and the backends.

Plain dataclasses over numpy arrays (in the spirit of NIR): a feed-forward chain of linear
layers (convolution or dense), each followed by a ReLU in the DNN and by a spiking neuron in the
SNN, except the last, whose output is the class scores. Saved as JSON + a .npz of arrays, never
pickle, so a model directory can be read by any tool and cannot execute code when loaded.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

FORMAT_VERSION = 1
MODEL_JSON = "snn.json"
MODEL_ARRAYS = "weights.npz"


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
class Layer:
    """One linear operation; `spiking` is False only for the output (score) layer."""

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

    @property
    def n_neurons(self) -> int:
        return int(np.prod(self.output_shape))


@dataclass
class Network:
    """A DNN as a chain of layers with ReLU after every layer but the last."""

    layers: list
    preprocessing: Preprocessing
    class_names: list = field(default_factory=list)
    # Exporters' post-processing ops (Softmax, ArgMax, ...) the importer dropped; reported, not saved.
    dropped_postprocessing: list = field(default_factory=list)


@dataclass
class NeuronConfig:
    """Neuron parameters of one operating point (TopSpark adapts these together with T).

    threshold_scale multiplies every layer's threshold; v_init is the initial membrane potential
    as a fraction of the threshold (0.5 halves the quantization error of rate coding).
    """

    reset: str = "subtract"  # "subtract" (ideal target) or "zero" (Loihi's CUBA LIF)
    v_init: float = 0.5
    threshold_scale: float = 1.0


@dataclass
class SNNModel:
    """A converted network: normalized layers plus the neuron model that runs them."""

    network: Network
    thresholds: list  # one float per spiking layer, after normalization
    neuron: NeuronConfig
    target: str = "ideal"
    info: dict = field(default_factory=dict)  # conversion report: scales, source, calibration

    @property
    def layers(self) -> list:
        return self.network.layers

    @property
    def class_names(self) -> list:
        return self.network.class_names

    # --- persistence -------------------------------------------------------------------------
    def save(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)
        arrays = {}
        layer_meta = []
        for i, layer in enumerate(self.layers):
            arrays[f"{i}.weight"] = layer.weight
            arrays[f"{i}.bias"] = layer.bias
            meta = {k: v for k, v in asdict(layer).items() if k not in ("weight", "bias")}
            layer_meta.append(meta)
        doc = {
            "format_version": FORMAT_VERSION,
            "target": self.target,
            "layers": layer_meta,
            "thresholds": [float(t) for t in self.thresholds],
            "neuron": asdict(self.neuron),
            "preprocessing": asdict(self.network.preprocessing),
            "class_names": list(self.network.class_names),
            "info": self.info,
        }
        np.savez(os.path.join(directory, MODEL_ARRAYS), **arrays)
        with open(os.path.join(directory, MODEL_JSON), "w") as f:
            json.dump(doc, f, indent=1, default=_json_default)

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
            arrays = dict(np.load(npz_path, allow_pickle=False))
        except (ValueError, OSError, EOFError) as exc:  # json, zip and npy errors
            raise ModelFormatError(f"corrupt model in {directory}: {exc}") from exc
        if doc.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(f"{json_path}: format_version {doc.get('format_version')!r}, "
                                   f"this snn_agent reads {FORMAT_VERSION}")
        try:
            layers = []
            for i, meta in enumerate(doc["layers"]):
                meta = dict(meta)
                for key in ("input_shape", "output_shape", "stride", "padding"):
                    meta[key] = tuple(meta[key])
                if meta.get("fixed_point") is not None:
                    meta["fixed_point"] = FixedPoint(**meta["fixed_point"])
                layers.append(Layer(weight=arrays[f"{i}.weight"], bias=arrays[f"{i}.bias"], **meta))
            pre = dict(doc["preprocessing"])
            for key in ("input_shape", "mean", "std"):
                pre[key] = tuple(pre[key])
            network = Network(layers, Preprocessing(**pre), doc["class_names"])
            model = cls(network, doc["thresholds"], NeuronConfig(**doc["neuron"]),
                        doc["target"], doc.get("info", {}))
        except (KeyError, TypeError) as exc:
            raise ModelFormatError(f"corrupt model in {directory}: missing or bad field {exc}") from exc
        validate_network(model.network)
        return model


def validate_network(network: Network) -> None:
    """Shapes must chain; raises ModelFormatError naming the first layer that does not fit."""
    if not network.layers:
        raise ModelFormatError("network has no layers")
    expected_in: Optional[tuple] = tuple(network.preprocessing.input_shape)
    for layer in network.layers:
        if layer.weight.shape[0] != layer.bias.shape[0]:
            raise ModelFormatError(f"layer {layer.name}: {layer.weight.shape[0]} outputs but "
                                   f"{layer.bias.shape[0]} biases")
        if int(np.prod(layer.input_shape)) != int(np.prod(expected_in)):
            raise ModelFormatError(f"layer {layer.name}: expects input {layer.input_shape}, "
                                   f"previous layer gives {expected_in}")
        if not np.all(np.isfinite(layer.weight)) or not np.all(np.isfinite(layer.bias)):
            raise ModelFormatError(f"layer {layer.name}: weights contain NaN or Inf")
        expected_in = tuple(layer.output_shape)
    if network.layers[-1].spiking:
        raise ModelFormatError("the last layer must be the (non-spiking) score layer")


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj)}")
