"""Accuracy of a converted model over a grid of timesteps, on any engine."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .ir import NeuronConfig


def accuracy(run: Callable, x: np.ndarray, labels: np.ndarray, timesteps: int,
             neuron: Optional[NeuronConfig] = None, batch_size: Optional[int] = None) -> float:
    """run(x_batch, timesteps, neuron) -> result with .labels (an engine's or a backend's run/infer)."""
    # T x batch near 128 keeps a layer's spike tensor in cache: bigger batches get slower per frame
    batch_size = batch_size or max(1, 128 // timesteps)
    correct = 0
    for start in range(0, len(x), batch_size):
        result = run(x[start:start + batch_size], timesteps, neuron)
        correct += int(np.count_nonzero(result.labels == labels[start:start + batch_size]))
    return correct / max(len(x), 1)


def accuracy_vs_timesteps(run: Callable, x, labels, grid, progress=None) -> dict:
    table = {}
    for i, timesteps in enumerate(grid):
        table[int(timesteps)] = accuracy(run, x, labels, int(timesteps))
        if progress:
            progress(i + 1, len(grid))
    return table
