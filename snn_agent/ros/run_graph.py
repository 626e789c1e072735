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
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

from ..graph import (ConfigError, default_config_path, load_config, node_overrides, node_specs, sim_node_specs,
                     sim_overrides)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="parameters file (default: the package's config/agent.yaml)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds to run (0 = until Ctrl-C)")
    parser.add_argument("--backend", default="", help="cpu | lava | openvino; default: the config's choice")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    parser.add_argument("--sim", choices=["mujoco"], default=None,
                        help="the closed-loop mission in the arena's MuJoCo twin instead of a replayed camera "
                             "(sim and patrol nodes; config/sim.yaml; ends with the mission)")


def create_nodes(config_path: str, backend: str = "", sim: str = "") -> list:
    """The nodes of the launch file's use_sim graph (with `sim`: of sim.launch.py's, the simulator being
    the MuJoCo twin, whose nodes also read config/sim.yaml), with the same names, parameters files
    (handed to ROS as they are), overrides and remappings. Needs rclpy initialised; raises
    ConfigError for a parameters file that cannot be read."""
    from rclpy.parameter import Parameter

    from .agent_node import AgentNode
    from .battery_sim_node import BatterySimNode
    from .camera_replay_node import CameraReplayNode

    load_config(config_path)  # a clear error here rather than rcl's
    classes = {"agent": AgentNode, "camera_replay": CameraReplayNode, "battery_sim": BatterySimNode}
    files = [config_path]
    if sim:
        from .patrol_node import PatrolNode
        from .sim_node import SimNode

        classes.update(sim=SimNode, patrol=PatrolNode)
        sim_config = default_config_path("sim.yaml")
        load_config(sim_config)
        files.append(sim_config)
        specs, overrides = sim_node_specs(), lambda spec: sim_overrides(spec, sim_config, backend)
    else:
        specs, overrides = node_specs(use_sim=True), lambda spec: node_overrides(spec, backend)
    nodes = []
    for spec in specs:
        remap = [arg for src, dst in spec.remappings for arg in ("-r", f"{src}:={dst}")]
        nodes.append(classes[spec.executable](
            cli_args=["--ros-args"] + [arg for path in files for arg in ("--params-file", path)] + remap,
            parameter_overrides=[Parameter(name, value=value) for name, value in overrides(spec).items()]))
    return nodes


def main(args) -> int:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    config_path = args.config or default_config_path()
    # Ctrl-C must reach the loop below as KeyboardInterrupt, so that the summary is printed and the
    # nodes stop before ROS does; rclpy's own handler would shut ROS down under the running graph.
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    nodes = []
    try:
        try:
            nodes = create_nodes(config_path, args.backend, sim=args.sim or "")
        except (ConfigError, ValueError) as exc:  # a file, an arena or a parameter the user can fix
            print(f"snn-agent run: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # Ctrl-C while the model was loading: nothing ran, nothing to sum up
            print("\nsnn-agent run: interrupted while starting", file=sys.stderr)
            return 130
        if args.sim:
            from .mission_view import mission_view

            view = mission_view(nodes, args.sim, config_path)
        else:
            view = _replay_view(nodes, config_path, args.duration)
        with spinning(nodes):
            print(view.header, file=sys.stderr)
            watch(args.duration, view.status, view.done)
            summary = view.summary()
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    view.print_summary(summary)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary[view.frames_key] > 0 else 1


def domain() -> str:
    """The environment's domain, as every ROS tool uses it: `ros2 topic echo /agent/label` sees this graph."""
    return os.environ.get("ROS_DOMAIN_ID", "0")


@dataclass
class View:
    """What `snn-agent run` shows of a graph: a header, a live status line, a summary."""
    header: str
    status: Callable[[], None]
    summary: Callable[[], dict]
    print_summary: Callable[[dict], None]
    done: Callable[[], bool] = lambda: False  # the run ends by itself
    frames_key: str = "frames"  # the summary's count of classified frames


def _replay_view(nodes: list, config_path: str, duration: float) -> View:
    agent, replay, battery = nodes
    return View(f"snn-agent run: ROS_DOMAIN_ID={domain()}, config {config_path}, "
                f"camera: {replay.data.name} test images, {'%.0f s' % duration if duration else 'until Ctrl-C'}",
                lambda: _status_line(agent, battery.battery.percentage),
                lambda: _summary(agent, replay, battery.battery.percentage), _print_summary)


@contextmanager
def spinning(nodes: list):
    """The nodes spinning on a thread of their own for the duration of the block."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor()  # callbacks are short: inference has its own thread
    for node in nodes:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield
    finally:
        executor.shutdown(timeout_sec=2)
        spinner.join(timeout=2)


def watch(duration: float, status, done=lambda: False) -> None:
    """Call status() every 0.5 s until done(), `duration` seconds (0: no limit) or Ctrl-C."""
    start = time.monotonic()
    try:
        while not done() and (not duration or time.monotonic() - start < duration):
            time.sleep(0.5)
            status()
    except KeyboardInterrupt:
        pass
    sys.stderr.write("\n")


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
