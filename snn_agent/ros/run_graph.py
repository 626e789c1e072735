"""`snn-agent run`: the graph `agent.launch.py use_sim:=true` starts, in one process, with a live
status line and a closing summary (`--json`: the last line is one JSON object)."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time

from ..graph import default_config_path, load_config, node_specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="parameters file (default: the package's config/agent.yaml)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds to run (0 = until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")


def _ros_args(spec, params: dict) -> dict:
    """Node constructor arguments equal to what the launch file gives the same node."""
    from rclpy.parameter import Parameter

    cli = ["--ros-args"] + [arg for src, dst in spec.remappings for arg in ("-r", f"{src}:={dst}")]
    overrides = [Parameter(name, value=value) for name, value in params.get(spec.name, {}).items()]
    return {"cli_args": cli, "parameter_overrides": overrides}


def main(args) -> int:
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))  # keep out of other graphs' way
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from .agent_node import AgentNode
    from .battery_sim_node import BatterySimNode
    from .camera_replay_node import CameraReplayNode

    classes = {"agent": AgentNode, "camera_replay": CameraReplayNode, "battery_sim": BatterySimNode}
    config_path = args.config or default_config_path()
    params = load_config(config_path)
    rclpy.init(args=[])
    nodes = []
    try:
        nodes = [classes[spec.name](**_ros_args(spec, params)) for spec in node_specs(use_sim=True)]
        agent = nodes[0]
        battery = {"percentage": math.nan}
        battery_node = next(n for n in nodes if isinstance(n, BatterySimNode))
        executor = SingleThreadedExecutor()  # callbacks are short: inference has its own thread
        for node in nodes:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        print(f"snn-agent run: ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}, config {config_path}, "
              f"{'%.0f s' % args.duration if args.duration else 'until Ctrl-C'}", file=sys.stderr)
        start = time.monotonic()
        try:
            while not args.duration or time.monotonic() - start < args.duration:
                time.sleep(0.5)
                battery["percentage"] = battery_node.battery.percentage
                _status_line(agent, battery["percentage"])
        except KeyboardInterrupt:
            pass
        sys.stderr.write("\n")
        summary = _summary(agent, battery["percentage"])
        executor.shutdown(timeout_sec=2)
        spinner.join(timeout=2)
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["frames"] > 0 else 1


def _status_line(agent, battery: float) -> None:
    s = agent.core.stats.summary()
    decision = agent._last_decision
    acc = "-" if s["accuracy"] is None else f"{100 * s['accuracy']:.1f}%"
    sys.stderr.write(f"\rframes {s['frames']:6d}  acc {acc:>6}  fps {agent.core.stats.fps:6.1f}  "
                     f"lat p50 {s['latency_ms_p50']:6.2f} ms  T {decision.point.timesteps if decision else '-':>3}  "
                     f"E {s['energy_j_per_inference']:.2e} J ({s['energy_kind']})  battery {100 * battery:5.1f}%  "
                     f"dropped {s['dropped']}   ")
    sys.stderr.flush()


def _summary(agent, battery: float) -> dict:
    s = agent.core.stats.summary()
    s["backend"] = agent.core.backend.describe() if agent.core.ready else "none"
    s["fallback"] = agent.core.fallback_reason
    s["policy"] = agent.core.settings.policy
    s["battery_percentage"] = battery
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()}


def _print_summary(s: dict) -> None:
    rows = [("frames classified", s["frames"]), ("dropped (fell behind)", s["dropped"]),
            ("bad inputs", s["bad_input"]),
            ("accuracy", "-" if s["accuracy"] is None else f"{100 * s['accuracy']:.2f} % of {s['labelled']}"),
            ("frames/s", f"{s['fps']:.1f}"),
            ("latency p50 / p99", f"{s['latency_ms_p50']:.3f} / {s['latency_ms_p99']:.3f} ms"
             if s["latency_ms_p50"] is not None else "-"),
            ("mean timesteps", s["timesteps_mean"]),
            ("energy per inference", f"{s['energy_j_per_inference']:.3e} J ({s['energy_kind']})"
             if s["energy_j_per_inference"] is not None else "-"),
            ("backend", s["backend"]), ("policy", s["policy"]),
            ("battery left", f"{100 * s['battery_percentage']:.2f} %")]
    print("\nsnn-agent run summary")
    for name, value in rows:
        print(f"  {name:<22} {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m snn_agent.ros.run_graph", description=__doc__)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
