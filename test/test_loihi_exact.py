"""The loihi target against Lava itself: our numpy emulation must give the spikes Lava gives, bit
for bit, in every layer of every frame; and the Lava backend runs frames on a network it keeps."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from snn_agent.backends import BackendError
from snn_agent.backends.lava import LavaBackend, LavaNetwork
from snn_agent.conversion.export_netx import NETX_FILE
from snn_agent.data import datasets
from snn_agent.data.prepare import model_input
from snn_agent.engine.loihi_engine import LoihiEngine, score_from_voltage
from snn_agent.ir import NeuronConfig, SNNModel

from conftest import BUNDLED_SNN

LOIHI_DIR = os.path.join(BUNDLED_SNN, "loihi")


@pytest.fixture(scope="module")
def loihi_model():
    return SNNModel.load(LOIHI_DIR)


@pytest.fixture(scope="module")
def frames(loihi_model):
    test = datasets.load(datasets.default_dataset_name(), "test").subset(3)
    return model_input(test, loihi_model.network.preprocessing)


@pytest.fixture(scope="module")
def lava_network(loihi_model):
    network = LavaNetwork(loihi_model, os.path.join(LOIHI_DIR, NETX_FILE), record_spikes=True)
    yield network
    network.close()


@pytest.mark.parametrize("timesteps, v_init", [(5, 0.5), (9, 0.0)])
def test_every_layer_spikes_exactly_as_in_lava(loihi_model, frames, lava_network, timesteps, v_init):
    """Two T and two initial voltages on one running network: T and v0 change at runtime."""
    engine = LoihiEngine(loihi_model)
    neuron = NeuronConfig("zero", v_init, 1.0)
    ours, our_spikes = engine.run(frames, timesteps, neuron, return_spikes=True)
    payloads, voltages = engine.encode(frames), engine.initial_voltages(neuron)
    for i, payload in enumerate(payloads):
        v, trains = lava_network.run(payload[None], timesteps, voltages)
        assert len(trains) == len(our_spikes)
        for layer, (lava_train, our_train) in enumerate(zip(trains, our_spikes)):
            assert lava_train.shape == our_train[:, i].shape
            assert np.array_equal(lava_train.astype(bool), our_train[:, i]), f"frame {i} layer {layer}"
        assert trains[0].sum() > 0 and trains[-2].sum() > 0  # the check sees real activity
        np.testing.assert_array_equal(score_from_voltage(loihi_model, v, timesteps), ours.scores[i])


@pytest.mark.parametrize("neuron", [
    NeuronConfig("zero", 0.5, 1.0),
    NeuronConfig("zero", 0.0, 0.8, (0.7, 1.0, 1.2), ((0.1,) * 16, (-0.2,) * 32, (0.05,) * 128)),
    NeuronConfig("zero", 0.5, 1.0, v_decay=300),  # a leak: the LIF's general (non-vectorized) loop
], ids=["plain", "calibrated", "leaky"])
def test_compiled_frames_equal_the_layer_by_layer_path(loihi_model, frames, neuron):
    """The compiled whole-frame path (what run takes) against layer_input / layer_output chained
    over the batch (the path the Lava comparison above was first proven on): every spike, the
    scores, the op counts; a constant payload and a different input at each step."""
    engine = LoihiEngine(loihi_model)
    payloads = engine.encode(frames)
    sequence = np.stack([np.roll(payloads, t, axis=1) for t in range(6)])
    for inputs, timesteps in ((payloads[None], 16), (payloads[None], 1), (sequence, 6)):
        compiled, compiled_spikes = engine._simulate_compiled(inputs, timesteps, neuron, True)
        by_layer, layer_spikes = engine._simulate_by_layer(inputs, timesteps, neuron, True)
        np.testing.assert_array_equal(compiled.scores, by_layer.scores)
        for ours, reference in zip(compiled_spikes, layer_spikes):
            np.testing.assert_array_equal(ours, reference)
        assert compiled_spikes[1].any() and compiled_spikes[2].any()
        for name in ("spikes", "synaptic_ops", "neuron_updates"):
            assert getattr(compiled.ops, name) == getattr(by_layer.ops, name), name
        for ours, reference in zip(compiled.ops.channel_rates, by_layer.ops.channel_rates):
            np.testing.assert_allclose(ours, reference, rtol=1e-12)


@pytest.mark.parametrize("neuron", [
    NeuronConfig("zero", 0.5, 1.0),
    NeuronConfig("zero", 0.0, 0.8, (0.7, 1.0, 1.2), ((0.1,) * 16, (-0.2,) * 32, (0.05,) * 128)),
    NeuronConfig("zero", 0.5, 1.0, v_decay=300),
], ids=["plain", "calibrated", "leaky"])
def test_one_forked_run_scores_every_timestep_as_a_run_at_it(loihi_model, frames, neuron):
    """scores_by_timesteps (one run that forks at each T and drains) against a run at each T:
    the same integers, at T below, at and beyond the network's depth."""
    engine = LoihiEngine(loihi_model)
    grid = (1, 2, 3, 7, 16)
    forked = engine.scores_by_timesteps(frames, grid, neuron)
    assert sorted(forked) == list(grid)
    for timesteps in grid:
        np.testing.assert_array_equal(forked[timesteps], engine.run(frames, timesteps, neuron).scores)
    assert not np.array_equal(forked[2], forked[16])  # the forks differ: each has its own drain


