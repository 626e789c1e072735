"""netx HDF5 files written by lava-dl itself, run by our exact engine and by Lava: the same spikes.

Small slayer CUBA networks are built in torch as lava-dl's tutorials build them (block.cuba.Dense,
Conv, Flatten, Affine; current and voltage decays, thresholds; a MeanOnlyBatchNorm for a bias),
given random weights big enough that neurons fire, and exported with the blocks' own `export_hdf5`.
Lava runs each file as lava-dl users run it (netx.hdf5.Network in Loihi2SimCfg fixed_pt, fed by a
ring buffer of binary spikes, every layer's spikes recorded by a sink); `load_netx` + LoihiEngine run
the same file on the same spikes, and every layer's spike train (and a readout's voltage) must be
identical, bit for bit.
"""
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")
from snn_agent.backends.lava import import_lava_runtime  # noqa: E402

import_lava_runtime()  # before lava-dl: OpenVINO, imported by other test modules, fixes the start method
slayer = pytest.importorskip("lava.lib.dl.slayer")
netx = pytest.importorskip("lava.lib.dl.netx")

from dataclasses import replace  # noqa: E402

from snn_agent.engine.loihi_engine import LoihiEngine, load_netx  # noqa: E402

T = 16  # steps with input; a frame runs T + depth steps
FRAMES = 2
SPIKE_RATE = 0.3

# as in lava-dl's tutorials; the decays are nonzero so that du and dv matter
NEURON = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03,
          "tau_grad": 0.03, "scale_grad": 3, "requires_grad": False}


def neuron(**changes) -> dict:
    return {**NEURON, **changes}


def with_bias(**changes) -> dict:
    """A neuron whose MeanOnlyBatchNorm gives the block a bias (netx: bias_mant, bias_exp 6)."""
    return neuron(norm=slayer.neuron.norm.MeanOnlyBatchNorm, **changes)


def set_weights(block, std: float, generator, sign: int = 0) -> None:
    """Normal weights, or of one sign (none quantizes to zero: netx sees a purely excitatory or
    inhibitory layer)."""
    with torch.no_grad():
        weight = torch.randn(block.synapse.weight.shape, generator=generator) * std
        block.synapse.weight.copy_((weight.abs() + 0.04) * sign if sign else weight)


def export(blocks, input_shape: tuple, path, generator, top_bias: float = 40) -> None:
    """One forward pass (slayer infers the blocks' shapes from it), a bias drawn for every block
    with a norm (mantissas from -10 to top_bias: some neurons fire on their bias alone), then the
    blocks' own export, as lava-dl's tutorials write a network."""
    blocks = torch.nn.ModuleList(blocks).eval()
    x = (torch.rand((1,) + input_shape + (4,), generator=generator) < SPIKE_RATE).float()
    with torch.no_grad():
        for block in blocks:
            x = block(x)
        for block in blocks:
            norm = getattr(getattr(block, "neuron", None), "norm", None)
            if norm is not None:  # bias = -running_mean, x 64 in the file
                bias = -10 + (top_bias + 10) * torch.rand(block.synapse.out_channels, generator=generator)
                norm.running_mean = -bias / 64
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(f"{i}"))


def dense_network(path) -> tuple:
    """Three dense blocks and no input layer, as in lava-dl's N-MNIST tutorial: mixed-sign weights
    over the whole 8-bit range; small excitatory weights (netx shifts them up and gives the synapse
    a negative exponent) into IF neurons (current_decay 1); small inhibitory weights against a bias."""
    g = torch.Generator().manual_seed(4)
    blocks = [slayer.block.cuba.Dense(neuron(), 40, 24),
              slayer.block.cuba.Dense(neuron(current_decay=1.0, voltage_decay=0.0), 24, 16),
              slayer.block.cuba.Dense(with_bias(current_decay=0.3, voltage_decay=0.1), 16, 6)]
    set_weights(blocks[0], 1.6, g)
    set_weights(blocks[1], 0.15, g, sign=1)
    set_weights(blocks[2], 0.03, g, sign=-1)
    export(blocks, (40,), path, g, top_bias=120)
    return (40,)


