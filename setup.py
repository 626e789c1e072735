"""ament_python package: `colcon build` on a ROS 2 install, or `pip install -e .` in a venv."""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "snn_agent"
NODES = {
    "agent": "snn_agent.ros.agent_node:main",
    "camera_replay": "snn_agent.ros.camera_replay_node:main",
    "battery_sim": "snn_agent.ros.battery_sim_node:main",
    "sim": "snn_agent.ros.sim_node:main",
    "patrol": "snn_agent.ros.patrol_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        (os.path.join("share", PACKAGE, "launch"), glob("launch/*.launch.py")),
        (os.path.join("share", PACKAGE, "config"), glob("config/*.yaml")),
        (os.path.join("share", PACKAGE, "models"), glob("models/*.onnx")),
        # the arena and its Gazebo world; textures exist once written (python -m snn_agent.sim.gazebo)
        (os.path.join("share", PACKAGE, "worlds"), glob("worlds/*.yaml") + glob("worlds/*.sdf")),
        (os.path.join("share", PACKAGE, "worlds", "textures"), glob("worlds/textures/*.png")),
    ] + [
        # converted model directories ship with the package so the launch file works as installed
        (os.path.join("share", PACKAGE, d), [f for f in glob(os.path.join(d, "*.*")) if os.path.isfile(f)])
        for d in sorted(glob("models/*/") + glob("models/*/*/"))
        if os.path.isfile(os.path.join(d, "snn.json")) or os.path.isfile(os.path.join(d, "..", "snn.json"))
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="snn_agent developers",
    description="DNN-to-SNN conversion and adaptive-timestep spiking inference for ROS 2 robots",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in NODES.items()]
        + ["snn-agent = snn_agent.cli:main"],
    },
)
