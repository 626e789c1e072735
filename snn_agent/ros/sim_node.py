"""The `sim` node: the arena's MuJoCo twin (snn_agent/sim/mujoco_twin.py) in the ROS graph.

Publishes what config/gz_bridge.yaml brings out of Gazebo, under the same names and types: `/image`
(stamped with simulated time), `/battery_state`, `/odom`, `/clock`; takes `/cmd_vel` and the agent's
`/agent/energy`, which its battery pays. For scoring it also publishes `~/ground_truth` (Int32): the
class of the object filling the view, for the frames where one does. It keeps the mission's log
(snn_agent/sim/mission.py's MissionLog: per frame the class in view, the agent's class, T and energy,
from /agent/class_id, /agent/timesteps and /agent/energy) for `snn-agent run --sim mujoco`.

Simulated time starts when the camera has a subscriber, then runs as fast as the machine allows (`real_time_factor` 0) or at a set multiple of real
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
from std_msgs.msg import Float32, Int32, UInt16

from ..sim.arena import load_arena
from ..sim.mission import FrameRecord, MissionLog
from ..sim.mujoco_twin import MujocoTwin
from .battery_sim_node import battery_message
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
        self.log = MissionLog(self.arena)
        self.reports = 0  # energy reports from the agent
        self._agent = {"class_id": None, "timesteps": 0, "energy_j": 0.0}  # its latest results
        self._reported = threading.Condition()  # guards the above, and the log
        self._running = True
        self.pub_image = self.create_publisher(Image, "/image", qos_profile_sensor_data)
        self.pub_battery = self.create_publisher(BatteryState, "/battery_state", 10)
        self.pub_odom = self.create_publisher(Odometry, "/odom", 10)
        self.pub_clock = self.create_publisher(Clock, "/clock", 10)
        self.pub_truth = self.create_publisher(Int32, "~/ground_truth", 10)
        self.create_subscription(Twist, "/cmd_vel", self._on_cmd_vel, 10)
        # the agent publishes its class and T before the energy, which completes a frame's results
        self.create_subscription(Int32, "/agent/class_id", self._on_class, 100)
        self.create_subscription(UInt16, "/agent/timesteps", self._on_timesteps, 100)
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

    def _on_class(self, msg: Int32) -> None:
        with self._reported:
            self._agent["class_id"] = int(msg.data)

    def _on_timesteps(self, msg: UInt16) -> None:
        with self._reported:
            self._agent["timesteps"] = int(msg.data)

    def _on_energy(self, msg: Float32) -> None:
        with self._reported:
            self.twin.add_compute_energy(float(msg.data))
            self._agent["energy_j"] = float(msg.data) if math.isfinite(msg.data) else 0.0
            self.reports += 1
            self._reported.notify()

    @property
    def finished(self) -> bool:
        """The mission's time has passed, or the battery is at its reserve."""
        return self.log.reserve_reached_s is not None or self.log.time_s >= self.arena.mission_s - 1e-6

    def _run(self) -> None:
        frame_s = 1.0 / self.arena.camera.rate_hz
        next_battery_s = 0.0
        while self._running and self.context.ok() and not self.pub_image.get_subscription_count():
            time.sleep(0.05)  # time starts with the first camera subscriber (the agent), as `gz sim` on play
        start_wall, start_sim = time.monotonic(), self.time_s
        while self._running and self.context.ok():
            with self._reported:  # the energy callback adds to the twin's battery
                reports = self.reports
                self.twin.step(frame_s)
            stamp = Time(nanoseconds=round(self.time_s * 1e9)).to_msg()
            self.pub_clock.publish(Clock(clock=stamp))
            self._publish_odometry(stamp)
            if self.time_s >= next_battery_s:
                self._publish_battery(stamp)
                next_battery_s += BATTERY_PERIOD_S
            index = self._publish_frame(stamp)
            with self._reported:
                if self.settings["lockstep"]:
                    self._reported.wait_for(lambda: self.reports > reports or not self._running,
                                            self.settings["lockstep_timeout_s"])
                reported = self.reports > reports
                at_reserve = self.log.reserve_reached_s
                self.log.add(FrameRecord(self.time_s, self.twin.battery.percentage, index,
                                         None if index is None else self.arena.objects[index].class_id,
                                         self._agent["class_id"] if reported else None,
                                         self._agent["timesteps"] if reported else 0,
                                         self._agent["energy_j"] if reported else 0.0))
                self.log.drained_j = dict(self.twin.drained_j)
                self.log.wall_s = time.monotonic() - start_wall
            if at_reserve is None and self.log.reserve_reached_s is not None:
                self.get_logger().warning(f"battery at its reserve ({self.arena.battery.reserve:.0%}) after "
                                          f"{self.time_s:.1f} s of simulated time")
            factor = self.settings["real_time_factor"]
            if factor > 0:
                ahead = (self.time_s - start_sim) / factor - (time.monotonic() - start_wall)
                if ahead > 0:
                    time.sleep(ahead)

    def _publish_frame(self, stamp):
        """Render and publish the camera's frame, then its ground truth; returns the object in view."""
        start = time.monotonic()
        pixels = self.twin.render()
        self.log.render_s += time.monotonic() - start
        height, width, _ = pixels.shape
        msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
                    data=pixels.tobytes())
        msg.header.stamp = stamp
        msg.header.frame_id = "camera"
        self.pub_image.publish(msg)
        index = self.twin.object_in_view()
        if index is not None:  # after its image: the agent pairs a label with the image before it
            self.pub_truth.publish(Int32(data=self.arena.objects[index].class_id))
        return index

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
        self.pub_battery.publish(battery_message(self.twin.battery, stamp))

    def destroy_node(self):
        self._running = False
        with self._reported:
            self._reported.notify()
        self._thread.join(timeout=5)
        self.twin.close()
        return super().destroy_node()


def main(args=None) -> None:
    spin_node(SimNode, args)