def conv_network(path, input_layer: bool = True) -> tuple:
    """[input (shape only)] -> conv (stride 2, padding 1, bias) -> grouped conv -> flatten -> dense
    -> dense, on a non-square input so that a mix-up of x and y shows."""
    g = torch.Generator().manual_seed(5)
    shape = (2, 9, 7)
    blocks = [slayer.block.cuba.Conv(with_bias(), 2, 4, 3, stride=2, padding=1),
              slayer.block.cuba.Conv(neuron(current_decay=0.1, voltage_decay=0.2), 4, 6, 3,
                                     padding=1, groups=2),
              slayer.block.cuba.Flatten(),
              slayer.block.cuba.Dense(neuron(), 6 * 5 * 4, 12),
              slayer.block.cuba.Dense(neuron(current_decay=0.0, voltage_decay=0.2), 12, 5)]
    for block, std in zip([blocks[0], blocks[1], blocks[3], blocks[4]], [1.2, 1.0, 0.8, 0.6]):
        set_weights(block, std, g)
    if input_layer:
        blocks.insert(0, slayer.block.cuba.Input(None, delay_shift=False))
    export(blocks, shape, path, g)
    return shape


def readout_network(path, dynamics: bool = True) -> tuple:
    """Dense blocks into slayer's Affine block, a readout whose voltage is the output: with its
    neuron (exported with a threshold it can never reach) or without one (netx's default neuron)."""
    g = torch.Generator().manual_seed(6)
    blocks = [slayer.block.cuba.Dense(neuron(), 30, 20),
              slayer.block.cuba.Dense(with_bias(voltage_decay=0.1), 20, 12),
              slayer.block.cuba.Affine(neuron(current_decay=0.1, voltage_decay=0.05), 12, 4, dynamics=dynamics)]
    for block, std in zip(blocks, [1.2, 0.8, 0.5]):
        set_weights(block, std, g)
    export(blocks, (30,), path, g)
    return (30,)


