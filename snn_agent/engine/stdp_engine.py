"""A trained STDP network (learning/stdp.py) as a model the agent runs on the cpu backend.

A model directory holding stdp_params.json (instead of snn.json) is an STDP network. It runs
frozen here: Poisson input from the camera frame, spike counts of the excitatory neurons, one score
per class (the mean count of the neurons labelled with it, with the network's margin readout:
stdp.activity). The camera frame is a square grey image
of n_inputs pixels, in [0, 1].
"""
from __future__ import annotations

import json
import math
import os
import zipfile
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
    return model, StdpEngine(network, len(names))


class StdpEngine:
    """Runs the network frozen (weights and thresholds fixed), the interface of cpu_engine.SNNEngine
    that CpuBackend uses. T is the caller's (the governor's), not the one the network trained at."""

    def __init__(self, network: stdp.StdpNetwork, n_classes: int):
        self.network = network
        self.n_classes = n_classes
        self._seed = 0  # each run draws fresh Poisson input, reproducibly

    def run(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None) -> InferenceResult:
        self._seed += 1
        params = self.network.params.with_timesteps(timesteps)
        record = self.network.run(x, False, self._seed, params)
        ops = record.mean_ops()
        frames = len(x)
        counts = OpCounts(frames=frames, timesteps=int(timesteps), spikes=int(record.spike_counts.sum()),
                          synaptic_ops=int(round(ops["synaptic_ops"] * frames)),
                          neuron_updates=int(round(ops["neuron_updates"] * frames)))
        return InferenceResult(self.network.class_scores(stdp.activity(record, params.margin_weight), self.n_classes),
                               counts)
