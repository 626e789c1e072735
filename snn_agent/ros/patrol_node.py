"""The `patrol` node: drives the robot past every panel of the arena (snn_agent/sim/patrol.py), on
`odom` (nav_msgs/Odometry) in, `cmd_vel` (geometry_msgs/Twist) out, one command per odometry message.
The same in Gazebo (through config/gz_bridge.yaml) and in the MuJoCo twin (the `sim` node)."""
from __future__ import annotations

import math

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from ..sim.arena import load_arena
from ..sim.patrol import Patrol
from .spin import spin_node


class PatrolNode(Node):
    def __init__(self, **kwargs):
        super().__init__("patrol", **kwargs)
        self.declare_parameter("arena", "", ParameterDescriptor(
            description="arena file; empty: worlds/arena.yaml", read_only=True))
        self.patrol = Patrol(load_arena(self.get_parameter("arena").value))
        self.pub = self.create_publisher(Twist, "cmd_vel", 10)
        self.create_subscription(Odometry, "odom", self._on_odometry, 10)

    def _on_odometry(self, msg: Odometry) -> None:
        q = msg.pose.pose.orientation
        yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
        laps = self.patrol.laps
        time_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        speed, turn = self.patrol.command(time_s, msg.pose.pose.position.x, msg.pose.pose.position.y, yaw)
        twist = Twist()
        twist.linear.x, twist.angular.z = speed, turn
        self.pub.publish(twist)
        if self.patrol.laps > laps:
            self.get_logger().info(f"lap {self.patrol.laps} done: every object seen "
                                   f"({len(self.patrol.order)} objects) at t={time_s:.1f} s")


def main(args=None) -> None:
    spin_node(PatrolNode, args)
