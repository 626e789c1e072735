"""The engine: operation counts against a network small enough to count by hand, its kernels, and
its two paths (time-batched numpy for batches, one compiled call for a single frame) against each
other on the bundled model and Fashion-MNIST."""
import numpy as np
import pytest

from snn_agent.adaptation.operating_points import PointTable
from snn_agent.data import datasets
from snn_agent.engine import SNNEngine
from snn_agent.engine import frame_kernels
from snn_agent.engine.frame_kernels import conv_product, conv_product_by_runs, gather_runs
from snn_agent.engine.ops import Conv2dNhwcPlan, conv2d, conv2d_nhwc, fan_out
from snn_agent.ir import Layer, Network, NeuronConfig, Preprocessing, SNNModel

from conftest import BUNDLED_SNN


def tiny_model(v_init=0.0):
    hidden = Layer("hidden", "dense", np.eye(2, dtype=np.float32), np.zeros(2, np.float32), (2,), (2,))
    out = Layer("out", "dense", np.ones((1, 2), np.float32), np.zeros(1, np.float32), (2,), (1,), spiking=False)
    network = Network([hidden, out], Preprocessing(input_shape=(2,)))
    return SNNModel(network, [1.0], NeuronConfig("subtract", v_init, 1.0))


@pytest.mark.parametrize("frames", [1, 3])  # one frame: the compiled path; a batch: numpy
def test_tiny_network_counts_match_hand_computation(frames):
    # Inputs 1.0 and 0.5 as constant currents, threshold 1, v0 = 0, T = 4:
    # neuron 0 fires every step (4 spikes); neuron 1 reaches 1.0 every second step (2 spikes).
    result = SNNEngine(tiny_model()).run(np.tile(np.array([[1.0, 0.5]], np.float32), (frames, 1)), timesteps=4)
    ops = result.ops
    np.testing.assert_allclose(result.scores, [[6 / 4]] * frames)  # mean input of the score layer
    hidden, out = ({key: layer[key] / frames for key in ("spikes", "synaptic_ops")} for layer in ops.per_layer)
    assert hidden == {"spikes": 6, "synaptic_ops": 2 * 2 * 4}  # 2 active inputs x fan-out 2 x T
    assert out["synaptic_ops"] == 6  # 6 spikes x fan-out 1
    assert ops.neuron_updates / frames == (2 + 1) * 4
    assert ops.spikes / frames == 6


def test_half_threshold_start_rounds_rates():
    # With v0 = threshold/2 an input of 0.5 fires on the first step already: 0.5+0.5 = 1.
    result = SNNEngine(tiny_model(v_init=0.5)).run(np.array([[0.0, 0.5]], np.float32), timesteps=3)
    assert result.ops.per_layer[0]["spikes"] == 2  # steps 1 and 3


def test_ideal_engine_refuses_a_leak():
    """Only the loihi target has a voltage leak; the ideal engine says so instead of ignoring it."""
    engine = SNNEngine(SNNModel.load(BUNDLED_SNN))
    with pytest.raises(ValueError, match="v_decay=64"):
        engine.run(np.zeros((1, 1, 28, 28), np.float32), 2, NeuronConfig(v_decay=64))


def test_conv_fan_out_counts_border_synapses():
    layer = Layer("c", "conv", np.ones((3, 1, 2, 2), np.float32), np.zeros(3, np.float32),
                  (1, 3, 3), (3, 2, 2))
    # each input pixel is seen by 1, 2 or 4 of the 2x2 output positions, times 3 output channels
    expected = 3 * np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    np.testing.assert_array_equal(fan_out(layer)[0], expected)
    assert fan_out(layer).sum() == layer.weight.size * 4  # every weight used at 4 positions


