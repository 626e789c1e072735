"""The agent node end to end over real DDS: frames in, results and diagnostics out, bad input,
the governor's reactions, backend switching."""
import contextlib
import json
import math
import shutil
import threading
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import BatteryState, CompressedImage, Image
from std_msgs.msg import Float32, Float32MultiArray, Int32, String, UInt16

from conftest import BUNDLED_SNN
from snn_agent.adaptation.operating_points import PointTable
from snn_agent.backends import create_backend
from snn_agent.data import datasets
from snn_agent.ros.agent_node import INLINE_MAX_S, AgentNode
from snn_agent.ros.label_pairing import LabelPairing
from snn_agent.sensing.images import to_network_input

# Operating points with round numbers, so each budget has one right answer.
POINTS = [{"timesteps": t, "accuracy": a, "latency_ms": 0.1 * t, "energy_j": e, "energy_kind": "modelled"}
          for t, a, e in ((2, 0.85, 1e-3), (4, 0.89, 2e-3), (8, 0.91, 4e-3), (16, 0.92, 8e-3))]


class Probe(Node):
    """Talks to the agent like the rest of a robot would."""

    def __init__(self):
        super().__init__("probe")
        self.image = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.compressed = self.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
        self.truth = self.create_publisher(Int32, "ground_truth", 10)
        self.battery = self.create_publisher(BatteryState, "battery_state", 10)
        self.budget = self.create_publisher(Float32, "agent/energy_budget", 10)
        self.got = {"label": [], "class_id": [], "scores": [], "timesteps": [], "energy": [], "diag": []}
        for topic, msg_type in (("label", String), ("class_id", Int32), ("scores", Float32MultiArray),
                                ("timesteps", UInt16), ("energy", Float32)):
            self.create_subscription(msg_type, f"agent/{topic}", lambda m, t=topic: self.got[t].append(m.data), 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.got["diag"].append(m), 10)

    def wait(self, predicate, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    def of_last_frame(self, topic: str, timeout=5.0):
        """The last frame's message on `topic`: every frame publishes its label first and then one
        message on each of the other topics, which may arrive after the label."""
        assert self.wait(lambda: len(self.got[topic]) >= len(self.got["label"]), timeout), \
            f"{len(self.got[topic])} {topic} messages for {len(self.got['label'])} labels"
        return self.got[topic][-1]

    def send_raw(self, image: np.ndarray, encoding="mono8"):
        h, w = image.shape[:2]
        msg = Image(height=h, width=w, encoding=encoding, step=image.strides[0], data=image.tobytes())
        msg.header.stamp = self.get_clock().now().to_msg()
        self.image.publish(msg)

    def classify(self, image: np.ndarray, encoding="mono8", timeout=10.0):
        """Send one frame and wait for its label."""
        before = len(self.got["label"])
        self.send_raw(image, encoding)
        assert self.wait(lambda: len(self.got["label"]) > before, timeout), "no label came back"
        return self.got["label"][-1]

    def diagnostics(self, predicate=lambda values: True, timeout=5.0):
        """The newest diagnostics values (dict) that satisfy predicate, waiting for them."""
        found = {}

        def check():
            for msg in reversed(self.got["diag"]):
                status = msg.status[0]
                values = {kv.key: kv.value for kv in status.values}
                values["_level"], values["_message"] = status.level, status.message
                if predicate(values):
                    found.update(values)
                    return True
            return False
        assert self.wait(check, timeout), f"no diagnostics matched; last: {self.got['diag'][-1:]}"
        return found


@pytest.fixture
def model_dir(tmp_path):
    path = tmp_path / "model"
    shutil.copytree(BUNDLED_SNN, path, ignore=shutil.ignore_patterns("operating_points.json", "*.png"))
    (path / "operating_points.json").write_text(json.dumps({"cpu": {"target": "ideal", "points": POINTS}}))
    return str(path)


@pytest.fixture
def graph(rclpy_context, model_dir):
    with spinning(AgentNode(parameter_overrides=[Parameter("model", value=model_dir),
                                                 Parameter("diagnostics_period_s", value=0.2)])) as pair:
        yield pair


@contextlib.contextmanager
def spinning(agent):
    """(agent, probe) spinning on one executor, discovered both ways."""
    probe = Probe()
    executor = SingleThreadedExecutor()
    executor.add_node(agent)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    assert probe.wait(lambda: agent.count_subscribers("agent/label") > 0 and probe.count_subscribers("image") > 0)
    time.sleep(0.3)  # discovery of the other direction
    try:
        yield agent, probe
    finally:
        executor.shutdown(timeout_sec=2)
        spinner.join(timeout=2)
        agent.destroy_node()
        probe.destroy_node()


@pytest.fixture(scope="module")
def samples():
    """Test images the DNN classifies correctly, with their labels."""
    test = datasets.load(datasets.default_dataset_name(), "test").subset(20)
    return test.images[:, :, :, 0], test.labels, test.class_names


def test_classifies_raw_and_compressed_frames(graph, samples, model_dir):
    agent, probe = graph
    images, labels, names = samples
    results = [probe.classify(images[i]) for i in range(8)]
    if datasets.fashion_mnist_available():
        assert sum(r == names[l] for r, l in zip(results, labels[:8])) >= 6
    # on any data set (the digits fallback too): each frame's result is what the CPU backend
    # computes for that image at the node's operating point
    assert probe.wait(lambda: len(probe.got["scores"]) >= 8)
    offline = create_backend("cpu")
    offline.load(model_dir)
    point = next(p for p in PointTable.load(model_dir, "cpu").points if p.timesteps == 16)
    for i, (label, scores) in enumerate(zip(results, probe.got["scores"][:8])):
        x = to_network_input(images[i][..., None], "rgb", offline.model.network.preprocessing)
        expected = offline.infer(x, 16, point.neuron(offline.model.neuron.reset)).scores[0]
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        assert label == offline.model.class_names[int(np.argmax(expected))]
    offline.close()
    rgb = cv2.cvtColor(images[0], cv2.COLOR_GRAY2RGB)
    assert probe.classify(np.ascontiguousarray(rgb), "rgb8") == results[0]
    for ext, fmt in ((".png", "png"), (".jpg", "jpeg")):
        before = len(probe.got["label"])
        ok, data = cv2.imencode(ext, images[0])
        probe.compressed.publish(CompressedImage(format=fmt, data=data.tobytes()))
        assert probe.wait(lambda: len(probe.got["label"]) > before)
        assert probe.got["label"][-1] == results[0]
    assert len(probe.of_last_frame("scores")) == 10
    assert probe.of_last_frame("timesteps") == 16  # no budget yet: the most accurate point
    assert probe.of_last_frame("energy") > 0
    values = probe.diagnostics(lambda v: int(v["frames"]) >= 11)
    assert values["backend"] == "cpu" and values["energy_kind"] in ("modelled", "measured")
    assert float(values["backend_latency_ms_p50"]) > 0 and values["_level"] == DiagnosticStatus.OK
    # the node's own time (message received to results published) includes the backend's
    assert float(values["node_latency_ms_p50"]) > float(values["backend_latency_ms_p50"])


def test_label_pairing_survives_lost_images_and_early_labels():
    pairing = LabelPairing()
    a = pairing.image(100)
    assert pairing.label(105, 3) is None  # image first, then its label: paired, not yet classified
    assert pairing.prediction(a, 3) == (3, 3)
    assert pairing.label(205, 4) is None  # its image (stamped 200) was lost: the label waits...
    b = pairing.image(300)  # ...and is not given to the next image, stamped after it arrived
    assert pairing.unpaired == 1
    assert pairing.prediction(b, 5) is None
    assert pairing.label(305, 5) == (5, 5)  # b's own label: still in step
    assert pairing.label(399, 6) is None  # a label ahead of its image (other process, other QoS)
    c = pairing.image(395)
    assert pairing.prediction(c, 1) == (1, 6)
    d = pairing.image(500)
    assert pairing.prediction(d, 2) is None  # a frame without a label counts for nothing
    e = pairing.image(600)
    assert pairing.label(605, 7) is None and pairing.prediction(e, 7) == (7, 7)
    assert pairing.unpaired == 1


def test_ground_truth_gives_running_accuracy_despite_lost_and_bad_frames(graph, samples):
    agent, probe = graph
    images, labels, names = samples
    predicted = []
    for i in range(6):
        predicted.append(probe.classify(images[i]))  # as camera_replay: the image, then its label
        probe.truth.publish(Int32(data=int(labels[i])))
        time.sleep(0.05)
        if i == 2:
            probe.truth.publish(Int32(data=int(labels[9])))  # its image was lost on the way
            time.sleep(0.05)
        if i == 4:
            probe.image.publish(Image(height=28, width=28, encoding="mono8", step=28, data=bytes(10)))
            probe.truth.publish(Int32(data=int(labels[10])))  # the label of a frame that cannot count
            time.sleep(0.05)
    expected = np.mean([p == names[l] for p, l in zip(predicted, labels[:6])])
    values = probe.diagnostics(lambda v: v["accuracy"] != "" and int(v["frames"]) >= 6 and
                               int(v["labels_unpaired"]) >= 1)
    assert float(values["accuracy"]) == pytest.approx(expected, abs=1e-4)
    assert agent.stats.labelled == 6 and values["labels_unpaired"] == "1"
    if datasets.fashion_mnist_available():
        assert expected >= 0.6


def test_bad_input_is_counted_and_next_frame_processed(graph, samples):
    agent, probe = graph
    images = samples[0]
    good = images[0]
    ok, png = cv2.imencode(".png", good)
    broken = {
        "encoding": [Image(height=28, width=28, encoding="yuv422", step=56, data=bytes(28 * 56))],
        "size": [Image(height=28, width=28, encoding="mono8", step=20, data=bytes(28 * 28)),  # step < row
                 Image(height=28, width=0, encoding="mono8", step=28, data=bytes(28 * 28)),  # no pixels
                 Image(height=28, width=28, encoding="rgb8", step=28, data=bytes(28 * 28))],  # mono-sized rgb
        "truncated": [Image(height=28, width=28, encoding="mono8", step=28, data=bytes(100))],
        "empty": [Image(height=28, width=28, encoding="mono8", step=28, data=b""),
                  CompressedImage(format="png", data=b"")],
        "compressed": [CompressedImage(format="jpeg", data=b"\xff\xd8 corrupt"),
                       CompressedImage(format="png", data=png.tobytes()[:60])],  # cut short
    }
    for kind, messages in broken.items():
        for msg in messages:
            (probe.image if isinstance(msg, Image) else probe.compressed).publish(msg)
            time.sleep(0.02)  # sensor-data QoS keeps 5: do not overrun the queue
        assert probe.classify(good), kind  # the node is up and classifies the next good frame
    # a status published after the last good frame (one from before it may show every bad input)
    values = probe.diagnostics(lambda v: int(v["frames"]) >= len(broken) and int(v["bad_input"]) >= 9)
    for kind, messages in broken.items():
        assert int(values[f"bad_input_{kind}"]) == len(messages), kind
    assert values["_level"] == DiagnosticStatus.WARN and int(values["frames"]) == len(broken)


def test_malformed_frame_does_not_displace_the_valid_frame_held_for_the_worker(rclpy_context, model_dir, samples):
    """While the backend works on one frame, a valid frame waits; malformed ones arriving after it
    are refused in the callback (and counted) instead of taking its place."""
    in_backend, release = threading.Event(), threading.Event()

    def gated_backend(name, **options):  # the real CPU engine, held at its first frame until released
        backend = create_backend(name, **options)
        infer = backend.infer

        def gated(*args, **kwargs):
            in_backend.set()
            release.wait(10)
            return infer(*args, **kwargs)
        backend.infer = gated
        return backend

    agent = AgentNode(gated_backend, parameter_overrides=[Parameter("model", value=model_dir),
                                                          Parameter("diagnostics_period_s", value=0.2)])
    with spinning(agent) as (agent, probe):
        images = samples[0]
        probe.send_raw(images[0])
        assert in_backend.wait(10)
        probe.send_raw(images[1])  # valid: held for the worker
        time.sleep(0.1)
        probe.image.publish(Image(height=28, width=28, encoding="mono8", step=28, data=bytes(100)))
        probe.compressed.publish(CompressedImage(format="jpeg", data=b"not an image at all"))
        assert probe.wait(lambda: sum(agent.stats.bad_input.values()) == 2)
        release.set()
        assert probe.wait(lambda: len(probe.got["label"]) == 2), "the valid frame held was lost"
        values = probe.diagnostics(lambda v: v["frames"] == "2")
        assert values["bad_input_truncated"] == "1" and values["bad_input_compressed"] == "1"
        assert values["dropped"] == "0"


def test_fast_cpu_frames_are_classified_in_the_callback_and_slow_ones_by_the_worker(rclpy_context, model_dir,
                                                                                  samples):
    """After a fast CPU-engine frame the next one is classified in the image callback (no hand-over
    to the worker); after a slow one (over INLINE_MAX_S) frames go to the worker again, so that the
    executor (services, /diagnostics, the watchdog) never waits on a slow backend."""
    threads, delay_s = [], [0.0]

    def recording_backend(name, **options):  # the real CPU engine, slowed down on demand
        backend = create_backend(name, **options)
        infer = backend.infer

        def recorded(*args, **kwargs):
            threads.append(threading.current_thread().name)
            time.sleep(delay_s[0])
            return infer(*args, **kwargs)
        backend.infer = recorded
        return backend

    agent = AgentNode(recording_backend, parameter_overrides=[Parameter("model", value=model_dir)])
    with spinning(agent) as (agent, probe):
        images, worker = samples[0], "snn_agent_inference"
        for image in images[:4]:
            assert probe.classify(image)
        assert threads[0] == worker and any(name != worker for name in threads[1:])  # the first shows it is fast
        delay_s[0] = 2 * INLINE_MAX_S
        for image in images[4:7]:
            assert probe.classify(image)
        assert threads[5:] == [worker, worker]  # the frame after a slow one goes to the worker


def test_an_exception_in_a_callback_is_counted_and_the_node_spins_on(rclpy_context, model_dir, samples):
    class Fragile(AgentNode):
        def _percentage_scale(self, msg, info):
            raise RuntimeError("a bug in the battery callback")

    agent = Fragile(parameter_overrides=[Parameter("model", value=model_dir),
                                         Parameter("diagnostics_period_s", value=0.2)])
    with spinning(agent) as (agent, probe):
        for n in (1, 2):  # the second one shows the executor still runs callbacks
            probe.battery.publish(BatteryState(percentage=0.5))
            values = probe.diagnostics(lambda v, n=n: v.get("bad_input_internal") == str(n))
            assert values["_level"] == DiagnosticStatus.WARN
        assert probe.classify(samples[0][0])


def test_budget_changes_timesteps_within_one_frame(graph, samples):
    agent, probe = graph
    image = samples[0][0]
    probe.classify(image)
    assert probe.of_last_frame("timesteps") == 16
    probe.budget.publish(Float32(data=2.5e-3))
    time.sleep(0.2)
    probe.classify(image)
    assert probe.of_last_frame("timesteps") == 4
    probe.budget.publish(Float32(data=1e-9))  # nothing fits: cheapest, and a warning
    time.sleep(0.2)
    probe.classify(image)
    assert probe.of_last_frame("timesteps") == 2
    values = probe.diagnostics(lambda v: v["timesteps"] == "2")
    assert values["_level"] == DiagnosticStatus.WARN and "below every point" in values["_message"]
    for bad in (float("nan"), float("inf"), -1.0):
        probe.budget.publish(Float32(data=bad))
    time.sleep(0.2)
    probe.classify(image)
    assert probe.of_last_frame("timesteps") == 2  # previous budget kept
    assert int(probe.diagnostics(lambda v: int(v.get("bad_input_budget", 0)) >= 3)["bad_input_budget"]) == 3


def test_draining_battery_lowers_timesteps_monotonically_gazebo_percent(graph, samples):
    agent, probe = graph
    image = samples[0][0]
    result = agent.set_parameters([Parameter("policy", value="battery"), Parameter("mission_time_s", value=100.0),
                                   Parameter("battery_reserve", value=0.1)])
    assert all(r.successful for r in result)
    seen = []
    charge = 90.0  # Gazebo style: 0..100
    for _ in range(16):
        probe.battery.publish(BatteryState(percentage=charge, voltage=1.0, capacity=1.0, charge=math.nan,
                                           design_capacity=math.nan))
        charge -= 1.0  # 36 J per 0.3 s: a drain no mission of 100 s can afford
        time.sleep(0.3)
        probe.classify(image)
        seen.append(probe.of_last_frame("timesteps"))
    assert seen[0] == 16 and seen[-1] == 2, seen
    assert all(b <= a for a, b in zip(seen, seen[1:])), seen
    values = probe.diagnostics(lambda v: v["policy"] == "battery")
    assert int(values.get("bad_input_battery", 0)) == 0  # 0..100 was read as a percentage


def test_parameter_validation_and_backend_fallback(graph, samples):
    agent, probe = graph
    image = samples[0][0]
    for name, value in (("backend", "bogus"), ("model", "/nonexistent/model"), ("policy", "sometimes"),
                        ("battery_reserve", 2.0), ("timesteps", 0), ("timesteps", 2000),
                        ("diagnostics_period_s", 5.0)):
        result = agent.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful, (name, value)
    assert agent.get_parameter("backend").value == "cpu" and agent.get_parameter("timesteps").value == 16
    assert agent.set_parameters([Parameter("timesteps", value=8)])[0].successful
    values = probe.diagnostics(lambda v: "bad_input_model" in v)
    assert values["bad_input_model"] == "1" and values["bad_input_parameter"] == "2"  # range checks: rclpy's
    # backend and device are judged together: LOIHI2 is a lava device, not an openvino one
    for device in ("LOIHI2", "TPU"):
        assert not agent.set_parameters_atomically([Parameter("backend", value="openvino"),
                                                    Parameter("device", value=device)]).successful
    # openvino on a device this machine does not have, without fallback allowed at device level:
    # the node falls back to the CPU engine or runs OpenVINO's CPU, and says which on /diagnostics
    result = agent.set_parameters([Parameter("backend", value="openvino"), Parameter("device", value="MYRIAD")])
    assert all(r.successful for r in result)
    probe.classify(image, timeout=30)
    values = probe.diagnostics(lambda v: "fallback" in v)
    assert values["_level"] == DiagnosticStatus.ERROR
    assert "MYRIAD" in values["fallback"] or "openvino" in values["fallback"]
    assert probe.classify(image)  # still classifying


def test_corrupt_model_on_switch_keeps_previous_backend(graph, samples, tmp_path):
    agent, probe = graph
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "snn.json").write_text("{ not json")
    (broken / "weights.npz").write_bytes(b"junk")
    result = agent.set_parameters([Parameter("model", value=str(broken))])[0]  # known before loading
    assert not result.successful and "snn.json is not a model description" in result.reason
    (broken / "snn.json").write_text('{"format_version": 1}')  # passes the checks made before loading
    assert agent.set_parameters([Parameter("model", value=str(broken))])[0].successful
    probe.classify(samples[0][0])
    values = probe.diagnostics(lambda v: "model_error" in v)
    assert "corrupt" in values["model_error"] and str(broken) in values["model_error"]
    assert values["backend"] == "cpu" and values["_level"] == DiagnosticStatus.ERROR
    assert probe.classify(samples[0][0])


