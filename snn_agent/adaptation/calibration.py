"""Parameter enhancement at small T beyond one threshold scale: per-layer thresholds and biases.

At T = 2..4 a layer's firing rate can take only T + 1 values, and each layer rounds differently
(the first sees an analog current, the deeper ones spike trains that are already rounded). Two
corrections, both computed per T on the calibration split:

- per-layer threshold scales, by coordinate search: one layer at a time, the scale that most
  improves calibration accuracy, the others held (two passes, as a change in one layer moves the
  best scale of the next);
- bias calibration (Li et al., "A free lunch from ANN: towards efficient, accurate spiking neural
  networks calibration", ICML 2021): layer by layer from the input, the bias moves by the mean
  difference, per channel, between the DNN's activation (as a fraction of the layer's threshold,
  clipped to [0, 1]) and the SNN's firing rate at this T, so that the rounding error no longer
  has a mean. It needs no labels; it fits rates, not the calibration accuracy.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from ..engine.dnn import forward
from ..ir import NeuronConfig, SNNModel

LAYER_SCALES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
COORDINATE_PASSES = 2
BIAS_PASSES = 2
# Images the bias calibration runs on (the first of the calibration split): it fits per-channel
# mean rates, which a hundred-odd images fix (each conv channel averages over every position),
# and it runs 2 x layers times per T, most of a profile's time. 128 against 256: within 0.6 points
# on the validation split at T = 2..8 (docs/conversion.md), for half the runs' images.
BIAS_IMAGES = 128


def saturating_network(model: SNNModel):
    """The model's layers as a DNN whose ReLUs saturate where the SNN's rates do (at the
    threshold): what the SNN approximates."""
    layers, spiking_index = [], 0
    for layer in model.layers:
        if layer.spiking:
            ceiling = model.thresholds[spiking_index]
            layer = replace(layer, activation_max=min(layer.activation_max or ceiling, ceiling))
            spiking_index += 1
        layers.append(layer)
    return replace(model.network, layers=layers)


def dnn_channel_rates(model: SNNModel, x: np.ndarray, batch: int = 256) -> list:
    """Per spiking layer, per channel: the mean DNN activation over x as a fraction of the layer's
    threshold, every ReLU clipped at the threshold (the rate an ideal SNN would fire at). `model` is the ideal
    (normalized) model; its loihi target has the same layers and channels."""
    network = saturating_network(model)
    sums = None
    for start in range(0, len(x), batch):
        _, activations = forward(network, x[start:start + batch], return_activations=True)
        spiking = [a for a, layer in zip(activations, model.layers) if layer.spiking]
        # per frame and channel: the mean over the map's positions
        means = [np.clip(a / threshold, 0.0, 1.0).reshape(len(a), a.shape[1], -1).mean(axis=2).sum(axis=0)
                 for a, threshold in zip(spiking, model.thresholds)]
        sums = means if sums is None else [s + m for s, m in zip(sums, means)]
    return [s / max(len(x), 1) for s in sums]


def refine_layer_scales(accuracies: Callable, starts: dict, start_accuracies: dict, n_layers: int,
                        scales: Sequence[float] = LAYER_SCALES) -> dict:
    """Coordinate search of per-layer threshold scales, for several T at once -> {T: neuron}.

    starts: {T: the neuron the search starts from}; start_accuracies: {T: its accuracy};
    accuracies({T: neuron}) -> {T: accuracy} on the search's images (the T that share parameters
    may share a run). Each T follows its own search, as if alone: one layer at a time, each scale
    tried from that T's best so far, kept where it beats it; two passes, fewer for a T whose pass
    changed nothing. The global scale is folded into the layers' first, so that `scales` are what
    each layer gets."""
    best = {t: neuron if neuron.layer_threshold_scales else
            replace(neuron, threshold_scale=1.0, layer_threshold_scales=(neuron.threshold_scale,) * n_layers)
            for t, neuron in starts.items()}
    best_accuracy = dict(start_accuracies)
    searching = list(best)
    for _ in range(COORDINATE_PASSES):
        improved = set()
        for layer in range(n_layers):
            for scale in scales:
                candidates = {}
                for t in searching:
                    layer_scales = list(best[t].layer_threshold_scales)
                    if layer_scales[layer] != scale:
                        layer_scales[layer] = scale
                        candidates[t] = replace(best[t], layer_threshold_scales=tuple(layer_scales))
                for t, score in accuracies(candidates).items():
                    if score > best_accuracy[t]:
                        best[t], best_accuracy[t] = candidates[t], score
                        improved.add(t)
        searching = [t for t in searching if t in improved]
        if not searching:
            break
    return best


def calibrate_biases(run: Callable, x: np.ndarray, timesteps: int, neuron: NeuronConfig,
                     reference_rates: list) -> NeuronConfig:
    """`neuron` with bias shifts that bring every spiking layer's per-channel firing rate at T,
    times its threshold scale, to the DNN's activation (reference_rates, from dnn_channel_rates
    on x[:BIAS_IMAGES]), layer by layer, on x[:BIAS_IMAGES]."""
    x = x[:BIAS_IMAGES]
    shifts = [np.zeros(len(r)) for r in reference_rates]
    for _ in range(BIAS_PASSES):
        for layer, reference in enumerate(reference_rates):
            current = replace(neuron, bias_shifts=tuple(tuple(s) for s in shifts))
            rates = run(x, timesteps, current).ops.channel_rates
            # A threshold scale s makes a neuron stand for s x its rate (in the unscaled threshold's
            # units, the DNN's): the shift closes that gap, in fractions of the scaled threshold.
            scale = neuron.scale_of(layer)
            shifts[layer] = shifts[layer] + (reference - scale * rates[layer]) / scale
    return replace(neuron, bias_shifts=tuple(tuple(float(v) for v in s) for s in shifts))
