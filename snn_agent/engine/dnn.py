"""Reference forward pass of the DNN (ReLU after every layer but the last)."""
from __future__ import annotations

import numpy as np

from ..ir import Network
from .ops import linear


def forward(network: Network, x: np.ndarray, return_activations: bool = False):
    """x: (N, C, H, W) preprocessed input. Returns scores, and optionally every layer's output."""
    activations = []
    h = x.astype(np.float32, copy=False)
    for layer in network.layers:
        h = linear(layer, h)
        if layer.spiking:
            np.clip(h, 0, layer.activation_max, out=h)
        activations.append(h)
    return (h, activations) if return_activations else h


def predict(network: Network, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([forward(network, x[i:i + batch_size]).argmax(1)
                           for i in range(0, len(x), batch_size)])
