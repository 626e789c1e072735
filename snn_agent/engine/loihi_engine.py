"""Lava's fixed-point CUBA LIF network, bit for bit, compiled.

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

A frame of a chain runs as one compiled call (_run_exact_frame): each layer's synaptic sums of
all steps from one product (frame_kernels' gathers and sparse row sums, in float, exact: the
converter bounds every sum below 2**24, and float64 is used where a layer's weights could exceed
that), then the neurons step by step in integers (_lif_update). Networks that call does not cover
(grouped convolutions) and the per-layer API of the threshold search (layer_input, layer_output)
take the same arithmetic layer by layer over a batch, in numpy and the same compiled neurons;
test/test_loihi_exact.py checks the two paths against each other and the engine against Lava
itself. Integer wrap-arounds happen where Lava's int32 / 24-bit arithmetic has them, so the
emulation stays exact even where a badly scaled network overflows.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
from numba import njit

from ..ir import FixedPoint, Layer, Network, NeuronConfig, Preprocessing, SNNModel
from . import frame_kernels as k
from .cpu_engine import InferenceResult, OpCounts, _ChannelsLastLayer, chain_program
from .ops import SpikeConvPlan, fan_out, linear

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
        self._program = _exact_program(model, self._synapses)
        self._points: dict = {}

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

    def scores_by_timesteps(self, x: np.ndarray, grid, neuron: Optional[NeuronConfig] = None) -> dict:
        """{T: class scores} for every T of `grid`, the same integers as a run at each T, from one
        run at the largest that forks at each smaller T: a frame's input stops after T and the
        network drains for `depth` steps, so a run at T is a longer run's first T steps (their
        inputs are the same) and then its own drain, `depth` - 1 steps from the longer run's state
        at T. Layer by layer over the batch: each fork's drain reads the fork's spikes of the layer
        below. Per frame 128 + 13 x depth steps for the profile's grid instead of 443 + 13 x depth.
        Where a layer's u carries over steps (du < 4095) or the score layer spikes (a lava-dl
        classifier), a run per T."""
        neuron = neuron or self.model.neuron
        grid = sorted({int(t) for t in grid})
        layers = self.model.layers
        if layers[-1].spiking or any(int(layer.fixed_point.du) + 1 != DECAY_UNITY for layer in layers):
            return {t: self.run(x, t, neuron).scores for t in grid}
        longest, forks, drain = grid[-1], grid[:-1], self.depth - 1
        vths, voltages, biases, v_decays = self._point(neuron)
        source, fork_sources = self.encode(x)[None], {}
        for index, layer in enumerate(layers):
            lif = (DECAY_UNITY, v_decays[index], vths[index] << ACT_SHIFT, biases[index].astype(np.int32))
            a_in = np.ascontiguousarray(self.layer_input(index, source, longest))
            v = np.repeat(voltages[index][None].astype(np.int32), a_in.shape[1], axis=0)
            spikes = np.empty(a_in.shape, bool)
            at_fork, start = {}, 0
            for t in forks + [a_in.shape[0] - 1]:  # the state after step t of every fork, then the rest
                _lif_frames(a_in[start:t + 1], *lif[:3], v, lif[3], spikes[start:t + 1])
                at_fork[t], start = v.copy(), t + 1
            fork_spikes, finals = {}, {}
            for t in forks:
                if index == 0:  # the host sends nothing after T
                    fork_in = np.zeros((drain,) + a_in.shape[1:], np.int32)
                else:  # what the layer below sent at steps t .. t + drain - 1 of this fork
                    below = np.concatenate([source[t:t + 1], fork_sources[t][:drain - 1]])
                    fork_in = np.ascontiguousarray(self._synapses[index].sums(below))
                fork_spikes[t] = np.empty(fork_in.shape, bool)
                _lif_frames(fork_in, *lif[:3], at_fork[t], lif[3], fork_spikes[t])
                finals[t] = at_fork[t]
            source, fork_sources = spikes, fork_spikes
        finals[longest] = v
        return {t: score_from_voltage(self.model, finals[t], t) for t in grid}

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
            if layer.spiking and layer.initial_potential is not None:  # fractions of vth
                fraction = neuron.v_init + layer.initial_potential_map().reshape(-1)
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
        if self._program is not None:
            return self._simulate_compiled(inputs, timesteps, neuron, return_spikes)
        return self._simulate_by_layer(inputs, timesteps, neuron, return_spikes)

    def _simulate_by_layer(self, inputs: np.ndarray, timesteps: int, neuron: NeuronConfig, return_spikes: bool):
        """Layer by layer over the whole batch (layer_input, layer_output): the reference the compiled
        path is tested against, and the path of networks it does not cover (grouped convolutions)."""
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

    def _simulate_compiled(self, inputs: np.ndarray, timesteps: int, neuron: NeuronConfig, return_spikes: bool):
        """Frame by frame, each one compiled call (_run_exact_frame): the same integers as
        _simulate_by_layer without its numpy calls, whose overhead was most of a frame's 4.5 ms
        (their arithmetic, not numpy's calls, now takes most of the ~0.5 ms)."""
        program, point = self._program, self._compiled_point(neuron)
        layers, frames = self.model.layers, inputs.shape[1]
        steps = timesteps + self.depth
        bounds = program["bounds"]  # of each layer's neurons
        counts = np.zeros(bounds[-1], np.int64)  # each neuron's spikes over the batch
        spikes = np.empty(steps * bounds[-1], program["weights"].dtype)
        n_scores = bounds[-1] - bounds[-2]
        final_v = np.empty((frames, n_scores), np.int32)
        kept = [np.empty((steps, frames, end - start), bool) for start, end in zip(bounds, bounds[1:])] \
            if return_spikes else None
        scores = np.empty((frames, n_scores), np.float32)
        payloads = inputs.astype(program["weights"].dtype)
        for f in range(frames):
            _run_exact_frame(np.ascontiguousarray(payloads[:, f]), timesteps,
                             program["layout"], program["weights"], program["indices"], program["synapses"], *point,
                             spikes, counts, final_v[f])
            if layers[-1].spiking:  # a lava-dl classifier: the output is its spike count
                scores[f] = spikes[steps * bounds[-2]:].reshape(steps, -1).sum(axis=0)
            if return_spikes:
                for start, end, layer, out in zip(bounds, bounds[1:], layers, kept):
                    out[:, f] = _channels_first(spikes[steps * start:steps * end].reshape(steps, -1) > 0,
                                                layer.output_shape)
        if not layers[-1].spiking:
            scores = score_from_voltage(self.model, final_v, timesteps)
        result = InferenceResult(scores=scores, ops=self._compiled_counts(inputs, timesteps, counts))
        return (result, kept) if return_spikes else result

    def _compiled_point(self, neuron: NeuronConfig) -> tuple:
        """What _run_exact_frame reads of an operating point, kept per point: building it (initial
        voltages, biases) took a quarter of a frame."""
        key = (neuron.threshold_scale, neuron.layer_threshold_scales, neuron.bias_shifts, neuron.v_init,
               neuron.v_decay)
        point = self._points.get(key)
        if point is None:
            vths, voltages, biases, v_decays = self._point(neuron)
            shapes = [layer.output_shape for layer in self.model.layers]
            point = self._points[key] = (
                np.array([vth << ACT_SHIFT for vth in vths], np.int64),
                np.concatenate([_channels_last(v, shape) for v, shape in zip(voltages, shapes)]).astype(np.int32),
                np.concatenate([_channels_last(b, shape) for b, shape in zip(biases, shapes)]).astype(np.int32),
                np.array([int(layer.fixed_point.du) + 1 for layer in self.model.layers], np.int64),  # Lava's ds_offset
                np.array(v_decays, np.int64))
        return point

    def _compiled_counts(self, inputs: np.ndarray, timesteps: int, per_neuron: np.ndarray) -> OpCounts:
        """The batch's OpCounts from each neuron's spikes (channels-last, layer after layer), as
        _simulate_by_layer counts them."""
        frames = inputs.shape[1]
        counts = OpCounts(frames=frames, timesteps=timesteps)
        steps = timesteps + self.depth
        # payload entries that reach synapses, each step it is sent
        active = np.count_nonzero(inputs, axis=1).sum(axis=0) * (timesteps if len(inputs) == 1 else 1)
        previous = None  # the previous layer's spikes per neuron
        bounds = self._program["bounds"]
        for plan, start, end in zip(self._program["layers"], bounds, bounds[1:]):
            layer, spikes = plan.layer, per_neuron[start:end]
            synops = float(active @ self._synapses[0].fan_out) if previous is None else float(previous @ plan.fan_out)
            if layer.spiking:
                counts.channel_rates.append(plan.channel_rates(spikes, frames, timesteps))
            counts.add_layer(layer.name, end - start, int(spikes.sum()), synops, steps)
            previous = spikes
        return counts


def _exact_program(model: SNNModel, synapses: list) -> Optional[dict]:
    """The flat arrays _run_exact_frame reads (cpu_engine.chain_program's, with the weights in the
    dtype that keeps every sum exact, and each synapse's kind and exponent), or None where the
    compiled path does not apply (grouped convolutions)."""
    input_shape = tuple(model.layers[0].input_shape)
    plans = [_ChannelsLastLayer(layer, input_shape if i == 0 else tuple(model.layers[i - 1].output_shape))
             for i, layer in enumerate(model.layers)]
    dtype = np.float64 if any(synapse.dtype == np.float64 for synapse in synapses) else np.float32
    program = chain_program(plans, input_shape, dtype)
    if program is not None:
        # per synapse: 1 where it wraps its sum to 24 bits (Conv-like), and its weight exponent
        program["synapses"] = np.array([[int(s.conv_like), s.weight_exp] for s in synapses], np.int64)
        program["bounds"] = [0] + [int(end) for end in np.cumsum([layer.n_neurons for layer in model.layers])]
    return program


def _channels_last(values: np.ndarray, shape: tuple) -> np.ndarray:
    """Per neuron, (C, H, W) order -> (H, W, C) order, flat."""
    return values.reshape(shape).transpose(1, 2, 0).reshape(-1) if len(shape) == 3 else values


def _channels_first(values: np.ndarray, shape: tuple) -> np.ndarray:
    """(steps, n) per neuron in (H, W, C) order -> (C, H, W) order."""
    if len(shape) != 3:
        return values
    c, h, w = shape
    return values.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(len(values), -1)


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
        self._spike_plan = None  # built on first use (_spike_sums)

    def sums(self, x: np.ndarray) -> np.ndarray:
        """(R, frames, n_in) input of R steps -> (R, frames, n_out) int32 as the synapse sends it."""
        steps, frames = x.shape[:2]
        if x.dtype == np.bool_ and self.layer.kind == "conv":
            out = self._spike_sums(x.reshape((steps * frames,) + tuple(self.layer.input_shape)))
        else:
            flat = x.reshape((steps * frames,) + tuple(self.layer.input_shape)).astype(self.dtype, copy=False)
            out = linear(self.layer, flat, with_bias=False)
        out = out.reshape(steps, frames, -1)
        if self.conv_like:
            return _wrap24(out.astype(np.int32, copy=False))
        out = out.astype(np.int64)
        return (out << self.weight_exp if self.weight_exp > 0 else out >> -self.weight_exp).astype(np.int32)


    def _spike_sums(self, spikes: np.ndarray) -> np.ndarray:
        """A convolution of spike maps (N, C, H, W) bool -> (N, O, Ho, Wo) int32 (ops.SpikeConvPlan:
        the maps a layer sends are ~5 % spikes, and the product of every input was most of the
        threshold search's time)."""
        if self._spike_plan is None:
            c, h, w = self.layer.input_shape
            self._spike_plan = SpikeConvPlan(self.layer.weight, (h, w, c), self.layer.stride, self.layer.padding,
                                             self.layer.groups, np.int32, channels_first=True)
        return self._spike_plan(spikes.reshape(len(spikes), -1)).reshape((len(spikes),) + tuple(self.layer.output_shape))


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


def _lif(a_in: np.ndarray, du: int, dv: int, vth: int, v0: np.ndarray, bias: np.ndarray):
    """a_in: (steps, frames, n) int32 -> (spikes (steps, frames, n) bool, final v (frames, n))."""
    steps, frames, n = a_in.shape
    v = np.repeat(v0[None].astype(np.int32), frames, axis=0)
    spikes = np.empty((steps, frames, n), dtype=bool)
    _lif_frames(np.ascontiguousarray(a_in), du + 1, dv, vth << ACT_SHIFT, v, bias.astype(np.int32), spikes)
    return spikes, v


@njit(cache=True, inline="always")
def _wrap32(x):
    """An int64 as numpy's int32 arithmetic wraps it."""
    return ((x + 2 ** 31) & (2 ** 32 - 1)) - 2 ** 31


@njit(cache=True, inline="always")
def _decayed(x, decay):
    """Lava's decay of an int32 state: sign(x) * (|x| * (4096 - decay) >> 12), in int64."""
    if decay == 0:
        return x
    if decay == DECAY_UNITY:
        return 0
    product = x * (DECAY_UNITY - decay)
    return -((-product) >> 12) if product < 0 else product >> 12


@njit(cache=True, inline="always")
def _lif_update(u, v, a_in, u_decay, v_decay, bias, threshold):
    """One neuron, one step, as Lava's PyLifModelBitAcc in its int32 registers (int64 here, wrapped
    where numpy's int32 would wrap): u = decay(u) + (a_in << 6) with Lava's 24-bit wrap-around
    (whose second test reads the sum before the first fix, kept as it is), v = clip(decay(v) + u +
    bias), a spike above the threshold and v = 0 after it. -> (u, v, fired)."""
    total = _wrap32(_decayed(u, u_decay) + _wrap32(np.int64(a_in) << ACT_SHIFT))
    u = total - 2 * UV_HALF if total > UV_HALF else total
    u = total + 2 * UV_HALF if u <= -UV_HALF else u
    x = _wrap32(_wrap32(_decayed(v, v_decay) + u) + bias)
    x = min(max(x, -V_LIMIT), V_LIMIT)
    fired = x > threshold
    return u, 0 if fired else x, fired


@njit(cache=True)
def _lif_step(a_in, u, v, bias, u_decay, v_decay, threshold, spikes):
    """_lif_update on a layer's neurons: a_in (n,) int32 or int64; u, v (n,) int32 (Lava's registers;
    int64 would double the memory a batch streams) and spikes (n,) are written. Without decays
    (what to_loihi makes: du = 4095, dv = 0) u is each step's input alone and is not stored: the
    loop, compiled for those constants and writing only v and the spikes, vectorizes (~8x faster;
    a third array written stops that)."""
    if u_decay == DECAY_UNITY and v_decay == 0:
        for i in range(len(a_in)):
            _, v[i], spikes[i] = _lif_update(0, v[i], a_in[i], DECAY_UNITY, 0, bias[i], threshold)
    else:
        for i in range(len(a_in)):
            u[i], v[i], spikes[i] = _lif_update(u[i], v[i], a_in[i], u_decay, v_decay, bias[i], threshold)


@njit(cache=True)
def _lif_frames(a_in, u_decay, v_decay, threshold, v, bias, spikes):
    """_lif_step over a batch: a_in (steps, frames, n), bias (n,) and v (frames, n) int32
    (v written: the voltage after the last step), spikes (steps, frames, n) bool written."""
    steps, frames, n = a_in.shape
    u = np.zeros((frames, n), np.int32)
    for t in range(steps):
        for f in range(frames):
            _lif_step(a_in[t, f], u[f], v[f], bias, u_decay, v_decay, threshold, spikes[t, f])


@njit(cache=True)
def _synapse_output(current, conv_like, weight_exp, a_in):
    """A layer's synaptic sums (whole numbers in float, (n,)) as the synapse sends them, into
    a_in (n,) int64: Conv-like wrapped to 24 bits, Dense shifted by its weight exponent, in int32."""
    if conv_like:
        for i in range(len(current)):
            a_in[i] = ((_wrap32(np.int64(current[i])) + UV_HALF) & (2 * UV_HALF - 1)) - UV_HALF
    elif weight_exp >= 0:
        for i in range(len(current)):
            a_in[i] = _wrap32(np.int64(current[i]) << weight_exp)
    else:
        for i in range(len(current)):
            a_in[i] = _wrap32(np.int64(current[i]) >> -weight_exp)


@njit(cache=True)
def _run_exact_frame(payload, timesteps, layout, weights, indices, synapses, thresholds, voltages, biases,
                     u_decays, v_decays, spikes, counts, final_v):
    """One frame through the chain, all layers in one call: what _simulate_by_layer computes for it.
    payload: (1 or T, n_in) what the host sends at steps 1..T (1: the same at each), in the first
    layer's reading order, in the weights' dtype; the layout, weights and indices of
    cpu_engine.chain_program; synapses: per layer (Conv-like, weight exponent). Per layer, flat,
    channels-last: thresholds (vth << 6), initial voltages and biases (v units); Lava's u decay
    (du + 1) and v decay. Written: spikes (each layer's (steps, n) block after the previous one's,
    as 0/1 in the weights' dtype), counts (each neuron's spikes, added to), final_v (the last
    layer's voltage after the frame)."""
    n_layers = layout.shape[0]
    steps = timesteps + n_layers
    rows = payload
    start = 0
    for layer in range(n_layers):
        spec = layout[layer]
        offset, n_rows, n_cols = spec[k.WEIGHT_START], spec[k.WEIGHT_ROWS], spec[k.WEIGHT_COLS]
        matrix = weights[offset:offset + n_rows * n_cols].reshape((n_rows, n_cols))
        n_out = spec[k.N_OUT]
        if spec[k.KIND] == k.CONV:
            offset, positions, n_runs = spec[k.INDEX_START], spec[k.POSITIONS], spec[k.N_RUNS]
            if n_runs:
                runs = indices[offset:offset + n_runs * k.RUN_COLUMNS].reshape((n_runs, k.RUN_COLUMNS))
                current = k.conv_product_by_runs(rows, runs, positions, matrix)
            else:
                current = k.conv_product(rows, indices[offset:offset + positions * n_rows].reshape((positions, n_rows)),
                                         matrix)
        else:
            current = k.dense_accumulate(rows, matrix, False)
        # the synapse sends at step t what it summed at t - 1: the host's payload at steps 1..T,
        # a layer's spikes at steps 1..steps - 1 (the last step's arrive after the frame)
        input_steps = timesteps if layer == 0 else steps - 1
        conv_like, weight_exp = synapses[layer, 0], synapses[layer, 1]
        u_decay, v_decay, threshold = u_decays[layer], v_decays[layer], thresholds[layer]
        block = spikes[start * steps:(start + n_out) * steps].reshape((steps, n_out))
        u, a_in = np.zeros(n_out, np.int32), np.zeros(n_out, np.int64)
        v = voltages[start:start + n_out].copy()
        bias = biases[start:start + n_out]
        for t in range(steps):
            if 1 <= t <= input_steps:
                if t == 1 or current.shape[0] > 1:  # a constant payload's sums once
                    _synapse_output(current[0 if current.shape[0] == 1 else t - 1], conv_like, weight_exp, a_in)
            elif t == input_steps + 1:
                a_in[:] = 0
            _lif_step(a_in, u, v, bias, u_decay, v_decay, threshold, block[t])
        neuron_counts = counts[start:start + n_out]
        for t in range(steps):
            neuron_counts += block[t].astype(np.int64)
        rows = spikes[start * steps:start * steps + (steps - 1) * n_out].reshape((steps - 1, n_out))
        start += n_out
    final_v[:] = v


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
