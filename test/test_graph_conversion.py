"""Graph networks: residual Add and Concat convert, run in the DNN reference and the SNN engine, and
save and load; what the converter cannot take is named."""
import json
import os

import numpy as np
import pytest
from onnx import helper

from snn_agent.conversion.convert import ConversionOptions, convert
from snn_agent.conversion.onnx_import import UnsupportedModelError, load_onnx
from snn_agent.engine import SNNEngine
from snn_agent.engine.dnn import forward
from snn_agent.ir import GRAPH_FORMAT_VERSION, NETWORK_INPUT, SNNModel
from test_conversion import BUNDLED_SNN, const, conv_bn_relu_nodes, reference_scores, save_model

RNG = np.random.default_rng(3)


def bn_nodes(prefix, c, inp, out):
    inits = [const(f"{prefix}g", RNG.uniform(0.5, 1.5, c)), const(f"{prefix}be", RNG.normal(0, 0.1, c)),
             const(f"{prefix}m", RNG.normal(0, 0.1, c)), const(f"{prefix}v", RNG.uniform(0.5, 1.5, c))]
    return [helper.make_node("BatchNormalization", [inp, f"{prefix}g", f"{prefix}be", f"{prefix}m", f"{prefix}v"],
                             [out])], inits


def conv_node(prefix, cin, cout, inp, out, k=3, stride=1, std=0.5):
    pad = k // 2
    inits = [const(f"{prefix}w", RNG.normal(0, std, (cout, cin, k, k))), const(f"{prefix}b", RNG.normal(0, 0.1, cout))]
    return [helper.make_node("Conv", [inp, f"{prefix}w", f"{prefix}b"], [out], pads=[pad] * 4,
                             strides=[stride, stride], name=f"{prefix}conv")], inits


def gemm_head(inp, n_in, classes=5, flatten=True):
    nodes = [helper.make_node("Flatten", [inp], ["flat"])] if flatten else []
    nodes.append(helper.make_node("Gemm", ["flat" if flatten else inp, "hw", "hb"], ["y"], transB=1, name="head"))
    return nodes, [const("hw", RNG.normal(0, 0.3, (classes, n_in))), const("hb", RNG.normal(0, 0.1, classes))]


def check(path, in_shape, timesteps=256, min_agreement=0.9, n=96):
    """The DNN matches OpenVINO; the SNN at large T predicts as the DNN on most inputs and its
    scores follow the DNN's (a mis-scaled or missing source shifts them far more)."""
    network = load_onnx(path, {"input_shape": in_shape, "scale": 1.0})
    x = RNG.uniform(0, 1, size=(n,) + tuple(in_shape)).astype(np.float32)
    dnn = forward(network, x)
    np.testing.assert_allclose(dnn, reference_scores(path, x), rtol=1e-4, atol=1e-4)
    snn = convert(network, x, ConversionOptions(percentile=100.0))
    result = SNNEngine(snn).run(x, timesteps)
    agreement = (result.labels == dnn.argmax(1)).mean()
    assert agreement >= min_agreement, f"SNN agrees with the DNN on only {agreement:.0%}"
    error = np.abs(result.scores - dnn).mean() / np.abs(dnn).mean()
    assert error < 0.04, f"SNN scores off the DNN's by {error:.1%} on average"
    return network, snn, x


def residual_block(shortcut):
    """stem: Conv-BN-ReLU; block: Conv-BN-ReLU-Conv-BN + shortcut, Add, ReLU; head: GAP-Gemm."""
    stem, inits = conv_bn_relu_nodes("s", 2, 4, "x")  # -> "sr" (4, 8, 8)
    stride = 1 if shortcut == "identity" else 2
    cout = 4 if shortcut == "identity" else 6
    c1, i1 = conv_node("c1", 4, cout, "sr", "c1o", stride=stride)
    b1, j1 = bn_nodes("b1", cout, "c1o", "b1o")
    c2, i2 = conv_node("c2", cout, cout, "b1r", "c2o")
    b2, j2 = bn_nodes("b2", cout, "c2o", "b2o")
    nodes = stem + c1 + b1 + [helper.make_node("Relu", ["b1o"], ["b1r"])] + c2 + b2
    inits += i1 + j1 + i2 + j2
    if shortcut == "identity":
        skip = "sr"
    else:  # a strided 1x1 projection with its own BatchNorm
        cp, ip = conv_node("p", 4, cout, "sr", "po", k=1, stride=2)
        bp, jp = bn_nodes("bp", cout, "po", "bpo")
        nodes += cp + bp
        inits += ip + jp
        skip = "bpo"
    nodes += [helper.make_node("Add", ["b2o", skip], ["sum"], name="residual_add"),
              helper.make_node("Relu", ["sum"], ["block"]),
              helper.make_node("GlobalAveragePool", ["block"], ["gap"])]
    head, ih = gemm_head("gap", cout)
    return nodes + head, inits + ih


