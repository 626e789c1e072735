"""ros2 launch snn_agent agent.launch.py [config:=FILE] [backend:=cpu|lava|openvino] [use_sim:=true] [namespace:=NS]

Starts the agent (and, with use_sim, a replayed camera and a simulated battery) with the parameters
of config/agent.yaml. `snn-agent run` starts the same graph (snn_agent/graph.py describes it once).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from snn_agent.graph import PACKAGE, default_config_path, graph_nodes


def _nodes(context):
    config = LaunchConfiguration("config").perform(context)
    backend = LaunchConfiguration("backend").perform(context)
    use_sim = LaunchConfiguration("use_sim").perform(context).lower() in ("true", "1", "yes")
    namespace = LaunchConfiguration("namespace").perform(context)
    # parameters go per node as dicts, so they apply under any namespace
    return [Node(package=PACKAGE, executable=spec.executable, name=spec.name, namespace=namespace,
                 parameters=[params], remappings=list(spec.remappings), output="screen")
            for spec, params in graph_nodes(config, use_sim, backend)]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default_config_path(),
                              description="parameters file (node_name: ros__parameters: format)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="cpu | lava | openvino; empty: the config's choice"),
        DeclareLaunchArgument("use_sim", default_value="false",
                              description="also start camera_replay and battery_sim"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node"),
        OpaqueFunction(function=_nodes),
    ])
