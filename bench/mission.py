#!/usr/bin/env python3
"""The closed-loop mission in the MuJoCo twin: each fixed T and the adaptive policy, from the same
full battery.

    .venv/bin/python bench/mission.py [--quick] [--timesteps 1,2,4,8,16] [--baseline 16]

The robot patrols the arena (worlds/arena.yaml: 40 panels showing Fashion-MNIST test images, the
first four of each class) for the mission's simulated time; its camera (64x64, 10 frames/s) feeds the
bundled model's agent core (cpu backend); the battery pays base load, motion and each inference's
reported energy (CPU time x 5 W: modelled); the governor (policy `battery`) reads that battery.
A mission is complete when the battery is still above its reserve at the end. The adaptive policy
runs twice: told the arena's mission time, and told it with the arena's planning margin (5 %).

The closed loop runs in process (snn_agent/sim/mission.py), on simulated time. The patrol does not
react to what the agent sees, so all policies pass the same poses at the same times: the frames are
rendered once, during the first mission (the adaptive one, whose speed is the loop's speed), and
replayed to the others; physics, battery and agent run for every policy.

Also: the accuracy on rendered views against the dataset's own (the operating point's held-out test
accuracy, and the same 40 source images classified directly), and how large the compute's share of
the drain must be for adaptation to pay, from the measured figures.
Writes bench/results/mission.json and bench/results/mission.png (--quick: bench/results/quick/).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from snn_agent.adaptation.governor import GovernorSettings  # noqa: E402
from snn_agent.agent_core import AgentCore, BackendChoice  # noqa: E402
from snn_agent.sensing.images import to_network_input  # noqa: E402
from snn_agent.sim.arena import load_arena  # noqa: E402
from snn_agent.sim.mission import FrameCache, run_mission  # noqa: E402
from results_file import output_path, write_results  # noqa: E402

MODEL_DIR = os.path.join(ROOT, "models", "fashion_cnn_snn")
ADAPTIVE = "adaptive"


def make_core_factory(arena, policy: str, timesteps: int, mission_time_s: float):
    settings = dict(policy=policy, timesteps=timesteps, mission_time_s=mission_time_s,
                    battery_reserve=arena.battery.reserve, frame_rate_hz=arena.camera.rate_hz)

    def make(clock):
        core = AgentCore(BackendChoice(MODEL_DIR, "cpu"), GovernorSettings(**settings), clock=clock)
        if not core.ready:
            raise SystemExit(f"bench/mission.py: {core.fallback_reason}")
        return core
    return make


def source_accuracy(arena, timesteps: int) -> float:
    """The fixed-T agent on the panels' own dataset images: what the rendered views are compared with."""
    core = AgentCore(BackendChoice(MODEL_DIR, "cpu"), GovernorSettings(policy="fixed", timesteps=timesteps))
    try:
        pre = core.model.network.preprocessing
        hits = [core.classify(to_network_input(image[..., None], "gray", pre)).class_id == obj.class_id
                for image, obj in zip(arena.object_images(), arena.objects)]
        return float(np.mean(hits))
    finally:
        core.close()


def compute_share_needed(rows: dict, baseline: int) -> dict:
    """From the measured runs: the baseline's compute share of the drain, and the largest part of the
    drain adaptation can save (running the cheapest point instead of the baseline for the mission)."""
    base = rows[f"T={baseline}"]
    cheapest = min((r for name, r in rows.items() if name.startswith("T=")), key=lambda r: r["energy_j_per_inference"])
    ratio = cheapest["energy_j_per_inference"] / base["energy_j_per_inference"]
    share = base["compute_share"]
    return {
        "baseline_compute_share": share,
        "cheapest_over_baseline_energy": ratio,
        "largest_saving_of_drain": share * (1 - ratio),
        "rule": "a battery short by a fraction f of the baseline's drain is saved by adaptation only if "
                "compute share >= f / (1 - E_cheapest / E_baseline)",
        "share_needed_per_shortfall": {f"{f:.0%}": f / (1 - ratio) for f in (0.01, 0.05, 0.1, 0.2)},
    }