@pytest.mark.parametrize("shortcut", ["identity", "projection"])
def test_residual_block_converts_and_agrees(tmp_path, shortcut):
    nodes, inits = residual_block(shortcut)
    network, snn, x = check(save_model(tmp_path, nodes, inits, (2, 8, 8), 5), (2, 8, 8))
    assert not network.is_chain
    block = next(layer for layer in network.layers if layer.extra_synapses)
    assert block.name == "c2conv" and len(block.inputs) == 2
    if shortcut == "identity":  # the skip path: a depthwise 1x1 of ones from the stem
        assert block.inputs[1] == network.layers[0].name
        assert block.extra_synapses[0].weight.shape == (4, 1, 1, 1) and block.extra_synapses[0].groups == 4
    else:  # the projection: its own 1x1 stride-2 weights, BatchNorm folded
        assert block.extra_synapses[0].weight.shape == (6, 4, 1, 1) and block.extra_synapses[0].stride == (2, 2)
    # stem, conv, the residual layer, the scores (the global average pool is in their weights)
    assert [len(layer.inputs or [None]) for layer in network.layers] == [1, 1, 2, 1]


def test_residual_skip_from_the_input_and_dense_residual(tmp_path):
    """relu(conv(x) + x) reads the analog input twice; relu(W h + h) adds a dense identity."""
    c1, i1 = conv_node("c1", 2, 2, "x", "c1o")
    nodes = c1 + [helper.make_node("Add", ["x", "c1o"], ["s1"]), helper.make_node("Relu", ["s1"], ["r1"]),
                  helper.make_node("Flatten", ["r1"], ["f1"]),
                  helper.make_node("Gemm", ["f1", "dw", "db"], ["d"], transB=1),
                  helper.make_node("Relu", ["d"], ["dr"]),
                  helper.make_node("Gemm", ["dr", "ew", "eb"], ["e"], transB=1),
                  helper.make_node("Add", ["e", "dr"], ["s2"]), helper.make_node("Relu", ["s2"], ["r2"])]
    inits = i1 + [const("dw", RNG.normal(0, 0.2, (16, 2 * 6 * 6))), const("db", RNG.normal(0, 0.1, 16)),
                  const("ew", RNG.normal(0, 0.3, (16, 16))), const("eb", RNG.normal(0, 0.1, 16))]
    head, ih = gemm_head("r2", 16, flatten=False)
    network, _, _ = check(save_model(tmp_path, nodes + head, inits + ih, (2, 6, 6), 5), (2, 6, 6))
    assert network.layers[0].inputs == [NETWORK_INPUT, NETWORK_INPUT]
    assert network.layers[2].extra_synapses[0].kind == "dense"


@pytest.mark.parametrize("after", ["conv", "maxpool", "gap"])
def test_concat_of_two_conv_branches(tmp_path, after):
    stem, inits = conv_bn_relu_nodes("s", 2, 3, "x")  # (3, 8, 8)
    a, ia = conv_node("a", 3, 4, "sr", "ao", k=3)
    b, ib = conv_node("b", 3, 2, "sr", "bo", k=1)
    nodes = stem + a + b + [helper.make_node("Relu", ["ao"], ["ar"]), helper.make_node("Relu", ["bo"], ["br"]),
                            helper.make_node("Concat", ["ar", "br"], ["cat"], axis=1, name="cat")]
    inits += ia + ib
    if after == "conv":
        c, ic = conv_node("c", 6, 4, "cat", "co", stride=2)
        nodes += c + [helper.make_node("Relu", ["co"], ["cr"])]
        head, ih = gemm_head("cr", 4 * 4 * 4)
        inits += ic
    elif after == "maxpool":
        nodes += [helper.make_node("MaxPool", ["cat"], ["mp"], kernel_shape=[2, 2], strides=[2, 2], name="mp")]
        head, ih = gemm_head("mp", 6 * 4 * 4)
    else:
        nodes += [helper.make_node("GlobalAveragePool", ["cat"], ["gp"], name="gp")]
        head, ih = gemm_head("gp", 6)
    network, _, _ = check(save_model(tmp_path, nodes + head, inits + ih, (2, 8, 8), 5), (2, 8, 8),
                          min_agreement=0.85 if after == "maxpool" else 0.9)
    reader = network.layers[-1] if after != "conv" else next(layer for layer in network.layers if layer.name == "cconv")
    assert len(reader.inputs) == 2  # one weight block per branch (or per pooled branch)
    if after == "conv":
        assert reader.weight.shape == (4, 4, 3, 3) and reader.extra_synapses[0].weight.shape == (4, 2, 3, 3)
    elif after == "maxpool":  # each branch pooled by its own two layers
        assert [layer.name for layer in network.layers[3:7]] == ["mp/0/pairs", "mp/0/max", "mp/1/pairs", "mp/1/max"]


