"""The agent as a managed node, on the node's clock, under concurrent load: driven over real DDS
through the standard lifecycle services, with a published /clock, and with a flood of frames."""
import threading
import time

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image

from test_agent_node import Probe, model_dir, samples  # noqa: F401 - fixtures
from snn_agent.ros.agent_node import AgentNode
from snn_agent.ros.battery_sim_node import BatterySimNode
from snn_agent.ros.camera_replay_node import CameraReplayNode


class Spinning:
    """Nodes spun by one executor in a background thread, torn down in reverse."""

    def __init__(self, *nodes):
        self.nodes = nodes
        self.executor = SingleThreadedExecutor()
        for node in nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self):
        self.executor.shutdown(timeout_sec=5)
        self.thread.join(timeout=5)
        for node in reversed(self.nodes):
            node.destroy_node()


def call(probe, client, request, timeout=30.0):
    assert client.wait_for_service(timeout_sec=5.0), client.srv_name
    future = client.call_async(request)
    assert probe.wait(future.done, timeout), f"{client.srv_name}: no answer"
    return future.result()


def transition(probe, client, transition_id) -> bool:
    return call(probe, client, ChangeState.Request(transition=Transition(id=transition_id))).success


def test_lifecycle_driven_over_the_standard_services(rclpy_context, model_dir, samples, tmp_path):
    agent = AgentNode(parameter_overrides=[Parameter("model", value=model_dir), Parameter("autostart", value=False),
                                           Parameter("diagnostics_period_s", value=0.2)])
    probe = Probe()
    change = probe.create_client(ChangeState, "agent/change_state")
    get = probe.create_client(GetState, "agent/get_state")
    graph = Spinning(agent, probe)

    def state():
        return call(probe, get, GetState.Request()).current_state.label

    def no_label_for(seconds, image):
        before = len(probe.got["label"])
        probe.send_raw(image)
        time.sleep(seconds)
        return len(probe.got["label"]) == before

    image = samples[0][0]
    try:
        assert probe.wait(lambda: probe.count_subscribers("image") > 0)
        assert state() == "unconfigured" and agent.core is None
        assert no_label_for(0.5, image)
        assert transition(probe, change, Transition.TRANSITION_CONFIGURE) and state() == "inactive"
        assert agent.core is not None and agent.core.ready
        assert probe.wait(lambda: probe.count_publishers("agent/label") > 0)
        time.sleep(0.3)
        assert no_label_for(0.5, image)  # inactive: loaded, not classifying
        assert transition(probe, change, Transition.TRANSITION_ACTIVATE) and state() == "active"
        label = probe.classify(image)
        assert transition(probe, change, Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
        assert no_label_for(0.5, image)
        assert transition(probe, change, Transition.TRANSITION_ACTIVATE)
        assert probe.classify(image) == label
        assert transition(probe, change, Transition.TRANSITION_DEACTIVATE)
        worker = agent._worker
        assert transition(probe, change, Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
        assert agent.core is None and not worker.is_alive()

        # configure with a model that cannot load: FAILURE, the reason logged and on /diagnostics
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "snn.json").write_text('{"format_version": 1}')
        (broken / "weights.npz").write_bytes(b"junk")
        assert agent.set_parameters([Parameter("model", value=str(broken))])[0].successful
        assert not transition(probe, change, Transition.TRANSITION_CONFIGURE)
        assert state() == "unconfigured"
        values = probe.diagnostics(lambda v: "configure_error" in v)
        assert str(broken) in values["configure_error"] and values["_level"] == DiagnosticStatus.ERROR

        assert agent.set_parameters([Parameter("model", value=model_dir)])[0].successful
        assert transition(probe, change, Transition.TRANSITION_CONFIGURE)
        assert transition(probe, change, Transition.TRANSITION_INACTIVE_SHUTDOWN) and state() == "finalized"
        assert agent.core is None
    finally:
        graph.close()


def test_governor_and_nodes_follow_a_simulated_clock_at_10x(rclpy_context, model_dir):
    """/clock runs 10x real time: battery_sim drains 5 W of simulated time, and the agent's drain
    estimate (on its own clock) must read 5 W, not the 50 W a wall clock would see; camera_replay
    publishes at its rate of simulated time, stamped with it."""
    sim = [Parameter("use_sim_time", value=True)]
    agent = AgentNode(parameter_overrides=sim + [Parameter("model", value=model_dir),
                                                 Parameter("policy", value="battery"),
                                                 Parameter("diagnostics_period_s", value=0.2)])
    battery = BatterySimNode(parameter_overrides=sim + [Parameter("base_load_w", value=5.0),
                                                        Parameter("rate_hz", value=2.0)])
    replay = CameraReplayNode(parameter_overrides=sim + [Parameter("dataset", value="digits"),
                                                         Parameter("rate_hz", value=10.0)])
    probe = Probe()
    clock_pub = probe.create_publisher(Clock, "/clock", 10)
    stamps = []
    probe.create_subscription(Image, "image", lambda m: stamps.append(m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec),
                              qos_profile_sensor_data)
    graph = Spinning(agent, battery, replay, probe)
    sim_ns = [10**9]  # simulated time starts at 1 s
    running = threading.Event()
    running.set()

    def tick():  # 100 ms of simulated time every 10 ms
        while running.is_set():
            sim_ns[0] += 10**8
            clock_pub.publish(Clock(clock=Time(sec=sim_ns[0] // 10**9, nanosec=sim_ns[0] % 10**9)))
            time.sleep(0.01)
    ticker = threading.Thread(target=tick, daemon=True)
    try:
        assert probe.wait(lambda: probe.count_subscribers("/clock") >= 3)
        ticker.start()
        wall_start, sim_start = time.monotonic(), sim_ns[0] * 1e-9
        values = probe.diagnostics(lambda v: v["battery_other_power_w"] != "", timeout=20)
        time.sleep(1.0)  # a few more seconds of simulated drain in the window
        values = probe.diagnostics(lambda v: v["battery_other_power_w"] != "")
        assert float(values["battery_other_power_w"]) == pytest.approx(5.0, rel=0.1), values
        wall, simulated = time.monotonic() - wall_start, sim_ns[0] * 1e-9 - sim_start
        assert simulated > 5 * wall  # the clock really ran fast (the machine may lag behind 10x)
        # 10 frames per simulated second: many more than 10 per wall second
        assert len(stamps) > 0.5 * 10 * simulated and len(stamps) > 3 * 10 * wall
        assert stamps[-1] == pytest.approx(sim_ns[0] * 1e-9, abs=2.0)  # stamped with simulated time
        assert agent.now_s() == pytest.approx(sim_ns[0] * 1e-9, abs=2.0)
    finally:
        running.clear()
        ticker.join(timeout=2)
        graph.close()


def test_flood_with_concurrent_diagnostics_and_parameter_changes(rclpy_context, model_dir, samples):
    """Frames as fast as one publisher sends them, /diagnostics every 10 ms and governor settings
    changed all the while: nothing escapes a callback (no bad_input_internal), the newest frame is
    classified, oversized images are refused before they are decoded."""
    agent = AgentNode(parameter_overrides=[Parameter("model", value=model_dir),
                                           Parameter("diagnostics_period_s", value=0.1),
                                           Parameter("max_image_pixels", value=64 * 64)])
    probe = Probe()
    graph = Spinning(agent, probe)
    images = samples[0]
    try:
        assert probe.wait(lambda: agent.count_subscribers("agent/label") > 0 and probe.count_subscribers("image") > 0
                          and probe.count_subscribers("image/compressed") > 0)
        time.sleep(0.3)
        stop = time.monotonic() + 3.0
        sent = 0
        while time.monotonic() < stop:
            probe.send_raw(images[sent % len(images)])
            sent += 1
            if sent % 50 == 0:
                agent.set_parameters([Parameter("hysteresis", value=0.05 + 0.01 * (sent // 50 % 5)),
                                      Parameter("mission_time_s", value=100.0 + sent)])
        big = np.zeros((65, 64), np.uint8)
        probe.send_raw(big)  # one pixel row over the limit
        ok, png = cv2.imencode(".png", np.zeros((4000, 4000), np.uint8))  # tiny file, 16 MP declared
        probe.compressed.publish(CompressedImage(format="png", data=png.tobytes()))
        time.sleep(0.1)
        last = probe.classify(images[0])
        values = probe.diagnostics(lambda v: int(v.get("bad_input_too_large", 0)) >= 2)
        assert last and int(values["frames"]) > 10 and "bad_input_internal" not in values, values
        assert int(values["frames"]) + int(values["dropped"]) <= sent + 1
    finally:
        graph.close()


def test_battery_scale_is_decided_once_per_publisher_and_any_reliability_connects(rclpy_context, model_dir):
    """A Gazebo battery (0..100) at 0.5 % must read as nearly flat, not as half full; a ROS battery
    publishing best effort connects too; an image subscription's reliability can be overridden."""
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import BatteryState

    agent = AgentNode(parameter_overrides=[
        Parameter("model", value=model_dir), Parameter("diagnostics_period_s", value=0.1),
        Parameter("qos_overrides./image.subscription.reliability", value="reliable")])
    probe = Probe()
    gazebo = probe.create_publisher(BatteryState, "battery_state", 10)  # reliable, as ros_gz_bridge
    best_effort = probe.create_publisher(BatteryState, "battery_state",
                                         QoSProfile(depth=10, reliability=QoSReliabilityPolicy.BEST_EFFORT))
    graph = Spinning(agent, probe)
    nan = float("nan")

    def fraction_after(publisher, **fields):
        message = BatteryState(voltage=12.0, capacity=2.0, design_capacity=nan, charge=nan, **fields)
        for _ in range(3):  # best effort may lose one
            publisher.publish(message)
            time.sleep(0.05)
        expected = fields["percentage"] / (100 if publisher is gazebo else 1)
        return float(probe.diagnostics(lambda v: v["battery_fraction"] != "" and
                                       abs(float(v["battery_fraction"]) - expected) < 1e-4)["battery_fraction"])

    try:
        assert probe.wait(lambda: probe.count_subscribers("battery_state") > 0)
        time.sleep(0.5)
        assert fraction_after(gazebo, percentage=80.0) == pytest.approx(0.8)  # > 1: percent, decided
        assert fraction_after(gazebo, percentage=0.5) == pytest.approx(0.005)  # and it stays percent
        assert fraction_after(best_effort, percentage=0.5) == pytest.approx(0.5)  # another publisher, ROS scale
        info = probe.get_subscriptions_info_by_topic("/image")
        assert [i.qos_profile.reliability for i in info] == [QoSReliabilityPolicy.RELIABLE]
        # the override changed that topic only, not the profile the others are given
        info = probe.get_subscriptions_info_by_topic("/image/compressed")
        assert [i.qos_profile.reliability for i in info] == [QoSReliabilityPolicy.BEST_EFFORT]
        assert agent.get_parameter("qos_overrides./battery_state.subscription.reliability").value == "best_effort"
    finally:
        graph.close()


def test_library_log_follows_the_node_log_level(rclpy_context, model_dir):
    import logging

    from rcl_interfaces.msg import Log
    from rclpy.logging import LoggingSeverity

    # a name of its own: rcl shares one /rosout publisher among nodes of one name, and drops it with the first
    agent = AgentNode(parameter_overrides=[Parameter("model", value=model_dir), Parameter("autostart", value=False)],
                      cli_args=["--ros-args", "-r", "__node:=agent_log_level"])
    probe = Probe()
    logged = []
    probe.create_subscription(Log, "/rosout", lambda m: logged.append(m.msg) if m.name == "agent_log_level" else None,
                              100)
    graph = Spinning(agent, probe)
    library = logging.getLogger("snn_agent")
    try:
        assert probe.wait(lambda: probe.count_publishers("/rosout") >= 1)
        time.sleep(0.3)
        library.debug("hidden at info")
        agent.get_logger().set_level(LoggingSeverity.DEBUG)
        library.debug("shown at debug")
        assert probe.wait(lambda: "shown at debug" in logged)
        assert "hidden at info" not in logged and not library.propagate
    finally:
        agent.get_logger().set_level(LoggingSeverity.INFO)
        graph.close()
    assert library.propagate
