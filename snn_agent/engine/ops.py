"""Linear operations of the IR in plain numpy (no torch on the inference path).

Convolution is im2col + one matrix product, so a whole batch of timesteps (or of frames) costs a
single BLAS call per layer.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..ir import Layer


def linear(layer: Layer, x: np.ndarray, with_bias: bool = True) -> np.ndarray:
    """Apply one layer's weights to a batch: (N, *layer.input_shape) -> (N, *layer.output_shape)."""
    n = x.shape[0]
    if layer.kind == "dense":
        out = x.reshape(n, -1) @ layer.weight.T
        if with_bias:
            out += layer.bias
        return out
    out = conv2d(x.reshape((n,) + tuple(layer.input_shape)), layer.weight, layer.stride,
                 layer.padding, layer.groups)
    if with_bias:
        out += layer.bias.reshape(1, -1, 1, 1)
    return out


def conv2d(x: np.ndarray, weight: np.ndarray, stride: tuple, padding: tuple, groups: int = 1) -> np.ndarray:
    """(N, C, H, W) * (O, C/groups, kh, kw) -> (N, O, Ho, Wo), padding = (top, left, bottom, right)."""
    top, left, bottom, right = padding
    if any(padding):
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, c, _, _ = x.shape
    o, c_per_group, kh, kw = weight.shape
    sh, sw = stride
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # N,C,Ho,Wo,kh,kw
    ho, wo = windows.shape[2], windows.shape[3]
    o_per_group = o // groups
    out = np.empty((n, ho, wo, o), dtype=np.result_type(x.dtype, weight.dtype))
    for g in range(groups):
        cols = windows[:, g * c_per_group:(g + 1) * c_per_group]
        cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c_per_group * kh * kw)
        w = weight[g * o_per_group:(g + 1) * o_per_group].reshape(o_per_group, -1)
        out[..., g * o_per_group:(g + 1) * o_per_group] = (cols @ w.T).reshape(n, ho, wo, o_per_group)
    return out.transpose(0, 3, 1, 2)


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    return (size + pad_before + pad_after - kernel) // stride + 1


def fan_out(layer: Layer) -> np.ndarray:
    """Number of synapses leaving each input neuron (shape = layer.input_shape).

    A spike on input i costs fan_out[i] synaptic operations; for a convolution this depends on the
    position (borders and strides reach fewer outputs), so it is computed exactly as the transpose
    of the convolution applied to a map of ones.
    """
    if layer.kind == "dense":
        return np.full(layer.input_shape, layer.weight.shape[0], dtype=np.int64)
    c, h, w = layer.input_shape
    o, c_per_group, kh, kw = layer.weight.shape
    top, left, _, _ = layer.padding
    _, ho, wo = layer.output_shape
    sh, sw = layer.stride
    reach = np.zeros((h, w), dtype=np.int64)  # how many output positions see each input pixel
    for oy in range(ho):
        for ox in range(wo):
            y0, x0 = oy * sh - top, ox * sw - left
            reach[max(y0, 0):max(min(y0 + kh, h), 0), max(x0, 0):max(min(x0 + kw, w), 0)] += 1
    outputs_per_input_channel = o // layer.groups  # each input channel feeds one group's outputs
    return np.broadcast_to(reach * outputs_per_input_channel, (c, h, w)).copy()
