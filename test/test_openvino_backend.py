"""The OpenVINO backend with real OpenVINO: same answers as the DNN, clear device errors."""
import json
import logging
import os
import shutil

import numpy as np
import pytest

from conftest import ROOT
from snn_agent.backends import BackendError, create_backend
from snn_agent.conversion.convert import convert
from snn_agent.conversion.onnx_import import load_onnx
from snn_agent.data import datasets
from snn_agent.data.prepare import model_input
from snn_agent.energy.dnn_ops import dnn_macs
from snn_agent.engine.dnn import forward
from snn_agent.ir import SNNModel

ov = pytest.importorskip("openvino")
ONNX = os.path.join(ROOT, "models", "fashion_cnn.onnx")


@pytest.fixture(scope="module")
def dnn():
    return load_onnx(ONNX)


@pytest.fixture(scope="module")
def images(dnn):
    # Fashion-MNIST where Debian's package is installed (the bundled model's data), else digits
    data = datasets.load(datasets.default_dataset_name(), "test").subset(200)
    return model_input(data, dnn.preprocessing)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, dnn, images):
    """A converted model without IR, recording the bundled ONNX (absolute path) as its source."""
    directory = tmp_path_factory.mktemp("converted") / "model"
    convert(dnn, images, source=ONNX).save(str(directory))
    return directory


@pytest.fixture(scope="module")
def loaded(model_dir):
    """The backend on OpenVINO's CPU; loading exports the IR from the recorded source."""
    backend = create_backend("openvino")
    backend.load(str(model_dir))
    yield backend
    backend.close()


def test_load_exports_the_ir_with_its_input_layout(loaded, model_dir):
    assert (model_dir / "openvino" / "model.xml").is_file() and (model_dir / "openvino" / "model.bin").is_file()
    info = json.loads((model_dir / "openvino" / "input.json").read_text())
    assert info["layout"] == "NCHW" and info["shape"] == [-1, 1, 28, 28] and info["element_type"] == "f32"
    model = ov.Core().read_model(str(model_dir / "openvino" / "model.xml"))
    assert model.input().get_node().get_layout() == ov.Layout("NCHW")


def test_inference_agrees_with_the_numpy_dnn(loaded, dnn, images):
    x = images[:50]
    result = loaded.infer(x, timesteps=16)  # T is ignored: one DNN inference per frame
    reference = forward(dnn, x)
    np.testing.assert_allclose(result.scores, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
    np.testing.assert_array_equal(result.labels, reference.argmax(1))
    assert result.ops is None and not loaded.capabilities.adapt_timesteps
    assert loaded.capabilities.learn_online and loaded.capabilities.learning == "host"  # a readout on the host
    assert loaded.describe() == "openvino:CPU" and loaded.fallback_reason is None
    assert result.latency_s > 0 and result.energy.joules > 0
    assert "CPU time" in result.energy.source or result.energy.kind == "measured"  # RAPL where readable


def test_unknown_and_absent_devices_are_clear_errors(model_dir):
    with pytest.raises(BackendError, match="unknown OpenVINO device 'TPU'; choose one of CPU, GPU, NPU"):
        create_backend("openvino", device="TPU").load(str(model_dir))
    present = ov.Core().available_devices
    absent = next(d for d in ("NPU", "GPU") if d not in present)
    with pytest.raises(BackendError, match=f"no device '{absent}'; present: {', '.join(present)}"):
        create_backend("openvino", device=absent).load(str(model_dir))


def test_myriad_points_to_the_2022_3_lts_toolkit_and_npu(model_dir):
    with pytest.raises(BackendError, match=r"removed in OpenVINO 2023\.0.*2022\.3 LTS toolkit.*NPU, its modern successor"):
        create_backend("openvino", device="myriad").load(str(model_dir))


def test_absent_device_falls_back_to_cpu_when_allowed(model_dir, images, caplog):
    if "NPU" in ov.Core().available_devices:
        pytest.skip("this machine has an NPU")
    backend = create_backend("openvino", device="NPU", allow_fallback=True)
    with caplog.at_level(logging.ERROR, logger="snn_agent"):
        backend.load(str(model_dir))
    assert backend.describe() == "openvino:CPU"
    assert "no device 'NPU'" in backend.fallback_reason and "CPU device instead" in backend.fallback_reason
    assert backend.fallback_reason in caplog.text
    assert backend.infer(images[:2], timesteps=1).scores.shape == (2, 10)


def test_device_that_does_not_compile_falls_back_when_allowed(model_dir, monkeypatch):
    """A listed device whose driver or compiler is missing (the NPU plugin here has no compiler)."""
    if "NPU" in ov.Core().available_devices:
        pytest.skip("this machine has a working NPU")
    monkeypatch.setattr(ov.Core, "available_devices", property(lambda core: ["CPU", "NPU"]))
    with pytest.raises(BackendError, match="could not compile .* for NPU"):
        create_backend("openvino", device="NPU").load(str(model_dir))
    backend = create_backend("openvino", device="NPU", allow_fallback=True)
    backend.load(str(model_dir))
    assert backend.describe() == "openvino:CPU" and "could not compile" in backend.fallback_reason


def test_missing_ir_and_source_is_a_clear_error(model_dir, tmp_path):
    bare = tmp_path / "m"
    shutil.copytree(model_dir, bare, ignore=shutil.ignore_patterns("openvino"))
    model = SNNModel.load(str(bare))
    model.info["source"] = "gone.onnx"
    model.save(str(bare))
    with pytest.raises(BackendError, match="no OpenVINO IR .* and no source ONNX .* 'gone.onnx'"):
        create_backend("openvino").load(str(bare))


def test_stale_ir_is_refused(model_dir, tmp_path):
    """An IR that does not take the model's frames (here: the model claims 2 channels)."""
    stale = tmp_path / "m"
    shutil.copytree(model_dir, stale)
    model = SNNModel.load(str(stale))
    model.network.preprocessing.input_shape = (2, 28, 28)
    model.layers[0].input_shape = (2, 28, 28)
    model.layers[0].weight = np.repeat(model.layers[0].weight, 2, axis=1)
    model.save(str(stale))
    with pytest.raises(BackendError, match=r"takes input .*1,28,28.*frames are \(2, 28, 28\); delete"):
        create_backend("openvino").load(str(stale))


def test_dnn_macs_matches_the_conversion_report(loaded):
    report = sum(row["dnn_macs"] for row in loaded.model.info["layers"])
    # conv 5x5 s2 1->16 on 14x14, conv 3x3 s2 16->32 on 7x7, dense 1568->128, dense 128->10
    by_hand = 16 * 14 * 14 * 25 + 32 * 7 * 7 * 16 * 9 + 1568 * 128 + 128 * 10
    assert dnn_macs(loaded.model) == report == by_hand


def test_auto_that_picks_the_cpu_runs_as_the_cpu_device(model_dir, images):
    if ov.Core().available_devices != ["CPU"]:
        pytest.skip("this machine has an accelerator AUTO may pick")
    backend = create_backend("openvino", device="AUTO")
    backend.load(str(model_dir))
    result = backend.infer(images[:2], timesteps=1)
    assert backend.describe() == "openvino:CPU" and backend.fallback_reason is None
    assert "CPU time" in result.energy.source or result.energy.kind == "measured"
