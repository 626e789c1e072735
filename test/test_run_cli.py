"""`snn-agent run` as a user runs it: a subprocess, a real graph, a JSON summary."""
import json
import os
import re
import signal
import subprocess
import sys
import time

from conftest import ROOT
from snn_agent.data import datasets


def test_run_classifies_the_replayed_camera():
    # no ROS_DOMAIN_ID: the command uses domain 0 as every ROS tool does (discovery stays OFF, as
    # for the whole session, so nothing else on domain 0 can reach it)
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    proc = subprocess.run([sys.executable, "-m", "snn_agent.ros.run_graph", "--duration", "6", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    domain = re.search(r"ROS_DOMAIN_ID=(\d+)", proc.stderr)
    assert domain and domain.group(1) == "0"
    assert len(re.findall(r"frames +\d+ +acc", proc.stderr)) >= 8  # the live status line, ~2 Hz
    assert "snn-agent run summary" in proc.stdout
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("frames", "accuracy", "fps_mean", "backend_latency_ms_p50", "backend_latency_ms_p99",
                "node_latency_ms_p50", "node_latency_ms_p99", "timesteps_mean",
                "energy_j_per_inference", "energy_kind", "dropped", "backend"):
        assert key in summary, key
    assert summary["frames"] >= 60  # 30 Hz for 6 s, minus start-up
    assert summary["labelled"] >= summary["frames"] - 2  # every frame paired with its label
    assert summary["backend"] == "cpu" and summary["energy_kind"] in ("modelled", "measured")
    assert summary["energy_j_per_inference"] > 0 and summary["backend_latency_ms_p99"] >= summary["backend_latency_ms_p50"] > 0
    assert summary["node_latency_ms_p50"] > summary["backend_latency_ms_p50"]
    assert summary["battery_percentage"] < 1.0  # the battery drained
    if datasets.fashion_mnist_available():
        assert summary["dataset"] == "fashion-mnist" and summary["accuracy"] > 0.8
    else:
        assert summary["dataset"] == "digits"


def test_ctrl_c_ends_an_open_ended_run_with_its_summary():
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    # SIG_DFL: pytest started as a background job ignores SIGINT, and a child would inherit that
    proc = subprocess.Popen([sys.executable, "-m", "snn_agent.ros.run_graph", "--duration", "0", "--json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while "ROS_DOMAIN_ID=" not in proc.stderr.readline() and time.monotonic() < deadline:  # the graph is up
        pass
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["frames"] > 0
    assert "Traceback" not in err


def test_the_lava_backend_starts_without_lava_dls_import_noise():
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    proc = subprocess.run([sys.executable, "-m", "snn_agent.ros.run_graph", "--backend", "lava", "--duration", "3",
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["backend"].startswith("lava") and summary["frames"] >= 1
    for noise in ("No CUDA runtime", "Prophesee"):
        assert noise not in proc.stdout + proc.stderr
