"""`snn-agent run` as a user runs it: a subprocess, a real graph, a JSON summary."""
import json
import os
import subprocess
import sys

from snn_agent.data import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_run_classifies_the_replayed_camera():
    env = dict(os.environ, ROS_DOMAIN_ID=str(int(os.environ["ROS_DOMAIN_ID"]) + 100))
    proc = subprocess.run([sys.executable, "-m", "snn_agent.cli", "run", "--duration", "6", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("frames", "accuracy", "fps", "latency_ms_p50", "latency_ms_p99", "timesteps_mean",
                "energy_j_per_inference", "dropped", "backend"):
        assert key in summary, key
    assert summary["frames"] >= 60  # 30 Hz for 6 s, minus start-up
    assert summary["backend"] == "cpu" and summary["energy_kind"] in ("modelled", "measured")
    if datasets.fashion_mnist_available():
        assert summary["accuracy"] > 0.8
    assert "snn-agent run summary" in proc.stdout
