"""DNN -> SNN: data-based normalization so that every spiking layer's threshold is 1.

Each layer's activation scale lambda is its Clip ceiling when the DNN has one (exact: a clipped
ReLU saturates where the neuron fires every step), otherwise a high percentile of its activations on
calibration images (robust to outliers, Rueckauer et al. 2017). Weights become
W * lambda_prev / lambda and biases b / lambda, so a rate of 1 spike per step stands for lambda.
Neurons reset by subtraction and start half-way to threshold, which centres the rounding error of
rate coding (Bu et al. 2022; Rueckauer et al. 2017).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from ..engine.dnn import forward
from ..engine.ops import fan_out
from ..ir import Network, NeuronConfig, SNNModel


@dataclass
class ConversionOptions:
    percentile: float = 99.9  # of positive activations, for layers without a Clip ceiling
    use_clip_ceiling: bool = True  # False: percentile even where the DNN has a Clip (baselines)
    calibration_images: int = 1000
    v_init: float = 0.5
    batch_size: int = 250


def activation_scales(network: Network, calib_x: np.ndarray, options: ConversionOptions,
                      progress: Optional[Callable[[int, int], None]] = None):
    """Per spiking layer: (scale lambda, sparsity = fraction of zero activations)."""
    spiking = [i for i, layer in enumerate(network.layers) if layer.spiking]
    samples = {i: [] for i in spiking}
    zeros = {i: 0 for i in spiking}
    total = {i: 0 for i in spiking}
    for start in range(0, len(calib_x), options.batch_size):
        _, acts = forward(network, calib_x[start:start + options.batch_size], return_activations=True)
        for i in spiking:
            a = acts[i].reshape(-1)
            zeros[i] += int(np.count_nonzero(a == 0))
            total[i] += a.size
            positive = a[a > 0]
            # a bounded random sample keeps the percentile cheap on big feature maps
            if positive.size > 200_000:
                positive = np.random.default_rng(start).choice(positive, 200_000, replace=False)
            samples[i].append(positive)
        if progress:
            progress(min(start + options.batch_size, len(calib_x)), len(calib_x))
    scales, sparsity = [], []
    for i in spiking:
        layer = network.layers[i]
        values = np.concatenate(samples[i])
        if layer.activation_max is not None and options.use_clip_ceiling:
            scale = layer.activation_max
        elif values.size:
            scale = float(np.percentile(values, options.percentile))
        else:
            scale = 1.0  # a dead layer: any scale gives zero spikes
        scales.append(max(scale, 1e-6))
        sparsity.append(zeros[i] / max(total[i], 1))
    return scales, sparsity


def convert(network: Network, calib_x: np.ndarray, options: ConversionOptions = ConversionOptions(),
            progress: Optional[Callable[[int, int], None]] = None, source: str = "") -> SNNModel:
    """Normalize the DNN's layers for integrate-and-fire neurons with threshold 1."""
    calib_x = calib_x[:options.calibration_images]
    scales, sparsity = activation_scales(network, calib_x, options, progress)
    layers, layer_scales, spiking_index = [], [], 0
    for layer, sources in zip(network.layers, network.source_indices()):
        scale = scales[spiking_index] if layer.spiking else 1.0  # the score layer keeps DNN units
        # each source's weights by its own scale (a spike from it stands for that scale); input: 1
        source_scales = [layer_scales[s] if s >= 0 else 1.0 for s in sources]
        layers.append(replace(layer, weight=(layer.weight * (source_scales[0] / scale)).astype(np.float32),
                              bias=(layer.bias / scale).astype(np.float32), activation_max=None,
                              extra_synapses=[replace(synapse, weight=(synapse.weight * (s / scale)).astype(np.float32))
                                              for synapse, s in zip(layer.extra_synapses, source_scales[1:])]))
        layer_scales.append(scale)
        if layer.spiking:
            spiking_index += 1
    snn_network = Network(layers, network.preprocessing, list(network.class_names))
    report = {
        "source": source,
        "percentile": options.percentile,
        "calibration_images": int(len(calib_x)),
        "dropped_postprocessing": list(network.dropped_postprocessing),
        "layers": layer_report(network, scales, sparsity),
    }
    n_spiking = sum(1 for layer in layers if layer.spiking)
    return SNNModel(snn_network, [1.0] * n_spiking, NeuronConfig("subtract", options.v_init, 1.0),
                    "ideal", report)


def layer_report(network: Network, scales, sparsity) -> list:
    rows, spiking_index = [], 0
    for layer in network.layers:
        blocks = layer.blocks()  # one per source (a chain: the layer itself)
        macs = sum(int(np.prod(b.weight.shape[1:]) * layer.n_neurons) for b in blocks)
        row = {"name": layer.name, "kind": layer.kind, "neurons": layer.n_neurons, "dnn_macs": macs,
               "synapses": int(sum(fan_out(b).sum() for b in blocks))}
        if layer.inputs is not None:
            row["inputs"] = list(layer.inputs)
        if layer.spiking:
            row["scale"] = float(scales[spiking_index])
            row["scale_from"] = "clip ceiling" if layer.activation_max is not None else "percentile"
            row["dnn_sparsity"] = float(sparsity[spiking_index])
            spiking_index += 1
        rows.append(row)
    return rows