def test_concat_after_flatten_feeding_gemm(tmp_path):
    """Two branches flattened and concatenated along the features: the Gemm's columns split."""
    a, ia = conv_node("a", 2, 3, "x", "ao", stride=2)
    b, ib = conv_node("b", 2, 2, "x", "bo", k=1, stride=2)
    nodes = a + b + [helper.make_node("Relu", ["ao"], ["ar"]), helper.make_node("Relu", ["bo"], ["br"]),
                     helper.make_node("Flatten", ["ar"], ["af"]),
                     helper.make_node("AveragePool", ["br"], ["bp"], kernel_shape=[2, 2], strides=[2, 2]),
                     helper.make_node("Flatten", ["bp"], ["bf"]),
                     helper.make_node("Gemm", ["af", "dw", "db"], ["d"], transB=1),
                     helper.make_node("Relu", ["d"], ["dr"]),
                     helper.make_node("Concat", ["af", "bf", "dr"], ["cat"], axis=-1)]
    inits = ia + ib + [const("dw", RNG.normal(0, 0.1, (7, 3 * 4 * 4))), const("db", RNG.normal(0, 0.1, 7))]
    head, ih = gemm_head("cat", 3 * 4 * 4 + 2 * 2 * 2 + 7, flatten=False)
    network, _, _ = check(save_model(tmp_path, nodes + head, inits + ih, (2, 8, 8), 5), (2, 8, 8))
    scores = network.layers[-1]
    # the pooled branch is read before its pooling: 2 x 4 x 4 inputs, each weight spread over its window
    assert [b.weight.shape for b in scores.blocks()] == [(5, 48), (5, 32), (5, 7)]


def test_add_of_activations_folds_into_the_next_layer(tmp_path):
    """relu(a) + relu(b) with no activation after it: the next layer reads both through its weights."""
    a, ia = conv_node("a", 2, 3, "x", "ao")
    b, ib = conv_node("b", 2, 3, "x", "bo")
    c, ic = conv_node("c", 3, 4, "s", "co", stride=2)
    nodes = a + b + [helper.make_node("Relu", ["ao"], ["ar"]), helper.make_node("Relu", ["bo"], ["br"]),
                     helper.make_node("Add", ["ar", "br"], ["s"])] + c + [helper.make_node("Relu", ["co"], ["cr"])]
    head, ih = gemm_head("cr", 4 * 3 * 3)
    network, _, _ = check(save_model(tmp_path, nodes + head, ia + ib + ic + ih, (2, 6, 6), 5), (2, 6, 6))
    assert network.layers[2].inputs == ["aconv", "bconv"]
    np.testing.assert_array_equal(network.layers[2].weight, network.layers[2].extra_synapses[0].weight)


def test_unsupported_graph_structures_are_named(tmp_path):
    # a Concat of convolutions before their activation
    a, ia = conv_node("a", 2, 3, "x", "ao")
    b, ib = conv_node("b", 2, 3, "x", "bo")
    head, ih = gemm_head("r", 6 * 4 * 4)
    nodes = a + b + [helper.make_node("Concat", ["ao", "bo"], ["cat"], axis=1, name="early_cat"),
                     helper.make_node("Relu", ["cat"], ["r"])] + head
    with pytest.raises(UnsupportedModelError, match="early_cat.*Concat.*activation"):
        load_onnx(save_model(tmp_path, nodes, ia + ib + ih, (2, 4, 4), 5))
    # a Concat along the height
    nodes = a + b + [helper.make_node("Relu", ["ao"], ["ar"]), helper.make_node("Relu", ["bo"], ["br"]),
                     helper.make_node("Concat", ["ar", "br"], ["r"], axis=2, name="h_cat")] + head
    with pytest.raises(UnsupportedModelError, match="h_cat.*along the channels"):
        load_onnx(save_model(tmp_path, nodes, ia + ib + ih, (2, 4, 4), 5, name="h.onnx"))
    # a residual Add that no activation follows, read by a convolution
    c, ic = conv_node("c", 3, 3, "s", "co")
    nodes = a + [helper.make_node("Relu", ["ao"], ["ar"])] + b + \
        [helper.make_node("Add", ["bo", "ar"], ["s"], name="bare_add")] + c + \
        [helper.make_node("Relu", ["co"], ["r"])]
    head, ih = gemm_head("r", 3 * 4 * 4)
    with pytest.raises(UnsupportedModelError, match="cconv.*no activation"):
        load_onnx(save_model(tmp_path, nodes + head, ia + ib + ic + ih, (2, 4, 4), 5, name="add.onnx"))
    # an unsupported operator inside a branch
    nodes = a + [helper.make_node("Relu", ["ao"], ["ar"]), helper.make_node("Sigmoid", ["ar"], ["sg"]),
                 helper.make_node("Mul", ["ar", "sg"], ["r"], name="gate")] + gemm_head("r", 3 * 4 * 4)[0]
    with pytest.raises(UnsupportedModelError, match="Mul.*gate"):
        load_onnx(save_model(tmp_path, nodes, ia + ih, (2, 4, 4), 5, name="mul.onnx"))