def test_budget_reaches_a_point_with_its_own_weights(graph, samples, tmp_path):
    """A point that brings its own weights (the bundled network trained for T = 1) is chosen like any
    other; one whose weights are missing is left out, and /diagnostics says so."""
    agent, probe = graph
    model = tmp_path / "with_t1"
    shutil.copytree(BUNDLED_SNN, model, ignore=shutil.ignore_patterns("operating_points.json", "*.png"))
    t1 = {"timesteps": 1, "accuracy": 0.88, "latency_ms": 0.05, "energy_j": 5e-4, "energy_kind": "modelled"}
    points = POINTS + [dict(t1, weights="for_t1"), dict(t1, weights="missing", energy_j=4e-4)]
    (model / "operating_points.json").write_text(json.dumps({"cpu": {"target": "ideal", "points": points}}))
    assert agent.set_parameters([Parameter("model", value=str(model))])[0].successful
    probe.budget.publish(Float32(data=6e-4))
    time.sleep(0.2)
    probe.classify(samples[0][0])
    assert probe.of_last_frame("timesteps") == 1
    values = probe.diagnostics(lambda v: v["timesteps"] == "1")
    assert "for_t1" in values["neuron_parameters"]
    assert "'missing'" in values["points_left_out"] and values["_level"] == DiagnosticStatus.WARN