def test_lava_backend_keeps_the_network_and_matches_the_emulation(frames, loihi_model):
    from lava.magma.core.process.process import ProcessServer
    from lava.magma.core.process.variable import VarServer

    registered = ProcessServer().num_processes, VarServer().num_vars
    backend = LavaBackend(device="CPU")
    backend.load(BUNDLED_SNN)  # the ideal model's directory: the backend finds its loihi target
    try:
        engine = LoihiEngine(loihi_model)
        network = backend._network
        for timesteps in (4, 8):
            result = backend.infer(frames[:2], timesteps)
            expected = engine.run(frames[:2], timesteps)
            np.testing.assert_array_equal(result.scores, expected.scores)
            assert result.energy.kind == "modelled" and result.energy.joules > 0
            assert result.ops.spikes == expected.ops.spikes
        assert backend._network is network  # T changed without a new network
        sharper = NeuronConfig("zero", 0.5, 0.8)  # thresholds live in the network: it is rebuilt
        np.testing.assert_array_equal(backend.infer(frames[:1], 4, sharper).scores,
                                      engine.run(frames[:1], 4, sharper).scores)
        # a calibrated point: per-layer thresholds and per-channel bias shifts, also in the network
        channels = [layer.output_shape[0] for layer in loihi_model.layers if layer.spiking]
        calibrated = NeuronConfig("zero", 0.5, 1.0, (0.7, 1.0, 1.2)[:len(channels)],
                                  tuple(tuple(np.linspace(-0.2, 0.2, c)) for c in channels))
        result = backend.infer(frames[:2], 4, calibrated)
        expected = engine.run(frames[:2], 4, calibrated)
        np.testing.assert_array_equal(result.scores, expected.scores)
        assert result.ops.spikes == expected.ops.spikes != engine.run(frames[:2], 4).ops.spikes
        backend.with_features = True  # the graded rule's memory (Backend.features): the frames' own hidden spikes
        np.testing.assert_array_equal(backend.features(frames[:2], 4, calibrated),
                                      backend.infer(frames[:2], 4, calibrated).hidden)
        backend.with_features = False
        # a leaky point: the spiking layers' dv goes into the network, the score layer keeps its own
        leaky = NeuronConfig("zero", 0.5, 1.0, v_decay=256)
        result = backend.infer(frames[:2], 8, leaky)
        expected = engine.run(frames[:2], 8, leaky)
        np.testing.assert_array_equal(result.scores, expected.scores)  # Lava's scores: the leaky emulation's
        without_leak = engine.run(frames[:2], 8)
        assert not np.array_equal(expected.scores, without_leak.scores)  # which the leak changed
        assert expected.ops.spikes < without_leak.ops.spikes
        assert "Loihi2SimCfg" in backend.describe()
    finally:
        backend.close()
    # every network built here (4) left Lava's registries of processes and Vars when it closed: none
    # stays in memory for good (each Lava configure of the agent leaked ~1.9 MB before)
    assert (ProcessServer().num_processes, VarServer().num_vars) == registered


