"""Per-channel normalization (issue 3): one scale per output channel instead of one per layer."""
import numpy as np
import pytest
from onnx import helper

from snn_agent.conversion.convert import ConversionOptions, convert
from snn_agent.conversion.onnx_import import load_onnx
from snn_agent.engine import SNNEngine
from snn_agent.engine.dnn import forward

from test_conversion import const, save_model

IN_SHAPE = (2, 8, 8)
SPREAD = np.array([1.0, 10.0, 100.0])  # how much larger some channels' activations are than others'


def spread_net(tmp_path, hidden_dense=True):
    """conv(2->6) -> grouped conv(6->6, groups 3) -> conv(6->8, stride 2) -> flatten -> [dense 16] -> dense 5.

    Each spiking layer's output channels are multiplied by 1, 10 or 100 and the next layer's weights
    from them divided by the same factor: the DNN's scores stay balanced over all channels, but the
    channels' activation ranges differ 100-fold (a dense after the flatten reads channel i // 16)."""
    rng = np.random.default_rng(1)

    def spread(n):
        return np.resize(SPREAD, n)[rng.permutation(n)]

    s1, s2, s3 = spread(6), spread(6), spread(8)
    w1 = rng.normal(0, 0.6, (6, 2, 3, 3)) * s1[:, None, None, None]
    b1 = rng.normal(0, 0.1, 6) * s1
    # grouped: output o reads input channels 2 * (o // 2) + j, j = 0, 1
    w2 = rng.normal(0, 0.8, (6, 2, 3, 3)) * s2[:, None, None, None]
    w2 /= s1.reshape(3, 2)[np.arange(6) // 2][:, :, None, None]
    b2 = rng.normal(0, 0.1, 6) * s2
    w3 = rng.normal(0, 0.4, (8, 6, 3, 3)) * s3[:, None, None, None] / s2[None, :, None, None]
    b3 = rng.normal(0, 0.1, 8) * s3
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=3),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c3"], ["r3"]),
             helper.make_node("Flatten", ["r3"], ["f"])]
    inits = [const("w1", w1), const("b1", b1), const("w2", w2), const("b2", b2), const("w3", w3), const("b3", b3)]
    per_input = np.repeat(s3, 16)  # flatten of (8, 4, 4): input i is channel i // 16
    if hidden_dense:
        s4 = spread(16)
        w4 = rng.normal(0, 0.15, (16, 128)) * s4[:, None] / per_input[None, :]
        w5 = rng.normal(0, 0.5, (5, 16)) / s4[None, :]
        inits += [const("w4", w4), const("b4", rng.normal(0, 0.1, 16) * s4), const("w5", w5),
                  const("b5", rng.normal(0, 0.1, 5))]
        nodes += [helper.make_node("Gemm", ["f", "w4", "b4"], ["g4"], transB=1),
                  helper.make_node("Relu", ["g4"], ["r4"]),
                  helper.make_node("Gemm", ["r4", "w5", "b5"], ["y"], transB=1)]
    else:
        w5 = rng.normal(0, 0.1, (5, 128)) / per_input[None, :]
        inits += [const("w5", w5), const("b5", rng.normal(0, 0.1, 5))]
        nodes.append(helper.make_node("Gemm", ["f", "w5", "b5"], ["y"], transB=1))
    path = save_model(tmp_path, nodes, inits, IN_SHAPE, 5, name=f"spread{int(hidden_dense)}.onnx")
    network = load_onnx(path, {"input_shape": IN_SHAPE, "scale": 1.0})
    # centre the class scores, so that the DNN predicts every class (no class wins by its bias alone)
    x = np.random.default_rng(5).uniform(0, 1, (200,) + IN_SHAPE).astype(np.float32)
    network.layers[-1].bias -= forward(network, x).mean(0).astype(np.float32)
    return network


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2)
    return rng.uniform(0, 1, (400,) + IN_SHAPE).astype(np.float32)


def channel_max(network, x):
    """The exact per-channel scales of percentile 100: each spiking layer's largest activation per channel."""
    _, acts = forward(network, x, return_activations=True)
    return [np.moveaxis(a, 1, 0).reshape(a.shape[1], -1).max(1)
            for a, layer in zip(acts, network.layers) if layer.spiking]


