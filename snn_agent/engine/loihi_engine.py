"""Lava's fixed-point CUBA LIF network, bit for bit, at numpy speed.

Reproduces what Loihi2SimCfg(select_tag='fixed_pt') computes with the process models that
lava-dl's netx builds (lava.proc.dense PyDenseModelBitAcc, lava.proc.conv PyConvModelFixed,
lava.proc.lif PyLifModelBitAcc):

  synapse  at step t it sends the sum it computed at step t-1 from its input (a buffer that starts
           at zero): every synapse layer delays by one step. Dense: integer sum, shifted by the
           weight exponent, carried as int32. Conv: integer sum wrapped to 24 bits, no exponent.
  neuron   u = decay(u, du + 1) + (a_in << 6), wrapped into 24 bits as Lava does;
           v = clip(decay(v, dv) + u + (bias << bias_exp), +-(2**23 - 1)); spike when v > vth << 6;
           v = 0 after a spike. decay(x, d) = sign(x) * (|x| * (4096 - d) >> 12).
  input    the host sends the first synapse the same graded payload round(x * input_scale) at
           steps 1..T, then nothing; a frame runs T + depth steps, so that the score layer (depth
           synapses away) integrates exactly T steps. Its voltage after the last step is the score.

Like cpu_engine, each layer's synaptic sums of all steps come from one matrix product (in float,
exact: the converter bounds every sum below 2**24, and float64 is used where a layer's weights
could exceed that); only the neuron update runs step by step. Integer wrap-arounds happen where
Lava's int32 / 24-bit arithmetic has them, so the emulation stays exact even where a badly
scaled network overflows. test/test_loihi_exact.py checks it against Lava itself.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
from numba import njit

from ..ir import FixedPoint, Layer, Network, NeuronConfig, Preprocessing, SNNModel
from .cpu_engine import InferenceResult, OpCounts
from .ops import fan_out, linear

ACT_SHIFT = 6  # Lava's LIF shifts a_in and vth left by 6 bits
UV_HALF = 2 ** 23  # u and v are 24-bit registers
V_LIMIT = UV_HALF - 1
VTH_MAX = 2 ** 17 - 1  # 17-bit threshold mantissa
DECAY_UNITY = 4096
PAYLOAD_MAX = 255  # graded input spikes: 8-bit magnitude and a sign


class LoihiEngine:
    """Runs a `loihi` target SNNModel exactly as Lava's bit-accurate process models do."""

    def __init__(self, model: SNNModel):
        if model.target != "loihi" or any(layer.fixed_point is None for layer in model.layers):
            raise ValueError("LoihiEngine runs models of the loihi target "
                             "(snn_agent.conversion.loihi.to_loihi or load_netx)")
        if not model.network.is_chain:
            raise ValueError("LoihiEngine runs chains of layers; this network has residual Add or Concat branches")
        self.model = model
        self._synapses = [_Synapse(layer, first=(i == 0)) for i, layer in enumerate(model.layers)]

    @property
    def depth(self) -> int:
        """Synapse layers between the host and the score layer: the steps a frame needs beyond T."""
        return len(self.model.layers)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(frames, *input_shape) preprocessed -> what the host sends at each step, (frames, n)."""
        x = x.reshape(len(x), -1)
        scale = self.model.layers[0].fixed_point.input_scale
        if scale > 0:
            return np.clip(np.rint(x.astype(np.float64) * scale), -PAYLOAD_MAX, PAYLOAD_MAX)
        return (x != 0).astype(np.float64)

    def run(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None,
            return_spikes: bool = False):
        """x: (frames, C, H, W) preprocessed, sent as the same payload at each of T steps."""
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        return self._simulate(self.encode(x)[None], timesteps, neuron, return_spikes)

    def run_sequence(self, inputs: np.ndarray, neuron: Optional[NeuronConfig] = None,
                     return_spikes: bool = False):
        """inputs: (T, frames, *input_shape), a different input at each step (event streams, as
        lava-dl networks are trained on); sent as they are (binary spikes or graded payloads)."""
        steps, frames = inputs.shape[:2]
        flat = inputs.reshape(steps, frames, -1).astype(np.float64)
        if self.model.layers[0].fixed_point.input_scale == 0:
            flat = (flat != 0).astype(np.float64)
        return self._simulate(flat, steps, neuron, return_spikes)

    def thresholds(self, neuron: NeuronConfig) -> list:
        """Threshold mantissa of every layer at an operating point (the score layer's never moves)."""
        vths, spiking_index = [], 0
        for layer in self.model.layers:
            vth = int(layer.fixed_point.vth)
            if layer.spiking:
                scale = neuron.scale_of(spiking_index)
                spiking_index += 1
                if scale != 1.0:
                    vth = int(np.clip(round(vth * scale), 1, VTH_MAX))
            vths.append(vth)
        return vths

    def voltage_decays(self, neuron: NeuronConfig) -> list:
        """dv of every layer at an operating point: the point's leak on the spiking layers where it
        sets one (the score layer keeps its own: a leak there would change what the score means)."""
        return [int(neuron.v_decay) if layer.spiking and neuron.v_decay is not None else int(layer.fixed_point.dv)
                for layer in self.model.layers]

    def bias_mantissas(self, neuron: NeuronConfig) -> list:
        """Every layer's bias mantissa per channel at an operating point, as the synapses hold it:
        moved by the point's bias shift (a fraction of the layer's threshold per step, the same
        meaning as in the ideal engine), rounded and clipped to Lava's int16."""
        biases, spiking_index = [], 0
        for layer, vth in zip(self.model.layers, self.thresholds(neuron)):
            bias = np.rint(layer.bias).astype(np.int64)
            if layer.spiking:
                shift = neuron.bias_shift_of(spiking_index)
                spiking_index += 1
                if shift is not None:
                    per_bias_unit = 2.0 ** (ACT_SHIFT - int(layer.fixed_point.bias_exp))
                    bias = np.clip(bias + np.rint(shift * vth * per_bias_unit).astype(np.int64),
                                   np.iinfo(np.int16).min, np.iinfo(np.int16).max)
            biases.append(bias)
        return biases

    def _biases(self, neuron: NeuronConfig) -> list:
        """Per neuron, in v units, of every layer (the converted biases unless the point shifts them)."""
        if not any(neuron.bias_shifts):
            return [synapse.bias for synapse in self._synapses]
        return [_effective_bias(layer, mantissas) for layer, mantissas in
                zip(self.model.layers, self.bias_mantissas(neuron))]

    def initial_voltages(self, neuron: NeuronConfig) -> list:
        """v of every layer at the start of a frame (what the Lava backend writes too):
        (v_init + the layer's initial potential) * vth, lowered by the bias the layer integrates before its input arrives, and never
        above the threshold, so that no neuron fires before its input."""
        voltages = []
        for layer, vth, bias in zip(self.model.layers, self.thresholds(neuron), self._biases(neuron)):
            fp = layer.fixed_point
            start = (round(neuron.v_init * vth) << ACT_SHIFT) if layer.spiking else 0
            if layer.spiking and layer.initial_potential is not None:  # per channel, fractions of vth
                fraction = neuron.v_init + np.broadcast_to(layer.initial_potential.reshape(
                    (-1,) + (1,) * (len(layer.output_shape) - 1)), layer.output_shape).reshape(-1)
                start = np.rint(fraction * vth).astype(np.int64) << ACT_SHIFT
            bias = bias.astype(np.int64)
            v0 = np.clip(start - fp.start_delay * bias, -V_LIMIT, vth << ACT_SHIFT)
            voltages.append(np.broadcast_to(v0, (layer.n_neurons,)).astype(np.int32))
        return voltages

    def layer_input(self, index: int, source: np.ndarray, timesteps: int) -> np.ndarray:
        """What layer `index`'s neurons receive over a frame, a_in (T + depth steps, frames, n) int32,
        from its source: for the first layer what the host sends at steps 1..T ((1 or T, frames,
        n_in); 1: the same at each), else the previous layer's spikes over the frame."""
        steps, frames = timesteps + self.depth, source.shape[1]
        a_in = np.zeros((steps, frames, self.model.layers[index].n_neurons), np.int32)
        if index == 0:
            a_in[1:timesteps + 1] = self._synapses[0].sums(source)  # sent one step after the host's
        else:
            a_in[1:] = self._synapses[index].sums(source[:-1])  # the last step's spikes arrive after the run
        return a_in

    def layer_output(self, index: int, a_in: np.ndarray, neuron: Optional[NeuronConfig] = None) -> tuple:
        """Layer `index`'s neurons on their input a_in (layer_input) at an operating point ->
        (spikes (steps, frames, n) bool, voltage after the frame (frames, n))."""
        return self._neurons(index, a_in, self._point(neuron or self.model.neuron))

    def _point(self, neuron: NeuronConfig) -> tuple:
        """Every layer's (vth, initial voltages, bias, dv) at an operating point."""
        return self.thresholds(neuron), self.initial_voltages(neuron), self._biases(neuron), self.voltage_decays(neuron)

    def _neurons(self, index: int, a_in: np.ndarray, point: tuple) -> tuple:
        vths, voltages, biases, v_decays = point
        du = int(self.model.layers[index].fixed_point.du)
        return _lif(a_in, du, v_decays[index], vths[index], voltages[index], biases[index])

    def _simulate(self, inputs: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig],
                  return_spikes: bool):
        """inputs: (1 or T, frames, n) what the host sends at steps 1..T (1: the same at each)."""
        neuron = neuron or self.model.neuron
        frames = inputs.shape[1]
        steps = timesteps + self.depth
        counts = OpCounts(frames=frames, timesteps=timesteps)
        point = self._point(neuron)
        spikes, all_spikes = None, []
        for index, (layer, synapse) in enumerate(zip(self.model.layers, self._synapses)):
            if spikes is None:
                # payload entries that reach synapses, each step it is sent
                active = np.count_nonzero(inputs, axis=1).sum(axis=0) * (timesteps if len(inputs) == 1 else 1)
                synops = float(active @ synapse.fan_out)
            else:
                synops = float(spikes.reshape(-1, spikes.shape[-1]).sum(axis=0) @ synapse.fan_out)
            spikes, v = self._neurons(index, self.layer_input(index, inputs if spikes is None else spikes, timesteps),
                                      point)
            n_spikes = int(np.count_nonzero(spikes))
            if layer.spiking:
                per_neuron = np.count_nonzero(spikes.reshape(-1, layer.n_neurons), axis=0)
                counts.channel_rates.append(per_neuron.reshape(layer.output_shape[0], -1).mean(axis=1)
                                            / (frames * timesteps))
            if return_spikes:
                all_spikes.append(spikes)
            counts.add_layer(layer.name, layer.n_neurons, n_spikes, synops, steps)
        last = self.model.layers[-1]
        if last.spiking:  # a lava-dl classifier: the output is its spike count
            scores = spikes.sum(axis=0).astype(np.float32)
        else:
            scores = score_from_voltage(self.model, v, timesteps)
        result = InferenceResult(scores=scores, ops=counts)
        return (result, all_spikes) if return_spikes else result


