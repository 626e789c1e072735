"""The node graph, described once: launch/agent.launch.py and `snn-agent run` both build it from here."""
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


def node_specs(use_sim: bool) -> list:
    """The agent alone on a robot; with use_sim, a replayed camera and a simulated battery too."""
    return [AGENT, CAMERA_REPLAY, BATTERY_SIM] if use_sim else [AGENT]


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


def default_config_path() -> str:
    return os.path.join(share_dir(), "config", "agent.yaml")


def resolve_path(path: str) -> str:
    """Relative paths in the config are relative to the share directory (or the source tree)."""
    if not path or os.path.isabs(path):
        return path
    for base in (os.getcwd(), share_dir(), SOURCE_ROOT):
        candidate = os.path.join(base, path)
        if os.path.exists(candidate):
            return candidate
    return os.path.join(share_dir(), path)


def load_config(path: str) -> dict:
    """node name -> parameter dict, from a `node_name: ros__parameters:` file."""
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    params = {}
    for node, section in doc.items():
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ValueError(f"{path}: section {node!r} has no ros__parameters")
        params[node.strip("/")] = dict(section["ros__parameters"] or {})
    return params
