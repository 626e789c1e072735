"""The converted SNN as a NIR graph (Neural Intermediate Representation, nir 1.0), so that other
simulators and neuromorphic toolchains (snnTorch, Norse, Sinabs, Rockpool, Lava-dl...) can read it.

The chain  Input -> [Flatten] -> Conv2d | Affine -> IF -> ... -> Affine -> Output,  one
Conv2d/Affine per layer of the SNNModel, an IF after each spiking layer, a Flatten (start_dim=0:
NIR's shapes have no batch axis) where a dense layer follows a feature map. Node names are
`conv0`, `if0`, `flatten2`, `affine2`... (ONNX names contain '/', which HDF5 reads as a path);
each linear node's metadata keeps its layer's name.

How our ideal SNN maps onto NIR's nodes, and where it does not:
- Input: the frame, presented unchanged at every timestep (layer 0 receives it as a constant
  analog current, not as spikes).
- Conv2d / Affine: weights and biases as normalized by the conversion; the bias is a current
  added at every timestep.
- IF: r = 1, v_threshold = the layer's threshold x the NeuronConfig's scales for it, one value per
  neuron (its bias shifts, if any, are added to the biases). A simulator discretizing v' = R I
  with dt = 1 gets our v += W s + b.
- Reset by subtraction does NOT map: nir.IF resets to v_reset (here 0), i.e. a NIR simulator runs
  the reset-to-zero variant (our NeuronConfig(reset="zero"), as Loihi does), which loses the charge
  above threshold and is less accurate at small T. NIR 1.0 also fires on v > threshold where our
  subtracting neuron fires on v >= threshold.
- v_init does NOT map: NIR has no initial state, so simulators start at v = 0 (our v_init = 0.5
  starts half-way to threshold, which centres the rounding error of rate coding), nor do the
  calibrated initial potentials per channel or neuron (conversion/calibrate.py).
- The score layer has no neuron: its Affine feeds Output, and the class scores are that current
  averaged over the T timesteps.
The neuron settings that NIR cannot hold are written to the graph's metadata (reset, v_init, the
initial potentials, readout), so that a reader that knows them can restore the exact model.

Padding must be symmetric (NIR's Conv2d has one padding per axis); asymmetric padding is an error.
"""
from __future__ import annotations

import numpy as np

from ..ir import SNNModel


def export_nir(model: SNNModel, path: str):
    """Write the SNN to `path` (HDF5, as nir.write does) and return the nir.NIRGraph."""
    import nir

    if not model.network.is_chain:
        raise ValueError("the NIR export writes a chain of layers; this network has residual Add or "
                         "Concat branches")
    shape = tuple(model.network.preprocessing.input_shape)
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges = []
    previous = "input"

    def chain(name: str, node) -> None:
        nonlocal previous
        nodes[name] = node
        edges.append((previous, name))
        previous = name

    spiking_index = 0
    for i, layer in enumerate(model.layers):
        meta = {"layer": layer.name}
        bias, threshold = layer.bias, None
        if layer.spiking:
            threshold = model.thresholds[spiking_index] * model.neuron.scale_of(spiking_index)
            shift = model.neuron.bias_shift_of(spiking_index)
            bias = bias if shift is None else bias + shift * threshold
            spiking_index += 1
        if layer.kind == "conv":
            top, left, bottom, right = layer.padding
            if (top, left) != (bottom, right):
                raise ValueError(f"layer {layer.name}: asymmetric padding {layer.padding} (top, left, bottom, "
                                 f"right) has no NIR Conv2d equivalent")
            chain(f"conv{i}", nir.Conv2d(input_shape=tuple(layer.input_shape[1:]), weight=_ungrouped(layer),
                                         stride=tuple(layer.stride), padding=(top, left), dilation=(1, 1),
                                         groups=1, bias=bias, metadata=meta))
        else:
            if len(shape) > 1:  # a feature map into a dense layer: channels, rows, columns order
                chain(f"flatten{i}", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0))
            chain(f"affine{i}", nir.Affine(weight=layer.weight, bias=bias, metadata=meta))
        shape = tuple(layer.output_shape)
        if layer.spiking:
            chain(f"if{i}", nir.IF(r=np.ones(shape, np.float32),
                                   v_threshold=np.full(shape, threshold, np.float32),
                                   v_reset=np.zeros(shape, np.float32)))
    chain("output", nir.Output(output_type={"output": np.array(shape)}))

    metadata = {
        "producer": "snn_agent",
        "target": model.target,
        "reset": model.neuron.reset,  # NIR's IF resets to v_reset (0): "zero" in our terms
        "v_init": float(model.neuron.v_init),  # fraction of threshold; NIR starts at 0
        # per layer, per output channel or per neuron (nested as the layer's output shape), added
        # to v_init (fractions of the threshold)
        "initial_potential": {layer.name: layer.initial_potential.astype(float).tolist()
                              for layer in model.layers if layer.initial_potential is not None},
        "readout": "mean over timesteps of the last Affine's output",
        "input": "the preprocessed frame, the same at every timestep",
    }
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)  # checks that the shapes chain
    nir.write(path, graph)
    return graph


def _ungrouped(layer) -> np.ndarray:
    """A grouped convolution's weight as the same convolution without groups (zeros between the
    groups): NIR's type check takes a Conv2d's input channels from its weight alone, so a grouped
    one (a lowered pooling layer) would not chain."""
    if layer.groups == 1:
        return layer.weight
    o, per_group = layer.weight.shape[:2]
    full = np.zeros((o, per_group * layer.groups) + layer.weight.shape[2:], layer.weight.dtype)
    out_per_group = o // layer.groups
    for g in range(layer.groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        full[rows, g * per_group:(g + 1) * per_group] = layer.weight[rows]
    return full