class _Synapse:
    """A layer's weights ready for exact float products, and its fan-out for op counts."""

    def __init__(self, layer: Layer, first: bool):
        fp = layer.fixed_point
        graded = first and fp.input_scale > 0
        max_input = PAYLOAD_MAX if graded else 1
        rows = np.abs(layer.weight.astype(np.float64)).reshape(layer.weight.shape[0], -1)
        # float32 sums are exact while every partial sum stays below 2**24
        dtype = np.float32 if float(rows.sum(axis=1).max(initial=0)) * max_input < 2 ** 24 else np.float64
        self.layer = replace(layer, weight=layer.weight.astype(dtype))
        self.dtype = dtype
        self.bias = _effective_bias(layer)  # the neurons' bias, in v units
        # Lava's Conv (and a graded first layer, which the exporter writes as a Conv) wraps its sum
        # to 24 bits and ignores the exponent; Dense shifts by it and sends int32.
        self.conv_like = layer.kind == "conv" or graded
        self.weight_exp = int(fp.weight_exp)
        self.fan_out = fan_out(layer).reshape(-1).astype(np.float64)

    def sums(self, x: np.ndarray) -> np.ndarray:
        """(R, frames, n_in) input of R steps -> (R, frames, n_out) int32 as the synapse sends it."""
        steps, frames = x.shape[:2]
        flat = x.reshape((steps * frames,) + tuple(self.layer.input_shape)).astype(self.dtype, copy=False)
        out = linear(self.layer, flat, with_bias=False).reshape(steps, frames, -1)
        if self.conv_like:
            return _wrap24(out.astype(np.int32))
        out = out.astype(np.int64)
        return (out << self.weight_exp if self.weight_exp > 0 else out >> -self.weight_exp).astype(np.int32)