@pytest.mark.parametrize("hidden_dense", [True, False])
def test_normalized_network_is_the_dnn_divided_by_channel_scales(tmp_path, data, hidden_dense):
    """With ReLU instead of spikes, the normalized network computes every layer's DNN activation
    divided by its channel's scale, and the DNN's scores exactly: a wrong input-channel mapping
    (groups, or i // (H*W) after the flatten) scales inputs by the wrong factor (up to 100x) and fails."""
    network = spread_net(tmp_path, hidden_dense)
    calib, x = data[:200], data[200:]
    snn = convert(network, calib, ConversionOptions(percentile=100.0, per_channel=True))
    assert snn.thresholds == [1.0] * (len(network.layers) - 1)
    scales = channel_max(network, calib)
    for s in scales:  # the network really has the spread this test is about
        assert s.max() / s.min() > 20
    dnn_scores, dnn_acts = forward(network, x, return_activations=True)
    snn_scores, snn_acts = forward(snn.network, x, return_activations=True)
    for k, s in enumerate(scales):
        expected = dnn_acts[k] / s.reshape((-1,) + (1,) * (dnn_acts[k].ndim - 2))
        np.testing.assert_allclose(snn_acts[k], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(snn_scores, dnn_scores, rtol=1e-4, atol=1e-4)
    # the report holds a summary of the channel scales, not arrays
    rows = [row for row in snn.info["layers"] if "scale" in row]
    for row, s in zip(rows, scales):
        summary = row["channel_scale"]
        assert summary["channels"] == s.size
        assert summary["min"] == pytest.approx(s.min(), rel=1e-5)
        assert summary["max"] == pytest.approx(s.max(), rel=1e-5)
        assert row["scale"] == pytest.approx(s.max(), rel=1e-5)  # the per-layer scale: percentile 100
    assert snn.info["normalization"] == "per channel"


def test_per_channel_keeps_large_t_and_wins_at_small_t(tmp_path, data):
    network = spread_net(tmp_path, hidden_dense=True)
    calib, x = data[:200], data[200:]
    labels = forward(network, x).argmax(1)
    per_layer = SNNEngine(convert(network, calib, ConversionOptions(percentile=100.0)))
    per_channel = SNNEngine(convert(network, calib, ConversionOptions(percentile=100.0, per_channel=True)))

    def agreement(engine, timesteps):
        return float((engine.run(x, timesteps).labels == labels).mean())

    # (a) at large T both follow the DNN
    large_layer, large_channel = agreement(per_layer, 256), agreement(per_channel, 256)
    assert large_channel >= 0.9, large_channel
    assert large_channel >= large_layer - 0.03, (large_layer, large_channel)
    # (b) at small T the per-layer model starves the small channels (a spike stands for 100x their
    # activation), the per-channel one does not
    for timesteps, least, margin in ((8, 0.5, 0.2), (16, 0.65, 0.25)):
        small_layer, small_channel = agreement(per_layer, timesteps), agreement(per_channel, timesteps)
        assert small_channel >= least, (timesteps, small_channel)
        assert small_channel >= small_layer + margin, (timesteps, small_layer, small_channel)


def test_clip_ceiling_stays_one_value_for_all_channels(tmp_path, data):
    """A clipped ReLU saturates at its ceiling in every channel: the ceiling is every channel's scale."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"]),
             helper.make_node("Flatten", ["r1"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    w1 = rng.normal(0, 0.5, (4, 2, 3, 3)) * np.array([1, 10, 100, 1])[:, None, None, None]
    inits = [const("w1", w1), const("b1", np.zeros(4)), const("lo", 0.0), const("hi", 6.0),
             const("w2", rng.normal(0, 0.1, (5, 256))), const("b2", np.zeros(5))]
    network = load_onnx(save_model(tmp_path, nodes, inits, IN_SHAPE, 5, name="clip.onnx"),
                        {"input_shape": IN_SHAPE, "scale": 1.0})
    snn = convert(network, data[:100], ConversionOptions(per_channel=True))
    summary = snn.info["layers"][0]["channel_scale"]
    assert summary["min"] == summary["max"] == 6.0
    np.testing.assert_allclose(snn.layers[0].weight, network.layers[0].weight / 6.0, rtol=1e-6)


def test_dead_channel_keeps_the_layer_scale(tmp_path, data):
    rng = np.random.default_rng(4)
    w1 = rng.normal(0, 0.5, (3, 2, 3, 3))
    w1[1] = 0.0
    b1 = np.array([0.1, -1.0, 0.1])  # channel 1 never fires
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Flatten", ["r1"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    inits = [const("w1", w1), const("b1", b1), const("w2", rng.normal(0, 0.1, (5, 192))), const("b2", np.zeros(5))]
    network = load_onnx(save_model(tmp_path, nodes, inits, IN_SHAPE, 5, name="dead.onnx"),
                        {"input_shape": IN_SHAPE, "scale": 1.0})
    snn = convert(network, data[:100], ConversionOptions(percentile=100.0, per_channel=True))
    layer_scale = snn.info["layers"][0]["scale"]
    assert np.isfinite(snn.layers[0].weight).all() and np.isfinite(snn.layers[1].weight).all()
    np.testing.assert_allclose(snn.layers[0].bias[1], -1.0 / layer_scale, rtol=1e-5)
    np.testing.assert_allclose(forward(snn.network, data[100:200]), forward(network, data[100:200]),
                               rtol=1e-4, atol=1e-4)


def test_loihi_target_takes_a_per_channel_model(tmp_path, data):
    """The loihi target reads only the normalized weights, biases and thresholds of 1."""
    from snn_agent.conversion.loihi import LoihiOptions, to_loihi
    from snn_agent.engine.loihi_engine import LoihiEngine

    network = spread_net(tmp_path, hidden_dense=True)
    calib, x = data[:200], data[200:300]
    snn = convert(network, calib, ConversionOptions(percentile=100.0, per_channel=True))
    target = to_loihi(snn, calib, LoihiOptions(search_images=100))
    assert all(layer.fixed_point is not None for layer in target.layers)
    labels = forward(network, x).argmax(1)
    agreement = float((LoihiEngine(target).run(x, 32).labels == labels).mean())
    assert agreement >= 0.6, agreement  # five balanced classes: chance is ~0.2
