"""What makes a conversion fast computes what the slower way did: the calibration layer by layer on
kept spikes against a run of the network up to each layer (its definition), in the ideal and the
loihi target; a convolution of spike maps as each spike's weights added up against the product of
every input; and the conversion's one progress bar, with each phase's time in report.json."""
import json
from dataclasses import replace

import numpy as np
import pytest

from snn_agent.adaptation.calibration import dnn_channel_rates
from snn_agent.conversion.calibrate import CALIBRATION_T, calibrate_layers, calibrated_potential
from snn_agent.conversion.convert import ConversionOptions, convert
from snn_agent.conversion.loihi import LoihiOptions, to_loihi
from snn_agent.conversion.onnx_import import load_onnx
from snn_agent.conversion.pipeline import PROGRESS_UNITS, convert_model
from snn_agent.engine import SNNEngine
from snn_agent.engine.loihi_engine import LoihiEngine, _Synapse
from snn_agent.ir import FixedPoint, Layer

from test_conversion import BUNDLED_ONNX, RNG, const, conv_bn_relu_nodes, save_model
from test_graph_conversion import residual_block
from onnx import helper


def maxpool_chain(tmp_path):
    """Conv-BN-ReLU, MaxPool (two grouped spiking layers), Conv-BN-ReLU, Gemm: a chain."""
    n1, i1 = conv_bn_relu_nodes("a", 2, 4, "x")
    n2, i2 = conv_bn_relu_nodes("b", 4, 6, "mp")
    nodes = n1 + [helper.make_node("MaxPool", ["ar"], ["mp"], kernel_shape=[2, 2], strides=[2, 2])] + n2 + \
        [helper.make_node("Flatten", ["br"], ["f"]), helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    inits = i1 + i2 + [const("w", RNG.normal(0, 0.3, (5, 6 * 4 * 4))), const("b", RNG.normal(0, 0.1, 5))]
    return save_model(tmp_path, nodes, inits, (2, 8, 8), 5)


def potentials_by_prefix_runs(model, x, timesteps, engine, reference_model=None):
    """The calibration's definition: each spiking layer measured by runs of the network up to it
    (batches of 128 // T frames), from the input, the layers before it calibrated."""
    reference = dnn_channel_rates(reference_model or model, x)
    layers, position = list(model.layers), 0
    for index, layer in enumerate(model.layers):
        if not layer.spiking:
            break
        upto = engine(replace(model, network=replace(model.network, layers=layers[:index + 1])))
        batch = max(1, 128 // timesteps)
        rates = sum(upto.run(x[s:s + batch], timesteps).ops.channel_rates[position] * len(x[s:s + batch])
                    for s in range(0, len(x), batch)) / len(x)
        layers[index] = replace(layer, initial_potential=calibrated_potential(
            layer, reference[position], rates, timesteps, model.neuron.v_init))
        position += 1
    return layers


@pytest.mark.parametrize("kind", ["maxpool chain", "residual graph"])
def test_calibration_layer_by_layer_equals_runs_of_each_prefix(tmp_path, kind):
    path = maxpool_chain(tmp_path) if kind == "maxpool chain" else save_model(tmp_path, *residual_block("projection"),
                                                                               (2, 8, 8), 5)
    network = load_onnx(path, {"input_shape": (2, 8, 8), "scale": 1.0})
    x = RNG.uniform(0, 1, (100, 2, 8, 8)).astype(np.float32)
    plain = convert(network, x, ConversionOptions(calibrate=False))
    fast = calibrate_layers(plain, x, dither=False, weights=False)  # the two ways of measuring (the dither: test_conversion)
    expected = potentials_by_prefix_runs(plain, x, CALIBRATION_T, SNNEngine)
    assert sum(layer.initial_potential is not None for layer in fast.layers) == len(fast.thresholds)
    for ours, reference in zip(fast.layers, expected):
        if ours.spiking:
            np.testing.assert_array_equal(ours.initial_potential, reference.initial_potential)


def test_loihi_calibration_layer_by_layer_equals_runs_of_each_prefix(tmp_path):
    network = load_onnx(maxpool_chain(tmp_path), {"input_shape": (2, 8, 8), "scale": 1.0})
    x = RNG.uniform(0, 1, (100, 2, 8, 8)).astype(np.float32)
    ideal = convert(network, x, ConversionOptions(refit_weights=False))  # the potentials on the same weights
    options = LoihiOptions(search_images=0, search_timesteps=12)
    calibrated = to_loihi(ideal, x, options)
    # the same target before its calibration: the ideal potentials on the same integers
    start = to_loihi(convert(network, x, ConversionOptions(calibrate=False)), x, options)
    start = replace(start, network=replace(start.network, layers=[
        replace(layer, initial_potential=source.initial_potential) for layer, source in zip(start.layers, ideal.layers)]))
    expected = replace(start, network=replace(start.network, layers=potentials_by_prefix_runs(
        start, x, options.search_timesteps, LoihiEngine, ideal)))
    for ours, reference in zip(LoihiEngine(calibrated).initial_voltages(calibrated.neuron),
                               LoihiEngine(expected).initial_voltages(expected.neuron)):
        np.testing.assert_array_equal(ours, reference)
    assert any((a != b).any() for a, b in zip(LoihiEngine(calibrated).initial_voltages(calibrated.neuron),
                                              LoihiEngine(start).initial_voltages(start.neuron)))


@pytest.mark.parametrize("groups, kernel, stride, padding", [(1, 3, 1, 1), (4, 2, 2, 0), (2, 3, 2, 1)])
def test_spike_convolution_equals_the_product_of_every_input(groups, kernel, stride, padding):
    c, o = 4, 8
    weight = RNG.integers(-128, 128, (o, c // groups, kernel, kernel)).astype(np.int16)
    out_hw = (9 + 2 * padding - kernel) // stride + 1
    layer = Layer("conv", "conv", weight, np.zeros(o, np.int16), (c, 9, 9), (o, out_hw, out_hw), (stride, stride),
                  (padding,) * 4, groups, fixed_point=FixedPoint(vth=100))
    synapse = _Synapse(layer, first=False)
    spikes = RNG.random((5, 3, c * 81)) < 0.2
    np.testing.assert_array_equal(synapse.sums(spikes), synapse.sums(spikes.astype(np.float32)))


def test_convert_shows_one_progress_and_each_phase_time(tmp_path):
    updates = []
    snn = convert_model(BUNDLED_ONNX, "digits", str(tmp_path / "out"), ConversionOptions(calibration_images=100),
                        progress=lambda done, total: updates.append((done, total)))
    assert updates[0] == (0, PROGRESS_UNITS) and updates[-1] == (PROGRESS_UNITS, PROGRESS_UNITS)
    assert all(b[0] >= a[0] for a, b in zip(updates, updates[1:]))
    seconds = json.loads((tmp_path / "out" / "report.json").read_text())["conversion_seconds"]
    assert seconds == snn.info["conversion_seconds"]
    assert {"activation scales", "save and exports", "loihi: threshold search", "total"} <= set(seconds)
    assert seconds["total"]["wall"] >= seconds["loihi: threshold search"]["wall"] > 0
