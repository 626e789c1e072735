"""DNN -> SNN: data-based normalization so that every spiking layer's threshold is 1.

Each layer's activation scale lambda is its Clip ceiling when the DNN has one (exact: a clipped
ReLU saturates where the neuron fires every step), otherwise a high percentile of its activations on
calibration images (robust to outliers, Rueckauer et al. 2017). Weights become
W * lambda_prev / lambda and biases b / lambda, so a rate of 1 spike per step stands for lambda.
Neurons reset by subtraction and start half-way to threshold, which centres the rounding error of
rate coding (Bu et al. 2022; Rueckauer et al. 2017).

With `per_channel`, each spiking layer gets one scale per output channel (conv: over N, H, W;
dense: per neuron), the same percentile taken per channel (a Clip ceiling stays one value for all
channels; a channel that never fires keeps the layer's scale). Then W[o, i] becomes
W[o, i] * lambda_prev[channel of input i] / lambda[o] and b[o] becomes b[o] / lambda[o]: channels
with small activations are no longer starved of spikes at small T (Kim et al. 2020, Spiking-YOLO's
channel-wise normalization). Thresholds stay 1, so the targets downstream do not change.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from ..engine import SNNEngine
from ..engine.dnn import forward, predict
from ..engine.ops import fan_out
from ..evaluation import accuracy
from ..ir import Network, NeuronConfig, SNNModel
from .calibrate import (CALIBRATION_IMAGES, CALIBRATION_T, CONVERGED_CALIBRATION_T, CONVERGED_FROM_T,
                        calibrate_layers)


@dataclass
class ConversionOptions:
    percentile: float = 99.9  # of positive activations, for layers without a Clip ceiling
    use_clip_ceiling: bool = True  # False: percentile even where the DNN has a Clip (baselines)
    calibration_images: int = 1000
    v_init: float = 0.5
    batch_size: int = 250
    # one scale per output channel (conv) / neuron (dense) instead of one per layer
    per_channel: bool = False
    # the layers of a lowered MaxPool take their source's scale, which bounds their output, instead
    # of a percentile of their own, which clips it a second time (False: baselines). Not an average
    # pool's: a mean lies far below its source's largest values, and that scale would starve it of spikes
    pooling_source_scale: bool = True
    # each channel's initial potential calibrated on the calibration images (calibrate.py; False: baselines)
    calibrate: bool = True
    # the image's convolution starts dithered before the calibration (calibrate.dither_offsets; False: baselines)
    dither: bool = True
    # the calibration refits each layer's weights to the SNN's rates first, kept where it pays on held-out
    # calibration images (calibrate.refit_weights, _better_on_held_out; False: baselines)
    refit_weights: bool = True


# calibration images beyond the calibration's own that the weight refit is checked on (fewer: no refit)
REFIT_CHECK_IMAGES = 100
_SAMPLE_CAP = 200_000  # positive activations kept per layer and batch (per channel: shared out)


def activation_scales(network: Network, calib_x: np.ndarray, options: ConversionOptions,
                      progress: Optional[Callable[[int, int], None]] = None, channel_scales: Optional[list] = None):
    """Per spiking layer: (scale lambda, sparsity = fraction of zero activations).

    channel_scales: a list to fill, one float32 array per spiking layer of the per-channel scales
    (length = output channels, or neurons of a dense layer); only computed when it is given."""
    spiking = [i for i, layer in enumerate(network.layers) if layer.spiking]
    samples = {i: [] for i in spiking}
    channel_samples = {i: None for i in spiking}
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
            if positive.size > _SAMPLE_CAP:
                positive = np.random.default_rng(start).choice(positive, _SAMPLE_CAP, replace=False)
            samples[i].append(positive)
            if channel_scales is not None:
                _sample_channels(acts[i], channel_samples, i, start)
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
        scale = max(scale, 1e-6)
        scales.append(scale)
        sparsity.append(zeros[i] / max(total[i], 1))
        if channel_scales is not None:
            n_channels = int(layer.output_shape[0])
            if layer.activation_max is not None and options.use_clip_ceiling:
                per_channel = np.full(n_channels, scale)
            else:
                per_channel = np.full(n_channels, scale)  # channels that never fire keep the layer's
                for c, parts in enumerate(channel_samples[i] or [[] for _ in range(n_channels)]):
                    if parts:
                        per_channel[c] = max(float(np.percentile(np.concatenate(parts), options.percentile)), 1e-6)
            channel_scales.append(per_channel.astype(np.float32))
    return scales, sparsity


def _sample_channels(activation: np.ndarray, channel_samples: dict, i: int, start: int) -> None:
    """Add one batch's positive activations of layer i, per channel (axis 1), to channel_samples[i]."""
    n_channels = activation.shape[1]
    by_channel = np.moveaxis(activation, 1, 0).reshape(n_channels, -1)
    if channel_samples[i] is None:
        channel_samples[i] = [[] for _ in range(n_channels)]
    cap = max(_SAMPLE_CAP // n_channels, 2_000)
    rng = np.random.default_rng(start)
    for c in range(n_channels):
        positive = by_channel[c][by_channel[c] > 0]
        if positive.size > cap:
            positive = rng.choice(positive, cap, replace=False)
        if positive.size:
            channel_samples[i][c].append(positive)


def convert(network: Network, calib_x: np.ndarray, options: ConversionOptions = ConversionOptions(),
            progress: Optional[Callable[[int, int], None]] = None, source: str = "",
            calibration_progress: Optional[Callable[[int, int], None]] = None,
            converged_progress: Optional[Callable[[int, int], None]] = None) -> SNNModel:
    """Normalize the DNN's layers for integrate-and-fire neurons with threshold 1, then calibrate
    each layer's weights and each channel's initial potential (calibrate.py) unless
    options.calibrate is False. Where the weights are refit, a second set refit at
    CONVERGED_CALIBRATION_T runs at T >= CONVERGED_FROM_T (SNNModel.converged)."""
    calib_x = calib_x[:options.calibration_images]
    if options.per_channel:
        model = _convert_per_channel(network, calib_x, options, progress, source)
    else:
        model = _convert_per_layer(network, calib_x, options, progress, source)
    if not options.calibrate:
        return model
    start = time.perf_counter()
    converted = model
    # the weight refit only where it can be checked on calibration images it was not fitted on, and pays there
    refit = options.refit_weights and len(calib_x) - CALIBRATION_IMAGES >= REFIT_CHECK_IMAGES
    model = calibrate_layers(model, calib_x, progress=calibration_progress, dither=options.dither, weights=refit)
    check = None
    if refit:
        model, check = _better_on_held_out(network, model, calibrate_layers(converted, calib_x, dither=options.dither,
                                                                            weights=False),
                                           calib_x[CALIBRATION_IMAGES:])
        if check["weights_refit"]:
            model.converged = calibrate_layers(converted, calib_x, CONVERGED_CALIBRATION_T, converged_progress,
                                               dither=options.dither)
            model.converged_from_t = CONVERGED_FROM_T
    model.info["calibration"] = {"what": "weights refit to the SNN's rates (where refit_layers) and initial "
                                         "potential per channel (Li et al. 2021), layers not scaled by a Clip "
                                         "ceiling", "timesteps": CALIBRATION_T,
                                 "refit_layers": [new.name for new, old in zip(model.layers, converted.layers)
                                                  if new.bias is not old.bias],
                                 # layers started per neuron (calibrate.dither_offsets): the image's convolution
                                 "dithered_layers": [layer.name for layer in model.layers if layer.initial_potential
                                                     is not None and layer.initial_potential.ndim > 1],
                                 "images": int(min(len(calib_x), CALIBRATION_IMAGES)),
                                 "layers": sum(layer.initial_potential is not None for layer in model.layers),
                                 "refit_check": check,
                                 # the second weight set (SNNModel.converged), refit at its own T
                                 "converged": None if model.converged is None else
                                 {"timesteps": CONVERGED_CALIBRATION_T, "runs_from_t": model.converged_from_t},
                                 "seconds": round(time.perf_counter() - start, 2)}
    return model


def _better_on_held_out(network: Network, refit: SNNModel, potentials_only: SNNModel, held_out: np.ndarray) -> tuple:
    """The calibrated model whose labels at CALIBRATION_T agree more often with the DNN's on
    calibration images neither was fitted on: the weight refit where it pays, the initial
    potentials alone where the SNN had little to correct and the refit's fit to 256 images costs
    more than it mends (the suite's MLP, docs/conversion.md); a tie keeps the converted weights."""
    labels = predict(network, held_out)
    agreement = {name: accuracy(SNNEngine(model).run, held_out, labels, CALIBRATION_T)
                 for name, model in (("refit", refit), ("potentials_only", potentials_only))}
    kept = agreement["refit"] > agreement["potentials_only"]
    return (refit if kept else potentials_only), {"images": int(len(held_out)), "agreement_with_dnn": agreement,
                                                  "weights_refit": kept}


def _convert_per_layer(network: Network, calib_x: np.ndarray, options: ConversionOptions,
                       progress: Optional[Callable[[int, int], None]], source: str) -> SNNModel:
    """One scale per spiking layer: W * lambda_src / lambda for each source, b / lambda."""
    scales, sparsity = activation_scales(network, calib_x, options, progress)
    if options.pooling_source_scale:
        scales = _pooling_scales(network, scales)
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
    return _model(network, layers, calib_x, options, source, layer_report(network, scales, sparsity, options))


def _model(network: Network, layers: list, calib_x: np.ndarray, options: ConversionOptions, source: str,
           rows: list) -> SNNModel:
    snn_network = Network(layers, network.preprocessing, list(network.class_names))
    report = {
        "source": source,
        "percentile": options.percentile,
        "calibration_images": int(len(calib_x)),
        "dropped_postprocessing": list(network.dropped_postprocessing),
        "layers": rows,
    }
    if options.per_channel:
        report["normalization"] = "per channel"
    n_spiking = sum(1 for layer in layers if layer.spiking)
    return SNNModel(snn_network, [1.0] * n_spiking, NeuronConfig("subtract", options.v_init, 1.0),
                    "ideal", report)


def _convert_per_channel(network: Network, calib_x: np.ndarray, options: ConversionOptions,
                         progress: Optional[Callable[[int, int], None]], source: str) -> SNNModel:
    """convert() with one scale per output channel: W[o, i] * lambda_src[channel(i)] / lambda[o]."""
    channel_scales: list = []
    scales, sparsity = activation_scales(network, calib_x, options, progress, channel_scales)
    if options.pooling_source_scale:
        scales, channel_scales = _pooling_scales(network, scales), _pooling_scales(network, channel_scales)
    layers, out_scales, spiking_index = [], [], 0  # out_scales: per layer, one float64 per channel
    for layer, sources in zip(network.layers, network.source_indices()):
        if layer.spiking:
            scale = channel_scales[spiking_index].astype(np.float64)
            spiking_index += 1
        else:
            scale = np.ones(int(layer.output_shape[0]))  # the score layer keeps DNN units
        blocks = []
        for block, s in zip(layer.blocks(), sources):
            source_shape = tuple(network.layers[s].output_shape) if s >= 0 else None
            factor = _input_scales(block, None if s < 0 else out_scales[s], source_shape) / \
                scale.reshape((-1,) + (1,) * (block.weight.ndim - 1))
            blocks.append((block.weight * factor).astype(np.float32))
        layers.append(replace(layer, weight=blocks[0], bias=(layer.bias / scale).astype(np.float32),
                              activation_max=None,
                              extra_synapses=[replace(synapse, weight=w)
                                              for synapse, w in zip(layer.extra_synapses, blocks[1:])]))
        out_scales.append(scale)
    rows = layer_report(network, scales, sparsity, options)
    spiking_index = 0
    for row, layer in zip(rows, network.layers):
        if layer.spiking:
            c = channel_scales[spiking_index]
            row["channel_scale"] = {"channels": int(c.size), "min": float(c.min()),
                                    "median": float(np.median(c)), "max": float(c.max())}
            spiking_index += 1
    return _model(network, layers, calib_x, options, source, rows)


def _pooling_scales(network: Network, scales: list) -> list:
    """`scales` (per spiking layer: a float, or one per output channel) with every MaxPool layer's
    replaced by its source's: a max of non-negative inputs never exceeds the largest of them, so
    the source's scale bounds the output exactly (no clipping), whatever T. Per channel, output o
    of a grouped pooling convolution reads only its group's input channels, which share one scale
    (the lowering keeps each source channel in its group)."""
    pooling, result, by_layer, spiking_index = set(network.max_pool_layers), [], [], 0
    for layer, sources in zip(network.layers, network.source_indices()):
        if not layer.spiking:
            by_layer.append(None)
            continue
        scale = scales[spiking_index]
        source = sources[0]
        if layer.name in pooling and source >= 0 and by_layer[source] is not None:
            scale = by_layer[source]
            if np.ndim(scale):  # per channel: output o's group reads channel group(o) * channels-per-group
                o, per_group = int(layer.output_shape[0]), int(layer.weight.shape[1])
                scale = np.asarray(scale)[(np.arange(o) // (o // layer.groups)) * per_group]
        result.append(scale)
        by_layer.append(scale)
        spiking_index += 1
    return result


def _input_scales(block, source_scales: Optional[np.ndarray], source_shape: Optional[tuple]) -> np.ndarray:
    """The scale lambda_src of every weight's input, broadcastable against block.weight.

    source_scales: one per channel of the source's output (None: the network input, scale 1). A
    dense block reads the source's output flattened, so input i of a (C, H, W) map is channel
    i // (H * W); a conv block's weight axis 1 is the input channel within the output's group."""
    if source_scales is None:
        return np.ones((1,) * block.weight.ndim)
    # the source's scale at every element of its output, read in the block's input order
    per_element = np.broadcast_to(source_scales.reshape((-1,) + (1,) * (len(source_shape) - 1)),
                                  source_shape).reshape(-1)
    if block.kind == "dense":
        if per_element.size != block.weight.shape[1]:
            raise ValueError(f"layer {block.name}: {block.weight.shape[1]} inputs but its source has "
                             f"{per_element.size} outputs")
        return per_element.reshape(1, -1)
    channels = int(block.input_shape[0])
    by_channel = per_element.reshape(channels, -1)
    if not np.all(by_channel == by_channel[:, :1]):
        raise ValueError(f"layer {block.name}: its input channels do not each come from one source channel, "
                         "so per-channel normalization cannot scale its weights; convert per layer")
    in_channel = by_channel[:, 0]
    o, c_per_group = block.weight.shape[:2]
    group_of_output = np.arange(o) // (o // block.groups)
    # weight[o, j] reads input channel group(o) * c_per_group + j
    return in_channel.reshape(block.groups, c_per_group)[group_of_output].reshape(o, c_per_group, 1, 1)


def layer_report(network: Network, scales, sparsity, options: ConversionOptions = ConversionOptions()) -> list:
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
            row["scale_from"] = "clip ceiling" if layer.activation_max is not None and options.use_clip_ceiling \
                else "source (max pool)" if options.pooling_source_scale and layer.name in network.max_pool_layers \
                else "percentile"
            row["dnn_sparsity"] = float(sparsity[spiking_index])
            spiking_index += 1
        rows.append(row)
    return rows
