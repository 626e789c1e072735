"""The one `main` every node's console script shares."""
from __future__ import annotations

import sys

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException


def spin_node(node_class, args=None) -> None:
    rclpy.init(args=args)
    try:
        node = node_class()
    except (ValueError, ParameterException) as exc:  # a parameter, dataset or model the user can fix
        rclpy.logging.get_logger("snn_agent").fatal(f"{node_class.__name__} cannot start: {exc}")
        rclpy.try_shutdown()
        sys.exit(1)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
