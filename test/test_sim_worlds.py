"""The Gazebo world, its bridge and launch file, held against the arena, the real SDF parser and the
ROS nodes that use them.

Gazebo and ros_gz cannot be installed here: the world is checked by libsdformat (Debian's sdformat 12,
strict: unknown elements and warnings are errors), the bridge against the topics the real agent,
patrol and MuJoCo `sim` nodes declare, and the launch file (launch/launch_ros are not on PyPI) runs on test_launch.py's stand-ins."""
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from conftest import ROOT
from snn_agent.graph import AGENT, PATROL, SIM, load_config, sim_node_specs
from snn_agent.sim import gazebo
from snn_agent.sim.arena import load_arena
from test_launch import (STAND_INS, StandIn, import_launch_file, launch_file,  # noqa: F401 - a fixture
                         launched_nodes, start_as_launch_ros)

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
        assert agent.get_parameter("mission_time_s").value == sim.arena.agent_mission_s
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


class IncludeLaunchDescription(StandIn):
    pass


@pytest.fixture
def sim_launch(monkeypatch):
    """launch/sim.launch.py's module, on test_launch.py's stand-ins plus those it also uses."""
    stand_ins = {**STAND_INS, "launch.launch_description_sources": {"PythonLaunchDescriptionSource": StandIn},
                 "launch_ros.substitutions": {"FindPackageShare": ShareStandIn}}
    stand_ins["launch.actions"] = {**STAND_INS["launch.actions"], "IncludeLaunchDescription": IncludeLaunchDescription}
    return import_launch_file(monkeypatch, SIM_LAUNCH, stand_ins)


class ShareStandIn(StandIn):
    def perform(self, context):
        return f"/opt/ros/jazzy/share/{self.args[0]}"


def test_sim_launch_starts_gazebo_the_bridge_the_agent_and_the_patrol(rclpy_context, sim_launch, launch_file):
    description = sim_launch.generate_launch_description()
    declared = {e.args[0]: e.kwargs["default_value"] for e in description.args[0] if e.args}
    assert set(declared) == {"world", "headless", "config", "sim_config", "bridge_config", "backend", "log_level"}
    assert declared["world"].endswith("worlds/arena.sdf") and declared["bridge_config"] == BRIDGE
    functions = [e.kwargs["function"] for e in description.args[0] if "function" in e.kwargs]
    actions = [a for f in functions for a in f({**declared, "headless": "true"})]
    gazebo, bridge_node, agent, patrol = actions
    # Gazebo through ros_gz_sim's launch file, headless as an argument
    assert gazebo.args[0].args[0] == "/opt/ros/jazzy/share/ros_gz_sim/launch/gz_sim.launch.py"
    assert dict(gazebo.kwargs["launch_arguments"])["gz_args"] == f"-s -r --headless-rendering {declared['world']}"
    gui = functions[0]({**declared, "headless": "false"})[0]
    assert dict(gui.kwargs["launch_arguments"])["gz_args"] == f"-r {declared['world']}"
    assert bridge_node.kwargs["package"] == "ros_gz_bridge" and bridge_node.kwargs["executable"] == "parameter_bridge"
    assert bridge_node.kwargs["parameters"] == [{"config_file": BRIDGE, "use_sim_time": True}]
    # the agent: agent.launch.py by path, on simulated time, its file with the arena's mission
    assert agent.args[0].args[0] == os.path.join(ROOT, "launch", "agent.launch.py")
    arguments = dict(agent.kwargs["launch_arguments"])
    assert arguments["use_sim_time"] == "true" and arguments["use_sim"] == "false"
    (agent_action,) = launched_nodes(launch_file, **arguments)
    started = [start_as_launch_ros(agent_action)]
    try:
        arena = load_arena()
        node = started[0]
        assert node.get_name() == AGENT.name and node.get_parameter("use_sim_time").value
        assert node.get_parameter("mission_time_s").value == arena.agent_mission_s
        assert node.get_parameter("battery_reserve").value == arena.battery.reserve
        assert node.get_parameter("model").value == load_config(declared["config"])["agent"]["model"]
    finally:
        for node in started:
            node.destroy_node()
    assert patrol.kwargs["executable"] == PATROL.executable and patrol.kwargs["name"] == PATROL.name
    assert patrol.kwargs["parameters"] == [declared["sim_config"], {"use_sim_time": True}]
    # the same agent and patrol as `snn-agent run --sim mujoco`, which has the twin for Gazebo + bridge
    assert [spec.name for spec in sim_node_specs()] == [AGENT.name, SIM.name, PATROL.name]
