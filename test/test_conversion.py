"""ONNX import and DNN->SNN conversion: every supported operator, exporters, errors, accuracy."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from snn_agent.backends.openvino import OpenVinoBackend
from snn_agent.cli import main as cli_main
from snn_agent.conversion.convert import ConversionOptions, convert
from snn_agent.conversion.onnx_import import UnsupportedModelError, load_onnx
from snn_agent.conversion.pipeline import _optional_export, convert_model
from snn_agent.data import datasets
from snn_agent.data.prepare import model_input
from snn_agent.engine import SNNEngine
from snn_agent.engine.dnn import forward
from snn_agent.ir import Layer, ModelFormatError, SNNModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_ONNX = os.path.join(ROOT, "models", "fashion_cnn.onnx")
BUNDLED_SNN = os.path.join(ROOT, "models", "fashion_cnn_snn")
RNG = np.random.default_rng(0)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def save_model(tmp_path, nodes, inits, in_shape, out_dim, name="m.onnx"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1] + list(in_shape))],
                              [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, [1, out_dim])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def reference_scores(path, x):
    """The ONNX model run by OpenVINO: an independent implementation of every operator."""
    # imported here, not at collection: OpenVINO fixes multiprocessing's start method on import,
    # and Lava's runtime (imported by test_netx_lavadl at collection) then refuses to load
    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.concatenate([compiled(x[i:i + 1])[compiled.output(0)] for i in range(len(x))])


def check_dnn_and_snn(path, in_shape, timesteps=256, min_agreement=0.9):
    network = load_onnx(path, {"input_shape": in_shape, "scale": 1.0})
    x = RNG.uniform(0, 1, size=(64,) + tuple(in_shape)).astype(np.float32)
    ours = forward(network, x)
    np.testing.assert_allclose(ours, reference_scores(path, x), rtol=1e-4, atol=1e-4)
    snn = convert(network, x, ConversionOptions(percentile=100.0))
    agreement = (SNNEngine(snn).run(x, timesteps).labels == ours.argmax(1)).mean()
    assert agreement >= min_agreement, f"SNN agrees with the DNN on only {agreement:.0%}"
    return network


def conv_bn_relu_nodes(prefix, cin, cout, inp, stride=1):
    w = RNG.normal(0, 0.5, (cout, cin, 3, 3))
    inits = [const(f"{prefix}w", w), const(f"{prefix}b", RNG.normal(0, 0.1, cout)),
             const(f"{prefix}g", RNG.uniform(0.5, 1.5, cout)), const(f"{prefix}be", RNG.normal(0, 0.1, cout)),
             const(f"{prefix}m", RNG.normal(0, 0.1, cout)), const(f"{prefix}v", RNG.uniform(0.5, 1.5, cout))]
    nodes = [helper.make_node("Conv", [inp, f"{prefix}w", f"{prefix}b"], [f"{prefix}c"], pads=[1, 1, 1, 1],
                              strides=[stride, stride]),
             helper.make_node("BatchNormalization", [f"{prefix}c", f"{prefix}g", f"{prefix}be", f"{prefix}m",
                                                     f"{prefix}v"], [f"{prefix}bn"]),
             helper.make_node("Relu", [f"{prefix}bn"], [f"{prefix}r"])]
    return nodes, inits


def test_conv_batchnorm_avgpool_flatten_gemm(tmp_path):
    n1, i1 = conv_bn_relu_nodes("a", 2, 4, "x", stride=2)
    nodes = n1 + [
        helper.make_node("AveragePool", ["ar"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Dropout", ["p"], ["d"]),
        helper.make_node("Flatten", ["d"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1),
    ]
    inits = i1 + [const("w2", RNG.normal(0, 0.5, (5, 4 * 2 * 2))), const("b2", RNG.normal(0, 0.1, 5))]
    network = check_dnn_and_snn(save_model(tmp_path, nodes, inits, (2, 8, 8), 5), (2, 8, 8))
    # the pool is in the dense layer's weights: it reads the conv's 4 x 4 x 4 outputs
    assert [layer.kind for layer in network.layers] == ["conv", "dense"]
    assert network.layers[1].weight.shape == (5, 4 * 4 * 4)


@pytest.mark.parametrize("size, kernel, stride, folded", [
    (8, 2, 2, True),  # the usual 2x2 pool: the conv's kernel grows to 6x6, stride 2
    (8, 3, 2, False),  # overlapping windows would reach into the conv's padding: a pool layer instead
    (7, 2, 2, False),  # the pool drops the last row, which the composed kernel would read
])
def test_conv_after_avgpool_composes_with_it_or_keeps_a_pool_layer(tmp_path, size, kernel, stride, folded):
    n1, i1 = conv_bn_relu_nodes("a", 2, 3, "x")
    pooled = (size - kernel) // stride + 1
    nodes = n1 + [helper.make_node("AveragePool", ["ar"], ["p"], kernel_shape=[kernel, kernel], strides=[stride, stride]),
                  helper.make_node("Conv", ["p", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["c2"], ["r2"]), helper.make_node("Flatten", ["r2"], ["f"]),
                  helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    inits = i1 + [const("w2", RNG.normal(0, 0.5, (4, 3, 3, 3))), const("b2", RNG.normal(0, 0.1, 4)),
                  const("w3", RNG.normal(0, 0.5, (5, 4 * pooled * pooled))), const("b3", RNG.normal(0, 0.1, 5))]
    network = check_dnn_and_snn(save_model(tmp_path, nodes, inits, (2, size, size), 5), (2, size, size))
    assert len(network.layers) == (3 if folded else 4)
    if folded:
        assert network.layers[1].weight.shape == (4, 3, 2 + 2 * kernel, 2 + 2 * kernel)


def test_global_avgpool_reshape_matmul_add_clip_softmax(tmp_path):
    n1, i1 = conv_bn_relu_nodes("a", 3, 6, "x")
    nodes = n1 + [
        helper.make_node("GlobalAveragePool", ["ar"], ["gp"]),
        helper.make_node("Reshape", ["gp", "shape"], ["f"]),
        helper.make_node("Identity", ["f"], ["fi"]),
        helper.make_node("MatMul", ["fi", "w2"], ["h"]),
        helper.make_node("Add", ["h", "b2"], ["hb"]),
        helper.make_node("Clip", ["hb", "lo", "hi"], ["hc"]),
        helper.make_node("Gemm", ["hc", "w3", "b3"], ["s"], transB=1),
        helper.make_node("Softmax", ["s"], ["y"]),
    ]
    inits = i1 + [numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
                  const("w2", RNG.normal(0, 0.5, (6, 8))), const("b2", RNG.normal(0, 0.1, 8)),
                  const("lo", 0.0), const("hi", 0.6),
                  const("w3", RNG.normal(0, 0.5, (4, 8))), const("b3", RNG.normal(0, 0.1, 4))]
    path = save_model(tmp_path, nodes, inits, (3, 6, 6), 4)
    network = load_onnx(path, {"input_shape": (3, 6, 6), "scale": 1.0})
    assert network.layers[1].activation_max == pytest.approx(0.6)  # the pool is in its weights
    assert network.dropped_postprocessing == ["Softmax"]
    # Softmax is monotone: predictions of the scores and of OpenVINO's probabilities agree
    x = RNG.uniform(0, 1, size=(32, 3, 6, 6)).astype(np.float32)
    assert (forward(network, x).argmax(1) == reference_scores(path, x).argmax(1)).all()
    snn = convert(network, x, ConversionOptions(percentile=100.0))
    assert (SNNEngine(snn).run(x, 256).labels == forward(network, x).argmax(1)).mean() >= 0.9


def test_unsupported_operator_names_operator_and_node(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
             helper.make_node("Tanh", ["h"], ["t"], name="my_tanh"),
             helper.make_node("Gemm", ["t", "w2", "b2"], ["y"], transB=1)]
    inits = [const("w", np.ones((3, 4))), const("b", np.zeros(3)), const("w2", np.ones((2, 3))), const("b2", np.zeros(2))]
    path = save_model(tmp_path, nodes, inits, (4,), 2)
    with pytest.raises(UnsupportedModelError, match="Tanh.*my_tanh"):
        load_onnx(path)


def test_corrupt_and_missing_model_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(UnsupportedModelError, match="not a readable ONNX"):
        load_onnx(str(bad))
    with pytest.raises(ModelFormatError, match="missing"):
        SNNModel.load(str(tmp_path / "nowhere"))
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "snn.json").write_text("{not json")
    (model_dir / "weights.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ModelFormatError, match="corrupt"):
        SNNModel.load(str(model_dir))


def test_scikit_learn_mlp_through_skl2onnx(tmp_path):
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    clf = MLPClassifier((32,), max_iter=400, random_state=0).fit(x[:1200], digits.target[:1200])
    path = str(tmp_path / "mlp.onnx")
    with open(path, "wb") as f:
        f.write(to_onnx(clf, x[:1], options={"zipmap": False}).SerializeToString())
    network = load_onnx(path, {"scale": 1.0})
    assert "Softmax" in network.dropped_postprocessing and "ArgMax" in network.dropped_postprocessing
    test_x, test_y = x[1200:], digits.target[1200:]
    dnn_pred = forward(network, test_x).argmax(1)
    np.testing.assert_array_equal(dnn_pred, clf.predict(test_x))
    snn = convert(network, x[:500])
    snn_pred = SNNEngine(snn).run(test_x, 64).labels
    assert (snn_pred == dnn_pred).mean() >= 0.95
    assert (snn_pred == test_y).mean() >= clf.score(test_x, test_y) - 0.03


def skl2onnx_digits_mlp(tmp_path):
    """A scikit-learn MLP on the 8x8 digits (features in [0, 1]), exported by skl2onnx with its
    default options (ZipMap post-processing) -> (ONNX path, classifier, x, labels)."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    clf = MLPClassifier((32,), max_iter=400, random_state=0).fit(x[:1200], digits.target[:1200])
    onnx_path = tmp_path / "mlp.onnx"
    onnx_path.write_bytes(to_onnx(clf, x[:1]).SerializeToString())
    return onnx_path, clf, x, digits.target


