"""What makes `snn-agent profile` fast computes what the slower way did: the ideal engine's scores
at every T of a grid from one run at the largest T against a run at each T, and the operating-point
search that reads them against the search that runs every T on its own."""
from dataclasses import replace

import numpy as np
import pytest

from snn_agent.adaptation.calibration import dnn_channel_rates
from snn_agent.adaptation.operating_points import search
from snn_agent.conversion.convert import convert
from snn_agent.conversion.onnx_import import load_onnx
from snn_agent.energy.models import EnergyEstimate
from snn_agent.engine import SNNEngine
from snn_agent.evaluation import accuracy_vs_timesteps

from test_conversion import RNG, save_model
from test_conversion_speed import maxpool_chain
from test_graph_conversion import residual_block

GRID = (1, 2, 3, 5, 8, 13)


def converted(tmp_path, kind):
    """A calibrated conversion (initial potentials per channel) of a small chain with MaxPool
    (grouped convolutions) or of a residual graph, and images for it."""
    path = maxpool_chain(tmp_path) if kind == "maxpool chain" else save_model(tmp_path, *residual_block("identity"),
                                                                               (2, 8, 8), 5)
    x = RNG.uniform(0, 1, (64, 2, 8, 8)).astype(np.float32)
    return convert(load_onnx(path, {"input_shape": (2, 8, 8), "scale": 1.0}), x), x


@pytest.mark.parametrize("kind", ["maxpool chain", "residual graph"])
def test_one_run_gives_the_scores_of_a_run_at_each_t(tmp_path, kind):
    model, x = converted(tmp_path, kind)
    assert any(layer.initial_potential is not None for layer in model.layers)
    engine = SNNEngine(model)
    shifts = tuple(tuple(RNG.normal(0, 0.05, layer.output_shape[0])) for layer in model.layers if layer.spiking)
    points = [model.neuron, replace(model.neuron, reset="zero"),
              replace(model.neuron, threshold_scale=0.9, v_init=0.25,
                      layer_threshold_scales=(1.1,) + (0.8,) * (len(shifts) - 1), bias_shifts=shifts)]
    for neuron in points:
        by_t = engine.scores_by_timesteps(x[:7], GRID, neuron)
        for t in GRID:
            same_scores(by_t[t], engine.run(x[:7], t, neuron).scores)
    # and a single frame, which the one run takes on the batched path
    same_scores(engine.scores_by_timesteps(x[:1], GRID)[8], SNNEngine(model, compiled_frames=False).run(x[:1], 8).scores)


def same_scores(ours, reference):
    """The same labels, and scores within float32 rounding: BLAS sums T x frames rows in an order
    that depends on their number (as two batch sizes do); one spike more or less would move a score
    by a weight, ~1e-2 here."""
    np.testing.assert_array_equal(ours.argmax(axis=1), reference.argmax(axis=1))
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)


def test_accuracy_table_from_one_run_equals_a_run_per_t(tmp_path):
    model, x = converted(tmp_path, "maxpool chain")
    engine = SNNEngine(model)
    labels = RNG.integers(0, 5, len(x))
    one_run = accuracy_vs_timesteps(engine.run, x, labels, GRID, scores_by_timesteps=engine.scores_by_timesteps)
    assert one_run == accuracy_vs_timesteps(engine.run, x, labels, GRID)


def test_search_reading_every_t_from_one_run_finds_the_same_points(tmp_path):
    model, x = converted(tmp_path, "maxpool chain")
    labels = SNNEngine(model).run(x, 64).labels  # the SNN's own labels at large T: accuracy has room at small T
    engine = SNNEngine(model)
    cost = lambda timesteps, neuron, weights: (float(timesteps), EnergyEstimate(1e-3 * timesteps, "modelled", "test"))  # noqa: E731
    calib, heldout = (x[:40], labels[:40]), (x[40:], labels[40:])
    options = dict(reference_rates=dnn_channel_rates(model, calib[0]), layer_scales=(0.8, 1.0, 1.2))
    per_t = search(engine.run, cost, calib, heldout, model.neuron, (2, 3, 5), **options)
    plain_heldout = accuracy_vs_timesteps(engine.run, *heldout, (2, 3, 5))
    updates = []
    one_run = search(engine.run, cost, calib, heldout, model.neuron, (2, 3, 5), **options,
                     scores_by_timesteps=engine.scores_by_timesteps, plain_heldout=plain_heldout,
                     progress=lambda done, total: updates.append((done, total)))
    assert [p.enhancement for p in one_run] == [p.enhancement for p in per_t]
    assert one_run == per_t
    assert any(p.bias_shifts or p.threshold_scale != 1.0 for p in per_t)  # the search found something to compare
    # the progress: its total known from the start, image-steps counted up to it
    total = updates[0][1]
    assert updates[0] == (0, total) and updates[-1] == (total, total) and len(updates) > 10
    assert all(t == total for _, t in updates)
    assert all(b >= a for (a, _), (b, _) in zip(updates, updates[1:]))


def test_latency_measurement_takes_the_frames_that_fit_its_budget():
    from snn_agent.adaptation.operating_points import MIN_LATENCY_FRAMES, MeasuredCost, frames_within_budget
    from snn_agent.backends.cpu import CpuBackend
    from snn_agent.ir import SNNModel
    from conftest import BUNDLED_SNN

    backend = CpuBackend()
    backend.load(BUNDLED_SNN)
    try:
        frames = RNG.uniform(0, 1, (50, 1, 28, 28)).astype(np.float32)
        cost = MeasuredCost(backend.infer, frames)
        configs = [(t, SNNModel.load(BUNDLED_SNN).neuron) for t in (2, 16)]
        assert len(frames_within_budget(cost, configs, budget_s=60.0).frames) == 50  # ~1 ms of frames: all
        assert len(frames_within_budget(cost, configs, budget_s=1e-3).frames) == MIN_LATENCY_FRAMES
    finally:
        backend.close()
