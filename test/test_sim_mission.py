"""The MuJoCo twin (headless, CPU), the patrol and the closed-loop mission: real rendering, the real
agent core with the bundled model, the real battery model; and `snn-agent run --sim mujoco` over ROS."""
import dataclasses
import json
import math
import os
import re
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from conftest import BUNDLED_SNN, ROOT
from snn_agent.adaptation.governor import GovernorSettings
from snn_agent.agent_core import AgentCore, BackendChoice
from snn_agent.sensing.images import to_network_input
from snn_agent.sim.arena import ArenaError, load_arena
from snn_agent.sim.mission import FrameCache, run_mission
from snn_agent.sim.mujoco_twin import MujocoTwin
from snn_agent.sim.patrol import Patrol


@pytest.fixture(scope="module")
def arena():
    return load_arena()


@pytest.fixture
def twin(arena):
    twin = MujocoTwin(arena)
    yield twin
    twin.close()


def place(twin, pose):
    twin.data.qpos[:3] = pose
    mujoco.mj_forward(twin.model, twin.data)


def test_the_camera_sees_each_panel_as_its_dataset_image(arena, twin):
    core = AgentCore(BackendChoice(BUNDLED_SNN), GovernorSettings(policy="fixed", timesteps=16))
    try:
        pre = core.model.network.preprocessing
        images = arena.object_images()
        for index in (0, 7, 23):  # a T-shirt, a sneaker, a dress
            place(twin, arena.view_pose(index))
            assert twin.ground_truth() == arena.objects[index].class_id
            frame = twin.render()
            assert frame.shape == (arena.camera.height, arena.camera.width, 3) and frame.dtype == np.uint8
            seen = to_network_input(frame, "rgb", pre)
            shown = to_network_input(images[index][..., None], "gray", pre)
            # what the network gets from the rendered view is the dataset image, to within resampling
            # (all 40 panels: correlation 0.969 to 0.994)
            assert np.corrcoef(seen.ravel(), shown.ravel())[0, 1] > 0.96, index
        place(twin, arena.robot.start)
        assert twin.ground_truth() is None  # the ring's centre: nothing fills the view
        assert twin.render().mean() < 10  # a dark room
    finally:
        core.close()


def test_battery_drains_with_base_load_motion_and_reported_compute(arena, twin):
    b = arena.battery
    twin.step(1.0)
    assert twin.drained_j["base"] == pytest.approx(b.base_load_w) and twin.drained_j["motion"] == pytest.approx(0)
    twin.command(0.2, 0.0)
    twin.step(1.0)  # the velocity actuators reach the speed within a few tens of ms
    assert twin.velocity[0] == pytest.approx(0.2, rel=0.02)
    assert twin.drained_j["motion"] == pytest.approx(b.motion_power_w(0.2, 0.0), rel=0.05)
    twin.add_compute_energy(0.5)
    twin.add_compute_energy(float("nan"))  # ignored
    twin.step(0.1)
    assert twin.drained_j["compute"] == pytest.approx(0.5)
    drained = sum(twin.drained_j.values())
    assert twin.battery.energy_j == pytest.approx(twin.battery.capacity_j - drained)
    twin.command(99.0, -99.0)  # clipped to the robot's limits
    twin.step(1.0)
    assert twin.velocity[0] == pytest.approx(arena.robot.max_speed, rel=0.02)
    assert twin.velocity[1] == pytest.approx(-arena.robot.max_turn_rate, rel=0.02)


def test_patrol_brings_every_object_into_view_within_the_mission(arena, twin):
    patrol = Patrol(arena)
    seen = set()
    frame_s = 1 / arena.camera.rate_hz
    while patrol.laps < 1 and twin.time_s < arena.mission_s:
        twin.command(*patrol.command(twin.time_s, *twin.pose))
        twin.step(frame_s)
        index = arena.object_in_view(*twin.pose)
        if index is not None:
            seen.add(index)
    assert seen == set(range(len(arena.objects)))
    assert twin.time_s < arena.mission_s


