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


def accuracy_vs_timesteps(run: Callable, x, labels, grid, progress=None, neuron: Optional[NeuronConfig] = None,
                          scores_by_timesteps: Optional[Callable] = None) -> dict:
    """{T: accuracy} for every T of `grid`: a run per T, or, given an engine's scores_by_timesteps
    (x_batch, grid, neuron) -> {T: scores}, one run at the largest T per batch that reads every
    T (SNNEngine's: the same scores). progress(done, total) after each T, or each batch."""
    grid = [int(t) for t in grid]
    if scores_by_timesteps is None:
        table = {}
        for i, timesteps in enumerate(grid):
            table[timesteps] = accuracy(run, x, labels, timesteps, neuron)
            if progress:
                progress(i + 1, len(grid))
        return table
    batch_size = max(1, 128 // max(grid))  # as accuracy() batches the largest T
    correct = dict.fromkeys(grid, 0)
    for start in range(0, len(x), batch_size):
        batch_labels = labels[start:start + batch_size]
        for timesteps, scores in scores_by_timesteps(x[start:start + batch_size], grid, neuron).items():
            correct[timesteps] += int(np.count_nonzero(scores.argmax(axis=1) == batch_labels))
        if progress:
            progress(min(start + batch_size, len(x)), len(x))
    return {t: c / max(len(x), 1) for t, c in correct.items()}
