"""The `loihi` target as a lava-dl netx HDF5 network (what `lava.lib.dl.netx.hdf5.Network` loads).

Layout (netx 0.6.0 reads these keys; shapes are written channels-first, netx reverses them to its
(x, y, f) order):
  layer/0          type 'input' with only a shape: tells netx the input shape (no neuron; netx's
                   Input block leaves its in-port unconnected, so it could not take the image)
  layer/i          type 'conv' or 'dense' with weight, bias, and neuron {type CUBA, iDecay = du + 1
                   (netx subtracts 1), vDecay = dv, vThMant = vth, refDelay 1}; a 'flatten' layer
                   goes before the first dense layer that follows a convolution
The image reaches the first synapse as graded spikes (netx: Network(..., input_message_bits=8)),
sent by the host at every step (backends/lava.py: an Injector on net.inp). A dense first layer is
written as a 1x1 convolution over a 1x1 image: Lava's Dense cannot take the Injector's float
graded spikes (its exponent shift rejects floats); its Conv can, and computes the same sums.
The score layer is a CUBA layer whose threshold its voltage cannot reach; the backend reads its v.
"""
from __future__ import annotations

import numpy as np

from ..engine.ops import conv_output_size
from ..ir import Layer, SNNModel

NETX_FILE = "loihi.net"  # in the model directory
INPUT_MESSAGE_BITS = 8  # graded input spikes: Network(..., input_message_bits=INPUT_MESSAGE_BITS)


class ExportError(ValueError):
    """The model cannot be written as a netx network."""


def export_netx(model: SNNModel, path: str) -> str:
    """Write the model to `path` (HDF5); returns the path."""
    import h5py

    if model.target != "loihi":
        raise ExportError(f"netx export needs the loihi target (conversion.loihi.to_loihi), got {model.target!r}")
    with h5py.File(path, "w") as f:
        group = f.create_group("layer")
        first_shape = tuple(model.network.preprocessing.input_shape)
        if model.layers[0].kind == "dense":
            first_shape = (int(np.prod(first_shape)), 1, 1)  # the 1x1 convolution's input
        _layer(group, 0, "input", first_shape)
        index, spatial = 1, True  # does the previous layer give a (C, H, W) map?
        for i, layer in enumerate(model.layers):
            _check(layer, first=(i == 0))
            if i == 0 and layer.kind == "dense":
                layer = _as_1x1_conv(layer)
            if layer.kind == "dense" and spatial:
                _layer(group, index, "flatten", None)
                index += 1
            _write_layer(_layer(group, index, layer.kind, layer.output_shape), layer)
            index += 1
            spatial = layer.kind == "conv"
    return path


def _check(layer: Layer, first: bool) -> None:
    fp = layer.fixed_point
    if fp is None:
        raise ExportError(f"layer {layer.name}: no fixed-point parameters")
    if fp.bias_exp != 6:
        raise ExportError(f"layer {layer.name}: bias_exp {fp.bias_exp}; netx always uses 6")
    if fp.weight_exp != 0:
        raise ExportError(f"layer {layer.name}: weight_exp {fp.weight_exp}; netx derives the exponent "
                          f"from the integer weights, which must carry the scale")
    if first and fp.input_scale <= 0:
        raise ExportError(f"layer {layer.name}: the first layer must take graded input (input_scale > 0)")
    if layer.kind == "conv":
        top, left, bottom, right = layer.padding
        _, h, w = layer.input_shape
        _, kh, kw = layer.weight.shape[1:]
        sh, sw = layer.stride
        # Lava pads both sides alike: fine if the extra rows/columns at the end are never read
        if (conv_output_size(h, kh, sh, top, top), conv_output_size(w, kw, sw, left, left)) != tuple(layer.output_shape[1:]):
            raise ExportError(f"layer {layer.name}: padding {layer.padding} is not symmetric; Lava's Conv "
                              f"pads top/bottom and left/right alike")


def _as_1x1_conv(layer: Layer) -> Layer:
    n_out, n_in = layer.weight.shape
    return Layer(layer.name, "conv", layer.weight.reshape(n_out, n_in, 1, 1), layer.bias, (n_in, 1, 1),
                 (n_out, 1, 1), spiking=layer.spiking, fixed_point=layer.fixed_point)


def _layer(group, index: int, kind: str, shape):
    handle = group.create_group(str(index))
    handle.create_dataset("type", (1,), "S10", [kind.encode("ascii")])
    if shape is not None:
        handle.create_dataset("shape", data=np.asarray(shape, dtype=np.int64))
    return handle


def _write_layer(handle, layer: Layer) -> None:
    fp = layer.fixed_point
    handle.create_dataset("weight", data=np.asarray(layer.weight, dtype=np.float32))
    handle.create_dataset("bias", data=np.asarray(layer.bias, dtype=np.float32))
    if layer.kind == "conv":
        handle.create_dataset("stride", data=np.asarray(layer.stride, dtype=np.int64))  # (y, x)
        handle.create_dataset("padding", data=np.asarray(layer.padding[:2], dtype=np.int64))
        handle.create_dataset("dilation", data=np.array([1, 1], dtype=np.int64))
        handle.create_dataset("groups", data=int(layer.groups))
    handle.create_dataset("neuron/type", (1,), "S10", [b"CUBA"])
    neuron = {"iDecay": fp.du + 1, "vDecay": fp.dv, "vThMant": fp.vth, "refDelay": 1, "gradedSpike": False}
    for key, value in neuron.items():
        handle.create_dataset(f"neuron/{key}", data=value)