def plot(path: str, logs: dict, arena, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for name, log in logs.items():
        t = np.array([r.time_s for r in log.records])
        style = {"linewidth": 2.2, "color": "black" if name == ADAPTIVE else "grey"} if name.startswith(ADAPTIVE) \
            else {"linewidth": 1}
        axes[0].plot(t, [100 * r.battery for r in log.records], label=name, **style)
        axes[1].plot(t, [r.timesteps for r in log.records], label=name, **style)
        scored = [(r.time_s, r.predicted == r.in_view) for r in log.records
                  if r.in_view is not None and r.predicted is not None]
        if scored:
            ts, hits = np.array(scored).T
            axes[2].plot(ts, 100 * np.cumsum(hits) / np.arange(1, len(hits) + 1), label=name, **style)
    axes[0].axhline(100 * arena.battery.reserve, color="red", linestyle=":", label="reserve")
    axes[0].set_ylabel("battery (%)")
    axes[1].set_ylabel("timesteps T")
    axes[1].set_yscale("log", base=2)
    axes[2].set_ylabel("accuracy on objects\nin view, running (%)")
    axes[2].set_xlabel("simulated time (s)")
    axes[0].legend(fontsize=8, ncol=4)
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="a 60 s mission with the battery scaled to it (a smoke test: the outcome is not the "
                         "full mission's), T 1 and 16")
    ap.add_argument("--timesteps", default="1,2,4,8,16", help="fixed T to run (comma-separated)")
    ap.add_argument("--baseline", type=int, default=16, help="the fixed baseline T (the model's best accuracy)")
    ap.add_argument("--arena", default="", help="arena file (default worlds/arena.yaml)")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results[/quick]/mission.json)")
    args = ap.parse_args()
    arena = load_arena(args.arena)
    grid = [1, args.baseline] if args.quick else sorted({int(t) for t in args.timesteps.split(",")} | {args.baseline})
    if args.quick:
        scale = 60.0 / arena.mission_s
        arena = dataclasses.replace(arena, mission_s=60.0, battery=dataclasses.replace(
            arena.battery, capacity_ah=arena.battery.capacity_ah * scale))
    out = output_path("mission.json", args.quick, args.out)
    battery_j = arena.battery.full().capacity_j
    print(f"arena {arena.name}: {len(arena.objects)} objects, mission {arena.mission_s:.0f} s simulated, camera "
          f"{arena.camera.width}x{arena.camera.height} at {arena.camera.rate_hz:g} frames/s, battery {battery_j:.2f} J "
          f"(reserve {arena.battery.reserve:.0%}), base load {arena.battery.base_load_w} W, motion "
          f"{arena.battery.motion_w_per_mps} W per m/s + {arena.battery.turning_w_per_radps} W per rad/s", flush=True)

    cache = FrameCache()
    logs, rows = {}, {}
    started = time.time()
    # the governor spends down to the reserve at the end of the mission it is told: told the arena's
    # mission plainly, and with the arena's planning margin (as `snn-agent run --sim` tells the agent)
    runs = [(ADAPTIVE, "battery", args.baseline, arena.mission_s),
            (f"{ADAPTIVE}+{arena.mission_margin:.0%}", "battery", args.baseline, arena.agent_mission_s)]
    for name, policy, t, mission_time_s in runs + [(f"T={t}", "fixed", t, arena.mission_s) for t in grid]:
        log, core = run_mission(arena, make_core_factory(arena, policy, t, mission_time_s), cache)
        logs[name] = log
        rows[name] = log.summary()
        if policy == "fixed":
            point = min(core.governor.points, key=lambda p: abs(p.timesteps - t))
            rows[name]["dataset_accuracy"] = point.accuracy  # profiled on 2000 held-out test images
            rows[name]["source_images_accuracy"] = source_accuracy(arena, t)
        s = rows[name]
        print(f"  {name:12s} {'complete' if s['completed'] else 'reserve at %.0f s' % s['time_to_reserve_s']:>18s}  "
              f"{s['frames_classified']} frames, {s['real_time_factor']:.1f}x real time", flush=True)

    live = rows[ADAPTIVE]
    frames = live["frames"]
    speed = {"real_time_factor": live["real_time_factor"], "frames": frames,
             "ms_per_frame": 1e3 * live["wall_s"] / frames, "render_ms_per_frame": 1e3 * live["render_s"] / frames,
             "agent_ms_per_frame": 1e3 * live["agent_s"] / frames,
             "physics_and_rest_ms_per_frame": 1e3 * (live["wall_s"] - live["render_s"] - live["agent_s"]) / frames,
             "camera_period_ms": 1e3 / arena.camera.rate_hz}
    share = compute_share_needed(rows, args.baseline)

    print(f"\nmission: {arena.mission_s:.0f} s simulated; energy per inference and compute share modelled "
          f"(CPU time x 5 W per core, energy/constants.py CpuPower); battery {battery_j:.2f} J")
    print(f"{'policy':12s} {'outcome':>17s} {'frames':>7s} {'rendered':>9s} {'dataset':>8s} {'per obj':>8s} "
          f"{'source':>7s} {'mean T':>7s} {'E/inf mJ':>9s} {'compute':>8s} {'battery':>8s}")

    def pct(value, digits=1):
        return "-" if value is None else f"{100 * value:.{digits}f}%"

    for name, s in rows.items():
        outcome = "complete" if s["completed"] else f"reserve {s['time_to_reserve_s']:.0f} s"
        print(f"{name:12s} {outcome:>17s} {s['frames_classified']:7d} {pct(s['accuracy_on_objects']):>9s} "
              f"{pct(s.get('dataset_accuracy')):>8s} {pct(s['accuracy_per_object_mean']):>8s} "
              f"{pct(s.get('source_images_accuracy'), 0):>7s} {s['timesteps_mean']:7.2f} "
              f"{1e3 * s['energy_j_per_inference']:9.3f} {100 * s['compute_share']:7.1f}% {100 * s['battery_left']:7.1f}%")
    print("  rendered: accuracy on the frames where a panel fills the view; dataset: the operating point's accuracy on "
          "2000 held-out test images (the target: rendered within 5 points of it); per obj: rendered, each of the "
          f"{len(arena.objects)} panels weighted once; source: those panels' own dataset images, classified directly "
          "(per obj against source: what rendering alone loses)")
    print(f"\nloop speed (the adaptive mission, rendering live; machine shared with other work): "
          f"{speed['real_time_factor']:.1f}x real time at {arena.camera.rate_hz:g} frames/s; per frame "
          f"{speed['ms_per_frame']:.2f} ms = render {speed['render_ms_per_frame']:.2f} + agent "
          f"{speed['agent_ms_per_frame']:.2f} + physics, battery, patrol {speed['physics_and_rest_ms_per_frame']:.2f}")
    print(f"compute's share of the drain at T={args.baseline}: {100 * share['baseline_compute_share']:.1f}%; the cheapest "
          f"point costs {share['cheapest_over_baseline_energy']:.2f}x its energy, so adaptation can save at most "
          f"{100 * share['largest_saving_of_drain']:.1f}% of the drain; share needed to cover a shortfall of "
          + ", ".join(f"{f}: {100 * v:.0f}%" for f, v in share["share_needed_per_shortfall"].items()))

    png = os.path.splitext(out)[0] + ".png"
    os.makedirs(os.path.dirname(png), exist_ok=True)
    plot(png, logs, arena, f"mission in the MuJoCo twin ({arena.mission_s:.0f} s, battery {battery_j:.1f} J, "
                           f"energies modelled)")
    result = {"arena": args.arena or "worlds/arena.yaml",
              "model": "models/fashion_cnn_snn", "backend": "cpu", "quick": args.quick,
              "mission_s": arena.mission_s, "battery_j": battery_j, "reserve": arena.battery.reserve,
              "energy": "modelled: CPU time x 5 W per core (snn_agent/energy/constants.py CpuPower)",
              "policies": rows, "speed": speed, "compute_share": share, "seconds": time.time() - started}
    write_results(out, result, args.quick)
    print(f"wrote {out} and {png} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
