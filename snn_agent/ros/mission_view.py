"""What `snn-agent run --sim mujoco` shows: the closed-loop mission in the arena's MuJoCo twin, over
ROS (the agent, the `sim` node and the patrol in one process: the graph launch/sim.launch.py starts
around Gazebo), a live view of the mission, and its summary when it ends (mission time passed,
battery at its reserve, --duration of real time, or Ctrl-C). run_graph.main runs it."""
from __future__ import annotations

import math
import sys


def mission_view(nodes: list, simulator: str, config_path: str):
    from .run_graph import View, domain

    agent, sim, _patrol = nodes
    arena = sim.arena
    return View(f"snn-agent run --sim {simulator}: ROS_DOMAIN_ID={domain()}, arena {arena.name} ({len(arena.objects)} objects), mission "
                f"{arena.mission_s:.0f} s simulated, battery {arena.battery.full().capacity_j:.1f} J; config {config_path}",
                lambda: _status_line(sim), lambda: _summary(agent, sim), _print_summary,
                done=lambda: sim.finished, frames_key="frames_classified")


def _status_line(sim) -> None:
    with sim._reported:
        s = sim.log.summary()
        last = sim.log.records[-1] if sim.log.records else None
    in_view = "-" if last is None or last.in_view is None else sim.arena.class_names[last.in_view]
    acc = "-" if s["accuracy_on_objects"] is None else f"{100 * s['accuracy_on_objects']:.1f}%"
    share = "-" if s["compute_share"] is None else f"{100 * s['compute_share']:.0f}%"
    sys.stderr.write(f"\rt {s['sim_time_s']:6.1f}/{sim.arena.mission_s:.0f} s  x{s['real_time_factor'] or 0:5.1f} real time  "
                     f"frames {s['frames_classified']:5d}  in view {in_view:<12}  acc {acc:>6} of {s['frames_with_object']:4d}  "
                     f"T {last.timesteps if last else '-':>3}  battery {100 * s['battery_left']:5.1f}%  compute {share:>4}   ")
    sys.stderr.flush()


def _summary(agent, sim) -> dict:
    with sim._reported:
        s = sim.log.summary()
    s["backend"] = agent.core.backend.describe() if agent.core else "none"
    s["policy"] = agent.get_parameter("policy").value
    s["mission_s"] = sim.arena.mission_s
    s["reserve"] = sim.arena.battery.reserve
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()}


def _print_summary(s: dict) -> None:
    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.1f} %"

    outcome = ("complete" if s["completed"] else
               f"battery at its reserve ({s['reserve']:.0%}) after {s['time_to_reserve_s']:.1f} s"
               if s["time_to_reserve_s"] is not None else f"stopped at {s['sim_time_s']:.1f} s of {s['mission_s']:.0f} s")
    energy = "-" if s["energy_j_per_inference"] is None else f"{s['energy_j_per_inference']:.3e} J (modelled)"
    rows = [("mission", outcome), ("simulated time", f"{s['sim_time_s']:.1f} s ({s['real_time_factor'] or 0:.1f}x real time)"),
            ("frames classified", f"{s['frames_classified']} of {s['frames']}"),
            ("accuracy on objects", f"{pct(s['accuracy_on_objects'])} of {s['frames_with_object']} frames with an object in view"),
            ("mean timesteps", "-" if s["timesteps_mean"] is None else f"{s['timesteps_mean']:.2f}"),
            ("energy per inference", energy), ("compute share of drain", pct(s["compute_share"])),
            ("battery left", pct(s["battery_left"])), ("backend", s["backend"]), ("policy", s["policy"])]
    print("\nsnn-agent run --sim summary")
    for name, value in rows:
        print(f"  {name:<24} {value}")
