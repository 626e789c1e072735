"""A trained STDP network (learning/stdp.py) as a model the agent runs on the cpu backend.

A model directory holding stdp_params.json (instead of snn.json) is an STDP network: Poisson input
from the camera frame, spike counts of the excitatory neurons, one score per class (the mean count
of the neurons labelled with it, with the parameters' margin readout: stdp.activity). The camera
frame is a square grey image of n_inputs pixels, in [0, 1]. At each T it runs with the parameters
TopSpark enhanced for that T where the directory has them (stdp.OPERATING_POINTS_FILE, written by
bench/stdp.py --model-dir). Frozen by default; with `plasticity` set, STDP and homeostasis stay on
while it runs (learning/stdp_online.py).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from dataclasses import replace
from typing import Optional

import numpy as np

from ..ir import ModelFormatError, Network, NeuronConfig, Preprocessing, SNNModel
from ..learning import stdp
from .cpu_engine import InferenceResult, OpCounts


def is_stdp_model(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, stdp.PARAMS_FILE))


def files_problem(directory: str) -> Optional[str]:
    """What can be told without loading the weights: both files, readable parameters. None if fine."""
    for name in (stdp.PARAMS_FILE, stdp.WEIGHTS_FILE):
        if not os.path.isfile(os.path.join(directory, name)):
            return f"STDP model file missing: {os.path.join(directory, name)}"
    path = os.path.join(directory, stdp.PARAMS_FILE)
    try:
        with open(path) as f:
            stdp.StdpParams.from_dict(json.load(f))
    except (ValueError, OSError, TypeError, AttributeError) as exc:
        return f"{path} is not an STDP network's parameters: {exc}"
    try:
        stdp.load_operating_points(directory)
    except (ValueError, OSError, TypeError, KeyError, AttributeError) as exc:
        return f"{os.path.join(directory, stdp.OPERATING_POINTS_FILE)} is not a table of operating points: {exc}"
    return None


def load(directory: str) -> tuple[SNNModel, "StdpEngine"]:
    """The model's description (input shape, class names; no layers) and its engine; raises
    ModelFormatError for missing or corrupt files."""
    problem = files_problem(directory)
    if problem:
        raise ModelFormatError(problem)
    try:
        network, names = stdp.StdpNetwork.load_with_names(directory)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # npz, npy and shape errors
        raise ModelFormatError(f"corrupt STDP model in {directory}: {exc}") from exc
    if not np.all(np.isfinite(network.weights)) or not np.all(np.isfinite(network.theta)):
        raise ModelFormatError(f"corrupt STDP model in {directory}: weights contain NaN or Inf")
    if network.theta.shape != (network.params.n_neurons,) or network.labels.shape != network.theta.shape:
        raise ModelFormatError(f"corrupt STDP model in {directory}: thresholds or labels not one per neuron")
    if network.labels.max(initial=-1) < 0:
        raise ModelFormatError(f"STDP model in {directory} has no labelled neurons (assign_labels after training)")
    side = math.isqrt(network.params.n_inputs)
    if side * side != network.params.n_inputs:
        raise ModelFormatError(f"STDP model in {directory}: {network.params.n_inputs} inputs is not a square "
                               f"grey image")
    n_classes = int(network.labels.max()) + 1
    names = names or [str(c) for c in range(n_classes)]
    if len(names) < n_classes:
        raise ModelFormatError(f"STDP model in {directory}: {len(names)} class names for labels up to {n_classes - 1}")
    model = SNNModel(Network([], Preprocessing((1, side, side)), names), [], NeuronConfig(), target="stdp",
                     info={"source": "learning/stdp.py", "stdp": network.params.to_dict()})
    try:
        points = stdp.load_operating_points(directory, network)
    except ValueError as exc:
        raise ModelFormatError(str(exc)) from exc
    return model, StdpEngine(network, len(names), points, fingerprint(directory))


def fingerprint(directory: str) -> str:
    """What identifies a saved network: its parameters' and weights' files as saved."""
    digest = hashlib.sha256()
    for name in (stdp.PARAMS_FILE, stdp.WEIGHTS_FILE):
        with open(os.path.join(directory, name), "rb") as f:
            digest.update(f.read())
    return "stdp-" + digest.hexdigest()[:32]


class StdpEngine:
    """Runs the network, the interface of cpu_engine.SNNEngine that CpuBackend uses. T is the
    caller's (the governor's), not the one the network trained at; the parameters are those of the
    nearest operating point (points: T -> StdpParams, stdp_operating_points.json). `plasticity`: None runs the
    network frozen; a number keeps STDP and homeostasis on, with the rule's learning rates times it."""

    def __init__(self, network: stdp.StdpNetwork, n_classes: int, points: Optional[dict] = None,
                 model_fingerprint: str = ""):
        self.network = network
        # as loaded (weights, theta, labels): what a learner's reset restores
        self.saved = (network.weights.copy(), network.theta.copy(), network.labels.copy())
        self.n_classes = n_classes
        self.points = points or {}
        self.fingerprint = model_fingerprint
        self.plasticity: Optional[float] = None
        # while adapting, the thresholds' decay time constant in frames (0: the network's own); a
        # finite one lets a network that a changed input silenced fire again (bench/stdp_robot.py)
        self.threshold_decay_frames = 0.0
        self.last_ops: dict = {}  # the last run's operation counts, summed over its frames (RunRecord.mean_ops)
        # the last run's readout votes (frames, neurons): spike counts plus the margin (stdp.activity),
        # what its scores are made of; a learner scores frames with them, as the frozen engine does
        self.last_votes: np.ndarray = np.zeros((0, network.params.n_neurons))
        self._seed = 0  # each run draws fresh Poisson input, reproducibly

    def params_at(self, timesteps: int) -> tuple[stdp.StdpParams, int]:
        """The parameters the network runs with at `timesteps`, and the operating point's T they come from."""
        return stdp.params_for(self.network, timesteps, self.points)

    def run(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None) -> InferenceResult:
        self._seed += 1
        params, _ = self.params_at(timesteps)
        learn = self.plasticity is not None
        if learn:
            params = replace(params, rule=replace(params.rule, nu_pre=params.rule.nu_pre * self.plasticity,
                                                  nu_post=params.rule.nu_post * self.plasticity))
            if self.threshold_decay_frames > 0:
                params = replace(params, tau_theta=self.threshold_decay_frames * timesteps)
        record = self.network.run(x, learn, self._seed, params)
        frames = len(x)
        self.last_ops = {name: value * frames for name, value in record.mean_ops().items()}
        counts = OpCounts(frames=frames, timesteps=int(timesteps), spikes=int(record.spike_counts.sum()),
                          synaptic_ops=int(round(self.last_ops["synaptic_ops"])),
                          neuron_updates=int(round(self.last_ops["neuron_updates"])))
        self.last_votes = stdp.activity(record, params.margin_weight)
        return InferenceResult(self.network.class_scores(self.last_votes, self.n_classes), counts,
                               hidden=record.spike_counts)

    def hidden_spikes(self, result: InferenceResult) -> np.ndarray:
        """Each frame's spike counts per neuron, (frames, 1, n): what the learner tallies (one step:
        counts, not a raster)."""
        return result.hidden[:, None, :]