def test_misconfigured_policy_fails_configure_with_the_reason(rclpy_context, model_dir):
    agent = AgentNode(parameter_overrides=[Parameter("model", value=model_dir), Parameter("policy", value="sometimes")])
    try:
        assert agent.state == "unconfigured" and agent.core is None
        assert "policy must be one of" in agent.configure_error
    finally:
        agent.destroy_node()


def test_node_without_model_stays_up_until_one_is_set(rclpy_context, model_dir, samples):
    agent = AgentNode(parameter_overrides=[Parameter("model", value="/nonexistent/model"),
                                           Parameter("diagnostics_period_s", value=0.2)])
    probe = Probe()
    executor = SingleThreadedExecutor()
    for node in (agent, probe):
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        assert probe.wait(lambda: probe.count_subscribers("image") > 0)
        time.sleep(0.3)
        probe.send_raw(samples[0][0])
        values = probe.diagnostics(lambda v: int(v["frames_not_active"]) >= 1)
        assert values["_level"] == DiagnosticStatus.ERROR and "not configured" in values["_message"]
        assert "/nonexistent/model" in values["configure_error"] and values["state"] == "unconfigured"
        # autostart: setting the parameter at fault configures and activates the node
        assert agent.set_parameters([Parameter("model", value=model_dir)])[0].successful
        assert agent.state == "active"
        time.sleep(0.5)  # discovery of the result publishers, created by configure
        assert probe.classify(samples[0][0])
    finally:
        executor.shutdown(timeout_sec=2)
        spinner.join(timeout=2)
        agent.destroy_node()
        probe.destroy_node()


