"""The `loihi` target: the ideal SNN in the fixed point that Loihi runs (Lava's CUBA LIF).

Per layer (ir.FixedPoint says what each field does on the chip):
  weights   8-bit signed integers, round(W * s) in [-128, 127], with s as large as the layer allows:
            127 / max|W|, unless a bound below is tighter. Lava's synapses hold them exactly
            (netx shifts mixed-sign weights up by its own exponent and the sum back down).
  unit      a_in units per unit of ideal current: s for spike inputs, s * input_scale for the image.
  vth       round(unit * theta): the ideal threshold (1 after normalization) times a per-layer
            scale searched on calibration data (below); spike when v > vth << 6, v reset to 0.
  bias      round(b * unit), a 13-bit mantissa (netx fixes bias_exp = 6, the same shift as a_in).
  du, dv    4095 and 0: the current decays fully every step (u is the step's input) and the
            voltage never leaks, which makes the LIF an integrate-and-fire neuron.
Bounds on s, so that nothing wraps or saturates for any input (worst case, not calibration):
  every step's synaptic sum < 2**17 (Lava shifts it left by 6 into the 24-bit current u), the
  bias within 13 bits, vth within 17 bits, and the score layer's voltage, which sums T steps, within
  24 bits up to T = max_timesteps (this costs the score layer a bit or two of weight resolution).
Input: the host sends the image as graded spikes, round(x * input_scale) with 8-bit magnitude
(Fashion-MNIST pixels exactly), to the first synapse at every step of a frame. Every synapse layer
delays by one step, so the engine runs T + depth steps and starts each layer's voltage lower by the
bias it integrates before its input arrives (start_delay): each layer then integrates its input
over exactly T steps, as in the ideal model.

Reset to zero loses the part of v above the threshold at every spike, so a neuron fires less often
than its ideal rate; a lower threshold gives the rate back. Each layer's threshold scale is searched
greedily from the input on calibration images (tune_thresholds): the one whose spike rates give the
next layer the input current the ideal rates would. On Fashion-MNIST this takes the loihi target
from ~3 points below the ideal one to ~0.5 (weight quantization alone costs ~0.3).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from ..adaptation.calibration import dnn_channel_rates
from ..data import datasets
from ..data.prepare import model_input
from ..engine.dnn import forward
from ..engine.loihi_engine import ACT_SHIFT, PAYLOAD_MAX, VTH_MAX, LoihiEngine
from ..engine.ops import linear
from ..evaluation import accuracy
from ..ir import MODEL_JSON, FixedPoint, Layer, ModelFormatError, Network, NeuronConfig, SNNModel
from .calibrate import CALIBRATION_IMAGES, calibrated_potential

WEIGHT_MAX = 127  # 8-bit signed weight mantissa
WEIGHT_MIN = -128
BIAS_MANT_MAX = 4095  # 13-bit signed
SUM_LIMIT = 2 ** 17 - 1  # a_in << 6 must stay inside the 24-bit current
V_SUM_LIMIT = (2 ** 23 - 1) >> ACT_SHIFT  # the score layer's voltage, in a_in units
FULL_CURRENT_DECAY = 4095


@dataclass
class LoihiOptions:
    max_timesteps: int = 128  # the score layer's voltage cannot saturate up to this T
    v_init: float = 0.5  # initial voltage as a fraction of vth (rounds rates as in the ideal model)
    search_timesteps: int = 16  # T at which the threshold scales are chosen
    # calibration images for the search (0: no search, scales of 1): 100, 150, 200 and 300 chose the
    # same scales on the bundled model and the suite's MLP and VGG-style CNN; 100 costs a third of 300
    search_images: int = 100
    search_scales: tuple = tuple(round(0.3 + 0.05 * i, 2) for i in range(15))  # 0.3 .. 1.0


def to_loihi(ideal: SNNModel, calib_x: np.ndarray, options: LoihiOptions = LoihiOptions(),
             progress: Optional[Callable[[int, int], None]] = None,
             calibration_progress: Optional[Callable[[int, int], None]] = None) -> SNNModel:
    """The loihi target of an ideal model; calib_x: preprocessed calibration images. progress:
    of the threshold search; calibration_progress: of the initial potentials' calibration."""
    if ideal.target != "ideal":
        raise ValueError(f"to_loihi converts an ideal model, got target {ideal.target!r}")
    if not ideal.network.is_chain:
        raise ValueError("the loihi target takes a chain of layers; this network has residual Add or "
                         "Concat branches (its netx export would need merge layers)")
    input_scale = PAYLOAD_MAX / max(float(np.max(np.abs(calib_x))), 1e-9)
    x_range = (float(min(np.min(calib_x), 0.0)), float(max(np.max(calib_x), 0.0)))
    thresholds = list(ideal.thresholds)
    layers, report = [], []
    for index, layer in enumerate(ideal.layers):
        first = index == 0
        in_range = x_range if first else (0.0, 1.0)  # the image, or spikes
        factor = input_scale if first else 1.0  # a_in units per weight unit
        theta = thresholds[index] * max(options.search_scales) if layer.spiking else 0.0
        s, limit = _weight_scale(layer, in_range, factor, theta, options.max_timesteps)
        unit = s * factor
        fixed = FixedPoint(
            vth=int(np.clip(round(unit * thresholds[index]), 1, VTH_MAX)) if layer.spiking else VTH_MAX,
            weight_exp=0, bias_exp=ACT_SHIFT, du=FULL_CURRENT_DECAY, dv=0, unit=unit,
            input_scale=input_scale if first else 0.0, start_delay=index + 1)
        weight = np.clip(np.rint(layer.weight.astype(np.float64) * s), WEIGHT_MIN, WEIGHT_MAX).astype(np.int16)
        bias = np.clip(np.rint(layer.bias.astype(np.float64) * unit), -BIAS_MANT_MAX, BIAS_MANT_MAX).astype(np.int16)
        layers.append(replace(layer, weight=weight, bias=bias, fixed_point=fixed))
        report.append({"name": layer.name, "weight_scale": s, "limited_by": limit, "unit": unit,
                       "max_weight": int(np.abs(weight).max()), "vth": fixed.vth})
    network = Network(layers, ideal.network.preprocessing, list(ideal.network.class_names))
    neuron = NeuronConfig("zero", options.v_init, 1.0)
    model = SNNModel(network, [float(layer.fixed_point.vth) for layer in layers if layer.spiking], neuron,
                     "loihi", dict(ideal.info))
    scales = [1.0] * len(model.thresholds)
    if options.search_images > 0:
        scales = tune_thresholds(model, ideal, calib_x[:options.search_images], options, progress)
    if any(layer.initial_potential is not None for layer in layers):
        # the ideal target's calibration, done again for Loihi's neurons (reset to zero, its
        # thresholds) at the search's T: on the suite's MLP (validation split) the loihi target
        # went from 0.94 / 0.80 points below the DNN at T = 16 / 32 to 0.14 / 0.40
        calibrate_potentials(model, ideal, calib_x[:CALIBRATION_IMAGES], options.search_timesteps,
                             calibration_progress)
    for row, layer in zip(report, layers):
        row["vth"] = layer.fixed_point.vth
    model.info["loihi"] = {"input_scale": input_scale, "max_timesteps": options.max_timesteps,
                           "threshold_scales": scales, "search_timesteps": options.search_timesteps,
                           "search_images": int(min(options.search_images, len(calib_x))), "layers": report}
    return model


