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

from ..graph import ConfigError, default_config_path, graph_nodes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="parameters file (default: the package's config/agent.yaml)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds to run (0 = until Ctrl-C)")
    parser.add_argument("--backend", default="", help="cpu | lava | openvino; default: the config's choice")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")


def create_nodes(config_path: str, backend: str = "") -> list:
    """The nodes of the launch file's use_sim graph, with the same names, parameters and remappings.
    Needs rclpy initialised."""
    from rclpy.parameter import Parameter

    from .agent_node import AgentNode
    from .battery_sim_node import BatterySimNode
    from .camera_replay_node import CameraReplayNode

    classes = {"agent": AgentNode, "camera_replay": CameraReplayNode, "battery_sim": BatterySimNode}
    nodes = []
    for spec, params in graph_nodes(config_path, use_sim=True, backend=backend):
        remap = [arg for src, dst in spec.remappings for arg in ("-r", f"{src}:={dst}")]
        nodes.append(classes[spec.executable](
            cli_args=["--ros-args"] + remap,
            parameter_overrides=[Parameter(name, value=value) for name, value in params.items()]))
    return nodes


def main(args) -> int:
    if "ROS_DOMAIN_ID" not in os.environ:
        # A domain of our own, visible from this machine only: a second `snn-agent run` or a robot on
        # the network must not feed this graph frames or read its results.
        os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 101)
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    config_path = args.config or default_config_path()
    # Ctrl-C must reach the loop below as KeyboardInterrupt, so that the summary is printed and the
    # nodes stop before ROS does; rclpy's own handler would shut ROS down under the running graph.
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    nodes = []
    try:
        try:
            nodes = create_nodes(config_path, args.backend)
        except ConfigError as exc:
            print(f"snn-agent run: {exc}", file=sys.stderr)
            return 2
        agent, replay, battery = nodes
        executor = SingleThreadedExecutor()  # callbacks are short: inference has its own thread
        for node in nodes:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        print(f"snn-agent run: ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}, config {config_path}, "
              f"camera: {replay.data.name} test images, "
              f"{'%.0f s' % args.duration if args.duration else 'until Ctrl-C'}", file=sys.stderr)
        start = time.monotonic()
        try:
            while not args.duration or time.monotonic() - start < args.duration:
                time.sleep(0.5)
                _status_line(agent, battery.battery.percentage)
        except KeyboardInterrupt:
            pass
        sys.stderr.write("\n")
        summary = _summary(agent, replay, battery.battery.percentage)
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
    with agent._lock:
        s = agent.stats.summary()
    decision = agent.last_decision
    acc = "-" if s["accuracy"] is None else f"{100 * s['accuracy']:.1f}%"
    sys.stderr.write(f"\rframes {s['frames']:6d}  acc {acc:>6}  fps {s['fps_last_5s']:6.1f}  "
                     f"lat p50 {s['node_latency_ms_p50']:6.2f} ms  T {decision.point.timesteps if decision else '-':>3}  "
                     f"E {s['energy_j_per_inference']:.2e} J ({s['energy_kind']})  battery {100 * battery:5.1f}%  "
                     f"dropped {s['dropped']}   ")
    sys.stderr.flush()


def _summary(agent, replay, battery: float) -> dict:
    with agent._lock:
        s = agent.stats.summary()
    core = agent.core
    s["backend"] = core.backend.describe() if core else "none"
    s["fallback"] = core.fallback_reason if core else agent.configure_error
    s["policy"] = agent.get_parameter("policy").value
    s["dataset"] = replay.data.name
    s["model_calibrated_on"] = core.model.info.get("calibration_data") if core else None
    s["battery_percentage"] = battery
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in s.items()}


def _print_summary(s: dict) -> None:
    def number(value, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    rows = [("frames classified", s["frames"]), ("dropped (fell behind)", s["dropped"]),
            ("bad inputs", s["bad_input"]),
            ("accuracy", "-" if s["accuracy"] is None else f"{100 * s['accuracy']:.2f} % of {s['labelled']} "
                                                          f"({s['dataset']})"),
            ("frames/s (mean)", number(s["fps_mean"], ".1f")),
            ("backend latency p50 / p99", f"{number(s['backend_latency_ms_p50'], '.3f')} / "
                                          f"{number(s['backend_latency_ms_p99'], '.3f')} ms"),
            ("node latency p50 / p99", f"{number(s['node_latency_ms_p50'], '.3f')} / "
                                       f"{number(s['node_latency_ms_p99'], '.3f')} ms"),
            ("mean timesteps", number(s["timesteps_mean"], ".1f")),
            ("energy per inference", f"{number(s['energy_j_per_inference'], '.3e')} J ({s['energy_kind'] or '-'})"),
            ("backend", s["backend"] + (f" (fallback: {s['fallback']})" if s["fallback"] else "")),
            ("policy", s["policy"]), ("battery left", f"{100 * s['battery_percentage']:.2f} %")]
    print("\nsnn-agent run summary")
    for name, value in rows:
        print(f"  {name:<28} {value}")
    if s["model_calibrated_on"] and s["model_calibrated_on"] != s["dataset"]:
        print(f"  note: the camera replayed {s['dataset']}, but the model was calibrated on "
              f"{s['model_calibrated_on']}: its accuracy on these images says little")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m snn_agent.ros.run_graph", description=__doc__)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
