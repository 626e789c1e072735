"""A backend that dies or hangs under the running node: a real Lava runtime process killed (SIGKILL)
or frozen (SIGSTOP) from outside, while frames keep coming over DDS."""
import multiprocessing
import os
import signal
import threading
import time

from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter

from test_agent_lifecycle import Spinning
from test_agent_node import Probe, model_dir, samples  # noqa: F401 - fixtures
from snn_agent.ros.agent_node import AgentNode


def lava_processes(agent):
    return agent.core.backend._network._actors()


def feed(probe, image, stop: threading.Event):
    while not stop.is_set():
        probe.send_raw(image)
        time.sleep(0.05)


def test_lava_runtime_killed_or_frozen_falls_back_to_the_cpu(rclpy_context, model_dir, samples):
    agent = AgentNode(parameter_overrides=[Parameter("model", value=model_dir), Parameter("backend", value="lava"),
                                           Parameter("timesteps", value=4), Parameter("diagnostics_period_s", value=0.2)])
    probe = Probe()
    graph = Spinning(agent, probe)
    image = samples[0][0]
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(probe, image, stop), daemon=True)
    try:
        assert agent.state == "active" and agent.core.backend.name == "lava"
        assert probe.wait(lambda: probe.count_subscribers("image") > 0)
        time.sleep(0.3)
        label = probe.classify(image, timeout=60)
        # only now: a cold Lava's first frame (its processes compiling) may take longer than the stall limit
        assert agent.set_parameters([Parameter("stall_timeout_s", value=3.0)])[0].successful
        feeder.start()

        # killed: the watchdog sees the dead process at once, the CPU engine takes over
        os.kill(lava_processes(agent)[-1].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert probe.wait(lambda: agent.core.backend.name == "cpu", timeout=10)
        assert time.monotonic() - killed_at <= 2.0
        assert "restart" not in agent.core.fallback_reason  # replaced once, not again on the same failure
        values = probe.diagnostics(lambda v: v["backend"] == "cpu" and "fallback" in v)
        assert values["_level"] == DiagnosticStatus.ERROR and "Lava runtime process" in values["_message"]
        assert "exit code -9" in values["fallback"]
        n = len(probe.got["label"])
        assert probe.wait(lambda: len(probe.got["label"]) > n + 5) and probe.got["label"][-1] == label

        # frozen: no process has died, but no frame finishes within stall_timeout_s
        assert agent.set_parameters([Parameter("backend", value="lava")])[0].successful
        assert probe.wait(lambda: agent.core.backend.name == "lava", timeout=90)
        n = len(probe.got["label"])
        assert probe.wait(lambda: len(probe.got["label"]) > n + 2, timeout=30)
        frozen = lava_processes(agent)[-1].pid
        os.kill(frozen, signal.SIGSTOP)
        frozen_at = time.monotonic()
        assert probe.wait(lambda: agent.core.backend.name == "cpu", timeout=15)
        assert time.monotonic() - frozen_at <= 3.0 + 2.0
        values = probe.diagnostics(lambda v: v["backend"] == "cpu" and "has not finished a frame" in v.get("fallback", ""))
        assert int(values["abandoned_workers"]) >= 1
        n = len(probe.got["label"])
        assert probe.wait(lambda: len(probe.got["label"]) > n + 5)
        assert float(probe.diagnostics(lambda v: float(v["last_frame_age_s"]) < 0.5)["last_frame_age_s"]) >= 0
        assert not multiprocessing.active_children()  # every Lava process ended, the frozen one too
    finally:
        stop.set()
        graph.close()


def test_backend_failing_mid_run_is_replaced_by_the_cpu_engine(rclpy_context, model_dir, samples):
    """The real OpenVINO backend, whose device goes away after two frames (a stick pulled out): the
    frame that failed is classified by the CPU engine, and /diagnostics says why."""
    from snn_agent.backends import BackendError, create_backend
    from snn_agent.backends.openvino import OpenVinoBackend

    class UnpluggedAfterTwoFrames(OpenVinoBackend):
        frames = 0

        def infer(self, *args, **kwargs):
            self.frames += 1
            if self.frames > 2:
                raise BackendError("device MYRIAD.1 disconnected")
            return super().infer(*args, **kwargs)

    def factory(name, **options):
        return UnpluggedAfterTwoFrames(**options) if name == "openvino" else create_backend(name, **options)

    agent = AgentNode(factory, parameter_overrides=[Parameter("model", value=model_dir),
                                                    Parameter("backend", value="openvino"),
                                                    Parameter("diagnostics_period_s", value=0.2)])
    probe = Probe()
    graph = Spinning(agent, probe)
    try:
        assert agent.core.backend.name == "openvino"
        assert probe.wait(lambda: probe.count_subscribers("image") > 0 and agent.count_subscribers("agent/label") > 0)
        time.sleep(0.3)
        labels = [probe.classify(samples[0][i]) for i in range(4)]  # the 3rd fails on OpenVINO
        assert agent.core.backend.name == "cpu" and len(labels) == 4
        values = probe.diagnostics(lambda v: "fallback" in v)
        assert "failed while running (device MYRIAD.1 disconnected)" in values["fallback"]
        assert values["_level"] == DiagnosticStatus.ERROR and "bad_input_inference" not in values
    finally:
        graph.close()