def test_graph_model_saves_and_loads(tmp_path):
    nodes, inits = residual_block("projection")
    network = load_onnx(save_model(tmp_path, nodes, inits, (2, 8, 8), 5), {"input_shape": (2, 8, 8), "scale": 1.0})
    x = RNG.uniform(0, 1, size=(32, 2, 8, 8)).astype(np.float32)
    snn = convert(network, x, ConversionOptions(percentile=100.0))
    snn.save(str(tmp_path / "m"))
    with open(tmp_path / "m" / "snn.json") as f:
        assert json.load(f)["format_version"] == GRAPH_FORMAT_VERSION
    loaded = SNNModel.load(str(tmp_path / "m"))
    assert not loaded.network.is_chain
    for a, b in zip(snn.layers, loaded.layers):
        assert a.inputs == b.inputs and a.name == b.name
        for s, t in zip(a.blocks(), b.blocks()):
            np.testing.assert_array_equal(s.weight, t.weight)
            assert (s.kind, s.input_shape, s.stride, s.padding, s.groups) == \
                (t.kind, t.input_shape, t.stride, t.padding, t.groups)
    np.testing.assert_array_equal(SNNEngine(loaded).run(x, 32).scores, SNNEngine(snn).run(x, 32).scores)
    np.testing.assert_array_equal(forward(loaded.network, x), forward(snn.network, x))


def test_chain_models_keep_their_format():
    """Old model files (no inputs, no extra synapses) load as chains, and are saved as they were."""
    with open(os.path.join(BUNDLED_SNN, "snn.json")) as f:
        doc = json.load(f)
    assert doc["format_version"] == 1 and all("inputs" not in layer for layer in doc["layers"])
    model = SNNModel.load(BUNDLED_SNN)
    assert model.network.is_chain and all(layer.inputs is None for layer in model.layers)


def test_torch_resnet_block_through_onnx(tmp_path):
    """A residual block and a channel concat written in torch and exported by torch.onnx."""
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
            self.side = nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU())
            self.pool = nn.AvgPool2d(2)
            self.fc = nn.Linear(6 * 4 * 4, 5)

        def forward(self, x):
            h = self.stem(x)
            h = torch.relu(self.body(h) + h)
            h = torch.cat([h, self.side(h)], dim=1)
            return self.fc(torch.flatten(self.pool(h), 1))

    torch.manual_seed(0)
    net = Net()
    for module in net.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    net.eval()
    path = str(tmp_path / "torch.onnx")
    torch.onnx.export(net, torch.zeros(1, 1, 8, 8), path, opset_version=13)
    network, _, x = check(path, (1, 8, 8))
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(forward(network, x), expected, rtol=1e-4, atol=1e-4)


def test_convert_torch_module(tmp_path):
    """convert_torch: a module with ReLU6, MaxPool, Dropout, a residual Add, a concat and a view as
    written in most training scripts goes through torch.onnx and converts."""
    torch = pytest.importorskip("torch")
    from snn_agent.conversion.torch_import import convert_torch

    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU6())
            self.res = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6))
            self.branch = nn.Sequential(nn.Conv2d(6, 4, 1), nn.ReLU())
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(10 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 4))

        def forward(self, x):
            h = self.stem(x)
            h = nn.functional.relu(self.res(h) + h)
            h = self.pool(torch.cat([h, self.branch(h)], 1))
            return self.head(h.view(h.size(0), -1))

    torch.manual_seed(1)
    net = Net().train()
    x = RNG.uniform(0, 1, size=(96, 3, 8, 8)).astype(np.float32)
    snn = convert_torch(net, x[:1], x, ConversionOptions(percentile=100.0), {"scale": 1.0},
                        onnx_path=str(tmp_path / "net.onnx"))
    assert net.training  # restored after the export in eval mode
    net.eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert snn.info["source"] == "torch:Net" and not snn.network.is_chain
    assert snn.layers[0].input_shape == (3, 8, 8)
    dnn = forward(load_onnx(str(tmp_path / "net.onnx"), {"scale": 1.0}), x)
    np.testing.assert_allclose(dnn, expected, rtol=1e-4, atol=1e-4)
    result = SNNEngine(snn).run(x, 256)
    assert (result.labels == expected.argmax(1)).mean() >= 0.85
    assert np.abs(result.scores - expected).mean() / np.abs(expected).mean() < 0.04
