"""Reference forward pass of the DNN (ReLU after every layer but the last)."""
from __future__ import annotations

import numpy as np

from ..ir import Network
from .ops import linear


def forward(network: Network, x: np.ndarray, return_activations: bool = False):
    """x: (N, C, H, W) preprocessed input. Returns scores, and optionally every layer's output."""
    activations = []
    h = x.astype(np.float32, copy=False)
    graph = None if network.is_chain else network.source_indices()
    for index, layer in enumerate(network.layers):
        if graph is None:
            h = linear(layer, h)
        else:  # the sum of every source's contribution
            h = None
            for source, block in zip(graph[index], layer.blocks()):
                part = linear(block, x.astype(np.float32, copy=False) if source < 0 else activations[source],
                              with_bias=False)
                h = part if h is None else h + part
            h += layer.bias.reshape((-1,) + (1,) * (h.ndim - 2))
        if layer.spiking:
            np.clip(h, 0, layer.activation_max, out=h)
        activations.append(h)
    return (h, activations) if return_activations else h


def predict(network: Network, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([forward(network, x[i:i + batch_size]).argmax(1)
                           for i in range(0, len(x), batch_size)])
