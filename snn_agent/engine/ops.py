"""Linear operations of the IR in numpy (no torch on the inference path).

A whole batch of timesteps (or of frames) goes through each layer in a few BLAS calls; grouped
convolutions, whose groups are too small for BLAS, in one compiled loop.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..ir import Layer


def linear(layer: Layer, x: np.ndarray, with_bias: bool = True) -> np.ndarray:
    """Apply one layer's weights to a batch: (N, *layer.input_shape) -> (N, *layer.output_shape)."""
    n = x.shape[0]
    if layer.kind == "dense":
        out = x.reshape(n, -1) @ layer.weight.T
        if with_bias:
            out += layer.bias
        return out
    nhwc = x.reshape((n,) + tuple(layer.input_shape)).transpose(0, 2, 3, 1)
    out = conv2d_nhwc(nhwc, layer.weight, layer.stride, layer.padding, layer.groups)
    if with_bias:
        out += layer.bias
    return out.transpose(0, 3, 1, 2)


def conv2d(x: np.ndarray, weight: np.ndarray, stride: tuple, padding: tuple, groups: int = 1) -> np.ndarray:
    """(N, C, H, W) * (O, C/groups, kh, kw) -> (N, O, Ho, Wo), padding = (top, left, bottom, right)."""
    return conv2d_nhwc(x.transpose(0, 2, 3, 1), weight, stride, padding, groups).transpose(0, 3, 1, 2)


