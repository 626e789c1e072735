"""The one `main` every node's console script shares."""
from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException


def spin_node(node_class, args=None) -> None:
    rclpy.init(args=args)
    node = node_class()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