def _effective_bias(layer: Layer, mantissas: Optional[np.ndarray] = None) -> np.ndarray:
    """Per neuron, int32 in v units: Lava holds bias_mant as int16, then shifts it by bias_exp.
    mantissas: per channel, instead of the layer's own bias."""
    fp = layer.fixed_point
    bias = np.rint(layer.bias if mantissas is None else mantissas).astype(np.int64).astype(np.int16).astype(np.int32)
    per_neuron = np.broadcast_to(bias.reshape((-1,) + (1,) * (len(layer.output_shape) - 1)), layer.output_shape)
    bias_exp = int(fp.bias_exp)
    per_neuron = per_neuron << bias_exp if bias_exp >= 0 else per_neuron >> -bias_exp
    return per_neuron.reshape(-1)


def _wrap24(x: np.ndarray) -> np.ndarray:
    """Lava's signed_clamp(x, 24) in int32 arithmetic, skipped when nothing is out of range."""
    if x.size and (x.min() < -UV_HALF or x.max() >= UV_HALF):
        return (x + UV_HALF) % (2 * UV_HALF) - UV_HALF
    return x


def _decay(x: np.ndarray, decay: int) -> np.ndarray:
    """Lava's decay of an int32 state: sign(x) * (|x| * (4096 - decay) >> 12) in int64, then int32."""
    factor = DECAY_UNITY - decay
    if factor == DECAY_UNITY:
        return x
    product = x.astype(np.int64) * factor
    return (np.sign(product) * (np.abs(product) >> 12)).astype(np.int32)


