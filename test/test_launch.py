"""launch/agent.launch.py and `snn-agent run` start the same graph from the same config.

`launch`/`launch_ros` are not on PyPI, so the launch file cannot run here: it is read as code
(ast) and checked against snn_agent.graph, whose nodes `snn-agent run` starts for real."""
import ast
import os

import pytest

from snn_agent.graph import AGENT, ConfigError, default_config_path, graph_nodes, load_config, node_specs
from snn_agent.ros import run_graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch", "agent.launch.py")
CONFIG = os.path.join(ROOT, "config", "agent.yaml")


def test_config_has_every_node_and_documents_every_parameter():
    from snn_agent.ros.agent_node import ENERGY_PARAMS, PARAMETERS

    params = load_config(CONFIG)
    assert set(params) == {spec.name for spec in node_specs(use_sim=True)}
    # every declared parameter has a default here; of the energy constants, those worth tuning
    assert set(params["agent"]) - set(ENERGY_PARAMS) == set(PARAMETERS) - set(ENERGY_PARAMS)
    assert set(params["agent"]) <= set(PARAMETERS) and "energy.cpu.core_power_w" in params["agent"]
    assert default_config_path() == CONFIG
    lines = [line for line in open(CONFIG) if line.startswith("    ") and ":" in line]
    undocumented = [line.strip() for line in lines if "#" not in line]
    assert lines and not undocumented


def test_use_sim_adds_replay_and_battery_and_backend_overrides():
    assert [s.name for s, _ in graph_nodes(CONFIG, use_sim=False)] == ["agent"]
    nodes = graph_nodes(CONFIG, use_sim=True, backend="openvino")
    assert [s.name for s, _ in nodes] == ["agent", "camera_replay", "battery_sim"]
    assert nodes[0][1]["backend"] == "openvino"
    assert graph_nodes(CONFIG, use_sim=True)[0][1]["backend"] == load_config(CONFIG)["agent"]["backend"]
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


def test_launch_file_declares_arguments_and_builds_nodes_from_graph():
    tree = ast.parse(open(LAUNCH).read())
    calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
    declared = {c.args[0].value for c in calls if c.func.id == "DeclareLaunchArgument"}
    assert declared == {"config", "backend", "use_sim", "namespace"}
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "snn_agent.graph" for alias in node.names}
    assert "graph_nodes" in imported
    # the Node actions come out of a comprehension over graph_nodes(config, use_sim, backend)
    comps = [c for c in ast.walk(tree) if isinstance(c, ast.ListComp)
             and isinstance(c.elt, ast.Call) and getattr(c.elt.func, "id", "") == "Node"]
    assert len(comps) == 1
    source = comps[0].generators[0].iter
    assert source.func.id == "graph_nodes"
    assert [a.id for a in source.args] == ["config", "use_sim", "backend"]
    keywords = {k.arg: ast.unparse(k.value) for k in comps[0].elt.keywords}
    assert keywords["executable"] == "spec.executable" and keywords["name"] == "spec.name"
    assert keywords["parameters"] == "[params]" and keywords["namespace"] == "namespace"
    assert keywords["remappings"] == "list(spec.remappings)"


def test_run_starts_exactly_the_use_sim_graph(rclpy_context):
    nodes = run_graph.create_nodes(CONFIG, backend="cpu")
    try:
        expected = graph_nodes(CONFIG, use_sim=True, backend="cpu")
        assert [n.get_name() for n in nodes] == [spec.name for spec, _ in expected]
        for node, (spec, params) in zip(nodes, expected):
            assert params, spec.name
            for name, value in params.items():
                assert node.get_parameter(name).value == value, (spec.name, name)
            for src, dst in spec.remappings:
                assert node.resolve_topic_name(src) == "/" + dst
        agent = nodes[0]
        assert agent.resolve_topic_name("image") == "/image"  # what camera_replay publishes
        assert nodes[1].resolve_topic_name("~/ground_truth") == "/camera_replay/ground_truth"
        assert nodes[2].resolve_topic_name("agent/energy") == agent.resolve_topic_name("~/energy")
    finally:
        for node in nodes:
            node.destroy_node()
