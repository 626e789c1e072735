"""The Gazebo world, its bridge and launch file, held against the arena, the real SDF parser and the
ROS nodes that use them.

Gazebo and ros_gz cannot be installed here: the world is checked by libsdformat (Debian's sdformat 12,
strict: unknown elements and warnings are errors), the bridge against the topics the real agent,
patrol and MuJoCo `sim` nodes declare, and the launch file (launch/launch_ros are not on PyPI) is read
as code."""
import ast
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from conftest import ROOT
from snn_agent.graph import AGENT, PATROL, SIM, load_config, sim_graph_nodes
from snn_agent.sim import gazebo
from snn_agent.sim.arena import load_arena

WORLD = os.path.join(ROOT, "worlds", "arena.sdf")
BRIDGE = os.path.join(ROOT, "config", "gz_bridge.yaml")
SIM_LAUNCH = os.path.join(ROOT, "launch", "sim.launch.py")
CHECKER = os.path.join(ROOT, "scripts", "check_sdf.cc")


def bridge():
    return yaml.safe_load(open(BRIDGE))


@pytest.fixture(scope="module")
def sdf_checker(tmp_path_factory):
    """scripts/check_sdf.cc compiled against sdformat 12 (scripts/setup_env.sh installs it)."""
    missing = [tool for tool in ("g++", "pkg-config") if shutil.which(tool) is None]
    if missing or subprocess.run(["pkg-config", "--exists", "sdformat12"]).returncode != 0:
        pytest.skip(f"libsdformat-dev (sdformat 12) and g++ are not installed ({', '.join(missing) or 'no sdformat12'}); "
                    f"scripts/setup_env.sh installs them where apt-get can be used")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "sdformat12"], capture_output=True, text=True,
                           check=True).stdout.split()
    binary = str(tmp_path_factory.mktemp("sdf") / "check_sdf")
    subprocess.run(["g++", "-std=c++17", CHECKER, *flags, "-o", binary], check=True)
    return binary


def test_world_is_the_arena_generated():
    assert open(WORLD).read() == gazebo.world_sdf(load_arena()), \
        "worlds/arena.sdf is stale: python -m snn_agent.sim.gazebo"