def test_hardware_without_lava_loihi_is_a_clear_error():
    from snn_agent.backends.lava import loihi_hardware_available

    if loihi_hardware_available():
        pytest.skip("Intel's Lava-Loihi extension is installed here")
    backend = LavaBackend(device="LOIHI2")
    with pytest.raises(BackendError, match="Loihi2HwCfg needs Intel's Lava-Loihi"):
        backend.load(BUNDLED_SNN)


def test_unknown_lava_device_is_a_clear_error():
    with pytest.raises(BackendError, match="CPU .*LOIHI2 .*AUTO"):
        LavaBackend(device="MYRIAD")


def test_model_without_loihi_target_or_calibration_data_is_a_clear_error(tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(BUNDLED_SNN, model_dir, ignore=shutil.ignore_patterns("loihi"))
    model = SNNModel.load(str(model_dir))
    model.info.pop("calibration_data")
    model.save(str(model_dir))
    with pytest.raises(Exception, match="no loihi target and no calibration data"):
        LavaBackend(device="CPU").load(str(model_dir))


def test_missing_netx_file_is_written_from_the_target(tmp_path, frames):
    model_dir = tmp_path / "m"
    shutil.copytree(BUNDLED_SNN, model_dir)
    os.remove(model_dir / "loihi" / NETX_FILE)
    backend = LavaBackend(device="CPU")
    try:
        backend.load(str(model_dir))
        assert (model_dir / "loihi" / NETX_FILE).is_file()
        assert backend.infer(frames[:1], 2).scores.shape == (1, 10)
    finally:
        backend.close()


def test_lava_starts_after_openvino_in_a_fresh_process():
    """OpenVINO fixes multiprocessing's start method on import, which Lava's runtime refuses to
    follow: a node that switches openvino -> lava must still start Lava."""
    script = ("import openvino, multiprocessing, numpy as np\n"
              "multiprocessing.get_start_method()\n"  # what openvino's import chain can do
              "from snn_agent.backends.lava import LavaBackend\n"
              "backend = LavaBackend(device='CPU')\n"
              f"backend.load({BUNDLED_SNN!r})\n"
              "print(backend.infer(np.zeros((1, 1, 28, 28), np.float32), 2).scores.shape)\n"
              "backend.close()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "(1, 10)" in done.stdout, done.stderr[-2000:]


def test_graph_network_gets_no_loihi_target_and_says_why(tmp_path):
    """A residual network converts for the ideal target; the loihi target, its netx and NIR files
    (chains only) are reported as skipped, and the Lava backend refuses it with the reason."""
    from snn_agent.conversion.pipeline import convert_model
    from test_conversion import save_model
    from test_graph_conversion import residual_block

    nodes, inits = residual_block("identity")
    onnx_path = save_model(tmp_path, nodes, inits, (2, 8, 8), 5)
    calib = tmp_path / "calib.npz"
    rng = np.random.default_rng(0)
    np.savez(calib, x=rng.uniform(0, 1, (40, 2, 8, 8)).astype(np.float32), y=rng.integers(0, 5, 40))
    out = tmp_path / "out"
    snn = convert_model(onnx_path, str(calib), str(out), preprocessing={"input_shape": [2, 8, 8], "scale": 1.0})
    assert not snn.network.is_chain
    assert snn.info["exports"]["loihi"].startswith("skipped: the loihi target")
    assert snn.info["exports"]["nir"].startswith("skipped: the NIR export writes a chain")
    assert not (out / "loihi").exists()
    with pytest.raises(BackendError, match="residual Add or Concat"):
        LavaBackend(device="CPU").load(str(out))


def test_a_runtime_process_closed_by_lavas_failed_stop_is_left_out():
    """LavaNetwork.kill after a failed stop: Lava's join may have closed some runtime processes
    (whose exitcode then raises ValueError); those have ended and are skipped."""
    import multiprocessing

    from snn_agent.backends.lava import _closed

    process = multiprocessing.get_context("spawn").Process(target=int)
    process.start()
    process.join()
    assert not _closed(process)
    process.close()
    assert _closed(process)