def test_conv2d_matches_direct_loop_with_padding_stride_groups():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 7, 6)).astype(np.float32)
    w = rng.normal(size=(6, 2, 3, 3)).astype(np.float32)
    out = conv2d(x, w, (2, 1), (1, 0, 2, 1), groups=2)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1)))
    ref = np.zeros_like(out)
    for o in range(6):
        g = o // 3
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                patch = xp[:, 2 * g:2 * g + 2, 2 * i:2 * i + 3, j:j + 3]
                ref[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride, padding", [((1, 1), (0, 0, 0, 0)), ((2, 2), (1, 1, 1, 1)), ((2, 1), (2, 0, 1, 2))])
def test_gather_convolution_equals_strided_copies(stride, padding):
    """The one-gather im2col used for one or two maps gives what conv2d_nhwc gives, by index and by runs."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(6, 3, 3, 5)).astype(np.float32)
    x = (rng.random((2, 9, 8, 3)) < 0.3).astype(np.float32)
    plan = Conv2dNhwcPlan(weight, (9, 8, 3), stride, padding)
    maps = conv2d_nhwc(x, weight, stride, padding)
    expected = maps.reshape(2, -1)
    np.testing.assert_allclose(plan(x.reshape(2, -1)), expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected).sum() > 0
    # the compiled single-frame kernels gather with the same index, or with its runs
    compiled = conv_product(x.reshape(2, -1), plan.index.astype(frame_kernels.INDEX_DTYPE), plan.matrix)
    np.testing.assert_allclose(compiled, expected, rtol=1e-5, atol=1e-5)
    runs = gather_runs(plan.index, plan.zero)
    assert len(runs) < plan.index.size and (runs[:, 2] == plan.zero).any() == plan.padded
    by_runs = conv_product_by_runs(x.reshape(2, -1), runs, plan.index.shape[0], plan.matrix)
    np.testing.assert_allclose(by_runs, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("first", ["conv", "dense"])
def test_single_frame_reads_a_multichannel_image_as_it_comes(first):
    """The compiled frame reads (C, H, W) images without a channels-last copy (its first layer's
    index or weight rows are reordered instead): with 3 channels, whose order matters, frame by
    frame gives the batched path's spikes and scores."""
    rng = np.random.default_rng(1)
    if first == "conv":
        hidden = Layer("hidden", "conv", rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
                       rng.normal(size=4).astype(np.float32) * 0.1, (3, 6, 5), (4, 3, 3), stride=(2, 2),
                       padding=(1, 1, 1, 1))
    else:
        hidden = Layer("hidden", "dense", rng.normal(size=(36, 90)).astype(np.float32),
                       rng.normal(size=36).astype(np.float32) * 0.1, (3, 6, 5), (36,))
    out = Layer("out", "dense", rng.normal(size=(5, 36)).astype(np.float32), np.zeros(5, np.float32),
                (36,) if first == "dense" else (4, 3, 3), (5,), spiking=False)
    model = SNNModel(Network([hidden, out], Preprocessing(input_shape=(3, 6, 5))), [1.0], NeuronConfig("subtract", 0.5))
    x = rng.random((8, 3, 6, 5)).astype(np.float32)
    engine = SNNEngine(model)
    batch = engine.run(x, 6)
    frames = [engine.run(frame[None], 6) for frame in x]
    np.testing.assert_allclose(np.concatenate([f.scores for f in frames]), batch.scores, rtol=1e-4, atol=1e-4)
    assert [sum(f.ops.per_layer[0]["spikes"] for f in frames)] == [batch.ops.per_layer[0]["spikes"]] != [0]
    assert sum(f.ops.synaptic_ops for f in frames) == batch.ops.synaptic_ops
    # a channels-last image (the wrong order) would give other scores
    swapped = engine.run(np.ascontiguousarray(x[:1].transpose(0, 2, 3, 1)).reshape(1, 3, 6, 5), 6)
    assert not np.allclose(swapped.scores, frames[0].scores)


def test_single_frame_takes_any_buffer_without_compiling_again(bundled):
    """A camera frame may come read-only, float64 or as a strided view: each gives the scores of a
    plain float32 frame, and the compiled kernel keeps its one specialization (another would cost
    a compile of ~10 s on the robot's first such frame)."""
    model, x = bundled
    engine = SNNEngine(model)
    expected = engine.run(x[:1], 4).scores
    read_only = x[:1].copy()
    read_only.setflags(write=False)
    strided = np.repeat(x[:1], 2, axis=3)[..., ::2]
    for frame in (read_only, x[:1].astype(np.float64), strided):
        np.testing.assert_array_equal(engine.run(frame, 4).scores, expected)
    assert len(frame_kernels.run_chain.signatures) == 1


@pytest.fixture(scope="module")
def bundled():
    model = SNNModel.load(BUNDLED_SNN)
    images = datasets.load("fashion-mnist", "test").subset(200).images
    return model, model.network.preprocessing.apply(images).astype(np.float32)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_single_frames_match_the_batched_path(bundled, reset):
    """Frame by frame (compiled) and as one batch (numpy): the same spikes, synaptic operations and
    channel rates, and the same scores to float32 rounding, at a calibrated small-T point (per-layer
    thresholds, shifted biases) and at the plain conversion."""
    model, x = bundled
    engine = SNNEngine(model)
    calibrated = next(p for p in PointTable.load(BUNDLED_SNN, "cpu").points if p.bias_shifts)
    for timesteps, neuron in ((calibrated.timesteps, calibrated.neuron(reset)), (12, NeuronConfig(reset))):
        batch = engine.run(x, timesteps, neuron)
        frames = [engine.run(frame[None], timesteps, neuron) for frame in x]
        np.testing.assert_allclose(np.concatenate([f.scores for f in frames]), batch.scores, rtol=1e-4, atol=1e-4)
        assert sum(f.ops.spikes for f in frames) == batch.ops.spikes > 0
        assert sum(f.ops.synaptic_ops for f in frames) == batch.ops.synaptic_ops
        for layer, rates in enumerate(batch.ops.channel_rates):
            np.testing.assert_allclose(np.mean([f.ops.channel_rates[layer] for f in frames], axis=0), rates,
                                       rtol=1e-6, atol=1e-9)


def test_cpu_backend_runs_every_blas_library_on_one_thread():
    """Energy is the calling thread's CPU time, so a BLAS worker thread would go unbilled: after
    a fresh process loads the cpu backend, every BLAS library it holds (numpy's, and scipy's that
    the compiled kernels call, which loads with them) runs one thread."""
    import json
    import os
    import subprocess
    import sys

    script = ("import json, threadpoolctl\n"
              "from snn_agent.backends.cpu import CpuBackend\n"
              f"CpuBackend().load({BUNDLED_SNN!r})\n"
              "print(json.dumps([(i['filepath'], i['num_threads']) for i in threadpoolctl.threadpool_info()"
              " if i['user_api'] == 'blas']))\n")
    # as a user's process starts: without conftest's OPENBLAS_NUM_THREADS, which would hide the bug
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True,
                         env=env)
    libraries = json.loads(out.stdout.strip().splitlines()[-1])
    assert any("scipy" in path for path, _ in libraries), libraries  # the kernels' BLAS is among them
    assert all(threads == 1 for _, threads in libraries), libraries