def test_skl2onnx_default_export_converts_with_every_artifact(tmp_path, capsys):
    """skl2onnx's default options append ZipMap (a sequence of maps, which OpenVINO cannot read):
    `snn-agent convert` with its default options drops it for every format, the OpenVINO IR gives
    the DNN's scores, and the SNN agrees with the DNN."""
    onnx_path, clf, x, labels = skl2onnx_digits_mlp(tmp_path)
    assert "ZipMap" in [n.op_type for n in onnx.load(str(onnx_path)).graph.node]
    calib = tmp_path / "digits_train.npz"
    np.savez(calib, x=x[:1200], y=labels[:1200])
    out = tmp_path / "out"
    assert cli_main(["convert", str(onnx_path), "--calib", str(calib), "-o", str(out),
                     "--preprocessing", '{"scale": 1.0}']) == 0
    printed = capsys.readouterr().out
    assert "dropped exporter post-processing: Softmax, ArgMax, ZipMap" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["exports"] == {"openvino": "openvino/model.xml", "nir": "model.nir", "netx": "loihi.net"}
    assert "openvino: openvino/model.xml" in printed

    test_x, test_y = x[1200:], labels[1200:]
    network = load_onnx(str(onnx_path), {"scale": 1.0})
    dnn = forward(network, test_x)
    backend = OpenVinoBackend(device="CPU")  # what the node runs: the IR, its one output the scores
    backend.load(str(out))
    try:
        np.testing.assert_allclose(backend.infer(test_x[:50]).scores, dnn[:50], rtol=1e-4, atol=1e-4)
    finally:
        backend.close()
    snn_pred = SNNEngine(SNNModel.load(str(out))).run(test_x, 64).labels
    assert (snn_pred == dnn.argmax(1)).mean() >= 0.95
    assert (snn_pred == test_y).mean() >= clf.score(test_x, test_y) - 0.03


