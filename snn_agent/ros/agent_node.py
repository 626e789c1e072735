"""The `agent` node: camera frames in, class, scores, timesteps, energy and /diagnostics out.

Thin over snn_agent.agent_core: this file only moves messages and parameters. Frames are decoded in
the subscription callback (cheap) and classified in a worker thread, which always takes the newest
frame: when inference falls behind, older frames are dropped and counted, never queued.
"""
from __future__ import annotations

import math
import os
import threading
import time
from typing import Optional

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import BatteryState, CompressedImage, Image
from std_msgs.msg import Float32, Float32MultiArray, Int32, String, UInt16

from ..adaptation.battery_input import read_battery
from ..adaptation.governor import POLICIES, GovernorSettings
from ..agent_core import AgentCore, BackendChoice
from ..backends import BACKENDS
from ..graph import resolve_path
from ..ir import MODEL_JSON
from ..sensing.images import ImageDecodeError, decode_compressed, decode_raw, to_network_input
from .spin import spin_node

LOG_THROTTLE_S = 5.0
_LABELS_KEPT = 1000


def _float_range(lo, hi):
    return [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]


# name: (default, description, extra descriptor fields)
PARAMETERS = {
    "model": ("models/fashion_cnn_snn", "converted model directory (snn-agent convert -o DIR)", {}),
    "backend": ("cpu", f"inference backend: {' | '.join(BACKENDS)}", {}),
    "device": ("CPU", "OpenVINO device: CPU, GPU, NPU, MYRIAD (NCS2, OpenVINO 2022.3 LTS only), AUTO", {}),
    "allow_fallback": (True, "fall back to the CPU engine when a backend or device fails", {}),
    "policy": ("auto", f"timestep policy: {' | '.join(POLICIES)}", {}),
    "timesteps": (16, "T for the fixed policy and for models without operating points",
                  {"integer_range": [IntegerRange(from_value=1, to_value=1024, step=1)]}),
    "min_accuracy": (0.0, "operating points below this accuracy only when nothing else fits",
                     {"floating_point_range": _float_range(0, 1)}),
    "max_latency_ms": (0.0, "[ms] latency limit for operating points, 0 = none",
                       {"floating_point_range": _float_range(0, 1e6)}),
    "mission_time_s": (3600.0, "[s] how long the battery must last, from node start",
                       {"floating_point_range": _float_range(1, 1e7)}),
    "battery_reserve": (0.2, "charge fraction never to spend", {"floating_point_range": _float_range(0, 1)}),
    "battery_capacity_wh": (0.0, "[Wh] battery capacity when BatteryState has none, 0 = from the message",
                            {"floating_point_range": _float_range(0, 1e6)}),
    "hysteresis": (0.1, "relative budget margin before a costlier operating point",
                   {"floating_point_range": _float_range(0, 1)}),
    "diagnostics_period_s": (1.0, "[s] /diagnostics period (read at start)",
                             {"floating_point_range": _float_range(0.1, 60), "read_only": True}),
}
BACKEND_PARAMS = ("model", "backend", "device", "allow_fallback")
GOVERNOR_PARAMS = ("policy", "timesteps", "min_accuracy", "max_latency_ms", "mission_time_s",
                   "battery_reserve", "hysteresis")


