"""The `battery_sim` node: a linear battery (as Gazebo's LinearBatteryPlugin) drained by a base load
and by the energy the agent reports per inference on `agent/energy`; publishes `battery_state`."""
from __future__ import annotations

import math

from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import BatteryState
from std_msgs.msg import Float32

from ..sim.battery import LinearBattery
from .spin import spin_node


def battery_message(battery: LinearBattery, stamp, percentage_scale: float = 1.0) -> BatteryState:
    """The BatteryState of a linear battery, as the battery_sim and sim nodes publish it."""
    msg = BatteryState(voltage=float(battery.voltage_v), current=float(battery.current_a),
                       charge=float(battery.charge_ah), capacity=float(battery.capacity_ah),
                       design_capacity=float(battery.capacity_ah),
                       percentage=float(battery.percentage * percentage_scale),
                       power_supply_status=BatteryState.POWER_SUPPLY_STATUS_DISCHARGING, present=True)
    msg.header.stamp = stamp
    return msg


def _param(description, lo, hi):
    return ParameterDescriptor(description=description, read_only=True,
                               floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi, step=0.0)])


class BatterySimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("battery_sim", **kwargs)
        self.declare_parameter("voltage_v", 12.0, _param("[V] constant voltage", 0.1, 1000.0))
        self.declare_parameter("capacity_ah", 2.0, _param("[Ah] capacity", 1e-6, 1e4))
        self.declare_parameter("initial_charge", 1.0, _param("[0..1] initial charge", 0.0, 1.0))
        self.declare_parameter("base_load_w", 5.0, _param("[W] load of everything but the SNN", 0.0, 1e5))
        self.declare_parameter("rate_hz", 2.0, _param("[Hz] BatteryState rate", 0.01, 1000.0))
        self.declare_parameter("percentage_scale", 1.0, _param(
            "1: percentage in 0..1 (ROS); 100: 0..100 as Gazebo's plugin", 1.0, 100.0))
        p = {name: self.get_parameter(name).value for name in
             ("voltage_v", "capacity_ah", "initial_charge", "base_load_w", "rate_hz", "percentage_scale")}
        self.battery = LinearBattery(p["voltage_v"], p["capacity_ah"], p["initial_charge"], p["base_load_w"])
        self.scale = p["percentage_scale"]
        self.drawn_j = 0.0  # compute energy reported since the last step
        # Drain over the time that really passed (a late timer must not slow the battery down), on
        # the node's clock, so that use_sim_time drains in simulated time.
        self.last_step = None
        self.pub = self.create_publisher(BatteryState, "battery_state", 10)
        self.create_subscription(Float32, "agent/energy", self._on_energy, 100)
        self.create_timer(1.0 / p["rate_hz"], self._step)

    def _on_energy(self, msg: Float32) -> None:
        if math.isfinite(msg.data) and msg.data > 0:
            self.drawn_j += msg.data

    def _step(self) -> None:
        now = self.get_clock().now()
        if now.nanoseconds == 0:  # a simulated clock before the first /clock message
            return
        if self.last_step is not None:
            seconds = (now - self.last_step).nanoseconds * 1e-9
            if seconds <= 0:  # simulated time paused or jumped back
                return
            self.battery.step(seconds, self.drawn_j)
        self.last_step = now
        self.drawn_j = 0.0
        self.pub.publish(battery_message(self.battery, now.to_msg(), self.scale))


def main(args=None) -> None:
    spin_node(BatterySimNode, args)