def _weight_scale(layer: Layer, in_range: tuple, factor: float, theta: float, max_timesteps: int):
    """Largest integers-per-weight-unit s that keeps the layer's numbers in Loihi's registers;
    -> (s, what limits it)."""
    w = layer.weight.astype(np.float64).reshape(layer.weight.shape[0], -1)
    lo, hi = in_range
    # the largest synaptic sum any input in range can give, in weight units, bias included
    highest = np.maximum(w * hi, w * lo).sum(axis=1)
    lowest = np.minimum(w * hi, w * lo).sum(axis=1)
    worst = float(max(np.max(np.abs(highest)), np.max(np.abs(lowest))))
    bounds = {"8-bit weights": WEIGHT_MAX / max(float(np.max(np.abs(w))), 1e-12)}
    if layer.spiking:
        bounds["24-bit current"] = SUM_LIMIT / max(worst * factor, 1e-12)
        bounds["17-bit threshold"] = VTH_MAX / max(theta * factor, 1e-12)
    else:  # the score layer's voltage sums the input and the bias of every step
        per_step = worst + float(np.max(np.abs(layer.bias)))
        bounds[f"24-bit voltage at T={max_timesteps}"] = V_SUM_LIMIT / max(per_step * factor * max_timesteps, 1e-12)
    if np.any(layer.bias):
        bounds["13-bit bias"] = BIAS_MANT_MAX / (float(np.max(np.abs(layer.bias))) * factor)
    limit = min(bounds, key=bounds.get)
    return bounds[limit], limit


