"""The OpenVINO backend with real OpenVINO: same answers as the DNN, clear device errors."""
import numpy as np
import pytest

from conftest import BUNDLED_SNN
from snn_agent.backends import BackendError, create_backend
from snn_agent.conversion.onnx_import import load_onnx
from snn_agent.data import datasets
from snn_agent.data.prepare import model_input
from snn_agent.engine.dnn import forward


def test_ir_runs_the_dnn_of_the_model_dir(tmp_path):
    import shutil
    model_dir = tmp_path / "m"
    shutil.copytree(BUNDLED_SNN, model_dir, ignore=shutil.ignore_patterns("openvino"))  # IR made on load
    backend = create_backend("openvino")
    backend.load(str(model_dir))
    assert (model_dir / "openvino" / "model.xml").is_file()
    data = datasets.load(datasets.default_dataset_name(), "test").subset(50)
    x = model_input(data, backend.model.network.preprocessing)
    result = backend.infer(x, timesteps=16)
    reference = forward(load_onnx(str(model_dir / "source.onnx")), x)
    np.testing.assert_allclose(result.scores, reference, rtol=1e-4, atol=1e-4)
    assert result.ops is None and not backend.capabilities.adapt_timesteps
    assert result.energy.kind == "modelled" and result.energy.joules > 0


def test_absent_device_lists_what_is_present_and_myriad_explains():
    with pytest.raises(BackendError, match="present: .*CPU"):
        create_backend("openvino", device="GPU").load(BUNDLED_SNN)
    with pytest.raises(BackendError, match="2022.3 LTS.*NPU"):
        create_backend("openvino", device="MYRIAD").load(BUNDLED_SNN)
    with pytest.raises(BackendError, match="unknown OpenVINO device"):
        create_backend("openvino", device="TPU").load(BUNDLED_SNN)


def test_fallback_to_cpu_when_allowed():
    backend = create_backend("openvino", device="NPU", allow_fallback=True)
    backend.load(BUNDLED_SNN)
    assert backend.describe() == "openvino:CPU" and "NPU" in backend.fallback_reason


def test_missing_ir_and_source_is_a_clear_error(tmp_path):
    import shutil
    model_dir = tmp_path / "m"
    shutil.copytree(BUNDLED_SNN, model_dir, ignore=shutil.ignore_patterns("openvino", "source.onnx"))
    with pytest.raises(BackendError, match="no OpenVINO IR"):
        create_backend("openvino").load(str(model_dir))