def _current(decayed: np.ndarray, a_in: np.ndarray) -> np.ndarray:
    """u = decayed + (a_in << 6) in int32 (which wraps as Lava's does), then Lava's 24-bit
    wrap-around, whose second test reads the sum before the first fix, kept here as it is."""
    total = decayed + (a_in << ACT_SHIFT)
    if total.size == 0 or (total.max() <= UV_HALF and total.min() > -UV_HALF):
        return total
    wrapped = np.where(total > UV_HALF, total - 2 * UV_HALF, total)
    return np.where(wrapped <= -UV_HALF, total + 2 * UV_HALF, wrapped)


def _lif(a_in: np.ndarray, du: int, dv: int, vth: int, v0: np.ndarray, bias: np.ndarray):
    """a_in: (steps, frames, n) int32 -> (spikes (steps, frames, n) bool, final v (frames, n))."""
    steps, frames, n = a_in.shape
    u_decay, v_decay = du + 1, dv  # Lava adds ds_offset = 1 to du, 0 to dv
    v = np.repeat(v0[None].astype(np.int32), frames, axis=0)
    threshold = vth << ACT_SHIFT
    spikes = np.empty((steps, frames, n), dtype=bool)
    if u_decay == DECAY_UNITY and v_decay == 0:
        _integrate_and_fire(np.ascontiguousarray(a_in), np.ascontiguousarray(bias, dtype=np.int32), v, threshold,
                            spikes)
        return spikes, v
    u = np.zeros((frames, n), np.int32)
    for t in range(steps):
        u = _current(_decay(u, u_decay), a_in[t])
        v = _decay(v, v_decay) + u
        v += bias
        np.core.umath.clip(v, -V_LIMIT, V_LIMIT, out=v)  # the ufunc: np.clip's wrapper costs as much
        fired = np.greater(v, threshold, out=spikes[t])
        v[fired] = 0
    return spikes, v