def test_runtime_switch_through_every_backend(graph, samples):
    """backend set live: each one loads without dropping the node and classifies real messages."""
    agent, probe = graph
    images, labels, _ = samples
    for backend in ("openvino", "lava", "cpu"):
        assert agent.set_parameters([Parameter("backend", value=backend)])[0].successful
        label = probe.classify(images[0], timeout=60)
        assert label is not None
        values = probe.diagnostics(lambda v, b=backend: v.get("backend", "").startswith(b), timeout=10)
        assert "fallback" not in values, values.get("fallback")
        assert probe.of_last_frame("timesteps") == (0 if backend == "openvino" else 16)


def test_energy_constants_are_parameters_that_reach_the_backend(graph, samples):
    agent, probe = graph
    images = samples[0]
    for image in images[:3]:
        probe.classify(image)
    before = float(np.median(probe.got["energy"][-3:]))
    assert not agent.set_parameters([Parameter("energy.cpu.core_power_w", value=-1.0)])[0].successful
    assert agent.set_parameters([Parameter("energy.cpu.core_power_w", value=50.0)])[0].successful
    for image in images[3:8]:
        probe.classify(image)
    assert agent.core.backend.meter.constants.core_power_w == 50.0
    after = float(np.median(probe.got["energy"][-5:]))
    assert after > 3 * before, (before, after)  # 10x the power per core; CPU time itself is noisy


def test_lava_on_a_chip_this_machine_lacks_falls_back_with_the_reason(graph, samples):
    from snn_agent.backends.lava import loihi_hardware_available

    if loihi_hardware_available():
        pytest.skip("Intel's Lava-Loihi extension is installed here")
    agent, probe = graph
    result = agent.set_parameters([Parameter("backend", value="lava"), Parameter("device", value="LOIHI2")])
    assert all(r.successful for r in result)
    assert probe.classify(samples[0][0], timeout=30)
    values = probe.diagnostics(lambda v: "fallback" in v)
    assert "Lava-Loihi" in values["fallback"] and values["backend"] == "cpu"
    assert values["_level"] == DiagnosticStatus.ERROR
