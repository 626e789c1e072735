"""The calibration every conversion applies: each layer's weights, then each channel's initial
membrane potential, layer by layer from the input.

Weights first (refit_weights; Li et al. 2021's advanced pipeline, here a closed-form ridge
regression instead of their gradient steps): a layer's inputs in the SNN are its sources' rates,
rounded to T + 1 levels and distorted by the layers before it, where the DNN had exact
activations; the weights are refit, given the rates the SNN's layers (already calibrated) send at
CALIBRATION_T, so that the layer's current is nearest the DNN's pre-activation, and the score
layer's last, on the last spiking layers' rates. That set serves T < CONVERGED_FROM_T; a second,
refit the same way at CONVERGED_CALIBRATION_T, the larger T (convert.convert).

After normalization a layer's firing rate still departs from the DNN activation it stands for,
by a mean that is the layer's own: spikes from the layer below arrive unevenly over the frame, so
a neuron whose net input is small or negative fires early spikes that later input cannot take
back (Bu et al. 2022, "unevenness error"), and deeper layers inherit the surplus. SNN calibration
(Li et al., ICML 2021) corrects that mean per channel, layer by layer from the input, on a few
hundred unlabelled training images, either as a bias (the mean error per step) or as the initial
potential (the error over the frame, T x that). The surplus measured on this project's plain
models is a number of spikes per frame that hardly depends on T (docs/conversion.md), so the
initial potential is the form that holds at every T the governor picks, where a bias fitted at
one T over-corrects at larger T by as much as it corrects there. It is stored per output channel (per neuron where dithered, below) with the
layer (Layer.initial_potential, added to the operating point's v_init), measured at CALIBRATION_T.

Before that fit, the first convolution's neurons start dithered (dither_offsets): each neuron's
potential moves by a fraction of the threshold from a 4x4 ordered-dither (Bayer) tile over the
map, zero on average per channel, so that the channel's fitted mean is unchanged. A rate code rounds each
neuron's activation to one of T + 1 spike counts; with one start per channel, neighbouring
neurons of a smooth region round the same way and the next layer, which sums a window of them (a
2x2 average pool folded into a 3x3 convolution reads 6x6), adds their errors up. Dithered, the 16
neurons of a tile round at 16 different points, and a sum over the tile resolves 16 T levels
instead of T + 1 (ordered dithering, as in halftoning; Hermite's identity for floors). Measured on
the suite's ResNet-style CNN, where the first layer's rounding of its analog input was the
largest loss (docs/conversion.md). Only the layers that read the image (_ditherable says why).

Layers whose scale is a Clip ceiling are left alone: their DNN was trained with that ceiling
(QCFS-style), and v_init's half-threshold shift is QCFS's own correction of the rounding.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

import numpy as np

from ..adaptation.calibration import dnn_channel_rates, saturating_network
from ..engine import SNNEngine
from ..engine.dnn import forward
from ..engine.ops import linear
from ..ir import Layer, SNNModel

CALIBRATION_T = 8  # chosen on the validation split (docs/conversion.md): 4 and 16 did worse at T = 8 and 16
# A refit at T = 8 leaves a floor at large T (its weights correct T = 8's rounding, which large T
# does not have): from CONVERGED_FROM_T on, a second weight set refit at CONVERGED_CALIBRATION_T
# runs instead (SNNModel.converged; chosen on the validation split, docs/conversion.md)
CONVERGED_CALIBRATION_T = 32
CONVERGED_FROM_T = 64
CALIBRATION_IMAGES = 256
# v_init + initial potential stays within a threshold of zero: a neuron may start ready to fire,
# or a threshold below, not more
POTENTIAL_LIMIT = 1.0
# ordered dithering's 4x4 Bayer matrix: the order in which the 16 positions of a tile round up
BAYER_4X4 = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]])
# the weight refit's least squares: rows (image x position) drawn from the calibration images, and
# its ridge toward the converted weights, relative to the features' mean square
REFIT_ROWS = 30_000
REFIT_RIDGE = 1e-2


def calibrate_layers(model: SNNModel, x: np.ndarray, timesteps: int = CALIBRATION_T,
                     progress: Optional[Callable[[int, int], None]] = None,
                     dither: bool = True, weights: bool = True) -> SNNModel:
    """`model` calibrated on x, layer by layer from the input, on every spiking layer not scaled by
    a Clip ceiling: with `weights`, its weights refit to the SNN's rates of its sources
    (refit_weights), then Layer.initial_potential set to T x (the DNN's mean activation per
    channel as a fraction of the threshold - the SNN's firing rate per channel at T), starting from
    the potentials the layers have (none: the image's convolution's dither_offsets, or zero with
    dither=False; calibrated_potential; the loihi target calibrates its own the same way,
    loihi.tune_thresholds); with `weights`, the score layer's weights last, where every layer it
    reads was calibrated."""
    x = x[:CALIBRATION_IMAGES]
    reference = dnn_channel_rates(model, x)
    spiking = [i for i, layer in enumerate(model.layers) if layer.spiking]
    rows = [row for row in model.info.get("layers", []) if "scale" in row]  # the report's, one per spiking layer
    calibrated = [p for p in range(len(spiking)) if not rows or rows[p].get("scale_from") != "clip ceiling"]
    dithered = _ditherable(model, spiking, rows) if dither else set()
    layers = list(model.layers)
    # Each layer is measured on what the layers before it, calibrated, send it: their spikes on x
    # are computed once and kept until their last reader (SNNEngine.layer_current / layer_spikes,
    # on the batches run() would make: the same numbers as a run of the network up to the layer).
    engine = SNNEngine(model, compiled_frames=False)
    batch = max(1, 128 // timesteps)
    outputs = [{-1: engine.input_rows(x[start:start + batch])} for start in range(0, len(x), batch)]
    last_reader = {source: index for index, reads in enumerate(model.network.source_indices()) for source in reads}
    sources = model.network.source_indices()
    dnn = forward(saturating_network(model), x, return_activations=True)[1] if weights else None
    for position, index in enumerate(spiking[:calibrated[-1] + 1] if calibrated else []):
        if weights and position in calibrated:
            layers[index] = _refit(model, layers[index], sources[index], outputs, x, dnn)
            engine = SNNEngine(replace(model, network=replace(model.network, layers=layers)), compiled_frames=False)
        currents = [engine.layer_current(index, batch_outputs, timesteps) for batch_outputs in outputs]
        for batch_outputs in outputs:
            for source in [s for s in batch_outputs if last_reader.get(s) == index]:
                del batch_outputs[source]
        if position in calibrated:
            rates = sum(engine.layer_spikes(index, current, timesteps)[1] * current.shape[1] for current in currents)
            layer = layers[index]
            if layer.initial_potential is None and index in dithered:
                layer = replace(layer, initial_potential=dither_offsets(layer))
            potential = calibrated_potential(layer, reference[position], rates / len(x), timesteps,
                                             model.neuron.v_init)
            layers[index] = replace(layers[index], initial_potential=potential)
            engine = SNNEngine(replace(model, network=replace(model.network, layers=layers)), compiled_frames=False)
            if progress:
                progress(calibrated.index(position) + 1, len(calibrated))
        for batch_outputs, current in zip(outputs, currents):
            batch_outputs[index] = engine.layer_spikes(index, current, timesteps)[0]
    if weights and not layers[-1].spiking and all(s in outputs[0] for s in sources[-1]):
        layers[-1] = _refit(model, layers[-1], sources[-1], outputs, x, dnn)
    return replace(model, network=replace(model.network, layers=layers))


def calibrated_potential(layer, reference: np.ndarray, rates: np.ndarray, timesteps: int,
                         v_init: float) -> np.ndarray:
    """The layer's initial potential (per channel or per neuron, fractions of the threshold) moved
    by T x (the DNN's mean activation per channel - the SNN's firing rate per channel at T), from
    the one it has."""
    start = np.zeros_like(layer.bias) if layer.initial_potential is None else layer.initial_potential
    shift = timesteps * (reference - rates)
    shift = shift.reshape((-1,) + (1,) * (start.ndim - 1))  # per channel, on every neuron of it (dithered)
    return np.clip(start + shift, -POTENTIAL_LIMIT - v_init, POTENTIAL_LIMIT - v_init).astype(np.float32)


def _ditherable(model: SNNModel, spiking: list, rows: list) -> set:
    """Indices of the layers dither_offsets starts: the convolutions that read the network input
    only, unless a lowered MaxPool reads them. Their input is the image, a constant current, so a
    neuron's count is exactly its activation rounded, and dithering is halftoning's; a deeper
    layer's input is spike trains, where a neuron started near its threshold fires on the first
    input spikes whatever comes later; a max picks the largest of its inputs, the one dithering
    rounded up: a bias on every window (measured: docs/conversion.md, Dithered starts)."""
    sources = model.network.source_indices()
    max_pool = {index for index, row in zip(spiking, rows) if row.get("scale_from") == "source (max pool)"}
    before_max_pool = {source for index in max_pool for source in sources[index]}
    return {index for index in spiking if all(s < 0 for s in sources[index]) and index not in before_max_pool}


def dither_offsets(layer) -> np.ndarray:
    """A layer's starting potentials before calibration, fractions of the threshold: for a
    convolution, per neuron (output_shape), the 4x4 Bayer tile's 16 offsets (k + 0.5) / 16 - 0.5
    repeated over the map, each channel's tile rolled by its own (channel % 4, channel // 4 % 4)
    so that the channels a reader sums do not all round at the same positions either; for a dense
    layer, zero per neuron."""
    if len(layer.output_shape) != 3:
        return np.zeros_like(layer.bias)
    channels, height, width = layer.output_shape
    tile = (BAYER_4X4 + 0.5) / BAYER_4X4.size - 0.5
    repeats = (-(-height // 4), -(-width // 4))
    return np.stack([np.tile(np.roll(tile, (c % 4, c // 4 % 4), axis=(0, 1)), repeats)[:height, :width]
                     for c in range(channels)]).astype(np.float32)


def refit_weights(layer: Layer, snn_inputs: list, dnn_inputs: list) -> Layer:
    """`layer` with its weights refit to the SNN (Li et al. 2021's weight calibration, in closed
    form): given what each of its sources sends in the SNN (snn_inputs: rates, or the image) in
    place of the DNN's activation (dnn_inputs, the same sources), the weights and bias whose current
    is nearest the DNN's pre-activation, least squares with a ridge toward the converted weights.
    Blocks that read the image (exact already) and grouped ones (a lowered MaxPool's structure,
    the identity of a residual skip) keep their weights; their SNN current is part of the fit's target.
    The fit is for the calibration T: at much larger T the rates come nearer the DNN's and these
    weights leave an error that does not shrink with T (hence a second set for large T)."""
    blocks = layer.blocks()
    free = [k for k, block in enumerate(blocks) if block.groups == 1 and snn_inputs[k] is not dnn_inputs[k]]
    if not free:
        return layer
    rows = int(np.prod(layer.output_shape[1:]))
    keep = np.random.default_rng(0).permutation(len(snn_inputs[0]) * rows)[:REFIT_ROWS]
    # the DNN's pre-activation, less what the kept blocks send on the SNN's input
    target = _rows(layer.bias.reshape((1, -1) + (1,) * (len(layer.output_shape) - 1)) +
                   sum(linear(block, x, with_bias=False) for block, x in zip(blocks, dnn_inputs)))[keep] - \
        sum((_rows(linear(blocks[k], snn_inputs[k], with_bias=False))[keep]
             for k in range(len(blocks)) if k not in free), np.zeros(1))
    features = np.concatenate([_patches(blocks[k], snn_inputs[k])[keep] for k in free] +
                              [np.ones((len(keep), 1), np.float32)], axis=1).astype(np.float64)
    converted = np.concatenate([blocks[k].weight.reshape(len(layer.bias), -1) for k in free] +
                               [layer.bias[:, None]], axis=1).T.astype(np.float64)
    residual = target - features @ converted
    ridge = REFIT_RIDGE * np.einsum("ij,ij->", features, features) / features.shape[1]
    if features.shape[1] <= len(features):
        delta = np.linalg.solve(features.T @ features + ridge * np.eye(features.shape[1]), features.T @ residual)
    else:  # more weights than rows (a dense layer on a few hundred images): the same solution, the smaller system
        delta = features.T @ np.linalg.solve(features @ features.T + ridge * np.eye(len(features)), residual)
    fitted = (converted + delta).T.astype(np.float32)
    weights = np.split(fitted[:, :-1], np.cumsum([blocks[k].weight[0].size for k in free])[:-1], axis=1)
    refit = {k: w.reshape(blocks[k].weight.shape) for k, w in zip(free, weights)}
    return replace(layer, weight=refit.get(0, layer.weight), bias=fitted[:, -1].copy(),
                   extra_synapses=[replace(synapse, weight=refit.get(k + 1, synapse.weight))
                                   for k, synapse in enumerate(layer.extra_synapses)])


def _rows(output: np.ndarray) -> np.ndarray:
    """(N, O, H, W) or (N, O) -> one row per image and position, (N * H * W, O)."""
    return output.reshape(len(output), -1) if output.ndim == 2 else \
        output.transpose(0, 2, 3, 1).reshape(-1, output.shape[1])


def _patches(block: Layer, x: np.ndarray) -> np.ndarray:
    """What each output position of `block` reads of x (im2col), (N * H * W, features), in the
    order of block.weight.reshape(out, -1); a dense block: x flattened."""
    if block.kind == "dense":
        return x.reshape(len(x), -1)
    top, left, bottom, right = block.padding
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    kh, kw = block.weight.shape[2:]
    height, width = block.output_shape[1:]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::block.stride[0], ::block.stride[1]][:, :, :height, :width]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1] * kh * kw)


def _source_values(model: SNNModel, outputs: list, x: np.ndarray, source: int) -> np.ndarray:
    """What a source sends in the SNN over the calibration images, channels first: its rates
    (spikes per step) from the kept spikes, or the image."""
    if source < 0:
        return x
    shape = tuple(model.layers[source].output_shape)
    rates = np.concatenate([batch[source].mean(axis=0) for batch in outputs])
    if len(shape) == 3:
        return rates.reshape((len(rates),) + shape[1:] + shape[:1]).transpose(0, 3, 1, 2)
    return rates


def _refit(model: SNNModel, layer: Layer, sources: list, outputs: list, x: np.ndarray, dnn: list) -> Layer:
    """refit_weights on what the layer's sources send in the SNN (kept spikes of the calibration
    batches, or the image) and in the DNN."""
    return refit_weights(layer, [_source_values(model, outputs, x, s) for s in sources],
                         [x if s < 0 else dnn[s] for s in sources])
