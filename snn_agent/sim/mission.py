"""The mission, closed loop and in process: the MuJoCo twin's camera feeds the agent's core
(snn_agent/agent_core.py, with its governor), the battery pays for motion, base load and each
inference's reported energy, and the governor reads that battery. The patrol drives past every panel
until the arena's mission time has passed (mission complete) or the battery is down to its reserve.

Time is simulated time throughout: the governor's clock, the battery's drain, the frame rate.
MissionLog keeps what is scored; the `sim` node (ros/sim_node.py) keeps one too, for the ROS graph.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..sensing.images import to_network_input
from .arena import Arena
from .mujoco_twin import MujocoTwin
from .patrol import Patrol

BATTERY_PERIOD_S = 0.5  # the agent hears the battery at 2 Hz, as from battery_sim or Gazebo's bridge


@dataclass
class FrameRecord:
    time_s: float
    battery: float  # charge fraction after the frame's step
    object_index: Optional[int]  # the object filling the view
    in_view: Optional[int]  # its class
    predicted: Optional[int]  # None: the agent did not classify this frame
    timesteps: int
    energy_j: float  # the agent's reported compute energy for it


class MissionLog:
    """Per-frame records and the mission's summary."""

    def __init__(self, arena: Arena):
        self.arena = arena
        self.records: list = []
        self.reserve_reached_s: Optional[float] = None
        self.drained_j: dict = {}
        self.wall_s = 0.0  # real time the loop took
        self.render_s = 0.0  # of which rendering
        self.agent_s = None  # and the agent (preprocessing, governor, inference), when run in process

    def add(self, record: FrameRecord) -> None:
        self.records.append(record)
        if self.reserve_reached_s is None and record.battery <= self.arena.battery.reserve:
            self.reserve_reached_s = record.time_s

    @property
    def time_s(self) -> float:
        return self.records[-1].time_s if self.records else 0.0

    def summary(self) -> dict:
        classified = [r for r in self.records if r.predicted is not None]
        scored = [r for r in classified if r.in_view is not None]
        drained = sum(self.drained_j.values())
        per_class, per_object = {}, {}
        for r in scored:
            for hits in (per_class.setdefault(self.arena.class_names[r.in_view], [0, 0]),
                         per_object.setdefault(r.object_index, [0, 0])):
                hits[0] += int(r.predicted == r.in_view)
                hits[1] += 1
        return {
            "sim_time_s": self.time_s,
            "completed": self.reserve_reached_s is None and self.time_s >= self.arena.mission_s - 1e-6,
            "time_to_reserve_s": self.reserve_reached_s,
            "frames": len(self.records), "frames_classified": len(classified), "frames_with_object": len(scored),
            "accuracy_on_objects": sum(r.predicted == r.in_view for r in scored) / len(scored) if scored else None,
            "accuracy_per_class": {name: hits[0] / hits[1] for name, hits in sorted(per_class.items())},
            "objects_seen": len(per_object),
            # each object counted once (as the source images are), however long it was in view
            "accuracy_per_object_mean": float(np.mean([h[0] / h[1] for h in per_object.values()])) if scored else None,
            "timesteps_mean": float(np.mean([r.timesteps for r in classified])) if classified else None,
            "energy_j_per_inference": float(np.mean([r.energy_j for r in classified])) if classified else None,
            "drained_j": dict(self.drained_j),
            "compute_share": self.drained_j.get("compute", 0.0) / drained if drained else None,
            "battery_left": self.records[-1].battery if self.records else 1.0,
            "wall_s": self.wall_s, "render_s": self.render_s, "agent_s": self.agent_s,
            "real_time_factor": self.time_s / self.wall_s if self.wall_s else None,
        }


class FrameCache:
    """The camera's frames by frame index. The patrol does not react to what the agent sees, so every
    policy's mission passes the same poses at the same times (until its battery gives out): a frame
    rendered once serves them all. Stops nothing: physics, battery and agent still run per policy."""

    def __init__(self):
        self.frames: dict = {}

    def get(self, index: int, render: Callable[[], np.ndarray]) -> tuple:
        """(frame, seconds spent rendering it now)."""
        if index in self.frames:
            return self.frames[index], 0.0
        start = time.perf_counter()
        frame = self.frames[index] = render()
        return frame, time.perf_counter() - start


def run_mission(arena: Arena, make_core: Callable, cache: Optional[FrameCache] = None, duration_s: float = 0.0,
                progress: Optional[Callable[[MissionLog], None]] = None) -> tuple:
    """Run the mission until the arena's mission time (or `duration_s` when given) has passed or the
    battery is at its reserve. make_core(clock) -> the AgentCore, on the simulated clock given.
    Returns (MissionLog, the core, closed)."""
    twin = MujocoTwin(arena)
    try:
        core = make_core(lambda: twin.time_s)
        try:
            log = _drive(twin, core, cache or FrameCache(), duration_s or arena.mission_s, progress)
        finally:
            core.close()
    finally:
        twin.close()
    return log, core


def _drive(twin: MujocoTwin, core, cache: FrameCache, end_s: float, progress) -> MissionLog:
    arena = twin.arena
    log = MissionLog(arena)
    patrol = Patrol(arena)
    frame_s = 1.0 / arena.camera.rate_hz
    capacity_j = twin.battery.capacity_j
    pre = core.model.network.preprocessing
    next_battery_s = 0.0
    log.agent_s = 0.0
    start = time.perf_counter()
    core.governor.start(twin.time_s)
    while twin.time_s < end_s - 1e-9 and log.reserve_reached_s is None:
        twin.command(*patrol.command(twin.time_s, *twin.pose))
        twin.step(frame_s)
        if twin.time_s >= next_battery_s:
            core.governor.update_battery(twin.time_s, twin.battery.percentage, capacity_j)
            next_battery_s += BATTERY_PERIOD_S
        frame, render_s = cache.get(len(log.records), twin.render)
        log.render_s += render_s
        agent_start = time.perf_counter()
        result = core.classify(to_network_input(frame, "rgb", pre))
        log.agent_s += time.perf_counter() - agent_start
        if result is not None:
            twin.add_compute_energy(result.energy.joules)
        index = twin.object_in_view()
        log.add(FrameRecord(twin.time_s, twin.battery.percentage, index,
                            None if index is None else arena.objects[index].class_id,
                            None if result is None else result.class_id,
                            0 if result is None else result.timesteps,
                            0.0 if result is None else result.energy.joules))
        log.wall_s = time.perf_counter() - start
        if progress is not None and len(log.records) % round(arena.camera.rate_hz) == 0:
            progress(log)
    log.drained_j = dict(twin.drained_j)
    return log