def test_a_failing_export_is_reported_not_raised():
    def broken():
        raise RuntimeError("Unsupported value_info type: output_probability\n  traceback lines")

    assert _optional_export(broken, "openvino/model.xml") == \
        "skipped: RuntimeError: Unsupported value_info type: output_probability"
    assert _optional_export(lambda: None, "model.nir") == "model.nir"


def test_bundled_model_converts_and_classifies_at_t32():
    test = datasets.load(datasets.default_dataset_name(), "test").subset(1000)
    model = SNNModel.load(BUNDLED_SNN)
    x = model_input(test, model.network.preprocessing)
    labels = SNNEngine(model).run(x, 32).labels
    # on any images (the digits fallback too), the SNN answers as the DNN it was converted from
    agreement = (labels == forward(load_onnx(BUNDLED_ONNX), x).argmax(1)).mean()
    assert agreement >= 0.95, agreement
    if test.name == "fashion-mnist":  # the data set it was trained for
        accuracy = (labels == test.labels).mean()
        assert accuracy >= 0.85, accuracy


def test_committed_conversion_is_reproducible(tmp_path):
    """models/fashion_cnn_snn is what `snn-agent convert` makes from the committed ONNX today."""
    if not datasets.fashion_mnist_available():
        pytest.skip("needs dataset-fashion-mnist")
    out = tmp_path / "out"
    fresh = convert_model(BUNDLED_ONNX, "fashion-mnist", str(out))
    committed = SNNModel.load(BUNDLED_SNN)
    for a, b in zip(fresh.layers, committed.layers):
        np.testing.assert_allclose(a.weight, b.weight, rtol=1e-6)
        np.testing.assert_allclose(a.bias, b.bias, rtol=1e-6)
    # the loihi target is integers: exactly the same, thresholds included
    fresh_loihi, committed_loihi = SNNModel.load(str(out / "loihi")), SNNModel.load(os.path.join(BUNDLED_SNN, "loihi"))
    for a, b in zip(fresh_loihi.layers, committed_loihi.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert a.fixed_point == b.fixed_point
    assert fresh.info["exports"] == {"openvino": "openvino/model.xml", "nir": "model.nir", "netx": "loihi.net"}
    assert (out / "model.nir").is_file() and (out / "loihi" / "loihi.net").is_file()


def test_committed_t1_conversion_is_reproducible(tmp_path):
    """models/fashion_cnn_snn/for_t1 (the network trained for T = 1) is what `snn-agent convert
    models/fashion_cnn_t1.onnx --no-loihi` makes today; the clip ceilings are its thresholds."""
    if not datasets.fashion_mnist_available():
        pytest.skip("needs dataset-fashion-mnist")
    fresh = convert_model(os.path.join(ROOT, "models", "fashion_cnn_t1.onnx"), "fashion-mnist",
                          str(tmp_path / "for_t1"), loihi=None)
    committed = SNNModel.load(os.path.join(BUNDLED_SNN, "for_t1"))
    np.testing.assert_allclose(fresh.thresholds, committed.thresholds, rtol=1e-6)
    for a, b in zip(fresh.layers, committed.layers):
        np.testing.assert_allclose(a.weight, b.weight, rtol=1e-6)
        np.testing.assert_allclose(a.bias, b.bias, rtol=1e-6)


def test_cli_convert_reports_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "snn"
    assert cli_main(["convert", BUNDLED_ONNX, "--calib", "digits", "--calib-images", "100", "-o", str(out)]) == 0
    report = capsys.readouterr().out
    assert "clip ceiling" in report and "/5/Gemm" in report
    assert (out / "snn.json").is_file() and (out / "source.onnx").is_file()
    assert cli_main(["convert", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x")]) == 2
    assert cli_main(["convert", BUNDLED_ONNX, "--calib", "no-such-set", "-o", str(tmp_path / "y")]) == 2
    assert "unknown dataset" in capsys.readouterr().err


@pytest.mark.parametrize("head", ["conv", "flatten_gemm"])
def test_maxpool_lowered_to_relu_layers_is_exact_in_dnn(tmp_path, head):
    n1, i1 = conv_bn_relu_nodes("a", 2, 3, "x")
    nodes = n1 + [helper.make_node("MaxPool", ["ar"], ["mp"], kernel_shape=[2, 2], strides=[2, 2])]
    if head == "conv":
        nodes += [helper.make_node("Conv", ["mp", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["c2"], ["r2"]), helper.make_node("Flatten", ["r2"], ["f"]),
                  helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
        inits = i1 + [const("w2", RNG.normal(0, 0.5, (4, 3, 3, 3))), const("b2", RNG.normal(0, 0.1, 4)),
                      const("w3", RNG.normal(0, 0.5, (5, 4 * 4 * 4))), const("b3", RNG.normal(0, 0.1, 5))]
    else:
        nodes += [helper.make_node("Flatten", ["mp"], ["f"]),
                  helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
        inits = i1 + [const("w3", RNG.normal(0, 0.5, (5, 3 * 4 * 4))), const("b3", RNG.normal(0, 0.1, 5))]
    network = check_dnn_and_snn(save_model(tmp_path, nodes, inits, (2, 8, 8), 5), (2, 8, 8), min_agreement=0.85)
    assert network.layers[1].name.endswith("/pairs") and network.layers[2].name.endswith("/max")
    assert network.layers[1].output_shape == (12, 4, 4) and network.layers[2].output_shape == (6, 4, 4)


def test_unsupported_maxpool_shape_is_named(tmp_path):
    n1, i1 = conv_bn_relu_nodes("a", 1, 2, "x")
    nodes = n1 + [helper.make_node("MaxPool", ["ar"], ["mp"], kernel_shape=[3, 3], name="pool3"),
                  helper.make_node("Flatten", ["mp"], ["f"]),
                  helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    inits = i1 + [const("w3", np.ones((2, 2 * 4 * 4))), const("b3", np.zeros(2))]
    with pytest.raises(UnsupportedModelError, match="pool3.*only 2x2"):
        load_onnx(save_model(tmp_path, nodes, inits, (1, 6, 6), 2))


def test_conversion_calibrates_initial_potentials_where_no_clip_ceiling_fixes_the_scale(tmp_path):
    """Every conversion calibrates each channel's initial potential (conversion/calibrate.py): the
    layers' firing rates at the calibration T come closer to the DNN's activations on images it did
    not calibrate on; the potentials are saved with the model and start the loihi target's
    neurons too. The bundled model's layers all have Clip ceilings: nothing is calibrated."""
    from snn_agent.adaptation.calibration import dnn_channel_rates
    from snn_agent.conversion.calibrate import CALIBRATION_T
    from snn_agent.conversion.loihi import LoihiOptions, to_loihi
    from snn_agent.engine.loihi_engine import LoihiEngine

    n1, i1 = conv_bn_relu_nodes("a", 2, 6, "x")
    n2, i2 = conv_bn_relu_nodes("b", 6, 6, "ar", stride=2)
    n3, i3 = conv_bn_relu_nodes("c", 6, 6, "br")
    nodes = n1 + n2 + n3 + [helper.make_node("Flatten", ["cr"], ["f"]),
                            helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    inits = i1 + i2 + i3 + [const("w", RNG.normal(0, 0.3, (5, 6 * 4 * 4))), const("b", RNG.normal(0, 0.1, 5))]
    network = load_onnx(save_model(tmp_path, nodes, inits, (2, 8, 8), 5), {"input_shape": (2, 8, 8), "scale": 1.0})
    calib, held_out = (RNG.uniform(0, 1, (n, 2, 8, 8)).astype(np.float32) for n in (256, 128))
    plain = convert(network, calib, ConversionOptions(calibrate=False))
    calibrated = convert(network, calib, ConversionOptions(dither=False, refit_weights=False))  # the fit alone
    assert calibrated.info["calibration"]["timesteps"] == CALIBRATION_T
    assert all(layer.initial_potential is not None for layer in calibrated.layers[:-1])

    def rate_error(model):  # mean |DNN activation - SNN rate| per channel, the deepest spiking layer
        reference = dnn_channel_rates(model, held_out)[-1]
        return np.abs(reference - SNNEngine(model).run(held_out, CALIBRATION_T).ops.channel_rates[-1]).mean()

    assert rate_error(calibrated) < 0.5 * rate_error(plain), (rate_error(calibrated), rate_error(plain))
    calibrated.save(str(tmp_path / "snn"))
    for a, b in zip(SNNModel.load(str(tmp_path / "snn")).layers[:-1], calibrated.layers):
        np.testing.assert_array_equal(a.initial_potential, b.initial_potential)
    dithered = convert(network, calib)  # only the layer that reads the image, per neuron (below)
    assert [layer.initial_potential.shape for layer in dithered.layers[:-1]] == [(6, 8, 8), (6,), (6,)]
    # the compiled frame and the batched path start each neuron the same way
    frames = np.stack([SNNEngine(dithered).run(x[None], CALIBRATION_T).scores[0] for x in held_out[:4]])
    np.testing.assert_allclose(frames, SNNEngine(dithered, compiled_frames=False).run(held_out[:4], CALIBRATION_T).scores,
                               atol=1e-4)
    loihi = LoihiEngine(to_loihi(dithered, calib, LoihiOptions(search_images=0)))
    uncalibrated = LoihiEngine(to_loihi(plain, calib, LoihiOptions(search_images=0)))
    assert any((a != b).any() for a, b in zip(loihi.initial_voltages(loihi.model.neuron),
                                              uncalibrated.initial_voltages(uncalibrated.model.neuron)))

    bundled = convert(load_onnx(BUNDLED_ONNX), RNG.uniform(0, 1, (64, 1, 28, 28)).astype(np.float32))
    assert all(layer.initial_potential is None for layer in bundled.layers)


def test_first_convolution_starts_dithered_unless_max_pooled(tmp_path):
    """The convolution that reads the image (read here through an average pool) starts each neuron
    at its own 4x4 ordered-dither offset (zero mean per channel; the calibration moves each channel
    as a whole), so that a reader's sum over a tile resolves 16 times finer than one neuron's spike
    count; a layer a lowered MaxPool reads, and that MaxPool's layers, keep one potential per
    channel (a max would pick the neuron dithering rounded up). Per-neuron potentials save and load."""
    from snn_agent.conversion.calibrate import dither_offsets

    n1, i1 = conv_bn_relu_nodes("a", 2, 6, "x")
    n2, i2 = conv_bn_relu_nodes("b", 6, 6, "p")
    nodes = n1 + [helper.make_node("AveragePool", ["ar"], ["p"], kernel_shape=[2, 2], strides=[2, 2])] + n2 + \
        [helper.make_node("MaxPool", ["br"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
         helper.make_node("Flatten", ["mp"], ["f"]), helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    inits = i1 + i2 + [const("w", RNG.normal(0, 0.3, (5, 6 * 2 * 2))), const("b", RNG.normal(0, 0.1, 5))]
    network = load_onnx(save_model(tmp_path, nodes, inits, (2, 8, 8), 5), {"input_shape": (2, 8, 8), "scale": 1.0})
    calib = RNG.uniform(0, 1, (128, 2, 8, 8)).astype(np.float32)
    model = convert(network, calib)
    first, *around_max_pool, _ = model.layers
    assert first.initial_potential.shape == (6, 8, 8)
    assert model.info["calibration"]["dithered_layers"] == [first.name]
    offsets = dither_offsets(first)
    assert sorted(np.unique(offsets[0, :4, :4])) == pytest.approx((np.arange(16) + 0.5) / 16 - 0.5)
    assert not np.array_equal(offsets[0], offsets[1])  # each channel's tile rolled
    # each channel is its offsets moved as a whole, where no neuron reached the potential's limits
    potential = first.initial_potential
    unclipped = [c for c in range(6) if np.all(np.abs(potential[c] + 0.5) < 0.999)]
    assert len(unclipped) >= 3
    within_channel = potential - potential.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(within_channel[unclipped], (offsets - offsets.mean(axis=(1, 2), keepdims=True))[unclipped],
                               atol=1e-5)
    assert [layer.initial_potential.shape for layer in around_max_pool] == [(6,), (24,), (12,)]
    undithered = convert(network, calib, ConversionOptions(dither=False))
    assert undithered.layers[0].initial_potential.shape == (6,)
    pooled = n1 + [helper.make_node("MaxPool", ["ar"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
                   helper.make_node("Flatten", ["mp"], ["f"]), helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    max_pooled = load_onnx(save_model(tmp_path, pooled, i1 + [const("w", RNG.normal(0, 0.3, (5, 6 * 4 * 4))), inits[-1]],
                                     (2, 8, 8), 5, "mp.onnx"),
                           {"input_shape": (2, 8, 8), "scale": 1.0})
    assert [layer.initial_potential.shape for layer in convert(max_pooled, calib).layers[:-1]] == [(6,), (24,), (12,)]
    model.save(str(tmp_path / "snn"))
    np.testing.assert_array_equal(SNNModel.load(str(tmp_path / "snn")).layers[0].initial_potential,
                                  first.initial_potential)


def test_weight_refit_fits_the_layer_to_distorted_inputs():
    """calibrate.refit_weights (Li et al. 2021's weight calibration, closed form): a layer reading
    a 3x3 convolution's source and, through a kept depthwise identity, a residual skip, whose SNN
    inputs are the DNN's activations rounded down to T + 1 levels (the bias a rate code's floor
    makes): the refit layer's current on held-out inputs is nearer the DNN's pre-activation than
    the converted weights', and the kept block's weights are its own. The same for a dense layer."""
    from snn_agent.conversion.calibrate import refit_weights
    from snn_agent.engine.ops import linear
    from snn_agent.ir import Synapse

    rng = np.random.default_rng(3)
    conv = Layer("c", "conv", rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32),
                 (3, 6, 6), (4, 6, 6), padding=(1, 1, 1, 1), inputs=["a", "skip"],
                 extra_synapses=[Synapse("conv", np.ones((4, 1, 1, 1), np.float32), (4, 6, 6), groups=4)])
    dense = Layer("d", "dense", rng.normal(0, 0.3, (5, 20)).astype(np.float32), rng.normal(0, 0.1, 5).astype(np.float32),
                  (20,), (5,))

    def rounded(a):  # what a rate code at T = 4 sends of an activation in [0, 1]
        return np.floor(a * 4) / 4

    for layer, shapes in ((conv, [(3, 6, 6), (4, 6, 6)]), (dense, [(20,)])):
        fit, held_out = ([rng.uniform(0, 1, (n,) + shape).astype(np.float32) for shape in shapes] for n in (256, 128))
        refit = refit_weights(layer, [rounded(a) for a in fit], fit)

        def error(model):
            current = sum(linear(block, rounded(a), with_bias=False) for block, a in zip(model.blocks(), held_out))
            exact = sum(linear(block, a, with_bias=False) for block, a in zip(layer.blocks(), held_out))
            bias = (model.bias - layer.bias).reshape((1, -1) + (1,) * (exact.ndim - 2))
            return np.abs(current + bias - exact).mean()

        assert error(refit) < 0.8 * error(layer), (layer.name, error(refit), error(layer))
        for kept, before in zip(refit.extra_synapses, layer.extra_synapses):
            np.testing.assert_array_equal(kept.weight, before.weight)


@pytest.mark.parametrize("kind", ["conv chain", "residual graph"])
def test_calibration_refits_the_weights_of_layers_reading_spikes(tmp_path, kind):
    """The calibration refits the weights of the layers that read spikes (conv, dense, the score
    layer); the image's convolution and a residual skip's identity keep theirs. convert refits only
    where it can check the refit on calibration images beyond the calibration's (here: none)."""
    from test_graph_conversion import residual_block

    from snn_agent.conversion.calibrate import calibrate_layers

    if kind == "conv chain":
        n1, i1 = conv_bn_relu_nodes("a", 2, 6, "x")
        n2, i2 = conv_bn_relu_nodes("b", 6, 6, "ar", stride=2)
        nodes = n1 + n2 + [helper.make_node("Flatten", ["br"], ["f"]),
                           helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
        inits = i1 + i2 + [const("w", RNG.normal(0, 0.3, (5, 6 * 4 * 4))), const("b", RNG.normal(0, 0.1, 5))]
    else:
        nodes, inits = residual_block("identity")
    network = load_onnx(save_model(tmp_path, nodes, inits, (2, 8, 8), 5), {"input_shape": (2, 8, 8), "scale": 1.0})
    calib = RNG.uniform(0, 1, (64, 2, 8, 8)).astype(np.float32)
    converted = convert(network, calib, ConversionOptions(calibrate=False))
    refit = calibrate_layers(converted, calib)
    unchecked = convert(network, calib)
    assert unchecked.info["calibration"]["refit_layers"] == [] and unchecked.info["calibration"]["refit_check"] is None
    np.testing.assert_array_equal(refit.layers[0].weight, converted.layers[0].weight)
    for ours, before in zip(refit.layers[1:], converted.layers[1:]):
        assert not np.array_equal(ours.weight, before.weight), ours.name
        for synapse, unchanged in zip(ours.extra_synapses, before.extra_synapses):  # the skip from the stem
            np.testing.assert_array_equal(synapse.weight, unchanged.weight)


def test_large_t_runs_the_weights_refit_for_it_and_comes_nearer_the_dnn(tmp_path):
    """The second weight set (SNNModel.converged, refit at CONVERGED_CALIBRATION_T) runs at T >=
    CONVERGED_FROM_T and the T = 8 refit below; both survive save and load (a graph: its skip's
    weights too); and at large T the second set's scores are nearer the DNN's than the T = 8
    refit's, whose weights correct a rounding that large T does not have."""
    from dataclasses import replace

    from test_graph_conversion import residual_block

    from snn_agent.conversion.calibrate import CONVERGED_CALIBRATION_T, CONVERGED_FROM_T, calibrate_layers

    nodes, inits = residual_block("identity")
    network = load_onnx(save_model(tmp_path, nodes, inits, (2, 8, 8), 5), {"input_shape": (2, 8, 8), "scale": 1.0})
    # a generator of its own: the module's RNG feeds other modules' networks (test_profile_speed's)
    rng = np.random.default_rng(5)
    calib, held_out = (rng.uniform(0, 1, (n, 2, 8, 8)).astype(np.float32) for n in (128, 64))
    converted = convert(network, calib, ConversionOptions(calibrate=False))
    refit, large_t = calibrate_layers(converted, calib), calibrate_layers(converted, calib, CONVERGED_CALIBRATION_T)
    replace(refit, converged=large_t, converged_from_t=CONVERGED_FROM_T).save(str(tmp_path / "snn"))
    loaded = SNNModel.load(str(tmp_path / "snn"))
    assert loaded.converged_from_t == CONVERGED_FROM_T
    for ours, saved in zip(loaded.converged.layers, large_t.layers):
        np.testing.assert_array_equal(ours.weight, saved.weight)
        for synapse, saved_synapse in zip(ours.extra_synapses, saved.extra_synapses):
            np.testing.assert_array_equal(synapse.weight, saved_synapse.weight)
    engine = SNNEngine(loaded)
    grid = (8, CONVERGED_FROM_T - 1, CONVERGED_FROM_T, 2 * CONVERGED_FROM_T)
    by_timesteps = engine.scores_by_timesteps(held_out, grid)
    for t in grid:
        expected = SNNEngine(large_t if t >= CONVERGED_FROM_T else refit).run(held_out, t).scores
        np.testing.assert_allclose(engine.run(held_out, t).scores, expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(by_timesteps[t], expected, rtol=0, atol=1e-5)
    dnn = forward(network, held_out)

    def error(model):
        return np.abs(SNNEngine(model).run(held_out, 2 * CONVERGED_FROM_T).scores - dnn).mean()
    assert error(large_t) < 0.8 * error(refit), (error(large_t), error(refit))
