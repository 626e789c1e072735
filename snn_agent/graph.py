"""The node graph, described once: launch/agent.launch.py and `snn-agent run` both build it from here
(the nodes, their remappings, what the arguments override); the parameters file goes to ROS as it is."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

PACKAGE = "snn_agent"
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class NodeSpec:
    executable: str  # console script, also the node's name
    remappings: tuple = field(default_factory=tuple)  # (from, to), relative to the namespace

    @property
    def name(self) -> str:
        return self.executable


AGENT = NodeSpec("agent", (("ground_truth", "camera_replay/ground_truth"),))
CAMERA_REPLAY = NodeSpec("camera_replay")
BATTERY_SIM = NodeSpec("battery_sim")


# The closed loop in a simulator: the MuJoCo twin (or Gazebo through its bridge), the patrol, and the
# agent scored against the twin's ground truth
SIM = NodeSpec("sim")
PATROL = NodeSpec("patrol")
AGENT_IN_SIM = NodeSpec("agent", (("ground_truth", "sim/ground_truth"),))


def node_specs(use_sim: bool) -> list:
    """The agent alone on a robot; with use_sim, a replayed camera and a simulated battery too."""
    return [AGENT, CAMERA_REPLAY, BATTERY_SIM] if use_sim else [AGENT]


def node_overrides(spec: NodeSpec, backend: str = "", autostart: bool = True, use_sim_time: bool = False) -> dict:
    """What the launch arguments (and `snn-agent run`'s options) set over the parameters file:
    use_sim_time on every node; autostart and, when non-empty, backend on the agent."""
    overrides = {"use_sim_time": use_sim_time}
    if spec.name == AGENT.name:
        overrides["autostart"] = autostart
        if backend:
            overrides["backend"] = backend
    return overrides


def sim_node_specs() -> list:
    """The mission in a simulator: the agent, the MuJoCo twin (in Gazebo: gz sim and its bridge), the patrol."""
    return [AGENT_IN_SIM, SIM, PATROL]


def sim_overrides(spec: NodeSpec, sim_config_path: str, backend: str = "") -> dict:
    """What the simulated mission sets over the parameters files: simulated time on every node, and
    the agent's mission time (with the arena's planning margin) and reserve those of the arena that
    the sim loads."""
    overrides = node_overrides(spec, backend, use_sim_time=True)
    if spec.name == AGENT.name:
        from .sim.arena import load_arena

        arena = load_arena(load_config(sim_config_path).get(SIM.name, {}).get("arena", ""))
        overrides.update(mission_time_s=arena.agent_mission_s, battery_reserve=arena.battery.reserve)
    return overrides


def share_dir() -> str:
    """The installed package's share directory, or the source tree when not installed by colcon."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return get_package_share_directory(PACKAGE)
        except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH (a plain venv)
            pass
    except ImportError:
        pass
    return SOURCE_ROOT


def default_config_path(name: str = "agent.yaml") -> str:
    return os.path.join(share_dir(), "config", name)


def resolve_path(path: str) -> str:
    """A relative path names what exists under the working directory, the installed share directory
    or the source tree, first found first; one that exists nowhere is reported under the share dir."""
    if not path or os.path.isabs(path):
        return path
    for base in (os.getcwd(), share_dir(), SOURCE_ROOT):
        candidate = os.path.join(base, path)
        if os.path.exists(candidate):
            return candidate
    return os.path.join(share_dir(), path)


class ConfigError(ValueError):
    """A parameters file that cannot be read as `node_name: ros__parameters:` sections."""


def load_config(path: str) -> dict:
    """Checks a parameters file before it is handed to ROS, which reads it itself (wildcards such as
    `/**` and namespaces as ROS defines them; rcl's own error names neither file nor section).
    Returns section name's last part -> parameter dict (`/**/agent` and `/robot/agent` -> `agent`).

    Paths stay as written: the nodes resolve them with resolve_path, so a path set at run time
    (`ros2 param set /agent model ...`) follows the same rule as one from this file."""
    try:
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read parameters file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected `node_name: ros__parameters:` sections")
    params = {}
    for key, section in doc.items():
        values = section.get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: section {key!r} has no ros__parameters mapping")
        params[str(key).strip("/").split("/")[-1]] = _dotted(values)
    return params


def _dotted(values: dict, prefix: str = "") -> dict:
    """Nested mappings as ROS 2 reads them: {"energy": {"cpu": {"core_power_w": 2}}} ->
    {"energy.cpu.core_power_w": 2}."""
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat
