"""ros2 launch snn_agent sim.launch.py [headless:=true] [world:=FILE] [config:=FILE] [backend:=cpu|lava|openvino]

The mission in Gazebo Harmonic (ROS 2 Jazzy with ros_gz): the arena world (worlds/arena.sdf, generated
from worlds/arena.yaml with its textures by `python -m snn_agent.sim.gazebo`) started by ros_gz_sim's
gz_sim.launch.py, the ros_gz bridge (config/gz_bridge.yaml), the agent (launch/agent.launch.py on
simulated time) and the patrol. `snn-agent run --sim mujoco` runs the same loop with the MuJoCo twin
in place of Gazebo and its bridge (snn_agent/graph.py: sim_node_specs and sim_overrides describe the
agent and the patrol for both). headless:=true runs the server alone with headless rendering (the camera still renders).
"""
import os
import tempfile

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from snn_agent.graph import AGENT, PATROL, default_config_path, load_config, share_dir, sim_overrides


def _gazebo(context):
    world = LaunchConfiguration("world").perform(context)
    headless = LaunchConfiguration("headless").perform(context).lower() in ("true", "1", "yes")
    gz_args = f"-s -r --headless-rendering {world}" if headless else f"-r {world}"
    gz_sim = os.path.join(FindPackageShare("ros_gz_sim").perform(context), "launch", "gz_sim.launch.py")
    return [IncludeLaunchDescription(PythonLaunchDescriptionSource(gz_sim),
                                     launch_arguments={"gz_args": gz_args, "on_exit_shutdown": "true"}.items())]


def _bridge(context):
    return [Node(package="ros_gz_bridge", executable="parameter_bridge", name="bridge", output="screen",
                 parameters=[{"config_file": LaunchConfiguration("bridge_config").perform(context),
                              "use_sim_time": True}])]


def _agent_and_patrol(context):
    config = LaunchConfiguration("config").perform(context)
    sim_config = LaunchConfiguration("sim_config").perform(context)
    backend = LaunchConfiguration("backend").perform(context)
    # agent.launch.py takes one parameters file: the user's, with the arena's mission time and reserve
    # (sim_overrides) set in the agent's sections, handed to ROS as a file of its own
    agent = {k: v for k, v in sim_overrides(AGENT, sim_config, backend).items()
             if k not in ("use_sim_time", "autostart", "backend")}  # those go as launch arguments
    doc = load_yaml(config)
    sections = [key for key in doc if str(key).strip("/").split("/")[-1] == AGENT.name] or [AGENT.name]
    for key in sections:
        doc.setdefault(key, {}).setdefault("ros__parameters", {}).update(agent)
    with tempfile.NamedTemporaryFile("w", prefix="snn_agent_sim_", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(doc, f)
    agent_launch = os.path.join(share_dir(), "launch", "agent.launch.py")
    return [
        IncludeLaunchDescription(PythonLaunchDescriptionSource(agent_launch), launch_arguments={
            "config": f.name, "backend": backend, "use_sim": "false", "use_sim_time": "true",
            "log_level": LaunchConfiguration("log_level").perform(context)}.items()),
        Node(package="snn_agent", executable=PATROL.executable, name=PATROL.name, output="screen",
             parameters=[sim_config, sim_overrides(PATROL, sim_config)]),
    ]


def load_yaml(path: str) -> dict:
    load_config(path)  # a clear error for a file that is not a parameters file
    with open(path) as f:
        return yaml.safe_load(f) or {}


def generate_launch_description():
    worlds = os.path.join(share_dir(), "worlds")
    return LaunchDescription([
        DeclareLaunchArgument("world", default_value=os.path.join(worlds, "arena.sdf"),
                              description="SDF world (generate it and its textures: python -m snn_agent.sim.gazebo)"),
        DeclareLaunchArgument("headless", default_value="false",
                              description="true: gz sim -s -r --headless-rendering (server only, no GUI)"),
        DeclareLaunchArgument("config", default_value=default_config_path(),
                              description="the agent's parameters file"),
        DeclareLaunchArgument("sim_config", default_value=default_config_path("sim.yaml"),
                              description="the patrol's (and the MuJoCo twin's) parameters file"),
        DeclareLaunchArgument("bridge_config", default_value=default_config_path("gz_bridge.yaml"),
                              description="ros_gz_bridge topics"),
        DeclareLaunchArgument("backend", default_value="", description="cpu | lava | openvino; empty: the config's"),
        DeclareLaunchArgument("log_level", default_value="info", description="the agent's log level"),
        OpaqueFunction(function=_gazebo),
        OpaqueFunction(function=_bridge),
        OpaqueFunction(function=_agent_and_patrol),
    ])
