"""launch/agent.launch.py and `snn-agent run` start the same graph from the same config.

`launch`/`launch_ros` are not on PyPI, so the launch file cannot run here: it is read as code
(ast) and checked against snn_agent.graph, which `snn-agent run` executes for real."""
import ast
import os

from snn_agent.graph import AGENT, default_config_path, load_config, node_specs
from snn_agent.ros import run_graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch", "agent.launch.py")


def test_config_has_every_node_and_the_agent_parameters():
    from snn_agent.ros.agent_node import PARAMETERS

    params = load_config(os.path.join(ROOT, "config", "agent.yaml"))
    assert set(params) == {spec.name for spec in node_specs(use_sim=True)}
    assert set(params["agent"]) == set(PARAMETERS)  # every declared parameter has a documented default
    assert default_config_path() == os.path.join(ROOT, "config", "agent.yaml")


def test_use_sim_adds_replay_and_battery():
    assert [s.name for s in node_specs(False)] == ["agent"]
    assert [s.name for s in node_specs(True)] == ["agent", "camera_replay", "battery_sim"]
    assert ("ground_truth", "camera_replay/ground_truth") in AGENT.remappings


def test_launch_file_declares_arguments_and_uses_graph():
    tree = ast.parse(open(LAUNCH).read())
    declared = {call.args[0].value for call in ast.walk(tree) if isinstance(call, ast.Call)
                and getattr(call.func, "id", "") == "DeclareLaunchArgument"}
    assert declared == {"config", "backend", "use_sim", "namespace"}
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "snn_agent.graph" for alias in node.names}
    assert {"node_specs", "load_config"} <= imported
    calls = {getattr(c.func, "id", "") for c in ast.walk(tree) if isinstance(c, ast.Call)}
    assert {"node_specs", "load_config", "Node"} <= calls


def test_run_builds_the_use_sim_graph():
    source = open(run_graph.__file__).read()
    assert "node_specs(use_sim=True)" in source