def test_world_passes_the_strict_sdformat_check(sdf_checker, tmp_path):
    result = subprocess.run([sdf_checker, WORLD], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "SDF 1.9" in result.stdout
    # the check is real: an element SDF does not know fails it
    broken = tmp_path / "broken.sdf"
    broken.write_text(open(WORLD).read().replace("<static>true</static>", "<static>true</static><bogus/>", 1))
    result = subprocess.run([sdf_checker, str(broken)], capture_output=True, text=True)
    assert result.returncode != 0 and "bogus" in result.stderr


def test_world_plugins_and_topics_match_the_bridge_and_the_arena():
    arena = load_arena()
    world = ET.parse(WORLD).getroot().find("world")
    plugins = {p.get("name"): p for p in world.iter("plugin")}
    assert {"gz::sim::systems::Sensors", "gz::sim::systems::DiffDrive",
            "gz::sim::systems::LinearBatteryPlugin", "gz::sim::systems::Physics"} <= set(plugins)
    assert plugins["gz::sim::systems::Sensors"].findtext("render_engine") == "ogre2"
    robot = next(m for m in world.findall("model") if m.get("name") == gazebo.ROBOT)
    camera = robot.find("link/sensor[@type='camera']")
    drive, battery = plugins["gz::sim::systems::DiffDrive"], plugins["gz::sim::systems::LinearBatteryPlugin"]
    world_topics = {camera.findtext("topic"), drive.findtext("topic"), drive.findtext("odom_topic"),
                    f"/model/{robot.get('name')}/battery/{battery.findtext('battery_name')}/state",
                    battery.findtext("power_draining_topic"), "/clock"}
    assert world_topics == {entry["gz_topic_name"] for entry in bridge()}
    # the camera and the battery are the arena's, and the battery is snn_agent/sim/battery.py's model
    assert int(camera.findtext("camera/image/width")) == arena.camera.width
    assert float(camera.findtext("camera/horizontal_fov")) == pytest.approx(arena.camera.hfov, abs=1e-6)
    assert float(camera.findtext("update_rate")) == arena.camera.rate_hz
    b = arena.battery
    assert float(battery.findtext("voltage")) == float(battery.findtext("open_circuit_voltage_constant_coef")) == b.voltage
    assert float(battery.findtext("open_circuit_voltage_linear_coef")) == 0 == float(battery.findtext("resistance"))
    assert float(battery.findtext("capacity")) == float(battery.findtext("initial_charge")) == b.capacity_ah
    assert float(battery.findtext("power_load")) == b.base_load_w
    assert battery.findtext("fix_issue_225") == "true"  # percentage 0..100: the agent reads either scale
    panels = [m for m in world.findall("model") if m.get("name").startswith("object_")]
    assert len(panels) == len(arena.objects)
    assert all(arena.texture_name(i) in ET.tostring(m, encoding="unicode") for i, m in enumerate(panels))


def _topics(node, kind: str) -> dict:
    """topic -> ROS type name of what the node publishes or subscribes to, without ROS's own."""
    ignored = {"/rosout", "/parameter_events", "/clock"}
    return {e.topic_name: f"{e.msg_type.__module__.split('.')[0]}/msg/{e.msg_type.__name__}"
            for e in getattr(node, kind) if e.topic_name not in ignored}


def test_bridge_maps_what_the_agent_the_patrol_and_the_twin_use(rclpy_context):
    from snn_agent.ros.run_graph import create_nodes

    entries = bridge()
    assert all(set(e) == {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
               for e in entries)
    to_ros = {e["ros_topic_name"]: e["ros_type_name"] for e in entries if e["direction"] == "GZ_TO_ROS"}
    to_gz = {e["ros_topic_name"]: e["ros_type_name"] for e in entries if e["direction"] == "ROS_TO_GZ"}
    assert to_ros.pop("/clock") == "rosgraph_msgs/msg/Clock"  # for use_sim_time
    nodes = create_nodes(os.path.join(ROOT, "config", "agent.yaml"), "cpu", sim="mujoco")
    try:
        agent, sim, patrol = nodes
        assert [n.get_name() for n in nodes] == [AGENT.name, SIM.name, PATROL.name]
        heard = {**_topics(agent, "subscriptions"), **_topics(patrol, "subscriptions")}
        said = {**_topics(agent, "publishers"), **_topics(patrol, "publishers")}
        # out of the simulator: exactly what the agent and the patrol take from it
        assert {t: heard.get(t) for t in to_ros} == to_ros
        assert {"/image", "/battery_state", "/odom"} == set(to_ros)
        # into the simulator: what they publish (commands; the agent's energy)
        assert {t: said.get(t) for t in to_gz} == to_gz == {"/cmd_vel": "geometry_msgs/msg/Twist",
                                                           "/agent/energy": "std_msgs/msg/Float32"}
        # the MuJoCo twin stands in for Gazebo and its bridge: same names, same types
        sim_out, sim_in = _topics(sim, "publishers"), _topics(sim, "subscriptions")
        assert {t: sim_out.get(t) for t in to_ros} == to_ros
        assert set(sim_out) - set(to_ros) == {"/sim/ground_truth"}  # scoring only
        assert {t: sim_in.get(t) for t in to_gz} == to_gz
        assert set(sim_in) - set(to_gz) == {"/agent/class_id", "/agent/timesteps"}  # the mission's log
        assert agent.resolve_topic_name("ground_truth") == "/sim/ground_truth"
        assert all(n.get_parameter("use_sim_time").value for n in nodes)
        assert agent.get_parameter("mission_time_s").value == sim.arena.mission_s
        # config/sim.yaml sets every parameter the sim and the patrol declare, each with a comment
        sim_yaml = load_config(os.path.join(ROOT, "config", "sim.yaml"))
        for node in (sim, patrol):
            declared = set(node._parameters) - {"use_sim_time", "start_type_description_service"}  # rclpy's own
            assert set(sim_yaml[node.get_name()]) == declared
            assert all(node.describe_parameter(name).description for name in declared)
        lines = [line for line in open(os.path.join(ROOT, "config", "sim.yaml")) if line.startswith("    ")]
        assert lines and all("#" in line for line in lines)
    finally:
        for node in nodes:
            node.destroy_node()


def _calls(tree, name: str) -> list:
    return [c for c in ast.walk(tree) if isinstance(c, ast.Call) and getattr(c.func, "id", None) == name]


def test_sim_launch_file_starts_gazebo_the_bridge_the_agent_and_the_patrol():
    source = open(SIM_LAUNCH).read()
    tree = ast.parse(source)
    declared = {c.args[0].value for c in _calls(tree, "DeclareLaunchArgument")}
    assert {"world", "headless", "config", "sim_config", "bridge_config", "backend", "log_level"} == declared
    # Gazebo through ros_gz_sim's launch file, headless as an argument
    assert '"-s -r --headless-rendering {world}"' in source.replace("f\"", "\"")
    assert "gz_sim.launch.py" in source and '"ros_gz_sim"' in source and '"gz_args"' in source
    nodes = {ast.unparse(k.value) for c in _calls(tree, "Node") for k in c.keywords if k.arg == "executable"}
    assert nodes == {"'parameter_bridge'", "PATROL.executable"}
    assert "config_file" in source and default_path_named(tree, "gz_bridge.yaml")
    # the agent: launch/agent.launch.py, included by path, on simulated time, with the arena's mission
    assert '"launch", "agent.launch.py"' in source
    includes = _calls(tree, "IncludeLaunchDescription")
    assert len(includes) == 2
    agent_args = next(ast.unparse(k.value) for c in includes for k in c.keywords
                      if k.arg == "launch_arguments" and "use_sim_time" in ast.unparse(k.value))
    assert "'use_sim_time': 'true'" in agent_args and "'config': f.name" in agent_args
    assert [c for c in _calls(tree, "sim_graph_nodes")]
    # the same agent and patrol as `snn-agent run --sim mujoco`, which has the twin for Gazebo + bridge
    graph = sim_graph_nodes(os.path.join(ROOT, "config", "agent.yaml"), os.path.join(ROOT, "config", "sim.yaml"))
    assert [spec.name for spec, _ in graph] == [AGENT.name, SIM.name, PATROL.name]


def default_path_named(tree, filename: str) -> bool:
    return any(isinstance(a, ast.Constant) and a.value == filename
               for c in _calls(tree, "default_config_path") for a in c.args)
