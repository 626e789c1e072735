"""launch/agent.launch.py and `snn-agent run` start the same graph from the same parameters file,
which goes to ROS as it is.

`launch` and `launch_ros` are not on PyPI, so `ros2 launch` cannot run here. What is checked: the
launch file itself runs (generate_launch_description and its OpaqueFunction, with launch arguments
resolved) against small stand-ins of the five launch classes it uses, and each Node action it returns
is started as launch_ros would start it (the parameters file as --params-file, a dict as
parameters, name, namespace and remappings as -r rules) with rclpy and the real node classes; then
the parameters and topic names the nodes really have are checked. What is not checked here: launch's
own argument parsing and process handling (respawn, output), which need a ROS install."""
import importlib.util
import os
import sys
import types

import pytest

from snn_agent.graph import AGENT, ConfigError, default_config_path, load_config, node_overrides, node_specs
from snn_agent.ros import run_graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch", "agent.launch.py")
CONFIG = os.path.join(ROOT, "config", "agent.yaml")


class StandIn:
    """Records how it was constructed."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(StandIn):
    def perform(self, context):
        return context[self.args[0]]


STAND_INS = {"launch": {"LaunchDescription": StandIn},
             "launch.actions": {"DeclareLaunchArgument": StandIn, "OpaqueFunction": StandIn},
             "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
             "launch_ros": {}, "launch_ros.actions": {"Node": StandIn}}


def import_launch_file(monkeypatch, path: str, stand_ins: dict = STAND_INS):
    """The launch file's module, importing stand-ins (module name -> members) for launch and launch_ros."""
    for name, members in stand_ins.items():
        module = types.ModuleType(name)
        module.__dict__.update(members)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location(os.path.basename(path).replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def launch_file(monkeypatch):
    return import_launch_file(monkeypatch, LAUNCH)


def launched_nodes(launch_file, **arguments) -> list:
    """The Node actions the launch description yields for these launch arguments."""
    description = launch_file.generate_launch_description()
    declared = [e for e in description.args[0] if e.args and isinstance(e.args[0], str)]
    context = {e.args[0]: e.kwargs["default_value"] for e in declared}
    unknown = set(arguments) - set(context)
    assert not unknown, f"launch arguments not declared: {unknown}"
    context.update(arguments)
    (opaque,) = [e for e in description.args[0] if "function" in e.kwargs]
    return opaque.kwargs["function"](context)


def start_as_launch_ros(action):
    """Start the node class of a Node action as launch_ros would start its executable."""
    from rclpy.parameter import Parameter

    from snn_agent.ros.agent_node import AgentNode
    from snn_agent.ros.battery_sim_node import BatterySimNode
    from snn_agent.ros.camera_replay_node import CameraReplayNode

    k = action.kwargs
    ros_args = ["--ros-args", "-r", f"__node:={k['name']}"]
    if k["namespace"]:
        ros_args += ["-r", f"__ns:=/{k['namespace'].strip('/')}"]
    overrides = []
    for entry in k["parameters"]:
        if isinstance(entry, str):
            ros_args += ["--params-file", entry]
        else:
            overrides += [Parameter(name, value=value) for name, value in entry.items()]
    ros_args += [arg for src, dst in k["remappings"] for arg in ("-r", f"{src}:={dst}")]
    cls = {"agent": AgentNode, "camera_replay": CameraReplayNode, "battery_sim": BatterySimNode}[k["executable"]]
    return cls(cli_args=ros_args + k["arguments"][1:], parameter_overrides=overrides)


def test_config_has_every_node_and_documents_every_parameter():
    from snn_agent.ros.agent_parameters import ENERGY_PARAMS, PARAMETERS

    params = load_config(CONFIG)
    assert set(params) == {spec.name for spec in node_specs(use_sim=True)}
    # every declared parameter has a default here; of the energy constants, those worth tuning
    assert set(params["agent"]) - set(ENERGY_PARAMS) == set(PARAMETERS) - set(ENERGY_PARAMS)
    assert set(params["agent"]) <= set(PARAMETERS) and "energy.cpu.core_power_w" in params["agent"]
    assert default_config_path() == CONFIG
    lines = [line for line in open(CONFIG) if line.startswith("    ") and ":" in line]
    undocumented = [line.strip() for line in lines if "#" not in line]
    assert lines and not undocumented


def test_overrides_of_the_launch_arguments():
    assert [s.name for s in node_specs(use_sim=False)] == ["agent"]
    assert [s.name for s in node_specs(use_sim=True)] == ["agent", "camera_replay", "battery_sim"]
    assert node_overrides(AGENT, backend="openvino") == {"use_sim_time": False, "autostart": True,
                                                          "backend": "openvino"}
    assert node_overrides(node_specs(True)[1], use_sim_time=True) == {"use_sim_time": True}
    assert ("ground_truth", "camera_replay/ground_truth") in AGENT.remappings


def test_config_errors_are_clear(tmp_path):
    cases = {"broken.yaml": "agent: [unclosed", "flat.yaml": "agent:\n  backend: cpu\n",
             "list.yaml": "- agent\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError):
            load_config(str(tmp_path / name))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "ns.yaml").write_text("/robot/agent:\n  ros__parameters:\n    backend: lava\n")
    assert load_config(str(tmp_path / "ns.yaml")) == {"agent": {"backend": "lava"}}


def test_namespaced_launches_with_wildcard_parameters(rclpy_context, launch_file, tmp_path):
    """Two robots from one file: `/**` reaches every node, `/robotN/agent` its own agent only."""
    config = tmp_path / "fleet.yaml"
    config.write_text(open(CONFIG).read() + "\n/**:\n  ros__parameters:\n    timesteps: 8\n"
                      "/robot1/agent:\n  ros__parameters:\n    policy: fixed\n"
                      "/robot2/agent:\n  ros__parameters:\n    policy: battery\n")
    nodes = []
    try:
        for robot, policy in (("robot1", "fixed"), ("robot2", "battery")):
            actions = launched_nodes(launch_file, config=str(config), namespace=robot, use_sim="true",
                                     use_sim_time="true", autostart="false", log_level="debug", respawn="true")
            assert [a.kwargs["name"] for a in actions] == ["agent", "camera_replay", "battery_sim"]
            assert all(a.kwargs["respawn"] and a.kwargs["arguments"][-2:] == ["--log-level", "debug"]
                       for a in actions)
            started = [start_as_launch_ros(a) for a in actions]
            nodes += started
            agent, replay, battery = started
            assert agent.get_fully_qualified_name() == f"/{robot}/agent"
            assert agent.get_parameter("policy").value == policy
            assert agent.get_parameter("timesteps").value == 8  # from /**
            assert agent.get_parameter("model").value == "models/fashion_cnn_snn"  # from /**/agent
            assert agent.state == "unconfigured"  # autostart:=false
            assert all(n.get_parameter("use_sim_time").value for n in started)
            assert agent.resolve_topic_name("image") == f"/{robot}/image"
            assert agent.resolve_topic_name("ground_truth") == f"/{robot}/camera_replay/ground_truth"
            assert replay.resolve_topic_name("~/ground_truth") == f"/{robot}/camera_replay/ground_truth"
            assert battery.resolve_topic_name("agent/energy") == agent.resolve_topic_name("~/energy")
    finally:
        for node in nodes:
            node.destroy_node()


def test_run_starts_the_graph_the_launch_file_starts(rclpy_context, launch_file):
    run_nodes = run_graph.create_nodes(CONFIG, backend="cpu")
    launch_nodes = [start_as_launch_ros(a) for a in launched_nodes(launch_file, use_sim="true", backend="cpu")]
    try:
        assert [n.get_fully_qualified_name() for n in run_nodes] == \
            [n.get_fully_qualified_name() for n in launch_nodes] == ["/agent", "/camera_replay", "/battery_sim"]
        for ran, launched in zip(run_nodes, launch_nodes):
            values = {name: p.value for name, p in ran._parameters.items()}
            assert values == {name: p.value for name, p in launched._parameters.items()}, ran.get_name()
            for name, value in load_config(CONFIG)[ran.get_name()].items():
                assert values[name] == value, (ran.get_name(), name)
        agent = run_nodes[0]
        assert agent.get_parameter("backend").value == "cpu" and agent.state == "active"
        assert agent.resolve_topic_name("ground_truth") == "/camera_replay/ground_truth"
        assert run_nodes[2].resolve_topic_name("agent/energy") == agent.resolve_topic_name("~/energy")
    finally:
        for node in run_nodes + launch_nodes:
            node.destroy_node()
