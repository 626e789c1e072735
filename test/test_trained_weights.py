"""Operating points that bring their own weights (OperatingPoint.weights): the bundled model's
conversion trained for T = 1 (models/fashion_cnn_snn/for_t1), run by the CPU backend beside the
model's own weights, chosen by the agent like any point, and refused clearly when broken."""
import json
import os
import shutil

import numpy as np
import pytest

from conftest import BUNDLED_SNN
from snn_agent.adaptation.governor import GovernorSettings
from snn_agent.agent_core import AgentCore, BackendChoice
from snn_agent.backends.base import BackendError
from snn_agent.backends.cpu import CpuBackend
from snn_agent.data import datasets
from snn_agent.data.prepare import model_input
from snn_agent.engine import SNNEngine
from snn_agent.ir import ModelFormatError, SNNModel

FOR_T1 = "for_t1"

@pytest.fixture(scope="module")
def test_images():
    model = SNNModel.load(BUNDLED_SNN)
    test = datasets.load(datasets.default_dataset_name(), "test").subset(1000)  # digits where Fashion-MNIST is missing
    return model_input(test, model.network.preprocessing), test.labels


@pytest.fixture(scope="module")
def cpu():
    backend = CpuBackend()
    backend.load(BUNDLED_SNN)
    return backend


def test_weights_trained_for_t1_beat_the_models_own_at_t1(cpu, test_images):
    """What the T = 1 point is for: at one step the model's own weights lose what its binary
    activations cannot say; the network trained for one step keeps most of it."""
    if not datasets.fashion_mnist_available():
        pytest.skip("an accuracy on Fashion-MNIST, the data set both networks were trained for")
    x, labels = test_images
    own = (SNNEngine(cpu.model).run(x, 1).labels == labels).mean()
    trained = (SNNEngine(SNNModel.load(os.path.join(BUNDLED_SNN, FOR_T1))).run(x, 1).labels == labels).mean()
    assert trained >= own + 0.02, (own, trained)
    assert trained >= 0.85


def test_cpu_backend_runs_a_points_weights_frame_by_frame(cpu, test_images):
    x = test_images[0][:20]
    reference = SNNEngine(SNNModel.load(os.path.join(BUNDLED_SNN, FOR_T1))).run(x, 1).scores
    trained = np.concatenate([cpu.infer(frame[None], 1, None, FOR_T1).scores for frame in x])
    own = np.concatenate([cpu.infer(frame[None], 1).scores for frame in x])
    np.testing.assert_allclose(trained, reference, rtol=1e-4, atol=1e-4)
    assert not np.allclose(trained, own)  # another network, not the model's own again


def _broken_weights(root):
    """A copy of the bundled model beside a missing weights directory, a corrupt one and another network."""
    model_dir = root / "model"
    shutil.copytree(BUNDLED_SNN, model_dir, ignore=shutil.ignore_patterns("operating_points.json", "*.png"))
    (model_dir / "corrupt").mkdir()
    (model_dir / "corrupt" / "snn.json").write_text("{ not json")
    other = model_dir / "five_classes"  # a valid model, but another network: its score layer cut to 5
    shutil.copytree(model_dir / FOR_T1, other)
    spec = json.loads((other / "snn.json").read_text())
    spec["layers"][-1]["output_shape"] = [5]
    spec["class_names"] = spec["class_names"][:5]
    (other / "snn.json").write_text(json.dumps(spec))
    with np.load(other / "weights.npz") as arrays:
        cut = {k: (v[:5] if k.startswith("3.") else v) for k, v in arrays.items()}
    np.savez(other / "weights.npz", **cut)
    return model_dir


def test_broken_weights_get_clear_errors(tmp_path):
    model_dir = _broken_weights(tmp_path)
    backend = CpuBackend()
    backend.load(str(model_dir))
    with pytest.raises(ModelFormatError, match="missing"):
        backend.load_weights("missing")
    with pytest.raises(ModelFormatError, match="corrupt"):
        backend.load_weights("corrupt")
    with pytest.raises(BackendError, match="another input or other classes"):
        backend.load_weights("five_classes")


def test_agent_runs_a_points_weights_and_leaves_out_broken_ones(tmp_path, test_images):
    model_dir = _broken_weights(tmp_path)
    point = {"accuracy": 0.88, "latency_ms": 0.03, "energy_j": 1e-4, "energy_kind": "modelled", "timesteps": 1}
    points = [dict(point, weights=w) for w in (FOR_T1, "missing", "corrupt", "five_classes")]
    points.append({"timesteps": 4, "accuracy": 0.9, "latency_ms": 0.1, "energy_j": 4e-4, "energy_kind": "modelled"})
    (model_dir / "operating_points.json").write_text(json.dumps({"cpu": {"target": "ideal", "points": points}}))

    core = AgentCore(BackendChoice(str(model_dir)), GovernorSettings(policy="fixed", timesteps=1))
    assert [p.weights for p in core.governor.points] == [FOR_T1, ""]
    assert len(core.points_left_out) == 3
    assert all(w in " ".join(core.points_left_out) for w in ("missing", "corrupt", "five_classes"))

    x = test_images[0][:5]
    reference = SNNEngine(SNNModel.load(os.path.join(BUNDLED_SNN, FOR_T1))).run(x, 1).scores
    for frame, expected in zip(x, reference):
        result = core.classify(frame[None])
        assert result.timesteps == 1 and result.decision.point.weights == FOR_T1
        np.testing.assert_allclose(result.scores, expected, rtol=1e-4, atol=1e-4)
    core.close()


def test_a_backend_with_one_weight_set_refuses_another():
    from snn_agent.backends.openvino import OpenVinoBackend

    backend = OpenVinoBackend(device="CPU")
    backend.load(BUNDLED_SNN)
    try:
        with pytest.raises(BackendError, match="own weights only"):
            backend.load_weights(FOR_T1)
        frame = np.zeros((1, 1, 28, 28), np.float32)
        with pytest.raises(BackendError, match="own weights only"):
            backend.infer(frame, 0, None, FOR_T1)
        assert backend.infer(frame).scores.shape == (1, 10)
    finally:
        backend.close()
