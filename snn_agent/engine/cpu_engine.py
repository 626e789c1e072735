"""Time-batched SNN simulation on the CPU.

A feed-forward SNN lets each layer see all T timesteps of its input spikes at once: the synaptic
currents of every timestep come from one matrix product, and only the cheap element-wise neuron
update runs step by step. Each call also counts spikes, synaptic operations and neuron updates,
which are the inputs of every energy figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from ..ir import NeuronConfig, SNNModel
from .ops import fan_out, linear


@dataclass
class OpCounts:
    """Operations for the whole batch; divide by `frames` for per-inference figures."""

    frames: int = 0
    timesteps: int = 0
    spikes: int = 0
    synaptic_ops: int = 0
    neuron_updates: int = 0
    per_layer: list = field(default_factory=list)  # dicts: name, neurons, spikes, synaptic_ops

    def per_frame(self) -> dict:
        f = max(self.frames, 1)
        return {"spikes": self.spikes / f, "synaptic_ops": self.synaptic_ops / f,
                "neuron_updates": self.neuron_updates / f, "timesteps": self.timesteps}


@dataclass
class InferenceResult:
    scores: np.ndarray  # (frames, classes)
    ops: OpCounts

    @property
    def labels(self) -> np.ndarray:
        return self.scores.argmax(axis=1)


class SNNEngine:
    """Runs an `SNNModel` (ideal target: float, integrate-and-fire) for T timesteps."""

    def __init__(self, model: SNNModel):
        self.model = model
        self._fan_out = [fan_out(layer).reshape(-1).astype(np.float64) for layer in model.layers]
        # float32 copies: half the memory traffic of float64 and what BLAS runs fastest
        self._layers = [replace(layer, weight=layer.weight.astype(np.float32),
                                bias=layer.bias.astype(np.float32)) for layer in model.layers]
        self._flat_bias = [_flat_bias(layer) for layer in self._layers]

    def run(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None) -> InferenceResult:
        """x: (frames, C, H, W) preprocessed input, presented as a constant current every step."""
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        neuron = neuron or self.model.neuron
        frames = x.shape[0]
        counts = OpCounts(frames=frames, timesteps=timesteps)
        layers = self._layers
        spikes_in = None  # (T, frames, n_in) from the previous layer; None for the analog input
        spiking_index = 0
        for index, layer in enumerate(layers):
            if spikes_in is None:
                # The image is a constant input current: compute it once, repeat it over time.
                current = linear(layer, x.astype(np.float32)).reshape(1, frames, -1)
                active_inputs = np.count_nonzero(x.reshape(frames, -1), axis=0) @ self._fan_out[index]
                synops = float(active_inputs) * timesteps
            else:
                flat = spikes_in.reshape((timesteps * frames,) + tuple(layer.input_shape))
                current = linear(layer, flat, with_bias=False)
                current = current.reshape(timesteps, frames, -1) + self._flat_bias[index]
                synops = float(spikes_in.sum(axis=(0, 1)) @ self._fan_out[index])
            neurons = layer.n_neurons
            if layer.spiking:
                threshold = self.model.thresholds[spiking_index] * neuron.threshold_scale
                spikes_in = _integrate_and_fire(current, timesteps, threshold, neuron)
                spiking_index += 1
                n_spikes = int(spikes_in.sum())
            else:
                # The score layer integrates without spiking; its mean input is the class score.
                scores = np.broadcast_to(current, (timesteps, frames, current.shape[-1])).mean(axis=0)
                n_spikes = 0
            counts.spikes += n_spikes
            counts.synaptic_ops += int(synops)
            counts.neuron_updates += neurons * timesteps * frames
            counts.per_layer.append({"name": layer.name, "neurons": neurons, "spikes": n_spikes,
                                     "synaptic_ops": int(synops)})
        return InferenceResult(scores=np.asarray(scores, dtype=np.float32), ops=counts)


def _integrate_and_fire(current: np.ndarray, timesteps: int, threshold: float,
                        neuron: NeuronConfig) -> np.ndarray:
    """current: (T or 1, frames, n). Returns spikes (T, frames, n) as float32 0/1."""
    frames, n = current.shape[1], current.shape[2]
    v = np.full((frames, n), neuron.v_init * threshold, dtype=np.float32)
    spikes = np.empty((timesteps, frames, n), dtype=np.float32)
    constant = current.shape[0] == 1
    threshold = np.float32(threshold)
    for t in range(timesteps):
        v += current[0 if constant else t]
        if neuron.reset == "subtract":
            fired = v >= threshold
            v -= fired * threshold
        else:  # reset to zero, spiking strictly above threshold as Loihi does
            fired = v > threshold
            v[fired] = 0.0
        spikes[t] = fired
    return spikes



def _flat_bias(layer) -> np.ndarray:
    """The bias of every output neuron, in the flattened (C, H, W) order of the layer's output."""
    per_channel = layer.bias.reshape((-1,) + (1,) * (len(layer.output_shape) - 1))
    return np.broadcast_to(per_channel, layer.output_shape).reshape(-1).astype(np.float32)