class AgentNode(Node):
    def __init__(self, **kwargs):
        super().__init__("agent", **kwargs)
        for name, (default, description, extra) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, **extra))
        self.core = AgentCore(self._backend_choice(), self._governor_settings())
        self._start_time = time.monotonic()
        if self.core.ready:
            self.core.governor.start(self._start_time)
        self._last_decision = None
        self._battery_note_logged = False
        # Labels pair with frames by arrival order (the k-th image with the k-th label): the two
        # topics' callbacks may run in either order, so neither can wait for the other.
        self._images_received = 0
        self._labels: dict = {}  # arrival index -> label, bounded by _LABELS_KEPT
        self._labels_received = 0
        self._newest = None  # (network input, ground truth) of the newest frame not yet classified
        self._wake = threading.Condition()
        self._pending_reload: Optional[BackendChoice] = None
        self._running = True

        self.pub_label = self.create_publisher(String, "~/label", 10)
        self.pub_class = self.create_publisher(Int32, "~/class_id", 10)
        self.pub_scores = self.create_publisher(Float32MultiArray, "~/scores", 10)
        self.pub_timesteps = self.create_publisher(UInt16, "~/timesteps", 10)
        self.pub_energy = self.create_publisher(Float32, "~/energy", 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Image, "image", self._on_image, qos_profile_sensor_data)
        self.create_subscription(CompressedImage, "image/compressed", self._on_compressed, qos_profile_sensor_data)
        self.create_subscription(Int32, "ground_truth", self._on_ground_truth, 10)
        self.create_subscription(BatteryState, "battery_state", self._on_battery, 10)
        self.create_subscription(Float32, "~/energy_budget", self._on_budget, 10)
        self.add_on_set_parameters_callback(self._validate_parameters)
        if hasattr(self, "add_post_set_parameters_callback"):  # rclpy >= Iron: validate, then apply
            self.add_post_set_parameters_callback(self._apply_parameters)
        self.create_timer(self.get_parameter("diagnostics_period_s").value, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name="snn_agent_inference", daemon=True)
        self._worker.start()
        if self.core.ready:
            self.get_logger().info(f"classifying with backend {self.core.backend.describe()} on "
                                   f"{self.core.choice.model_dir}; policy {self.core.settings.policy}")
        else:
            self.get_logger().error(f"{self.core.fallback_reason}; set the `model` parameter to a converted model")

    # --- parameters ----------------------------------------------------------------------------
    def _backend_choice(self, overrides: Optional[dict] = None) -> BackendChoice:
        values = {name: self.get_parameter(name).value for name in BACKEND_PARAMS}
        values.update(overrides or {})
        return BackendChoice(resolve_path(values["model"]), values["backend"], values["device"],
                             values["allow_fallback"])

    def _governor_settings(self) -> GovernorSettings:
        p = {name: self.get_parameter(name).value for name in GOVERNOR_PARAMS}
        return GovernorSettings(policy=p["policy"], timesteps=p["timesteps"], min_accuracy=p["min_accuracy"],
                                max_latency_ms=p["max_latency_ms"] or math.inf, mission_time_s=p["mission_time_s"],
                                battery_reserve=p["battery_reserve"], hysteresis=p["hysteresis"])

    def _validate_parameters(self, params) -> SetParametersResult:
        for p in params:
            reason = None
            if p.name == "backend" and p.value not in BACKENDS:
                reason = f"backend must be one of {', '.join(BACKENDS)}, got {p.value!r}"
            elif p.name == "policy" and p.value not in POLICIES:
                reason = f"policy must be one of {', '.join(POLICIES)}, got {p.value!r}"
            elif p.name == "model" and not os.path.isfile(os.path.join(resolve_path(p.value), MODEL_JSON)):
                reason = f"no converted model at {p.value!r} ({MODEL_JSON} missing)"
            elif p.type_ == Parameter.Type.DOUBLE and not math.isfinite(p.value):
                reason = f"{p.name} must be finite, got {p.value}"
            if reason:
                self.get_logger().warning(f"parameter rejected: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        if not hasattr(self, "add_post_set_parameters_callback"):
            self._apply_parameters(params)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        names = {p.name for p in params}
        values = {p.name: p.value for p in params}
        if names & set(BACKEND_PARAMS):
            with self._wake:  # the worker reloads between frames, never under a running inference
                self._pending_reload = self._backend_choice(values)
                self._wake.notify()
        if names & set(GOVERNOR_PARAMS):
            current = {n: self.get_parameter(n).value for n in GOVERNOR_PARAMS}
            current.update({k: v for k, v in values.items() if k in GOVERNOR_PARAMS})
            s = self.core.settings
            s.policy, s.timesteps, s.min_accuracy = current["policy"], current["timesteps"], current["min_accuracy"]
            s.max_latency_ms = current["max_latency_ms"] or math.inf
            s.mission_time_s, s.battery_reserve = current["mission_time_s"], current["battery_reserve"]
            s.hysteresis = current["hysteresis"]
            self.get_logger().info(f"governor settings now {s}")

    # --- inputs --------------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self._accept(lambda: decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.data,
                                        bool(msg.is_bigendian)))

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._accept(lambda: decode_compressed(msg.format, msg.data))

    def _accept(self, decode) -> None:
        if not self.core.ready:
            self.core.stats.bad_input["no_model"] += 1
            self.get_logger().error(f"frame ignored: {self.core.fallback_reason}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        try:
            image, order = decode()
            x = to_network_input(image, order, self.core.model.network.preprocessing)
        except ImageDecodeError as exc:
            self.core.stats.bad_input[exc.kind] += 1
            self.get_logger().warning(f"bad image ({exc.kind}): {exc}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        with self._wake:
            if self._newest is not None:
                self.core.stats.dropped += 1
            self._newest = (x, self._images_received)
            self._images_received += 1
            self._wake.notify()

    def _on_ground_truth(self, msg: Int32) -> None:
        with self._wake:
            self._labels[self._labels_received] = int(msg.data)
            self._labels.pop(self._labels_received - _LABELS_KEPT, None)
            self._labels_received += 1

    def _on_budget(self, msg: Float32) -> None:
        if not self.core.ready:
            return
        problem = self.core.governor.set_budget(float(msg.data))
        if problem:
            self.core.stats.bad_input["budget"] += 1
            self.get_logger().warning(problem + "; keeping the previous budget", throttle_duration_sec=LOG_THROTTLE_S)
        else:
            self.get_logger().info(f"energy budget {msg.data:.4g} J per inference")

    def _on_battery(self, msg: BatteryState) -> None:
        fallback_j = self.get_parameter("battery_capacity_wh").value * 3600.0
        reading = read_battery(msg.percentage, msg.voltage, msg.charge, msg.capacity, msg.design_capacity, fallback_j)
        if reading.percent_scale and not self._battery_note_logged:
            self._battery_note_logged = True
            self.get_logger().info("battery percentage arrives as 0..100 (Gazebo style); reading it as such")
        if reading.problem:
            self.core.stats.bad_input["battery"] += 1
            self.get_logger().warning(f"battery state unusable: {reading.problem}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        if self.core.ready:
            self.core.governor.update_battery(time.monotonic(), reading.fraction, reading.capacity_j)

    # --- inference -----------------------------------------------------------------------------
    def _work(self) -> None:
        while self._running:
            with self._wake:
                while self._running and self._newest is None and self._pending_reload is None:
                    self._wake.wait(0.5)
                frame, self._newest = self._newest, None
                reload, self._pending_reload = self._pending_reload, None
            try:
                if reload is not None:
                    self._reload(reload)
                if frame is not None:
                    x, index = frame
                    with self._wake:
                        label = self._labels.get(index)
                    self._classify(x, label)
            except Exception as exc:  # noqa: BLE001 - the inference thread must outlive any one frame
                self.core.stats.bad_input["internal"] += 1
                self.get_logger().error(f"frame handling failed: {exc!r}", throttle_duration_sec=LOG_THROTTLE_S)

    def _reload(self, choice: BackendChoice) -> None:
        was_ready = self.core.ready
        try:
            self.core.load(choice)
        except Exception as exc:  # noqa: BLE001 - the node keeps running on the previous backend
            self.core.fallback_reason = f"could not load {choice.backend!r} from {choice.model_dir}: {exc}"
            self.get_logger().error(self.core.fallback_reason + "; keeping the previous backend")
            return
        if not was_ready:
            self.core.governor.start(self._start_time)
        if self.core.fallback_reason:
            self.get_logger().error(self.core.fallback_reason)
        self.get_logger().info(f"backend now {self.core.backend.describe()} on {choice.model_dir}")

    def _classify(self, x: np.ndarray, ground_truth: Optional[int]) -> None:
        try:
            result = self.core.classify(x, ground_truth)
        except Exception as exc:  # noqa: BLE001 - a failing frame must not end the node
            self.core.stats.bad_input["inference"] += 1
            self.get_logger().error(f"inference failed: {exc}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        if result is None:
            return
        decision = result.decision
        if self._last_decision is None or decision.point is not self._last_decision.point:
            text = (f"operating point T={decision.point.timesteps} (expected accuracy "
                    f"{decision.point.accuracy:.3f}, {decision.point.energy_j:.3g} J): {decision.reason}")
            if decision.over_budget:  # two call sites: rclpy fixes a call site's severity
                self.get_logger().warning(text)
            else:
                self.get_logger().info(text)
        self._last_decision = decision
        self.pub_label.publish(String(data=result.label))
        self.pub_class.publish(Int32(data=result.class_id))
        self.pub_scores.publish(Float32MultiArray(data=[float(s) for s in result.scores]))
        self.pub_timesteps.publish(UInt16(data=int(result.timesteps)))
        self.pub_energy.publish(Float32(data=float(result.energy.joules)))

    def _publish_diagnostics(self) -> None:
        s = self.core.stats.summary()
        decision = self._last_decision
        values = {
            "frames": s["frames"], "dropped": s["dropped"], "skipped_by_decimation": s["skipped"],
            "fps": f"{self.core.stats.fps:.2f}",
            "latency_ms_p50": f"{s['latency_ms_p50']:.3f}", "latency_ms_p99": f"{s['latency_ms_p99']:.3f}",
            "backend": self.core.backend.describe() if self.core.ready else "none",
            "model": self.core.choice.model_dir,
            "timesteps": decision.point.timesteps if decision else "",
            "energy_j_per_inference": f"{s['energy_j_per_inference']:.4g}", "energy_kind": s["energy_kind"],
            "accuracy": "" if s["accuracy"] is None else f"{s['accuracy']:.4f}",
            "policy": self.core.settings.policy,
            "budget_j": "" if decision is None or decision.budget_j is None else f"{decision.budget_j:.4g}",
            "decision": decision.reason if decision else "",
            "expected_accuracy": f"{decision.point.accuracy:.4f}" if decision else "",
            "bad_input": s["bad_input"],
        }
        values.update({f"bad_input_{kind}": n for kind, n in self.core.stats.bad_input.items()})
        if self.core.fallback_reason:
            values["fallback"] = self.core.fallback_reason
        level = DiagnosticStatus.OK
        message = "classifying"
        if self.core.fallback_reason:
            level, message = DiagnosticStatus.ERROR, self.core.fallback_reason
        elif decision is not None and decision.over_budget:
            level, message = DiagnosticStatus.WARN, decision.reason
        elif s["bad_input"]:
            level, message = DiagnosticStatus.WARN, f"{s['bad_input']} bad inputs so far"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: snn_agent", hardware_id=values["backend"],
                                  message=message, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def destroy_node(self):
        self._running = False
        with self._wake:
            self._wake.notify()
        self._worker.join(timeout=5)
        self.core.close()
        return super().destroy_node()


def main(args=None) -> None:
    spin_node(AgentNode, args)