def conv2d_nhwc(x: np.ndarray, weight: np.ndarray, stride: tuple, padding: tuple, groups: int = 1) -> np.ndarray:
    """(N, H, W, C) -> (N, Ho, Wo, O): im2col in channels-last order and one matrix product (a
    grouped convolution: _grouped_conv).

    Channels-last makes each copied window a run of contiguous channels, which is several times
    faster than channels-first im2col on spike maps, where building the columns costs more than
    the product itself.
    """
    o, c_per_group, kh, kw = weight.shape
    if kh == kw == 1 and groups == o and tuple(stride) == (1, 1) and not any(padding):
        # one output per group from its few inputs (a graph's identity skip path): element-wise
        n, h, w, c = x.shape
        dtype = np.result_type(x.dtype, weight.dtype)
        if c_per_group == 1:
            return x.astype(dtype, copy=False) * weight.reshape(o).astype(dtype, copy=False)
        return np.einsum("nhwoc,oc->nhwo", x.reshape(n, h, w, o, c_per_group).astype(dtype, copy=False),
                         weight.reshape(o, c_per_group).astype(dtype, copy=False))
    top, left, bottom, right = padding
    if groups > 1:
        return _grouped_conv(x, weight, tuple(stride), top, left, bottom, right)
    if any(padding):  # by hand: np.pad's generality costs more than the copy on small maps
        n, h, w, c = x.shape
        padded = np.zeros((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
        padded[:, top:top + h, left:left + w] = x
        x = padded
    n, h, w, c = x.shape
    sh, sw = stride
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    dtype = np.result_type(x.dtype, weight.dtype)
    cols = np.empty((n, ho, wo, kh, kw, c), dtype=dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = x[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]
    return (cols.reshape(n * ho * wo, kh * kw * c) @ weight.transpose(2, 3, 1, 0).reshape(-1, o)).reshape(n, ho, wo, o)


def _grouped_conv(x: np.ndarray, weight: np.ndarray, stride: tuple, top: int, left: int, bottom: int,
                  right: int) -> np.ndarray:
    """conv2d_nhwc of a grouped convolution. The converter's grouped convolutions are the lowered
    pooling layers, with 4 taps per output (a 2x2 window of one channel, or 4 channels): a BLAS
    product per group cost more in its strided copies and calls than the arithmetic (a MaxPool
    layer of the suite's VGG-style CNN, 50 frames at T = 16: 1.5 s of CPU against 0.3 s here)."""
    dtype = np.result_type(x.dtype, weight.dtype)
    n, h, w, c = x.shape
    padded = np.zeros((n, h + top + bottom, w + left + right, c), dtype=dtype)
    padded[:, top:top + h, left:left + w] = x
    _, kh, kw = weight.shape[1:]
    ho, wo = conv_output_size(h, kh, stride[0], top, bottom), conv_output_size(w, kw, stride[1], left, right)
    out = np.empty((n, ho, wo, weight.shape[0]), dtype=dtype)
    _grouped_conv_loop(padded, np.ascontiguousarray(weight, dtype=dtype), stride[0], stride[1], out)
    return out


@njit(cache=True)
def _grouped_conv_loop(x, weight, sh, sw, out):
    """out[b, y, x, o] = output o's window of its group's channels in the padded map x, by the
    weights: per position and group, the window copied once into a small buffer, then one short
    dot product per output of the group."""
    n, _, _, c = x.shape
    o, c_per_group, kh, kw = weight.shape
    groups = c // c_per_group
    o_per_group = o // groups
    taps = kh * kw * c_per_group
    # each output's weights in the window's order (ky, kx, channel)
    rows = np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(o, taps)
    window = np.empty(taps, out.dtype)
    _, ho, wo, _ = out.shape
    for b in range(n):
        for oy in range(ho):
            for ox in range(wo):
                target = out[b, oy, ox]
                for g in range(groups):
                    t = 0
                    for ky in range(kh):
                        for kx in range(kw):
                            source = x[b, oy * sh + ky, ox * sw + kx]
                            for ci in range(c_per_group):
                                window[t] = source[g * c_per_group + ci]
                                t += 1
                    for j in range(o_per_group):
                        row = rows[g * o_per_group + j]
                        total = out.dtype.type(0)
                        for t in range(taps):
                            total += window[t] * row[t]
                        target[g * o_per_group + j] = total


class Conv2dNhwcPlan:
    """One convolution on channels-last maps of a fixed size, im2col by a single precomputed
    gather instead of kh x kw strided copies: for one or two maps (a frame's image, a layer's
    spikes at small T) the copies' call overhead, not the arithmetic, is most of a convolution's
    time. Ungrouped convolutions only.
    Input rows are flattened (H, W, C) maps; so are the outputs (Ho, Wo, O)."""

    def __init__(self, weight: np.ndarray, input_hwc: tuple, stride: tuple, padding: tuple):
        o, c, kh, kw = weight.shape
        h, w, _ = input_hwc
        top, left, bottom, right = padding
        sh, sw = stride
        ho, wo = conv_output_size(h, kh, sh, top, bottom), conv_output_size(w, kw, sw, left, right)
        # index of every (output position, kernel tap, channel) into the flat input; taps in the
        # padding read one zero appended after the input
        oy, ox, ky, kx, ch = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), np.arange(c),
                                         indexing="ij")
        y, x = oy * sh + ky - top, ox * sw + kx - left
        inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        self.zero = h * w * c
        self.index = np.where(inside, (y * w + x) * c + ch, self.zero).reshape(ho * wo, kh * kw * c)
        self.padded = not bool(inside.all())
        self.matrix = np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(kh * kw * c, o))
        self.n_out = ho * wo * o

    def __call__(self, x_flat: np.ndarray) -> np.ndarray:
        """(N, H*W*C) -> (N, Ho*Wo*O)."""
        n = x_flat.shape[0]
        if self.padded:
            x_flat = np.concatenate([x_flat, np.zeros((n, 1), x_flat.dtype)], axis=1)
        cols = np.take(x_flat, self.index, axis=1)  # (N, Ho*Wo, K); several times faster than x[:, index]
        return (cols.reshape(-1, self.index.shape[1]) @ self.matrix).reshape(n, self.n_out)