@njit(cache=True)
def _integrate_and_fire(a_in, bias, v, threshold, spikes):
    """The LIF with du = 4095 and dv = 0 (what to_loihi makes), compiled: u is each step's input
    alone and v never decays, so each step is u = a_in << 6 with Lava's wrap-arounds (as
    _current), v += u + bias, the 24-bit clip, the spike test and the reset, one neuron at a time
    without the full-size temporaries numpy made of every step (the search of to_loihi's
    thresholds spent half its time in them). a_in (steps, frames, n) int32, bias (n,) int32;
    v (frames, n) int32 and spikes (steps, frames, n) bool are written. Every sum fits int64, and
    Lava's int32 steps cannot overflow (|u| <= 2**24, |bias| < 2**19, |v| <= 2**23), so int64
    arithmetic gives Lava's results."""
    steps, frames, n = a_in.shape
    for t in range(steps):
        for f in range(frames):
            for i in range(n):
                shifted = np.int64(a_in[t, f, i]) << ACT_SHIFT
                total = ((shifted + 2 ** 31) & (2 ** 32 - 1)) - 2 ** 31  # numpy's int32 shift wraps
                u = total - 2 * UV_HALF if total > UV_HALF else total
                if u <= -UV_HALF:
                    u = total + 2 * UV_HALF  # Lava's second test reads the sum before the first fix
                x = np.int64(v[f, i]) + u + bias[i]
                x = min(max(x, -V_LIMIT), V_LIMIT)
                fired = x > threshold
                spikes[t, f, i] = fired
                v[f, i] = 0 if fired else x


def score_from_voltage(model: SNNModel, v: np.ndarray, timesteps: int) -> np.ndarray:
    """The score layer's voltage after a frame -> the ideal model's units (its mean input current)."""
    return (v / (2 ** ACT_SHIFT * model.layers[-1].fixed_point.unit * timesteps)).astype(np.float32)


# --- netx HDF5 networks written by lava-dl --------------------------------------------------------

