"""Kill a learning process at random moments and check what it leaves on disk.

    python -m snn_agent.learning.crash_drill STREAM.npz CHECKPOINT_DIR --every N   (the learner)

The learner learns from a recorded stream (`record_stream`: a score layer and labelled frames'
hidden spikes), round and round, with a checkpoint every N updates, restoring the checkpoint it
finds at start, and prints its update count after each update. `drill` starts it, kills it with
SIGKILL at a random moment, checks that the checkpoint on disk loads and lost at most N updates,
and starts it again (test/test_learning.py: 20 rounds; bench/learning.py: 100).
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..ir import Layer
from . import checkpoint as checkpoints
from .online import LearningSettings, OnlineLearner
from .readout import EmulatedTrainer

FINGERPRINT = "crash-drill-stream"


def record_stream(path: str, layer: Layer, hidden: np.ndarray, labels: np.ndarray, timesteps: int) -> None:
    """hidden: (frames, steps, n) spikes of labelled frames; layer: the score layer over them."""
    np.savez(path, weight=layer.weight, bias=layer.bias, hidden=hidden, labels=labels, timesteps=timesteps)


def _learner(stream: dict, directory: str, every: int) -> OnlineLearner:
    weight = stream["weight"]
    layer = Layer("score", "dense", weight, stream["bias"], (weight.shape[1],), (weight.shape[0],), spiking=False)
    settings = LearningSettings(enabled=True, checkpoint_dir=directory, checkpoint_every=every,
                                max_classes=weight.shape[0] + 1)
    return OnlineLearner(layer, [], FINGERPRINT, settings, EmulatedTrainer())


def learn_forever(stream_path: str, directory: str, every: int) -> None:
    with np.load(stream_path) as data:
        stream = {key: data[key] for key in data.files}
    learner = _learner(stream, directory, every)
    if learner.checkpoint_errors:
        print("ERROR " + learner.checkpoint_errors[-1], flush=True)
    timesteps = int(stream["timesteps"])
    print(f"START {learner.updates}", flush=True)
    frame = 0
    while True:
        index = frame % len(stream["labels"])
        learner.classify(stream["hidden"][index], timesteps)
        learner.feedback(int(stream["labels"][index]))
        print(learner.updates, flush=True)
        frame += 1


@dataclass
class DrillReport:
    rounds: int = 0
    lost_updates: list = field(default_factory=list)  # per round: updates printed minus updates on disk
    load_failures: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def max_lost(self) -> int:
        return max(self.lost_updates, default=0)


def drill(stream_path: str, directory: str, rounds: int, every: int, seed: int = 0,
          max_wait_s: float = 0.6) -> DrillReport:
    """Kill the learner `rounds` times, each at a random moment after it started learning."""
    rng = random.Random(seed)
    report = DrillReport()
    started = time.perf_counter()
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    for _ in range(rounds):
        child = subprocess.Popen([sys.executable, "-m", "snn_agent.learning.crash_drill", stream_path, directory,
                                  "--every", str(every)], stdout=subprocess.PIPE, text=True, env=environment)
        lines = [child.stdout.readline()]  # START: it has restored and begins to learn
        if not lines[0].startswith("START"):
            child.kill()
            raise RuntimeError(f"the learner did not start: {lines[0]!r}")
        time.sleep(rng.uniform(0.0, max_wait_s))
        os.kill(child.pid, signal.SIGKILL)
        lines += child.stdout.read().split()
        child.wait()
        printed = [int(line) for line in lines[1:] if line.isdigit()]
        done = printed[-1] if printed else int(lines[0].split()[1])
        try:
            found = checkpoints.load(directory, FINGERPRINT)
        except checkpoints.CheckpointError as exc:
            report.load_failures.append(str(exc))
            found = None
        on_disk = found.updates if found is not None else 0
        report.lost_updates.append(done - on_disk)
        report.rounds += 1
    report.seconds = time.perf_counter() - started
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stream")
    ap.add_argument("checkpoint_dir")
    ap.add_argument("--every", type=int, default=10)
    args = ap.parse_args()
    learn_forever(args.stream, args.checkpoint_dir, args.every)


if __name__ == "__main__":
    main()