class SpikeConvPlan:
    """A convolution of spike maps by scattering: each spike adds its weights to the outputs it
    reaches. A layer's spike maps are 5-10 % spikes (the suite's CNNs at T = 8), so this does a
    small part of the product of every input: the ungrouped 3x3 convolution of the suite's
    VGG-style CNN took 0.12 s against BLAS's 0.49 s on 800 maps, its lowered MaxPool layers about
    half. Used by both engines: the ideal one sums float32 weights (the same sums as a product,
    in another order), the Loihi-exact one int32 (whole numbers, the same in any order; they wrap
    where Lava's int32 sums would). Rows are flattened channels-last (H, W, C) maps of 0/1 (any
    dtype); so are the outputs (Ho, Wo, O); or both channels-first (C, H, W) with channels_first
    (the Loihi-exact engine's layout: transposing its maps and sums around the scatter cost more
    than the scatter)."""

    def __init__(self, weight: np.ndarray, input_hwc: tuple, stride: tuple, padding: tuple, groups: int,
                 dtype=np.float32, channels_first: bool = False):
        o, c_per_group, kh, kw = weight.shape
        h, w, c = input_hwc
        top, left, bottom, right = padding
        sh, sw = stride
        ho, wo = conv_output_size(h, kh, sh, top, bottom), conv_output_size(w, kw, sw, left, right)
        self.o_per_group, self.c_per_group, self.channels = o // groups, c_per_group, c
        # weight[o, c, ky, kx] as [ky, kx, input channel, o within its group], flat
        self.taps = np.ascontiguousarray(weight.reshape(groups, o // groups, c_per_group, kh, kw)
                                         .transpose(3, 4, 0, 2, 1)).reshape(-1).astype(dtype)
        # per input position: the outputs it reaches (offset of their first channel) and at which tap
        y, x, ky, kx = np.meshgrid(np.arange(h), np.arange(w), np.arange(kh), np.arange(kw), indexing="ij")
        ty, tx = y + top - ky, x + left - kx
        reached = (ty >= 0) & (ty % sh == 0) & (ty // sh < ho) & (tx >= 0) & (tx % sw == 0) & (tx // sw < wo)
        reached = reached.reshape(h * w, kh * kw)
        self.n_reached = reached.sum(axis=1).astype(np.int64)
        order = np.argsort(~reached, axis=1, kind="stable")  # the reached taps first, in tap order
        self.target = np.take_along_axis((((ty // sh) * wo + tx // sw) * o).reshape(h * w, -1), order, axis=1)
        self.tap = np.take_along_axis(np.broadcast_to(np.arange(kh * kw) * c * (o // groups), (h * w, kh * kw)),
                                      order, axis=1).astype(np.int64)
        self.n_out, self.channels_out = ho * wo * o, o
        self.channels_first = channels_first

    def __call__(self, spikes_flat: np.ndarray) -> np.ndarray:
        """(N, H*W*C) -> (N, Ho*Wo*O) in the plan's dtype (channels_first: (N, C*H*W) -> (N, O*Ho*Wo))."""
        out = np.empty((len(spikes_flat), self.n_out), self.taps.dtype)
        _scatter_spikes(np.ascontiguousarray(spikes_flat), self.taps, self.target, self.tap, self.n_reached,
                        self.channels, self.c_per_group, self.o_per_group, self.channels_out, self.channels_first,
                        out)
        return out


@njit(cache=True)
def _scatter_spikes(spikes, taps, target, tap, n_reached, channels, c_per_group, o_per_group, channels_out,
                    channels_first, out):
    """SpikeConvPlan's sums: out[r] gets, for each spike of row r at (position, channel c) and each
    output it reaches, the weights of c at that tap; summed channels-last, then copied out in the
    rows' order."""
    rows = spikes.shape[0]
    positions = target.shape[0]
    sums = np.empty(out.shape[1], out.dtype)
    positions_out = out.shape[1] // channels_out
    for r in range(rows):
        row = spikes[r]
        sums[:] = 0
        for i in range(positions * channels):  # in the row's order: the maps are read once, in sequence
            if row[i] == 0:
                continue
            if channels_first:
                c, p = i // positions, i % positions
            else:
                p, c = i // channels, i % channels
            first = (c // c_per_group) * o_per_group
            for k in range(n_reached[p]):
                # slices, not offsets: numba then knows the indices are not negative and
                # vectorizes the sum (4x faster on a 64-channel convolution)
                to = sums[target[p, k] + first:target[p, k] + first + o_per_group]
                weights = taps[tap[p, k] + c * o_per_group:tap[p, k] + (c + 1) * o_per_group]
                for j in range(o_per_group):
                    to[j] += weights[j]
        if channels_first:
            for q in range(positions_out):
                for o in range(channels_out):
                    out[r, o * positions_out + q] = sums[q * channels_out + o]
        else:
            out[r] = sums


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