# Frames per block of the threshold search: a block's per-step input of a 28x28x32 layer is then
# ~50 MB, not the ~0.7 GB of 300 frames at once, whose traffic through memory cost more than the arithmetic.
SEARCH_BLOCK_FRAMES = 50


def tune_thresholds(model: SNNModel, ideal: SNNModel, x: np.ndarray, options: LoihiOptions,
                    progress: Optional[Callable[[int, int], None]] = None) -> list:
    """Scales each spiking layer's vth, greedily from the input, by the candidate that best
    reproduces what the next layer should receive: the least mean squared error of the next
    layer's input current (ideal weights times the layer's spike rates over its T-step window),
    against the current from the ideal rates, the DNN's activations clipped to [0, 1] (for the last
    hidden layer this is the error of the scores). Sets vth and thresholds in place; -> the scales."""
    timesteps = options.search_timesteps
    clipped = replace(ideal.network, layers=[replace(layer, activation_max=1.0) if layer.spiking else layer
                                             for layer in ideal.network.layers])
    _, targets = forward(clipped, x, return_activations=True)
    scales, total = [], (len(model.layers) - 1) * len(options.search_scales)

    def search(engine: LoihiEngine, index: int, inputs: list) -> None:
        layer, following = model.layers[index], ideal.layers[index + 1]
        window = layer.fixed_point.start_delay  # the first step (0-based) with input
        candidates = [int(np.clip(round(layer.fixed_point.vth * scale), 1, VTH_MAX)) for scale in options.search_scales]
        squared, count, start = np.zeros(len(candidates)), 0, 0
        for a_in in inputs:
            frames = a_in.shape[1]
            target = targets[index][start:start + frames].reshape(frames, -1)
            previous, error = None, 0.0
            for k, vth in enumerate(candidates):
                layer.fixed_point.vth = vth
                spikes, _ = engine.layer_output(index, a_in)
                rates = spikes[window:window + timesteps].mean(axis=0)
                # neighbouring thresholds often give the same spikes (a lowered MaxPool layer's
                # input comes in steps of its weights: all its candidates but one tie): same error
                if previous is None or not np.array_equal(rates, previous):
                    miss = (rates - target).reshape((frames,) + tuple(following.input_shape)).astype(np.float32)
                    current = linear(following, miss, with_bias=False)
                    error = float(np.sum(current.astype(np.float64) ** 2))
                squared[k] += error
                previous = rates
            count += current.size
            start += frames
            if progress:
                progress(index * len(candidates) + round(len(candidates) * start / len(x)), total)
        best = int(np.argmin(squared / max(count, 1)))
        scales.append(float(options.search_scales[best]))
        layer.fixed_point.vth = candidates[best]
        model.thresholds[index] = float(layer.fixed_point.vth)

    _layer_by_layer(model, x, timesteps, search)
    return scales


def calibrate_potentials(model: SNNModel, ideal: SNNModel, x: np.ndarray, timesteps: int,
                         progress: Optional[Callable[[int, int], None]] = None) -> None:
    """The ideal target's calibration (calibrate.py) for Loihi's neurons, which reset to zero and
    have their own thresholds: each layer with an initial potential gets it moved by T x (the
    DNN's mean activation per channel - its rate per channel at T) on x, layer by layer from the
    input (each measured with the layers before it calibrated). Sets the potentials in place."""
    reference = dnn_channel_rates(ideal, x)

    def calibrate(engine: LoihiEngine, index: int, inputs: list) -> None:
        layer = model.layers[index]
        if layer.initial_potential is not None:
            rates = _channel_spikes(engine, index, inputs, timesteps) / (len(x) * timesteps)
            layer.initial_potential = calibrated_potential(layer, reference[index], rates, timesteps,
                                                           model.neuron.v_init)
        if progress:
            progress(index + 1, len(model.layers) - 1)

    _layer_by_layer(model, x, timesteps, calibrate)


