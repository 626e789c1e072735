"""Per-layer thresholds and bias calibration at small T, on the bundled model and Fashion-MNIST."""
import numpy as np
import pytest

from snn_agent.adaptation.calibration import calibrate_biases, dnn_channel_rates
from snn_agent.adaptation.operating_points import OperatingPoint, PointTable, search
from snn_agent.adaptation.profiling import split_data
from snn_agent.energy.models import EnergyEstimate
from snn_agent.engine import SNNEngine
from snn_agent.evaluation import accuracy
from snn_agent.ir import NeuronConfig, SNNModel

from conftest import BUNDLED_SNN


@pytest.fixture(scope="module")
def model():
    return SNNModel.load(BUNDLED_SNN)


@pytest.fixture(scope="module")
def data(model):
    return split_data("fashion-mnist", model, 2000, 1000)


def rate_error(engine, x, timesteps, neuron, reference):
    """Mean |DNN activation - scale x SNN rate| over every spiking layer's channels."""
    rates = engine.run(x, timesteps, neuron).ops.channel_rates
    return np.mean([np.abs(ref - neuron.scale_of(i) * r).mean() for i, (ref, r) in enumerate(zip(reference, rates))])


def test_bias_calibration_brings_rates_to_the_dnn(model, data):
    engine = SNNEngine(model)
    x = data.calib[0]
    reference = dnn_channel_rates(model, x)
    assert [len(r) for r in reference] == [layer.output_shape[0] for layer in model.layers if layer.spiking]
    plain = NeuronConfig("subtract", 0.5, 1.0, (0.6, 1.0, 1.1))
    calibrated = calibrate_biases(engine.run, x, 2, plain, reference)
    before, after = rate_error(engine, x, 2, plain, reference), rate_error(engine, x, 2, calibrated, reference)
    assert after < 0.8 * before, (before, after)
    # and on images it was not fitted to
    held = data.heldout[0][:500]
    held_reference = dnn_channel_rates(model, held)
    assert rate_error(engine, held, 2, calibrated, held_reference) < rate_error(engine, held, 2, plain, held_reference)


def test_searched_point_at_t2_beats_the_plain_conversion_on_held_out_images(model, data, tmp_path):
    engine = SNNEngine(model)
    cost = lambda timesteps, neuron, weights: (float(timesteps), EnergyEstimate(1e-3 * timesteps, "modelled", "test"))  # noqa: E731
    [point] = search(engine.run, cost, data.calib, data.heldout, model.neuron, [2],
                     reference_rates=dnn_channel_rates(model, data.calib[0]))
    plain = accuracy(engine.run, *data.heldout, 2, model.neuron)
    assert point.accuracy >= plain + 0.005, (point.enhancement, point.accuracy, plain)  # +1.8 on all 10,000
    assert point.layer_threshold_scales and point.bias_shifts
    # stored with the model and read back, the point runs the same network
    PointTable("cpu", "ideal", [point]).save(str(tmp_path))
    [loaded] = PointTable.load(str(tmp_path), "cpu").points
    assert isinstance(loaded, OperatingPoint)
    x = data.heldout[0][:50]
    np.testing.assert_array_equal(engine.run(x, 2, loaded.neuron("subtract")).scores,
                                  engine.run(x, 2, point.neuron("subtract")).scores)


def test_loihi_search_weighs_a_leak_and_keeps_none_that_loses(data):
    """The loihi target's leak (dv) is a searched parameter: one that drains the charge the rate
    code counts loses on the calibration images and is not kept."""
    from dataclasses import replace

    from snn_agent.conversion.loihi import loihi_target
    from snn_agent.engine.loihi_engine import LoihiEngine

    loihi = loihi_target(BUNDLED_SNN)[0]
    engine = LoihiEngine(loihi)
    calib = (data.calib[0][:300], data.calib[1][:300])
    heldout = (data.heldout[0][:300], data.heldout[1][:300])
    drained = replace(loihi.neuron, v_decay=2048)  # half of v lost every step
    assert accuracy(engine.run, *calib, 4, drained) < accuracy(engine.run, *calib, 4, loihi.neuron) - 0.05
    cost = lambda timesteps, neuron, weights: (float(timesteps), EnergyEstimate(1e-3 * timesteps, "modelled", "test"))  # noqa: E731
    [point] = search(engine.run, cost, calib, heldout, loihi.neuron, [4], threshold_scales=(), v_inits=(),
                     layer_scales=(), v_decays=(2048,))
    assert point.v_decay is None and "leak" not in point.enhancement