def run_lava(path, inputs: np.ndarray, input_shape: tuple = None) -> tuple:
    """inputs: (T, C, H, W) or (T, n) binary spikes, sent at steps 1..T. Runs T + depth steps of the
    file in Lava -> ([spike trains (steps, n) per layer], the last layer's v (n,)), (C, H, W)-flat."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io import sink, source

    lava_shape = tuple(input_shape[::-1]) if input_shape is not None else None  # (x, y, f)
    net = netx.hdf5.Network(net_config=str(path), input_shape=lava_shape)
    steps = len(inputs) + len(net.layers)
    data = np.zeros(tuple(net.inp.shape) + (steps,))
    data[..., :len(inputs)] = inputs.T  # (T, C, H, W) -> Lava's (x, y, f, T) = (W, H, C, T)
    feed = source.RingBuffer(data=data)  # sends data[..., t - 1] at step t
    feed.s_out.connect(net.inp)
    sinks = []
    for block in net.layers:
        sinks.append(sink.RingBuffer(shape=block.out.shape, buffer=steps))
        block.out.connect(sinks[-1].a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        trains = [s.data.get() for s in sinks]  # (x, y, f, steps) or (n, steps)
        v = net.layers[-1].neuron.v.get()
    finally:
        net.stop()
    return [train.T.reshape(steps, -1) for train in trains], v.T.reshape(-1)  # (steps, C, H, W) flat


def spike_inputs(shape: tuple, seed: int) -> np.ndarray:
    """(T, FRAMES, *shape) binary spikes."""
    return (np.random.default_rng(seed).random((T, FRAMES) + shape) < SPIKE_RATE).astype(np.float32)


CASES = {"dense": (dense_network, {}, False),
         "conv-flatten-dense": (conv_network, {"input_layer": True}, False),
         "conv-without-input-layer": (conv_network, {"input_layer": False}, True),
         "affine-readout": (readout_network, {"dynamics": True}, False),
         "affine-readout-without-neuron": (readout_network, {"dynamics": False}, False)}


@pytest.mark.parametrize("case", list(CASES))
def test_lava_dl_network_runs_exactly_as_in_lava(tmp_path, case):
    """Every layer's spikes, and a readout's final voltage, bit for bit, on two frames."""
    network, options, pass_shape = CASES[case]
    path = str(tmp_path / "network.net")
    shape = network(path, **options)
    # a file that starts with a conv and has no input layer needs the input's shape, in Lava too
    given_shape = shape if pass_shape else None
    model = load_netx(path, input_shape=given_shape)
    assert tuple(model.layers[0].input_shape) == shape
    readout = not model.layers[-1].spiking
    assert readout == (network is readout_network)
    engine = LoihiEngine(model)
    inputs = spike_inputs(shape, seed=len(shape))
    result, ours = engine.run_sequence(inputs, return_spikes=True)
    assert len(ours) == len(model.layers) == engine.depth
    for frame in range(FRAMES):
        lava, lava_v = run_lava(path, inputs[:, frame], given_shape)
        assert len(lava) == len(ours)
        for index, (lava_train, our_train) in enumerate(zip(lava, ours)):
            assert lava_train.shape == our_train[:, frame].shape, f"layer {index}"
            assert np.array_equal(lava_train.astype(bool), our_train[:, frame]), f"frame {frame} layer {index}"
        if readout:  # scores = v / (64 T), exact in float32 as 64 T is a power of two
            np.testing.assert_array_equal(result.scores[frame].astype(np.float64) * 64 * T, lava_v)
    # the comparison sees real activity in every layer, and leaks and biases that matter
    for index, layer in enumerate(model.layers):
        assert ours[index].any() if layer.spiking else np.all(result.scores != 0), f"layer {index} is silent"
        if (layer.fixed_point.du, layer.fixed_point.dv) != (-1, 0):
            assert changes_output(model, inputs, index, du=-1, dv=0), f"layer {index}: leaks make no difference"
        if np.any(layer.bias):
            assert changes_output(model, inputs, index, bias=0), f"layer {index}: bias makes no difference"


def changes_output(model, inputs, index, bias=None, **fixed_point) -> bool:
    """Whether layer `index` fires otherwise (a readout: ends at another voltage) with other leaks
    (du, dv) or a zero bias."""
    layers = list(model.layers)
    layer = layers[index]
    layers[index] = replace(layer, fixed_point=replace(layer.fixed_point, **fixed_point),
                            bias=layer.bias if bias is None else np.zeros_like(layer.bias))
    other = replace(model, network=replace(model.network, layers=layers))

    def output(m):
        result, spikes = LoihiEngine(m).run_sequence(inputs, return_spikes=True)
        return spikes[index] if m.layers[index].spiking else result.scores

    return not np.array_equal(output(model), output(other))


def unsupported_pool(path) -> None:
    blocks = [slayer.block.cuba.Input(None, delay_shift=False),
              slayer.block.cuba.Conv(neuron(), 2, 4, 3, padding=1), slayer.block.cuba.Pool(neuron(), 2),
              slayer.block.cuba.Flatten(), slayer.block.cuba.Dense(neuron(), 4 * 3 * 3, 5)]
    export(blocks, (2, 6, 6), path, torch.Generator().manual_seed(0))


def unsupported_delay(path) -> None:
    blocks = [slayer.block.cuba.Dense(neuron(), 10, 8, delay=True), slayer.block.cuba.Dense(neuron(), 8, 4)]
    export(blocks, (10,), path, torch.Generator().manual_seed(0))


def unsupported_input_neuron(path) -> None:
    blocks = [slayer.block.cuba.Input(neuron()), slayer.block.cuba.Dense(neuron(), 10, 4)]
    export(blocks, (10,), path, torch.Generator().manual_seed(0))


def unsupported_complex_synapse(path) -> None:
    """lava-dl's resonate-and-fire block: complex synapses (weight/real and weight/imag groups)."""
    blocks = [slayer.block.rf.Dense({"threshold": 1.0, "period": 10, "decay": 0.1}, 10, 8),
              slayer.block.cuba.Dense(neuron(), 8, 4)]
    export(blocks, (10,), path, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("write, message", [(unsupported_pool, "layer 2 is a 'pool' layer; supported: dense and conv"),
                                            (unsupported_delay, "layer 0 (dense) has synaptic delays"),
                                            (unsupported_input_neuron, "input layers with neurons"),
                                            (unsupported_complex_synapse, "layer 0 (dense) has complex synapses "
                                             "(weight/imag, weight/real), which are not supported; supported: "
                                             "dense and conv layers of CUBA neurons")],
                         ids=["pool", "delay", "input-neuron", "complex-synapse"])
def test_unsupported_lava_dl_file_is_a_clear_error(tmp_path, write, message):
    path = str(tmp_path / "network.net")
    write(path)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_netx(path)


def test_conv_file_without_input_layer_needs_the_input_shape(tmp_path):
    path = str(tmp_path / "network.net")
    conv_network(path, input_layer=False)
    with pytest.raises(ValueError, match="input_shape"):
        load_netx(path)