def test_bad_arena_files_say_what_is_wrong(tmp_path):
    text = open(os.path.join(ROOT, "worlds", "arena.yaml")).read()
    cases = {"class": text.replace("class: 'Sneaker'", "class: 'Sneakers'", 1),
             "Trouser": text.replace("image:    2,", "image:    0,", 1),  # image 0 is an ankle boot
             "battery": text.replace("voltage: 3.7", "voltage: -1", 1)}
    for expected, broken in cases.items():
        path = tmp_path / "arena.yaml"
        path.write_text(broken)
        with pytest.raises(ArenaError, match=expected):
            load_arena(str(path)).object_images()
    with pytest.raises(ArenaError, match="cannot read"):
        load_arena(str(tmp_path / "missing.yaml"))


def make_core(arena, policy, timesteps=16):
    def make(clock):
        return AgentCore(BackendChoice(BUNDLED_SNN), GovernorSettings(
            policy=policy, timesteps=timesteps, mission_time_s=arena.agent_mission_s,
            battery_reserve=arena.battery.reserve,
            frame_rate_hz=arena.camera.rate_hz), clock=clock)
    return make


def test_short_mission_adaptive_completes_where_the_fixed_baseline_does_not(arena):
    """A 25 s mission (the drive to the ring and the first panels). The battery is sized from the same
    run: between what fixed T=16 and fixed T=1 drain, so that compute decides the outcome."""
    short = dataclasses.replace(arena, mission_s=25.0, battery=dataclasses.replace(arena.battery, capacity_ah=1.0))
    cache = FrameCache()
    drained = {}
    for t in (16, 1):
        log, _ = run_mission(short, make_core(short, "fixed", t), cache)
        summary = log.summary()
        assert summary["completed"] and summary["frames_classified"] == 250
        assert summary["timesteps_mean"] == t
        # each inference is paid on the next step: the last one is still owed when the mission ends
        assert log.drained_j["compute"] == pytest.approx(sum(r.energy_j for r in log.records[:-1]))
        drained[t] = sum(log.drained_j.values())
        if t == 16:
            assert summary["frames_with_object"] >= 20  # the first panel, seen while the patrol dwells
            assert summary["accuracy_on_objects"] >= 0.8
            assert summary["real_time_factor"] > 2  # at 10 frames/s, rendering included
    usable_j = (drained[16] + drained[1]) / 2
    capacity_ah = usable_j / (1 - arena.battery.reserve) / (3600 * arena.battery.voltage)
    sized = dataclasses.replace(short, battery=dataclasses.replace(arena.battery, capacity_ah=capacity_ah))
    fixed, _ = run_mission(sized, make_core(sized, "fixed", 16), cache)
    adaptive, _ = run_mission(sized, make_core(sized, "battery", 16), cache)  # told the mission with its margin
    fixed, adaptive = fixed.summary(), adaptive.summary()
    assert not fixed["completed"] and fixed["time_to_reserve_s"] < sized.mission_s
    assert adaptive["completed"], adaptive
    assert adaptive["timesteps_mean"] < 16 and adaptive["battery_left"] > arena.battery.reserve


def test_snn_agent_run_sim_mujoco_runs_the_mission_over_ros():
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    proc = subprocess.run([sys.executable, "-m", "snn_agent.cli", "run", "--sim", "mujoco", "--duration", "8", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(re.findall(r"x *[\d.]+ real time +frames +\d+", proc.stderr)) >= 8  # the live view, ~2 Hz
    assert "snn-agent run --sim summary" in proc.stdout
    s = json.loads(proc.stdout.strip().splitlines()[-1])
    # lockstep: the agent classifies each frame before time moves on (a report later than the 0.5 s
    # lockstep timeout, on a loaded machine, lets a frame pass unclassified)
    assert s["frames"] > 100 and s["frames_classified"] >= 0.95 * s["frames"]
    assert s["sim_time_s"] > 8 * 2  # faster than real time
    assert s["frames_with_object"] > 0 and s["accuracy_on_objects"] is not None
    assert 0 < s["compute_share"] < 1 and s["battery_left"] < 1
    assert math.isclose(s["drained_j"]["base"], s["sim_time_s"] * load_arena().battery.base_load_w, rel_tol=0.02)
    assert "Traceback" not in proc.stderr
