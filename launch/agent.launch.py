"""ros2 launch snn_agent agent.launch.py [config:=FILE] [backend:=cpu|lava|openvino] [use_sim:=true]
    [namespace:=NS] [use_sim_time:=true] [log_level:=info] [autostart:=true] [respawn:=false]

Starts the agent (and, with use_sim, a replayed camera and a simulated battery). The parameters file
goes to ROS as it is: its sections name nodes as ROS defines them (`/**/agent` in any namespace,
`/robot1/agent` in one, `/**` every node). `snn-agent run` starts the same graph (snn_agent/graph.py
describes it once).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from snn_agent.graph import PACKAGE, default_config_path, node_overrides, node_specs


def _flag(context, name: str) -> bool:
    return LaunchConfiguration(name).perform(context).lower() in ("true", "1", "yes")


def _nodes(context):
    config = LaunchConfiguration("config").perform(context)
    backend = LaunchConfiguration("backend").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context)
    log_level = LaunchConfiguration("log_level").perform(context)
    return [Node(package=PACKAGE, executable=spec.executable, name=spec.name, namespace=namespace,
                 parameters=[config, node_overrides(spec, backend, _flag(context, "autostart"),
                                                    _flag(context, "use_sim_time"))],
                 remappings=list(spec.remappings), arguments=["--ros-args", "--log-level", log_level],
                 respawn=_flag(context, "respawn"), respawn_delay=2.0, output="screen")
            for spec in node_specs(_flag(context, "use_sim"))]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default_config_path(),
                              description="parameters file (node_name: ros__parameters: format), handed to ROS as is"),
        DeclareLaunchArgument("backend", default_value="",
                              description="cpu | lava | openvino; empty: the config's choice"),
        DeclareLaunchArgument("use_sim", default_value="false",
                              description="also start camera_replay and battery_sim"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of every node"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="every node on /clock (Gazebo, a rosbag played with --clock)"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug | info | warn | error | fatal"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="the agent configures and activates itself; false: a lifecycle manager does"),
        DeclareLaunchArgument("respawn", default_value="false", description="restart a node that exits"),
        OpaqueFunction(function=_nodes),
    ])
