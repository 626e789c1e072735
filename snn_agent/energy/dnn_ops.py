"""Multiply-accumulates of the DNN behind a converted model: the workload of a DNN accelerator.

The NCS2 energy model in the benches (energy.models.accelerator_latency) needs this figure when the
stick itself is absent. The SNN's layers have the DNN's shapes (normalization only rescales
weights), so they are counted from the SNNModel; a max-pool lowered to ReLU layers counts as the
convolutions it became.
"""
from __future__ import annotations

import numpy as np

from ..ir import Layer, SNNModel


def layer_macs(layer: Layer) -> int:
    """Every output value is one dot product over the weight's fan-in (C_in/groups x kh x kw for a
    convolution, the input features for a dense layer), summed over the layer's sources (a residual
    or concatenating layer has one weight block per source); padded positions are counted too."""
    return sum(int(np.prod(block.weight.shape[1:])) for block in layer.blocks()) * layer.n_neurons


def dnn_macs(model: SNNModel) -> int:
    """MACs of one DNN inference (one frame)."""
    return sum(layer_macs(layer) for layer in model.layers)