def _layer_by_layer(model: SNNModel, x: np.ndarray, timesteps: int, settle: Callable) -> None:
    """settle(engine, index, inputs) on each spiking layer from the input, with the layers before
    it settled: their spikes on x computed once (LoihiEngine.layer_input / layer_output: exactly
    what a whole run computes), so that settling a layer (whatever it tries) costs only its own
    neurons on its input, which is computed once for it: inputs, its a_in per block of frames."""
    engine = LoihiEngine(model)
    sources = [engine.encode(x[i:i + SEARCH_BLOCK_FRAMES])[None] for i in range(0, len(x), SEARCH_BLOCK_FRAMES)]
    for index, layer in enumerate(model.layers):
        if not layer.spiking:
            break
        inputs = [engine.layer_input(index, source, timesteps) for source in sources]
        settle(engine, index, inputs)
        sources = [engine.layer_output(index, a_in)[0] for a_in in inputs]  # the next layer's source


def _channel_spikes(engine: LoihiEngine, index: int, inputs: list, timesteps: int) -> np.ndarray:
    """Layer `index`'s spikes per neuron of each channel over its input blocks (a_in), counted
    over the steps that still reach the score layer within the frame: its first start_delay + T."""
    layer = engine.model.layers[index]
    steps = layer.fixed_point.start_delay + timesteps
    per_neuron = sum(np.count_nonzero(engine.layer_output(index, a_in)[0][:steps].reshape(-1, layer.n_neurons), axis=0)
                     for a_in in inputs)
    return per_neuron.reshape(layer.output_shape[0], -1).mean(axis=1)


LOIHI_DIR = "loihi"  # a model directory's loihi target, beside its ideal one


def loihi_target(model_dir: str, options: LoihiOptions = LoihiOptions()) -> tuple:
    """-> (the loihi target of a model directory, the directory that holds it): the directory
    itself when it holds a loihi target; else its `loihi/` subdirectory, converted on first use
    from the calibration data set the ideal model names and saved there."""
    model = SNNModel.load(model_dir)
    if model.target == "loihi":
        return model, model_dir
    target_dir = os.path.join(model_dir, LOIHI_DIR)
    if os.path.isfile(os.path.join(target_dir, MODEL_JSON)):
        return SNNModel.load(target_dir), target_dir
    calib = model.info.get("calibration_data")
    if not calib:
        raise ModelFormatError(f"{model_dir}: no loihi target and no calibration data set named to make one "
                               f"(convert it with snn_agent.conversion.loihi.to_loihi)")
    calib_set = datasets.training_set(calib)
    calib_x = model_input(calib_set.subset(int(model.info.get("calibration_images", 1000))), model.network.preprocessing)
    loihi = to_loihi(model, calib_x, options)
    loihi.info["calibration_data"] = calib
    loihi.save(target_dir)
    return loihi, target_dir


def evaluate_loihi(model_or_dir, x: np.ndarray, labels: np.ndarray, timesteps=(8, 16, 32, 64),
                   neuron: Optional[NeuronConfig] = None) -> dict:
    """Accuracy of the loihi target (bit-exact with Lava) at each T: {T: accuracy}.
    model_or_dir: a loihi-target SNNModel, or a model directory (see loihi_target)."""
    model = loihi_target(model_or_dir)[0] if isinstance(model_or_dir, str) else model_or_dir
    if model.target != "loihi":
        raise ValueError("evaluate_loihi needs the loihi target: to_loihi(ideal, calib_x) or a model directory")
    engine = LoihiEngine(model)
    grid = [timesteps] if np.isscalar(timesteps) else list(timesteps)
    return {int(t): accuracy(engine.run, x, labels, int(t), neuron) for t in grid}
