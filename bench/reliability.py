#!/usr/bin/env python3
"""The agent under flood, hostile input, a long run, faults and corrupt model files.

    .venv/bin/python bench/reliability.py [--quick] [--soak-s S] [--only PART[,PART]]

The agent runs in a process of its own (this file, `--serve agent`), driven over DDS (localhost)
by a client node in this process, as a robot's other nodes would. Beside it, the floor of the
measurement: a trivial rclpy node (`--serve echo`) that answers each image with a label.

  latency   one frame in flight at a time (client publish -> label received), agent (cpu backend,
            T=16, fixed policy) and echo alternately (A B A B), and the first label after start
  flood     frames as fast as one publisher sends them: rate, labels/s, RSS growth (anonymous), latency of
            classified frames (a lower bound: a label is matched to the newest frame of its class
            sent before it, 10 images of distinct classes in rotation), the node's own p99
  hostile   malformed Image and CompressedImage messages of every kind at full rate with valid ones
  soak      30 frames/s: RSS slope (anonymous), p99 latency in the first and the last window
  faults    a Lava runtime process killed mid-run; a backend that raises on every frame; lifecycle
            cycled (configure/activate/deactivate/cleanup) with threads, fds and child processes counted
  corrupt   model files: truncated weights, wrong shapes, NaN weights, garbage snn.json, a missing
            file, a model directory that is a file, each set live while the agent runs

Writes bench/results/reliability.json (bench/results/quick/ with --quick; --out elsewhere); with
--only, the parts not run are kept from the file, each with the record of its own run. The machine
may be shared: the latency comparison is interleaved and repeated, and its spread reported.

The latency target alone:  .venv/bin/python bench/reliability.py --only latency
The hour's soak:           .venv/bin/python bench/reliability.py --only soak --out bench/results/reliability_soak.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 101))  # a domain of the bench's own
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # the agent is another process on this machine

import numpy as np  # noqa: E402

from results_file import output_path, write_results  # noqa: E402

MODEL_DIR = os.path.join(ROOT, "models", "fashion_cnn_snn")
PARTS = ("latency", "flood", "hostile", "soak", "faults", "corrupt")
AGENT_PARAMS = {"model": MODEL_DIR, "backend": "cpu", "policy": "fixed", "timesteps": 16,
                "diagnostics_period_s": 0.2}


# --- the processes under test ------------------------------------------------------------------
def serve(kind: str, ros_args: list) -> None:
    """Entry point of a process under test: the agent, the echo floor, or the agent on a backend
    that raises on every frame."""
    from snn_agent.ros.spin import spin_node

    if kind == "echo":
        spin_node(EchoNode, ros_args)
        return
    from snn_agent.backends import BackendError, create_backend
    from snn_agent.ros.agent_node import AgentNode

    def raising(name, **options):
        backend = create_backend(name, **options)

        def infer(*args, **kwargs):
            raise BackendError("inference fails on every frame (bench fault)")
        backend.infer = infer
        return backend

    factory = raising if kind == "raising" else create_backend
    spin_node(lambda: AgentNode(factory), ros_args)


def EchoNode():  # noqa: N802 - a node class in all but name: built after rclpy.init
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    class Echo(Node):
        def __init__(self):
            super().__init__("agent")
            self.pub = self.create_publisher(String, "~/label", 10)
            self.create_subscription(Image, "image", lambda m: self.pub.publish(String(data="echo")),
                                     qos_profile_sensor_data)
    return Echo()


class Served:
    """A process under test, with what /proc says about it."""

    def __init__(self, kind: str, params: dict, log_dir: str):
        args = [arg for name, value in params.items() for arg in ("-p", f"{name}:={value}")]
        self.log_path = os.path.join(log_dir, f"{kind}_{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", kind, "--ros-args"] + args,
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        """The process's anonymous resident memory (RssAnon: heap, stacks), where a leak grows. The
        file-backed part of VmRSS (mapped libraries) is left out: the kernel drops and reloads it
        under other processes' memory pressure (seen here: VmRSS fell by 100 MB mid-run)."""
        with open(f"/proc/{self.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:")) / 1024

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def children(self) -> list:
        found = []
        for task in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{task}/children") as f:
                    found += [int(pid) for pid in f.read().split()]
            except OSError:
                pass
        return sorted(found)

    @staticmethod
    def command_of(pid: int) -> str:
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                return f.read().replace("\0", " ").strip()[:120]
        except OSError:
            return f"{pid} (gone)"

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


