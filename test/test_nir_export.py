"""NIR export: the graph nir.read loads back has our layers, and runs as our engine does."""
import os

import numpy as np
import pytest

from conftest import ROOT
from snn_agent.conversion.convert import ConversionOptions, convert
from snn_agent.conversion.export_nir import export_nir
from snn_agent.conversion.onnx_import import load_onnx
from snn_agent.data import datasets
from snn_agent.data.prepare import model_input
from snn_agent.engine.cpu_engine import SNNEngine
from snn_agent.engine.ops import conv2d
from snn_agent.ir import NeuronConfig

nir = pytest.importorskip("nir")
ONNX = os.path.join(ROOT, "models", "fashion_cnn.onnx")


@pytest.fixture(scope="module")
def snn_and_images():
    network = load_onnx(ONNX)
    data = datasets.load(datasets.default_dataset_name(), "test").subset(200)
    images = model_input(data, network.preprocessing)
    return convert(network, images, source=ONNX), images


@pytest.fixture(scope="module")
def read_back(snn_and_images, tmp_path_factory):
    path = tmp_path_factory.mktemp("nir") / "fashion_cnn.nir"
    export_nir(snn_and_images[0], str(path))
    return nir.read(str(path))


def test_round_trip_keeps_the_chain_weights_and_shapes(snn_and_images, read_back):
    snn, _ = snn_and_images
    order = _chain(read_back)
    assert [type(read_back.nodes[name]).__name__ for name in order] == [
        "Input", "Conv2d", "IF", "Conv2d", "IF", "Flatten", "Affine", "IF", "Affine", "Output"]
    linear = [read_back.nodes[name] for name in order if name.startswith(("conv", "affine"))]
    assert len(linear) == len(snn.layers)
    for node, layer in zip(linear, snn.layers):
        np.testing.assert_array_equal(node.weight, layer.weight)
        np.testing.assert_array_equal(node.bias, layer.bias)
        assert node.metadata["layer"] == layer.name
        assert tuple(node.output_type["output"]) == tuple(layer.output_shape)
        if layer.kind == "conv":
            assert tuple(node.stride) == tuple(layer.stride) and tuple(node.padding) == tuple(layer.padding[:2])
    neurons = [read_back.nodes[name] for name in order if name.startswith("if")]
    for node, layer, threshold in zip(neurons, [l for l in snn.layers if l.spiking], snn.thresholds):
        assert node.v_threshold.shape == tuple(layer.output_shape)
        assert np.all(node.v_threshold == threshold) and np.all(node.r == 1) and np.all(node.v_reset == 0)
    assert tuple(read_back.nodes["input"].output_type["output"]) == (1, 28, 28)
    assert tuple(read_back.nodes["output"].input_type["input"]) == (10,)
    assert read_back.metadata["reset"] == "subtract" and read_back.metadata["v_init"] == 0.5


def test_read_back_graph_runs_as_the_reset_to_zero_engine(snn_and_images, read_back):
    """NIR's IF (reset to 0, start at 0, fire above threshold) is our engine's zero-reset variant."""
    snn, images = snn_and_images
    x, timesteps = images[:20], 8
    expected = SNNEngine(snn).run(x, timesteps, NeuronConfig(reset="zero", v_init=0.0)).scores
    scores = _simulate(read_back, x, timesteps)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_asymmetric_padding_is_refused(snn_and_images, tmp_path):
    snn, _ = snn_and_images
    snn.layers[0].padding = (1, 1, 2, 2)
    try:
        with pytest.raises(ValueError, match="asymmetric padding"):
            export_nir(snn, str(tmp_path / "x.nir"))
    finally:
        snn.layers[0].padding = (2, 2, 2, 2)


def _chain(graph) -> list:
    following = dict(graph.edges)
    order = ["input"]
    while order[-1] in following:
        order.append(following[order[-1]])
    return order


def _simulate(graph, x: np.ndarray, timesteps: int) -> np.ndarray:
    """A minimal NIR interpreter for this chain, with dt = 1: the frame enters every step."""
    order = _chain(graph)
    v = {}
    total = 0.0
    for _ in range(timesteps):
        h = x
        for name in order[1:]:
            node = graph.nodes[name]
            if isinstance(node, nir.Conv2d):
                py, px = node.padding
                h = conv2d(h, node.weight, tuple(node.stride), (py, px, py, px), int(node.groups))
                h = h + node.bias.reshape(-1, 1, 1)
            elif isinstance(node, nir.Flatten):
                h = h.reshape(len(h), -1)
            elif isinstance(node, nir.Affine):
                h = h @ node.weight.T + node.bias
            elif isinstance(node, nir.IF):
                v[name] = v.get(name, 0.0) + node.r * h
                fired = v[name] > node.v_threshold
                v[name] = np.where(fired, node.v_reset, v[name])
                h = fired.astype(np.float32)
            elif isinstance(node, nir.Output):
                total = total + h
    return total / timesteps


def test_max_pool_chain_exports_and_runs_as_the_engine(tmp_path):
    """A lowered MaxPool is two grouped convolutions; NIR gets them without groups (its type
    check reads a Conv2d's input channels from the weight) and computes the same."""
    from onnx import helper
    from test_conversion import save_model
    from test_graph_conversion import conv_node, gemm_head

    nodes, inits = conv_node("a", 1, 4, "x", "ac")
    nodes += [helper.make_node("Relu", ["ac"], ["ar"]),
              helper.make_node("MaxPool", ["ar"], ["p"], kernel_shape=[2, 2], strides=[2, 2])]
    head, head_inits = gemm_head("p", 4 * 4 * 4)
    path = save_model(tmp_path, nodes + head, inits + head_inits, (1, 8, 8), 5)
    network = load_onnx(path, {"scale": 1.0})
    x = np.random.default_rng(0).uniform(0, 1, (20, 1, 8, 8)).astype(np.float32)
    snn = convert(network, x, ConversionOptions(calibrate=False))  # NIR has no initial state
    assert any(layer.groups > 1 for layer in snn.layers)
    export_nir(snn, str(tmp_path / "pool.nir"))
    expected = SNNEngine(snn).run(x, 8, NeuronConfig(reset="zero", v_init=0.0)).scores
    scores = _simulate(nir.read(str(tmp_path / "pool.nir")), x, 8)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