NETX_DEFAULT_NEURON = {"iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17}  # netx's for a dense layer without one


def load_netx(path: str, input_shape: Optional[tuple] = None) -> SNNModel:
    """A netx HDF5 network (lava-dl's `export_hdf5` of slayer CUBA blocks: dense, conv, flatten)
    as a `loihi` target model that LoihiEngine runs exactly as Lava runs it, with the weights,
    thresholds and decays that netx gives Lava's processes. input_shape (C, H, W) where the file
    has no input layer and starts with a conv (a dense layer's weights give its input size). The
    input is binary spikes (netx's default input_message_bits=0). A last layer that spikes gives
    its spike counts as the scores; one that never can (no neuron, or slayer's Affine readout with
    its out-of-range threshold) its voltage after the frame, / (64 T)."""
    import h5py

    layers = []
    with h5py.File(path, "r") as f:
        group = f["layer"]
        shape = tuple(input_shape) if input_shape is not None else None
        for i in range(len(group)):
            handle = group[str(i)]
            kind = _text(handle["type"])
            if kind == "input":
                if "neuron" in handle:
                    raise ValueError(f"{path}: input layers with neurons are not supported")
                shape = tuple(int(s) for s in handle["shape"][()])
                continue
            if kind == "flatten":
                continue  # our dense layers take (C, H, W) in netx's flatten order already
            if kind not in ("conv", "dense"):
                raise ValueError(f"{path}: layer {i} is a '{kind}' layer; supported: {NETX_SUPPORTED}")
            _check_netx_layer(handle, kind, f"{path}: layer {i} ({kind})")
            if shape is None and kind == "dense":  # a dense first layer's weights give its input
                shape = (int(handle["weight"].size // np.prod(handle["shape"][()])),)
            if shape is None:
                raise ValueError(f"{path}: pass input_shape=(C, H, W); the file has no input layer")
            try:
                layers.append(_netx_layer(handle, kind, i, shape))
            except KeyError as exc:  # h5py's word for a missing field
                raise ValueError(f"{path}: layer {i} ({kind}) lacks a field netx writes ({exc}); "
                                 f"supported: {NETX_SUPPORTED}") from exc
            shape = tuple(layers[-1].output_shape)
    preprocessing = Preprocessing(input_shape=tuple(layers[0].input_shape), scale=1.0)
    network = Network(layers, preprocessing)
    thresholds = [float(layer.fixed_point.vth) for layer in layers if layer.spiking]
    return SNNModel(network, thresholds, NeuronConfig("zero", 0.0, 1.0), "loihi", {"source": path})


NETX_SUPPORTED = ("dense and conv layers of CUBA neurons (or none) with real weights, no synaptic delays and "
                  "one neuron parameter set per layer; flatten; an input layer without neurons")


def _check_netx_layer(handle, kind: str, where: str) -> None:
    """What the engine cannot run in a dense or conv layer, named before anything is read."""
    import h5py

    if "weight" not in handle:
        raise ValueError(f"{where} has no weights; supported: {NETX_SUPPORTED}")
    if isinstance(handle["weight"], h5py.Group):  # lava-dl writes complex synapses as weight/real, weight/imag
        raise ValueError(f"{where} has complex synapses ({', '.join(f'weight/{k}' for k in handle['weight'])}), "
                         f"which are not supported; supported: {NETX_SUPPORTED}")
    if "delay" in handle:
        raise ValueError(f"{where} has synaptic delays, which are not supported; supported: {NETX_SUPPORTED}")
    if "neuron" in handle:
        neuron_type = _text(handle["neuron/type"]) if "type" in handle["neuron"] else "untyped"
        if neuron_type != "CUBA":
            raise ValueError(f"{where} has {neuron_type} neurons; only CUBA neurons are supported; "
                             f"supported: {NETX_SUPPORTED}")


def _netx_layer(handle, kind: str, index: int, input_shape: tuple) -> Layer:
    has_neuron = "neuron" in handle
    neuron = {key: _scalar(handle[f"neuron/{key}"][()], key, index) for key in NETX_DEFAULT_NEURON} \
        if has_neuron else NETX_DEFAULT_NEURON
    bias = handle["bias"][()].astype(int) if "bias" in handle else None
    weight = handle["weight"][()].astype(int)  # netx reads them so: truncated towards zero
    if kind == "conv":
        weight = weight.reshape(weight.shape[:4])
        stride, padding = tuple(int(s) for s in _pair(handle["stride"][()])), _pair(handle["padding"][()])
        if tuple(_pair(handle["dilation"][()])) != (1, 1):
            raise ValueError(f"layer {index}: dilated convolutions are not supported")
        out_shape = tuple(int(s) for s in handle["shape"][()])
        layer = Layer(f"layer{index}", "conv", weight.astype(np.int32), np.zeros(out_shape[0], np.int32),
                      input_shape, out_shape, stride, (int(padding[0]), int(padding[1])) * 2,
                      int(np.asarray(handle["groups"][()]).reshape(-1)[0]))
        weight_exp = 0  # Lava's Conv ignores any exponent
    else:
        n_out = int(np.prod(handle["shape"][()]))
        weight, weight_exp = _lava_dense_weights(weight.reshape(n_out, -1))
        layer = Layer(f"layer{index}", "dense", weight, np.zeros(n_out, np.int32), input_shape, (n_out,))
    if bias is not None:
        layer.bias = bias.reshape(-1).astype(np.int32)
    # a neuron whose threshold v (clipped to 24 bits) never exceeds is a readout, as slayer's Affine
    # block (vThMant 2**18 - 1) or netx's default neuron: its voltage is the output, not spikes
    layer.spiking = has_neuron and (int(neuron["vThMant"]) << ACT_SHIFT) < V_LIMIT
    layer.fixed_point = FixedPoint(vth=neuron["vThMant"], weight_exp=int(weight_exp), bias_exp=ACT_SHIFT,
                                   du=neuron["iDecay"] - 1, dv=neuron["vDecay"])
    return layer


def _text(dataset) -> str:
    """A string dataset as lava-dl writes it: a scalar, or an array of one."""
    value = dataset[()]
    value = value.reshape(-1)[0] if isinstance(value, np.ndarray) else value
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _scalar(value, key: str, index: int) -> int:
    value = np.asarray(value).reshape(-1)
    if value.size != 1:
        raise ValueError(f"layer {index}: per-neuron {key} is not supported")
    return int(value[0])


def _pair(value) -> tuple:
    """netx's stride/padding: a scalar, or (y, x) in the file."""
    value = np.asarray(value).reshape(-1)
    return (value[0], value[0]) if value.size == 1 else (value[0], value[1])


def _lava_dense_weights(weight: np.ndarray):
    """What a netx dense layer's synapse holds: netx.utils.optimize_weight_bits (shift the weights
    up, a negative exponent back down; clip mixed-sign weights to [-256, 254]), then Lava's Dense
    model clips to 8 bits and truncates to num_weight_bits. -> (int32 weights, weight_exp)."""
    weight = weight.astype(int)
    max_w, min_w = np.max(weight), np.min(weight)
    if (max_w > 254 and min_w < 0) or (min_w < -256 and max_w > 0):
        weight = np.clip(weight, -256, 254)
        max_w, min_w = np.max(weight), np.min(weight)
    mixed = max_w >= 0 > min_w  # netx's three sign modes: mixed, excitatory, inhibitory
    if mixed:
        scale = min(127 / max_w if max_w else np.inf, -128 / min_w)
    elif max_w < 0:
        scale = -256 / min_w
    else:
        scale = 255 / max_w
    scale_bits = int(np.floor(np.log2(scale)) + mixed)
    n = 8  # the largest power of two dividing every weight, as netx finds it
    while n > 0 and np.sum(np.abs(weight / 2 ** n - np.round(weight / 2 ** n))) != 0:
        n -= 1
    num_weight_bits = 8 - scale_bits - (n - mixed)
    weight = np.left_shift(weight.astype(np.int32), scale_bits)
    # Lava's Dense: the sign mode of the shifted weights (Lava's own rule), clip, truncate
    lava_mixed = np.min(weight) < 0 < np.max(weight)
    inhibitory = not lava_mixed and np.max(weight) <= 0 and np.min(weight) < 0
    signed = -weight if inhibitory else weight
    signed = np.clip(signed, -256 if lava_mixed else 0, 255)
    truncate = 8 - num_weight_bits + lava_mixed
    signed = (signed >> truncate) << truncate
    return (-signed if inhibitory else signed).astype(np.int32), -scale_bits