# --- the client ----------------------------------------------------------------------------------
class Client:
    """A node in this process that talks to the one under test, spun in a background thread."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from lifecycle_msgs.srv import ChangeState
        from rcl_interfaces.srv import SetParameters
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        if not rclpy.ok():
            rclpy.init()
        self.node = Node("reliability_client")
        self.image = self.node.create_publisher(Image, "image", qos_profile_sensor_data)
        self.compressed = self.node.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
        self.labels: list = []  # (perf_counter at arrival, label)
        self.diag: dict = {}
        self.node.create_subscription(String, "agent/label",
                                      lambda m: self.labels.append((time.perf_counter(), m.data)), 1000)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.change_state = self.node.create_client(ChangeState, "agent/change_state")
        self.set_parameters = self.node.create_client(SetParameters, "agent/set_parameters")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_diag(self, msg) -> None:
        status = msg.status[0]
        values = {kv.key: kv.value for kv in status.values}
        values["_level"], values["_message"] = int.from_bytes(status.level, "little"), status.message
        values["_arrival"] = time.monotonic()
        self.diag = values

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self.thread.join(timeout=5)
        self.node.destroy_node()

    def wait(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.005)
        return False

    def fresh_diag(self, predicate=lambda v: True, timeout: float = 5.0) -> dict:
        since = time.monotonic()
        self.wait(lambda: self.diag.get("_arrival", 0) > since and predicate(self.diag), timeout)
        return dict(self.diag)

    def image_msg(self, image: np.ndarray):
        from sensor_msgs.msg import Image

        h, w = image.shape[:2]
        msg = Image(height=h, width=w, encoding="mono8", step=w, data=image.tobytes())
        msg.header.stamp = self.node.get_clock().now().to_msg()
        return msg

    def send(self, image: np.ndarray) -> float:
        sent = time.perf_counter()
        self.image.publish(self.image_msg(image))
        return sent

    def round_trip(self, image: np.ndarray, timeout: float = 2.0):
        """One frame in flight: seconds from publish to its label, or None if none came."""
        before = len(self.labels)
        sent = self.send(image)
        if not self.wait(lambda: len(self.labels) > before, timeout):
            return None
        return self.labels[before][0] - sent

    def first_label_after_start(self, served: Served, image: np.ndarray, timeout: float = 120.0):
        """Seconds from process start to the first label, sending a frame every 10 ms meanwhile."""
        before = len(self.labels)
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.labels) == before and served.alive():
            self.send(image)
            time.sleep(0.01)
        if len(self.labels) == before:
            raise RuntimeError(f"no label from {served.log_path}")
        return self.labels[before][0] - (served.started - time.monotonic() + time.perf_counter())

    def wait_for_state(self, served: Served, state: str, timeout: float = 120.0) -> None:
        """Until /diagnostics from this process (not one before it) reports the lifecycle state."""
        if not self.wait(lambda: self.diag.get("_arrival", 0) > served.started and self.diag.get("state") == state,
                         timeout):
            raise RuntimeError(f"the agent did not reach {state!r}; see {served.log_path}")
        self.wait(self.change_state.service_is_ready, 10)

    def set_parameter(self, name: str, value) -> tuple:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        future = self.set_parameters.call_async(SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()]))
        self.wait(future.done, 30)
        result = future.result().results[0]
        return result.successful, result.reason

    def transition(self, transition_id: int) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        future = self.change_state.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        return self.wait(future.done, 60) and future.result().success


def percentiles_ms(seconds: list) -> dict:
    if not seconds:
        return {"n": 0, "p50_ms": None, "p99_ms": None}
    ms = 1e3 * np.asarray(seconds)
    return {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def test_images(n: int = 200):
    from snn_agent.data import datasets

    data = datasets.load(datasets.default_dataset_name(), "test").subset(n)
    return data.images[:, :, :, 0], data.name


def distinct_class_images(client: Client, images: np.ndarray) -> list:
    """Up to 10 images the agent labels differently (one per class), found by asking it."""
    chosen = {}
    for image in images:
        if client.round_trip(image) is not None:
            chosen.setdefault(client.labels[-1][1], image)
        if len(chosen) == 10:
            break
    return list(chosen.items())


# --- the parts -----------------------------------------------------------------------------------
def part_latency(client, images, log_dir, frames: int, rounds: int) -> dict:
    runs = {"agent": [], "echo": []}
    for _ in range(rounds):
        for kind in ("agent", "echo"):
            served = Served(kind, AGENT_PARAMS if kind == "agent" else {}, log_dir)
            try:
                first = client.first_label_after_start(served, images[0])
                for image in images[:50]:  # warm-up: discovery settled, caches warm
                    client.round_trip(image)
                trips = [client.round_trip(images[i % len(images)]) for i in range(frames)]
                lost = sum(t is None for t in trips)
                runs[kind].append({"first_label_s": first, "lost": lost,
                                   **percentiles_ms([t for t in trips if t is not None])})
            finally:
                served.stop()
            time.sleep(1.0)  # the previous node's graph entries leave
    added = [{"p50_ms": a["p50_ms"] - e["p50_ms"], "p99_ms": a["p99_ms"] - e["p99_ms"]}
             for a, e in zip(runs["agent"], runs["echo"])]
    return {"frames_per_run": frames, "rounds": rounds, "runs": runs, "agent_minus_echo": added,
            "added_p50_ms_median": float(np.median([d["p50_ms"] for d in added])),
            "added_p99_ms_median": float(np.median([d["p99_ms"] for d in added])),
            "first_label_s_median": float(np.median([r["first_label_s"] for r in runs["agent"]]))}


def part_flood(client, images, log_dir, seconds: float) -> dict:
    served = Served("agent", AGENT_PARAMS, log_dir)
    try:
        client.first_label_after_start(served, images[0])
        rotation = distinct_class_images(client, images)
        time.sleep(1.0)
        rss_start = served.rss_mb()
        labels_before = len(client.labels)
        sends = []  # (perf_counter, label the agent gives this image)
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            label, image = rotation[i % len(rotation)]
            sends.append((client.send(image), label))
            i += 1
        time.sleep(1.0)
        received = client.labels[labels_before:]
        rss_end = served.rss_mb()
        diag = client.fresh_diag()
        latencies = []
        sent_at = np.array([t for t, _ in sends])
        for arrival, label in received:
            before = int(np.searchsorted(sent_at, arrival))
            earlier = [t for t, lab in sends[max(0, before - len(rotation)):before] if lab == label]
            if earlier:
                latencies.append(arrival - earlier[-1])
        return {"seconds": seconds, "frames_sent": len(sends), "send_rate_hz": len(sends) / seconds,
                "labels": len(received), "labels_per_s": len(received) / seconds,
                "rss_start_mb": rss_start, "rss_end_mb": rss_end, "rss_growth_mb": rss_end - rss_start,
                "latency_lower_bound": percentiles_ms(latencies),
                "node_latency_ms_p99": float(diag.get("node_latency_ms_p99", "nan")),
                "backend_latency_ms_p50": float(diag.get("backend_latency_ms_p50", "nan")),
                "dropped": int(diag.get("dropped", -1)), "alive": served.alive(),
                "internal_errors": int(diag.get("bad_input_internal", 0))}
    finally:
        served.stop()


def hostile_messages(client, good: np.ndarray) -> dict:
    import cv2
    from sensor_msgs.msg import CompressedImage, Image

    ok, png = cv2.imencode(".png", good)
    huge_png = cv2.imencode(".png", np.zeros((4000, 4000), np.uint8))[1]  # 16 MP declared, 100 kB sent
    return {
        "encoding": Image(height=28, width=28, encoding="yuv422", step=56, data=bytes(28 * 56)),
        "size": Image(height=28, width=28, encoding="mono8", step=20, data=bytes(28 * 28)),
        "truncated": Image(height=28, width=28, encoding="mono8", step=28, data=bytes(100)),
        "empty": Image(height=28, width=28, encoding="mono8", step=28, data=b""),
        "compressed": CompressedImage(format="jpeg", data=b"\xff\xd8 corrupt"),
        "too_large": CompressedImage(format="png", data=huge_png.tobytes()),
        "too_large_raw": Image(height=4000, width=4000, encoding="mono8", step=4000, data=bytes(16)),
    }


def part_hostile(client, images, log_dir, seconds: float) -> dict:
    from sensor_msgs.msg import Image

    served = Served("agent", {**AGENT_PARAMS, "max_image_pixels": 1_000_000}, log_dir)
    try:
        client.first_label_after_start(served, images[0])
        bad = hostile_messages(client, images[0])
        labels_before = len(client.labels)
        sent = {kind: 0 for kind in bad}
        valid = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for kind, msg in bad.items():
                (client.image if isinstance(msg, Image) else client.compressed).publish(msg)
                sent[kind] += 1
            client.send(images[valid % len(images)])
            valid += 1
            time.sleep(0.002)  # the valid frame's turn: a bad message only counts once decoded
        time.sleep(1.0)
        diag = client.fresh_diag()
        counted = {kind: int(diag.get(f"bad_input_{kind.replace('_raw', '')}", 0)) for kind in bad}
        return {"seconds": seconds, "bad_sent": sent, "valid_sent": valid,
                "valid_classified": len(client.labels) - labels_before, "counted_on_diagnostics": counted,
                "alive": served.alive(), "internal_errors": int(diag.get("bad_input_internal", 0)),
                "every_kind_counted": all(n > 0 for n in counted.values())}
    finally:
        served.stop()


def part_soak(client, images, log_dir, seconds: float, rate_hz: float = 30.0) -> dict:
    served = Served("agent", AGENT_PARAMS, log_dir)
    try:
        client.first_label_after_start(served, images[0])
        for image in images[:30]:
            client.round_trip(image)
        start = time.monotonic()
        rss, trips = [], []  # (elapsed s, MB), (elapsed s, latency s or None)
        next_rss = start
        i = 0
        while time.monotonic() - start < seconds and served.alive():
            tick = start + i / rate_hz
            time.sleep(max(0.0, tick - time.monotonic()))
            now = time.monotonic()
            if now >= next_rss:
                rss.append((now - start, served.rss_mb()))
                next_rss += 5.0
            trips.append((now - start, client.round_trip(images[i % len(images)], timeout=1.0 / rate_hz)))
            i += 1
        window = min(300.0, seconds / 4)
        first = [t for at, t in trips if t is not None and at < window]
        last = [t for at, t in trips if t is not None and at >= seconds - window]
        hours = np.array([at for at, _ in rss]) / 3600
        slope = float(np.polyfit(hours, [mb for _, mb in rss], 1)[0]) if len(rss) >= 3 else None
        diag = client.fresh_diag()
        return {"seconds": seconds, "rate_hz": rate_hz, "frames": len(trips),
                "lost_or_late": sum(t is None for _, t in trips), "window_s": window,
                "first_window": percentiles_ms(first), "last_window": percentiles_ms(last),
                "rss_mb": [mb for _, mb in rss][::max(1, len(rss) // 50)], "rss_slope_mb_per_hour": slope,
                "alive": served.alive(), "internal_errors": int(diag.get("bad_input_internal", 0))}
    finally:
        served.stop()


def part_faults(client, images, log_dir, cycles: int, lava_cycles: int) -> dict:
    out = {}
    # a Lava runtime process killed mid-run
    served = Served("agent", {**AGENT_PARAMS, "backend": "lava", "timesteps": 4}, log_dir)
    try:
        client.first_label_after_start(served, images[0], timeout=180)
        stop = threading.Event()

        def feed():
            while not stop.is_set():
                client.send(images[0])
                time.sleep(0.05)
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        lava_children = served.children()
        victim = lava_children[-1]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        ok = client.wait(lambda: client.diag.get("backend") == "cpu" and client.diag.get("_arrival", 0) > killed, 30)
        # the diagnostics period (0.2 s) bounds how late this sees the switch
        fallback_s = client.diag["_arrival"] - killed if ok else None
        labels = len(client.labels)
        client.wait(lambda: len(client.labels) > labels + 10, 10)
        stop.set()
        feeder.join()
        out["lava_killed"] = {"lava_processes": len(lava_children), "killed_pid": victim, "fell_back": ok,
                              "fallback_seen_after_s": fallback_s, "labels_after": len(client.labels) - labels,
                              "alive": served.alive(), "level": client.diag.get("_level"),
                              "message": client.diag.get("_message"),
                              "processes_left": [served.command_of(pid) for pid in served.children()]}
    finally:
        served.stop()
    # a backend that raises on every frame
    served = Served("raising", AGENT_PARAMS, log_dir)
    try:
        client.wait_for_state(served, "active")
        time.sleep(1.0)
        labels = len(client.labels)
        for i in range(50):
            client.send(images[i % len(images)])
            time.sleep(0.02)
        time.sleep(1.0)
        diag = client.fresh_diag()
        out["raising_backend"] = {"frames_sent": 50, "labels": len(client.labels) - labels,
                                  "counted_inference_failures": int(diag.get("bad_input_inference", 0)),
                                  "alive": served.alive(), "level": diag.get("_level")}
    finally:
        served.stop()
    out["lifecycle_cycles"] = lifecycle_cycles(client, log_dir, AGENT_PARAMS, cycles)
    # Lava builds its network and starts its runtime processes at every configure (seconds each)
    out["lifecycle_cycles_lava"] = lifecycle_cycles(client, log_dir, {**AGENT_PARAMS, "backend": "lava",
                                                                      "timesteps": 4}, lava_cycles)
    return out


def lifecycle_cycles(client, log_dir, params: dict, cycles: int) -> dict:
    """configure/activate/deactivate/cleanup over ~/change_state, with threads, fds, child processes
    (Lava's runtime processes among them) and RSS counted before and after."""
    from lifecycle_msgs.msg import Transition

    served = Served("agent", {**params, "autostart": False}, log_dir)
    try:
        client.wait_for_state(served, "unconfigured")
        time.sleep(1.0)
        steps = (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE,
                 Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP)
        assert all(client.transition(t) for t in steps)  # one cycle first: lazy imports, pools
        before = {"threads": served.threads(), "fds": served.fds(), "children": len(served.children()),
                  "rss_mb": served.rss_mb()}
        started = time.monotonic()
        failures = sum(not client.transition(t) for _ in range(cycles) for t in steps)
        seconds = time.monotonic() - started
        after = {"threads": served.threads(), "fds": served.fds(), "children": len(served.children()),
                 "rss_mb": served.rss_mb()}
        return {"backend": params["backend"], "cycles": cycles, "failed_transitions": failures, "seconds": seconds,
                "before": before, "after": after, "children_left": [served.command_of(pid) for pid in served.children()],
                "alive": served.alive()}
    finally:
        served.stop()


def corrupt_models(base: str) -> dict:
    """name -> a model directory (or file) broken that way, from copies of the bundled model."""
    from snn_agent.ir import MODEL_ARRAYS, MODEL_JSON

    def copy(name):
        path = os.path.join(base, name)
        shutil.copytree(MODEL_DIR, path, ignore=shutil.ignore_patterns("*.png", "for_t1", "operating_points.json"))
        return path

    cases = {}
    path = copy("truncated_weights")
    data = open(os.path.join(path, MODEL_ARRAYS), "rb").read()
    open(os.path.join(path, MODEL_ARRAYS), "wb").write(data[:len(data) // 2])
    cases["truncated_weights"] = path
    for name, change in (("wrong_shapes", lambda w: w.T.copy()), ("nan_weights", lambda w: w * np.nan)):
        path = copy(name)
        arrays = dict(np.load(os.path.join(path, MODEL_ARRAYS)))
        arrays["0.weight"] = change(arrays["0.weight"])
        np.savez(os.path.join(path, MODEL_ARRAYS), **arrays)
        cases[name] = path
    path = copy("garbage_snn_json")
    open(os.path.join(path, MODEL_JSON), "w").write("{ this is not json")
    cases["garbage_snn_json"] = path
    path = copy("missing_file")
    os.remove(os.path.join(path, MODEL_ARRAYS))
    cases["missing_file"] = path
    path = os.path.join(base, "directory_is_a_file")
    open(path, "w").write("not a directory")
    cases["directory_is_a_file"] = path
    return cases


def part_corrupt(client, images, log_dir) -> dict:
    from snn_agent.ir import MODEL_ARRAYS, MODEL_JSON

    served = Served("agent", AGENT_PARAMS, log_dir)
    base = tempfile.mkdtemp(prefix="snn_agent_corrupt_")
    try:
        client.first_label_after_start(served, images[0])
        results = {}
        for name, path in corrupt_models(base).items():
            accepted, reason = client.set_parameter("model", path)
            error = reason
            if accepted:  # not knowable before loading: the worker loads it, fails, says so
                client.round_trip(images[0])
                diag = client.fresh_diag(lambda v: "model_error" in v)
                error = diag.get("model_error", "")
            still = client.round_trip(images[1]) is not None
            diag = client.fresh_diag()
            results[name] = {"rejected_up_front": not accepted, "error": error,
                             "names_the_file": any(os.path.join(path, f) in error for f in (MODEL_ARRAYS, MODEL_JSON))
                             or f"{path} is a file" in error,
                             "still_classifying": still, "model_in_use": diag.get("model"),
                             "previous_model_running": diag.get("model") == MODEL_DIR, "alive": served.alive()}
            client.set_parameter("model", MODEL_DIR)  # clears model_error for the next case
            client.round_trip(images[0])
        return results
    finally:
        served.stop()
        shutil.rmtree(base, ignore_errors=True)


# --- report --------------------------------------------------------------------------------------
def print_report(results: dict) -> None:
    for part in PARTS:
        if "error" in results.get(part, {}):
            print(f"\n{part}: FAILED: {results[part]['error']}")
            results = {k: v for k, v in results.items() if k != part}
    if "latency" in results:
        r = results["latency"]
        print(f"\nlatency, one frame in flight, client publish -> label ({r['frames_per_run']} frames a run, "
              f"{r['rounds']} rounds A B A B)")
        print(f"{'run':<8}{'p50 ms':>10}{'p99 ms':>10}{'first label s':>15}{'lost':>6}")
        for kind in ("agent", "echo"):
            for run in r["runs"][kind]:
                print(f"{kind:<8}{run['p50_ms']:>10.3f}{run['p99_ms']:>10.3f}{run['first_label_s']:>15.2f}{run['lost']:>6}")
        spread = [d["p50_ms"] for d in r["agent_minus_echo"]]
        print(f"agent adds {r['added_p50_ms_median']:.3f} ms p50 (runs {min(spread):.3f}..{max(spread):.3f}), "
              f"{r['added_p99_ms_median']:.3f} ms p99 over the echo floor (targets: 0.65 / 1.5)")
    if "flood" in results:
        r = results["flood"]
        print(f"\nflood {r['seconds']:.0f} s: sent {r['send_rate_hz']:.0f} frames/s, {r['labels_per_s']:.0f} labels/s, "
              f"RSS {r['rss_start_mb']:.1f} -> {r['rss_end_mb']:.1f} MB ({r['rss_growth_mb']:+.1f}; target <= 10), "
              f"latency lower bound p99 {r['latency_lower_bound']['p99_ms']} ms, node p99 {r['node_latency_ms_p99']} ms, "
              f"alive {r['alive']}")
    if "hostile" in results:
        r = results["hostile"]
        print(f"\nhostile {r['seconds']:.0f} s: alive {r['alive']}, valid classified {r['valid_classified']} of "
              f"{r['valid_sent']}, counted {r['counted_on_diagnostics']}, internal errors {r['internal_errors']}")
    if "soak" in results:
        r = results["soak"]
        print(f"\nsoak {r['seconds']:.0f} s at {r['rate_hz']:.0f} frames/s: RSS slope {r['rss_slope_mb_per_hour']} MB/h, "
              f"p99 first {r['first_window']['p99_ms']} ms / last {r['last_window']['p99_ms']} ms "
              f"(windows of {r['window_s']:.0f} s), lost or late {r['lost_or_late']} of {r['frames']}, alive {r['alive']}")
    if "faults" in results:
        r = results["faults"]
        for name, values in r.items():
            if isinstance(values, dict):
                print(f"\nfault {name}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    if "corrupt" in results:
        print(f"\n{'corrupt model':<22}{'up front':>9}{'names file':>11}{'old model runs':>15}  error")
        for name, r in results["corrupt"].items():
            if not isinstance(r, dict):
                continue
            print(f"{name:<22}{str(r['rejected_up_front']):>9}{str(r['names_the_file']):>11}"
                  f"{str(r['previous_model_running'] and r['still_classifying']):>15}  {r['error'][:90]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI-sized: short phases, soak of 2 minutes")
    ap.add_argument("--only", default=",".join(PARTS), help=f"parts to run, of {','.join(PARTS)}")
    ap.add_argument("--soak-s", type=float, help="soak duration (default 3600, 120 with --quick)")
    ap.add_argument("--flood-s", type=float, help="flood duration (default 60, 10 with --quick)")
    ap.add_argument("--out", help="the JSON file (default bench/results/reliability.json, quick/ with --quick)")
    args = ap.parse_args()
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    out = output_path("reliability.json", args.quick, args.out)
    quick = args.quick
    sizes = {"latency_frames": 300 if quick else 2000, "rounds": 2 if quick else 3, "flood_s": args.flood_s or (10 if quick else 60),
             "hostile_s": 10 if quick else 30, "soak_s": args.soak_s or (120 if quick else 3600),
             "cycles": 20 if quick else 100, "lava_cycles": 3 if quick else 10}
    images, dataset = test_images()
    log_dir = tempfile.mkdtemp(prefix="snn_agent_reliability_")
    client = Client()
    results = {"dataset": dataset, "sizes": sizes, "ros_domain_id": os.environ["ROS_DOMAIN_ID"],
               "note": "the machine may be shared with other jobs (each part's load_average: 1, 5, 15 min at its "
                       "end): latency runs interleave agent and echo",
               **earlier_parts(out, parts)}
    try:
        for part in parts:
            print(f"{part}...", flush=True)
            started = time.monotonic()
            try:
                results[part] = run_part(part, client, images, log_dir, sizes)
            except Exception as exc:  # noqa: BLE001 - a part that fails is reported, the others still run
                results[part] = {"error": repr(exc)}
            results[part]["part_seconds"] = time.monotonic() - started
            results[part]["load_average"] = os.getloadavg()
    finally:
        client.close()
    print_report({part: results[part] for part in parts})  # the parts of this run, not those kept
    write_results(out, results, quick)
    print(f"\nwrote {os.path.relpath(out, ROOT)} (process logs in {log_dir})")
    return 0


def earlier_parts(path: str, parts: list) -> dict:
    """The parts in PATH that this run does not repeat, each with the record of the run that made it:
    `--only latency` renews the latency figures and keeps the others."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        earlier = json.load(f)
    return {part: {"run": earlier["run"], **earlier[part]} for part in PARTS if part in earlier and part not in parts}


def run_part(part: str, client, images, log_dir, sizes) -> dict:
    if part == "latency":
        return part_latency(client, images, log_dir, sizes["latency_frames"], sizes["rounds"])
    if part == "flood":
        return part_flood(client, images, log_dir, sizes["flood_s"])
    if part == "hostile":
        return part_hostile(client, images, log_dir, sizes["hostile_s"])
    if part == "soak":
        return part_soak(client, images, log_dir, sizes["soak_s"])
    if part == "faults":
        return part_faults(client, images, log_dir, sizes["cycles"], sizes["lava_cycles"])
    return part_corrupt(client, images, log_dir)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
