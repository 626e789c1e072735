"""The `sim` node: the arena's MuJoCo twin (snn_agent/sim/mujoco_twin.py) in the ROS graph.

Publishes what config/gz_bridge.yaml brings out of Gazebo, under the same names and types: `/image`
(stamped with simulated time), `/battery_state`, `/odom`, `/clock`; takes `/cmd_vel` and the agent's
`/agent/energy`, which its battery pays. For scoring it also publishes `~/ground_truth` (Int32): the
class of the object filling the view, for the frames where one does.

Simulated time runs as fast as the machine allows (`real_time_factor` 0) or at a set multiple of real
time. With `lockstep`, each frame waits (up to `lockstep_timeout_s`) for the agent's energy report
before time moves on, so that no frame goes unclassified and every inference is paid for in its frame.
"""
from __future__ import annotations

import math
import threading
import time

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import BatteryState, Image
from std_msgs.msg import Float32, Int32

from ..sim.arena import load_arena
from ..sim.mujoco_twin import MujocoTwin
from .spin import spin_node

BATTERY_PERIOD_S = 0.5  # of simulated time, as battery_sim's 2 Hz


def _range(description: str, lo: float, hi: float) -> ParameterDescriptor:
    return ParameterDescriptor(description=description, read_only=True,
                               floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi, step=0.0)])


class SimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim", **kwargs)
        self.declare_parameter("arena", "", ParameterDescriptor(
            description="arena file; empty: worlds/arena.yaml", read_only=True))
        self.declare_parameter("real_time_factor", 0.0, _range(
            "simulated seconds per real second at most; 0 = as fast as the machine allows", 0.0, 1000.0))
        self.declare_parameter("lockstep", True, ParameterDescriptor(
            description="wait for the agent's energy report on each frame before time moves on", read_only=True))
        self.declare_parameter("lockstep_timeout_s", 0.5, _range(
            "[s] real time to wait for that report before moving on without it", 0.0, 60.0))
        p = {name: self.get_parameter(name).value
             for name in ("arena", "real_time_factor", "lockstep", "lockstep_timeout_s")}
        self.arena = load_arena(p["arena"])
        self.twin = MujocoTwin(self.arena)
        self.settings = p
        self.frames = 0
        self.reports = 0  # energy reports from the agent
        self.in_view = None  # class in view on the last frame
        self.reserve_reached_s = None  # simulated time the battery fell to the arena's reserve
        self._reported = threading.Condition()
        self._running = True
        self.pub_image = self.create_publisher(Image, "/image", qos_profile_sensor_data)
        self.pub_battery = self.create_publisher(BatteryState, "/battery_state", 10)
        self.pub_odom = self.create_publisher(Odometry, "/odom", 10)
        self.pub_clock = self.create_publisher(Clock, "/clock", 10)
        self.pub_truth = self.create_publisher(Int32, "~/ground_truth", 10)
        self.create_subscription(Twist, "/cmd_vel", self._on_cmd_vel, 10)
        self.create_subscription(Float32, "/agent/energy", self._on_energy, 100)
        self._thread = threading.Thread(target=self._run, name="sim", daemon=True)
        self._thread.start()
        self.get_logger().info(f"arena {self.arena.name}: {len(self.arena.objects)} objects, camera "
                               f"{self.arena.camera.width}x{self.arena.camera.height} at {self.arena.camera.rate_hz} Hz, "
                               f"battery {self.arena.battery.capacity_ah * 3600 * self.arena.battery.voltage:.1f} J")

    @property
    def time_s(self) -> float:
        return self.twin.time_s

    def _on_cmd_vel(self, msg: Twist) -> None:
        self.twin.command(msg.linear.x, msg.angular.z)

    def _on_energy(self, msg: Float32) -> None:
        with self._reported:
            self.twin.add_compute_energy(float(msg.data))
            self.reports += 1
            self._reported.notify()

    def _run(self) -> None:
        frame_s = 1.0 / self.arena.camera.rate_hz
        next_battery_s = 0.0
        start_wall, start_sim = time.monotonic(), self.time_s
        while self._running and self.context.ok():
            reports = self.reports
            self.twin.step(frame_s)
            stamp = Time(nanoseconds=round(self.time_s * 1e9)).to_msg()
            self.pub_clock.publish(Clock(clock=stamp))
            self._publish_odometry(stamp)
            if self.time_s >= next_battery_s:
                self._publish_battery(stamp)
                next_battery_s += BATTERY_PERIOD_S
            self._publish_frame(stamp)
            if self.reserve_reached_s is None and self.twin.battery.percentage <= self.arena.battery.reserve:
                self.reserve_reached_s = self.time_s
                self.get_logger().warning(f"battery at its reserve ({self.arena.battery.reserve:.0%}) after "
                                          f"{self.time_s:.1f} s of simulated time")
            if self.settings["lockstep"]:
                with self._reported:
                    self._reported.wait_for(lambda: self.reports > reports or not self._running,
                                            self.settings["lockstep_timeout_s"])
            factor = self.settings["real_time_factor"]
            if factor > 0:
                ahead = (self.time_s - start_sim) / factor - (time.monotonic() - start_wall)
                if ahead > 0:
                    time.sleep(ahead)

    def _publish_frame(self, stamp) -> None:
        pixels = self.twin.render()
        height, width, _ = pixels.shape
        msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
                    data=pixels.tobytes())
        msg.header.stamp = stamp
        msg.header.frame_id = "camera"
        self.pub_image.publish(msg)
        self.frames += 1
        self.in_view = self.twin.ground_truth()
        if self.in_view is not None:  # after its image: the agent pairs a label with the image before it
            self.pub_truth.publish(Int32(data=self.in_view))

    def _publish_odometry(self, stamp) -> None:
        x, y, yaw = self.twin.pose
        speed, turn = self.twin.velocity
        msg = Odometry()
        msg.header.stamp = stamp
        msg.header.frame_id = "odom"
        msg.child_frame_id = "base_link"
        msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
        msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        msg.twist.twist.linear.x, msg.twist.twist.angular.z = speed, turn
        self.pub_odom.publish(msg)

    def _publish_battery(self, stamp) -> None:
        b = self.twin.battery
        msg = BatteryState(voltage=float(b.voltage_v), current=float(b.current_a), charge=float(b.charge_ah),
                           capacity=float(b.capacity_ah), design_capacity=float(b.capacity_ah),
                           percentage=float(b.percentage),
                           power_supply_status=BatteryState.POWER_SUPPLY_STATUS_DISCHARGING, present=True)
        msg.header.stamp = stamp
        self.pub_battery.publish(msg)

    def destroy_node(self):
        self._running = False
        with self._reported:
            self._reported.notify()
        self._thread.join(timeout=5)
        self.twin.close()
        return super().destroy_node()


def main(args=None) -> None:
    spin_node(SimNode, args)
