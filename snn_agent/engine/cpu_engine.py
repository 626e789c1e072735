"""SNN simulation on the CPU: time-batched in numpy for batches, compiled for single frames.

A feed-forward SNN lets each layer see all T timesteps of its input spikes at once: for a batch,
the synaptic currents of every timestep come from one pass over the spikes (each adds its weights,
_ChannelsLastLayer.apply_spikes), and only the neuron update runs step by step (compiled). A single frame of a chain network (the robot's
case) runs as one compiled call instead (frame_kernels.run_chain), without numpy's per-call
overhead, which does not shrink with T; graphs and grouped convolutions, which that call does
not cover, take the batched path. Feature maps are kept channels-last (H, W, C) inside the
engine, which is what makes the convolutions fast (see ops.conv2d_nhwc). Each call also counts
spikes, synaptic operations and neuron updates, the inputs of every energy figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from ..ir import Layer, NeuronConfig, SNNModel
from . import frame_kernels
from .ops import Conv2dNhwcPlan, SpikeConvPlan, conv2d_nhwc, fan_out


@dataclass
class OpCounts:
    """Operations for the whole batch; divide by `frames` for per-inference figures."""

    frames: int = 0
    timesteps: int = 0
    spikes: int = 0
    synaptic_ops: int = 0
    neuron_updates: int = 0
    per_layer: list = field(default_factory=list)  # dicts: name, neurons, spikes, synaptic_ops
    # per spiking layer: each output channel's spikes per neuron per timestep, over the batch
    # (the firing rates that bias calibration compares with the DNN's activations)
    channel_rates: list = field(default_factory=list)

    def add_layer(self, name: str, neurons: int, spikes: int, synaptic_ops: float, steps: int) -> None:
        """One layer's operations over `steps` neuron updates of the batch."""
        self.spikes += spikes
        self.synaptic_ops += int(synaptic_ops)
        self.neuron_updates += neurons * steps * self.frames
        self.per_layer.append({"name": name, "neurons": neurons, "spikes": spikes, "synaptic_ops": int(synaptic_ops)})

    def per_frame(self) -> dict:
        f = max(self.frames, 1)
        return {"spikes": self.spikes / f, "synaptic_ops": self.synaptic_ops / f,
                "neuron_updates": self.neuron_updates / f, "timesteps": self.timesteps}


class FrameOpCounts:
    """The OpCounts of one compiled frame (SNNEngine._run_frame), counted from the kernel's spikes
    when first read. Counting (per layer, per channel) took ~7 us in the kernel and unpacking it
    ~15 us more, as much as a timestep of the bundled model, on every frame, while a robot's frame
    loop reads none of it; what is read (`spikes`, `per_frame()`, ...) is the OpCounts' own
    attribute."""

    def __init__(self, program: dict, timesteps: int, kernel_output: np.ndarray):
        self._kernel_output = (program, timesteps, kernel_output)
        self._counts: Optional[OpCounts] = None

    def __getattr__(self, name: str):  # only for what this object lacks: everything of OpCounts
        if name.startswith("__") or name in ("_kernel_output", "_counts"):
            raise AttributeError(name)
        if self._counts is None:
            self._counts = self._count()
        return getattr(self._counts, name)

    def _count(self) -> OpCounts:
        """As the batched path counts: a synaptic operation per nonzero input (the image, every
        step) or spike and synapse it reaches."""
        program, timesteps, output = self._kernel_output
        n_classes, n_in = program["layers"][-1].n_neurons, program["input_fan_out"].size
        input_active = output[0, n_classes:n_classes + n_in]
        spikes = output[0, frame_kernels.spikes_offset(n_classes, n_in):]
        counts = OpCounts(frames=1, timesteps=timesteps)
        spikes_per_input, start = None, 0  # None: the image
        for plan in program["layers"]:
            synaptic_ops = float(input_active @ program["input_fan_out"]) * timesteps \
                if spikes_per_input is None else float(spikes_per_input @ plan.fan_out)
            per_neuron = None
            if plan.layer.spiking:
                block = spikes[start:start + timesteps * plan.n_neurons]
                per_neuron = block.reshape(timesteps, plan.n_neurons).sum(axis=0)
                counts.channel_rates.append(plan.channel_rates(per_neuron, 1, timesteps))
                start += block.size
            counts.add_layer(plan.layer.name, plan.n_neurons, _total(per_neuron), synaptic_ops, timesteps)
            spikes_per_input = per_neuron
        return counts


@dataclass
class InferenceResult:
    scores: np.ndarray  # (frames, classes)
    ops: Union[OpCounts, FrameOpCounts]  # a single compiled frame: FrameOpCounts, read the same way
    # the last spiking layer's spikes (T, frames, n) on the batched path (a compiled frame keeps
    # them in its kernel output): the input of a learning readout (SNNEngine.hidden_spikes)
    hidden: Optional[np.ndarray] = None

    @property
    def labels(self) -> np.ndarray:
        return self.scores.argmax(axis=1)


# Below this many rows (timesteps x frames), a dense layer runs one vector product per row, and a
# convolution builds its columns with one gather (Conv2dNhwcPlan; with more rows the strided copies
# of conv2d_nhwc are faster). Measured on the bundled model, one thread.
GEMV_MAX_ROWS = 8
GATHER_MAX_ROWS = 3
_FLOAT32 = np.dtype(np.float32)  # a dtype compares with a dtype faster than with a type
# operating points whose thresholds and biases an engine keeps (a profile's grid has ~15 per target)
MAX_CACHED_POINTS = 64


class _ChannelsLastLayer:
    """A layer's arrays (or one weight block of a graph's layer) rearranged once for channels-last
    execution in float32. source_shape: the output shape of what the block reads."""

    def __init__(self, layer: Layer, source_shape: Optional[tuple]):
        self.layer = layer
        self.weight = layer.weight.astype(np.float32)
        if layer.kind == "dense" and source_shape is not None and len(source_shape) == 3:
            # the DNN flattened (C, H, W); our maps are (H, W, C): permute the weight's columns
            c, h, w = source_shape
            self.weight = self.weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(self.weight.shape[0], -1)
        self.weight_t = np.ascontiguousarray(self.weight.T) if layer.kind == "dense" else None
        self.bias = _per_neuron(layer.bias, layer.output_shape)
        # added to the point's v_init, per neuron (None: nothing)
        self.initial_potential = None if layer.initial_potential is None else \
            _to_channels_last(layer.initial_potential_map())
        self.fan_out = _to_channels_last(fan_out(layer)).astype(np.float64)
        self.input_hwc = tuple(layer.input_shape[1:]) + (layer.input_shape[0],) \
            if len(layer.input_shape) == 3 else None
        self.conv_plan = Conv2dNhwcPlan(self.weight, self.input_hwc, layer.stride, layer.padding) \
            if layer.kind == "conv" and layer.groups == 1 else None
        self._spike_plan = None  # built on first use (apply_spikes): a layer reading the image never needs it
        self.n_neurons = layer.n_neurons
        self.channels = layer.output_shape[0]

    def bias_at(self, threshold: float, shift: Optional[np.ndarray]) -> np.ndarray:
        """The bias, moved by `shift` (per channel, fractions of the threshold per step)."""
        if shift is None:
            return self.bias
        return self.bias + np.tile((shift * threshold).astype(np.float32), self.n_neurons // self.channels)

    def channel_rates(self, spikes_per_neuron: np.ndarray, frames: int, timesteps: int) -> np.ndarray:
        """Mean spikes per neuron per step of each channel (the maps are channels-last)."""
        per_neuron = spikes_per_neuron.reshape(-1, self.channels)
        # whole counts (the Loihi-exact engine's) summed as they are: numpy's cast while reducing
        # took ~50 us of that engine's ~600 us frame; the same values
        per_channel = per_neuron.sum(axis=0) if per_neuron.dtype.kind == "i" else per_neuron.sum(axis=0, dtype=np.float64)
        return per_channel / (frames * timesteps * (self.n_neurons // self.channels))

    def apply_spikes(self, spikes_flat: np.ndarray) -> np.ndarray:
        """`apply` on spikes (0/1), adding the weights of each spike instead of multiplying every
        input: a layer's spike maps are 5-10 % spikes (ops.SpikeConvPlan; a dense layer as a
        compiled frame runs it, frame_kernels.dense_accumulate)."""
        if self.layer.kind == "dense":
            return frame_kernels.dense_accumulate(spikes_flat, self.weight_t, False)
        if self._spike_plan is None:
            self._spike_plan = SpikeConvPlan(self.weight, self.input_hwc, self.layer.stride, self.layer.padding,
                                             self.layer.groups)
        return self._spike_plan(spikes_flat)

    def apply(self, x_flat: np.ndarray) -> np.ndarray:
        """(N, n_in) channels-last -> (N, n_out) channels-last, without bias."""
        if self.weight_t is not None:
            if len(x_flat) < GEMV_MAX_ROWS:
                # BLAS's matrix product repacks the whole weight matrix on every call (~0.2 ms for
                # a 1568 x 128 layer); a few vector products read it in place
                return np.stack([row @ self.weight_t for row in x_flat])
            return x_flat @ self.weight_t
        if self.conv_plan is not None and len(x_flat) < GATHER_MAX_ROWS:
            return self.conv_plan(x_flat)
        n = x_flat.shape[0]
        out = conv2d_nhwc(x_flat.reshape((n,) + self.input_hwc), self.weight, self.layer.stride,
                          self.layer.padding, self.layer.groups)
        return out.reshape(n, -1)


def _per_neuron(per_channel: np.ndarray, output_shape: tuple) -> np.ndarray:
    """One value per output channel -> one per neuron, channels-last, flat float32."""
    return _to_channels_last(np.broadcast_to(per_channel.reshape((-1,) + (1,) * (len(output_shape) - 1)),
                                             output_shape))


def _to_channels_last(array_chw: np.ndarray) -> np.ndarray:
    a = np.asarray(array_chw)
    return (a.transpose(1, 2, 0) if a.ndim == 3 else a).reshape(-1).astype(np.float32)


class SNNEngine:
    """Runs an `SNNModel` (ideal target: float, integrate-and-fire) for T timesteps.
    compiled_frames=False keeps single frames on the numpy path (to compare the two)."""

    def __init__(self, model: SNNModel, compiled_frames: bool = True):
        self.model = model
        layers = model.layers
        input_shape = tuple(model.network.preprocessing.input_shape)

        def shape_of(source):
            return input_shape if source < 0 else tuple(layers[source].output_shape)

        self._is_chain = model.network.is_chain
        # per layer: one plan per (source, weight block); the layer's plan is its first block's
        self._blocks = [[(s, _ChannelsLastLayer(block, shape_of(s))) for s, block in zip(sources, layer.blocks())]
                        for layer, sources in zip(layers, model.network.source_indices())]
        self._layers = [blocks[0][1] for blocks in self._blocks]
        # after which layer each output is no longer needed (the input and the spikes are freed then)
        self._last_use = {}
        for index, blocks in enumerate(self._blocks):
            for source, _ in blocks:
                self._last_use[source] = index
        self._frame_program = self._frame_program_arrays() if compiled_frames else None
        if self._frame_program is not None:
            self._frame_arguments = tuple(self._frame_program[name] for name in ("layout", "weights", "indices",
                                                                                  "n_spiking"))
            self._n_classes = self._layers[-1].n_neurons
        self._parameters_of_point: dict = {}
        self._last_point: tuple = (None, None)
        # runs at T >= model.converged_from_t are the converged weights' (SNNModel.converged)
        self._converged = SNNEngine(model.converged, compiled_frames) if model.converged is not None else None
        if self._frame_program is not None:
            self._run_chain = frame_kernels.compiled_run_chain(
                int(np.prod(input_shape)), self._frame_arguments, self._parameters(model.neuron).frame_arguments)

    def run(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None) -> InferenceResult:
        """x: (frames, C, H, W) preprocessed input, presented as a constant current every step."""
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        if self._runs_converged(timesteps):
            return self._converged.run(x, timesteps, neuron)
        neuron = self._integrate_and_fire_point(neuron)
        frames = x.shape[0]
        if frames == 1 and self._frame_program is not None:
            return self._run_frame(x, timesteps, neuron)
        counts, score_current, hidden = self._run_batch(self.input_rows(x), timesteps, neuron)
        return InferenceResult(scores=_readout(score_current, timesteps), ops=counts, hidden=hidden)

    def scores_by_timesteps(self, x: np.ndarray, grid, neuron: Optional[NeuronConfig] = None) -> dict:
        """{T: class scores (frames, classes)} for every T of `grid`, from one run at the largest:
        a run at T is the first T steps of a longer one (every neuron starts from the point's
        potential and integrates forward; nothing of the network or the point depends on T), and
        the scores at T are the score layer's mean input over those steps. The same spikes as a
        run at each T, and scores within float32 rounding (BLAS sums T x frames rows in an order
        that depends on their number, as two batch sizes do; test_profile_speed checks it), for
        the largest T's time alone (T that run the converged weights: one run of those too).
        Always the batched path (a single frame too)."""
        large = [t for t in grid if self._runs_converged(t)]
        scores = self._converged.scores_by_timesteps(x, large, neuron) if large else {}
        small = [t for t in grid if t not in large]
        if small:
            neuron = self._integrate_and_fire_point(neuron)
            longest = max(small)
            _, score_current, _ = self._run_batch(self.input_rows(x), longest, neuron)
            scores.update({t: _readout(score_current[:t] if len(score_current) == longest else score_current, t)
                           for t in small})
        return scores

    def _runs_converged(self, timesteps: int) -> bool:
        return self._converged is not None and timesteps >= self.model.converged_from_t

    def _integrate_and_fire_point(self, neuron: Optional[NeuronConfig]) -> NeuronConfig:
        """The operating point to run (None: the model's own), refused where it sets a leak."""
        neuron = neuron or self.model.neuron
        if neuron.v_decay:  # None or 0: no leak
            raise ValueError(f"v_decay={neuron.v_decay}: the ideal target's neurons are integrate-and-fire, "
                             f"without a leak (only the loihi target has one)")
        return neuron

    def _frame_program_arrays(self) -> Optional[dict]:
        """The flat arrays frame_kernels.run_chain reads (chain_program), or None where it does not
        apply: graphs, grouped convolutions, or a network whose last layer spikes."""
        if not self._is_chain or self._layers[-1].layer.spiking:
            return None
        return chain_program(self._layers, tuple(self.model.network.preprocessing.input_shape))

    def _run_frame(self, x: np.ndarray, timesteps: int, neuron: NeuronConfig) -> InferenceResult:
        """One frame (1, C, H, W) as one compiled call (see frame_kernels). Its Python around the
        call is kept lean: at T=2 the whole frame is under 0.1 ms, and every microsecond here is
        one T does not cut (measured: ~14 us around the call before it was trimmed, ~7 after)."""
        point = self._parameters(neuron)
        flags = x.flags
        if x.dtype != _FLOAT32 or not (flags.c_contiguous and flags.writeable and flags.aligned):
            # one array type for every caller: a read-only or unaligned camera buffer would be
            # another, and numba would compile run_chain again for it (~10 s on that first frame)
            x = np.array(x, dtype=np.float32, order="C")
        output = self._run_chain(x.reshape(1, -1), int(timesteps), *self._frame_arguments, *point.frame_arguments)
        return InferenceResult(output[:, :self._n_classes], FrameOpCounts(self._frame_program, timesteps, output))

    def hidden_spikes(self, result: InferenceResult) -> np.ndarray:
        """The last spiking layer's spikes of a run, (frames, T, n) bool: what a learning readout
        over the frozen network reads (learning/readout.py)."""
        if result.hidden is not None:
            return result.hidden.transpose(1, 0, 2) > 0
        _, timesteps, output = result.ops._kernel_output  # a compiled frame: the last block of its spikes
        n = [plan.n_neurons for plan in self._layers if plan.layer.spiking][-1]
        return output[:, output.shape[1] - timesteps * n:].reshape(1, timesteps, n) > 0

    def _parameters(self, neuron: NeuronConfig) -> "_PointParameters":
        """Each layer's threshold and bias at an operating point, kept per point: a robot switches
        among a few, and rebuilding the biases costs more than a small-T frame's arithmetic."""
        if neuron is self._last_point[0]:  # the same point as the last frame: skip hashing its biases
            return self._last_point[1]
        key = (neuron.threshold_scale, neuron.layer_threshold_scales, neuron.bias_shifts, neuron.v_init, neuron.reset)
        point = self._parameters_of_point.get(key)
        if point is None:
            if len(self._parameters_of_point) >= MAX_CACHED_POINTS:
                self._parameters_of_point.clear()
            point = self._parameters_of_point[key] = _PointParameters(self, neuron)
        self._last_point = (neuron, point)
        return point

    def _spikes(self, plan: _ChannelsLastLayer, current: np.ndarray, timesteps: int, neuron: NeuronConfig,
                threshold: float) -> tuple:
        """A spiking layer's neurons on their input current -> (spikes (T, frames, n), spikes per
        neuron over the batch)."""
        spikes = _integrate_and_fire(current, timesteps, threshold, neuron, plan.initial_potential)
        return spikes, spikes.reshape(-1, spikes.shape[-1]).sum(axis=0)

    def _run_batch(self, x_flat: np.ndarray, timesteps: int, neuron: NeuronConfig) -> tuple:
        """A batch through every layer -> (OpCounts, the score layer's current (T or 1, frames,
        classes), the last spiking layer's spikes). Each layer's current is the sum of its sources'
        contributions, through one weight block per source (one in a chain); outputs are kept
        until their last reader."""
        frames = len(x_flat)
        counts = OpCounts(frames=frames, timesteps=timesteps)
        outputs = {-1: x_flat}  # spikes (T, frames, n) of each layer still to be read; -1: the input
        spikes_per_input = {-1: np.count_nonzero(x_flat, axis=0) * timesteps}  # per source neuron
        hidden = current = None
        for index, (layer, blocks) in enumerate(zip(self.model.layers, self._blocks)):
            current = self.layer_current(index, outputs, timesteps, neuron)
            synops = sum(float(spikes_per_input[source] @ block.fan_out) for source, block in blocks)
            for source in set(s for s, _ in blocks):
                if self._last_use.get(source) == index:
                    outputs.pop(source, None)
                    spikes_per_input.pop(source, None)
            per_neuron = None
            if layer.spiking:
                spikes, per_neuron = self._spikes(self._layers[index], current, timesteps, neuron,
                                                  self._parameters(neuron).thresholds[index])
                counts.channel_rates.append(self._layers[index].channel_rates(per_neuron, frames, timesteps))
                spikes_per_input[index] = per_neuron
                hidden = spikes
                if index in self._last_use:
                    outputs[index] = spikes
            counts.add_layer(layer.name, self._layers[index].n_neurons, _total(per_neuron), synops, timesteps)
        return counts, current, hidden

    def input_rows(self, x: np.ndarray) -> np.ndarray:
        """(frames, C, H, W) preprocessed -> what the first layer reads, (frames, n) channels-last."""
        x = x.astype(np.float32, copy=False)
        return (x.transpose(0, 2, 3, 1) if x.ndim == 4 else x).reshape(len(x), -1)

    def layer_current(self, index: int, outputs: dict, timesteps: int, neuron: Optional[NeuronConfig] = None):
        """Layer `index`'s input current over a batch, its bias included, as run computes it:
        (T, frames, n) channels-last, or (1, frames, n) from the image alone (a constant current).
        outputs: its sources' {layer index: spikes (T, frames, n) from layer_spikes; -1: the image
        from input_rows}."""
        bias = self._parameters(neuron or self.model.neuron).biases[index]
        current = None
        for source, block in self._blocks[index]:
            rows = outputs[source]
            if source < 0:  # the image is a constant current: once, repeated over time
                part = block.apply(rows)[None]
            else:
                part = block.apply_spikes(rows.reshape(timesteps * rows.shape[1], -1)).reshape(timesteps, rows.shape[1],
                                                                                               -1)
            if current is None:
                current = part
            elif current.shape[0] >= part.shape[0]:
                current += part
            else:
                current = current + part
        current += bias
        return current

    def layer_spikes(self, index: int, current: np.ndarray, timesteps: int,
                     neuron: Optional[NeuronConfig] = None) -> tuple:
        """Spiking layer `index`'s neurons on their current (layer_current) -> (spikes (T, frames, n)
        float32 0/1, each channel's spikes per neuron per step over the batch)."""
        neuron = neuron or self.model.neuron
        plan = self._layers[index]
        spikes, per_neuron = self._spikes(plan, current, timesteps, neuron, self._parameters(neuron).thresholds[index])
        return spikes, plan.channel_rates(per_neuron, current.shape[1], timesteps)


def chain_program(layers: list, input_shape: tuple, dtype=np.float32) -> Optional[dict]:
    """The flat arrays of a chain of channels-last layers that frame_kernels' layer loops read
    (see run_chain's layout table), or None where a grouped convolution has no gather plan. The
    first layer reads the input in its own (C, H, W) order, so that a frame needs no
    channels-last copy. dtype: of the weights (float64 where float32 sums would not be exact)."""
    if any(plan.layer.kind == "conv" and plan.conv_plan is None for plan in layers):
        return None
    k = frame_kernels
    layout = np.zeros((len(layers), k.LAYOUT_COLUMNS), np.int64)
    weights, indices, weight_start, index_start, bias_start = [], [], 0, 0, 0
    for position, (row, plan) in enumerate(zip(layout, layers)):
        conv = plan.conv_plan
        matrix = conv.matrix if conv is not None else plan.weight_t
        index = conv.index if conv is not None else None
        if position == 0:
            matrix, index = _reading_input_order(input_shape, matrix, index)
        row[[k.KIND, k.WEIGHT_START, k.WEIGHT_ROWS, k.WEIGHT_COLS, k.BIAS_START, k.N_OUT]] = (
            k.CONV if conv is not None else k.DENSE, weight_start, *matrix.shape, bias_start, plan.n_neurons)
        weights.append(matrix.ravel())
        weight_start += matrix.size
        bias_start += plan.n_neurons
        if index is not None:
            gather = k.gather_runs(index, conv.zero)
            if index.size < k.MIN_MEAN_RUN * len(gather):
                gather = index
            else:
                row[k.N_RUNS] = len(gather)
            row[[k.INDEX_START, k.POSITIONS]] = index_start, index.shape[0]
            indices.append(gather.ravel().astype(k.INDEX_DTYPE))
            index_start += gather.size
    return {"layout": layout, "weights": np.concatenate(weights).astype(dtype),
            "indices": np.concatenate(indices) if indices else np.zeros(0, k.INDEX_DTYPE),
            "n_spiking": sum(plan.n_neurons for plan in layers if plan.layer.spiking),
            # what the op counts are counted with
            "layers": layers, "input_fan_out": fan_out(layers[0].layer).ravel().astype(np.float64)}


def _reading_input_order(shape: tuple, matrix: np.ndarray, index: Optional[np.ndarray]) -> tuple:
    """The first layer's gather index (conv) or weight rows (dense), made to read an input of
    `shape` as it comes, (C, H, W), instead of channels-last."""
    if len(shape) != 3:
        return matrix, index
    c, h, w = shape
    input_position = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()  # of each (y, x, c)
    if index is not None:  # its entries past the input (padding) stay there
        return matrix, np.append(input_position, input_position.size)[index]
    reordered = np.empty_like(matrix)
    reordered[input_position] = matrix
    return reordered, None


class _PointParameters:
    """An operating point's thresholds (float32; the score layer's unused), biases and initial
    potentials per layer, and all that frame_kernels.run_chain reads of it."""

    def __init__(self, engine: SNNEngine, neuron: NeuronConfig):
        thresholds, self.biases, starts, spiking_index = [], [], [], 0
        for plan in engine._layers:
            if plan.layer.spiking:
                threshold = engine.model.thresholds[spiking_index] * neuron.scale_of(spiking_index)
                self.biases.append(plan.bias_at(threshold, neuron.bias_shift_of(spiking_index)))
                spiking_index += 1
                fraction = np.float32(neuron.v_init) if plan.initial_potential is None else \
                    np.float32(neuron.v_init) + plan.initial_potential
                starts.append(np.broadcast_to(fraction * np.float32(threshold), (plan.n_neurons,)))
            else:
                threshold = np.inf
                self.biases.append(plan.bias)
                starts.append(np.zeros(plan.n_neurons, np.float32))
            thresholds.append(threshold)
        self.thresholds = np.array(thresholds, dtype=np.float32)
        # what frame_kernels.run_chain reads of the point, ready to pass
        self.frame_arguments = (np.concatenate(self.biases).astype(np.float32), self.thresholds,
                                np.concatenate(starts).astype(np.float32), neuron.reset == "subtract")


def _readout(score_current: np.ndarray, timesteps: int) -> np.ndarray:
    """The class scores from the score layer's input current (T or 1, frames, classes): its mean
    over the T steps (the score layer integrates without spiking)."""
    scores = score_current.mean(axis=0) if len(score_current) == timesteps else score_current[0]
    return np.asarray(scores, dtype=np.float32)


def _total(spikes_per_neuron: Optional[np.ndarray]) -> int:
    return 0 if spikes_per_neuron is None else int(spikes_per_neuron.sum())


def _integrate_and_fire(current: np.ndarray, timesteps: int, threshold: float, neuron: NeuronConfig,
                        initial_potential: Optional[np.ndarray] = None) -> np.ndarray:
    """current: (T or 1, frames, n); initial_potential: (n,) fractions of the threshold added to
    v_init, or None. Returns spikes (T, frames, n) as float32 0/1: a compiled frame's neurons
    (frame_kernels.integrate_and_fire) over every frame's at once, one pass over the current
    (numpy's step loop made several: 3-6x slower on the suite's CNNs)."""
    threshold = np.float32(threshold)
    frames, n = current.shape[1], current.shape[2]
    v_init = np.full(n, np.float32(neuron.v_init) * threshold, np.float32)
    if initial_potential is not None:
        v_init = v_init + initial_potential * threshold
    spikes = np.empty((timesteps, frames * n), dtype=np.float32)
    frame_kernels.integrate_and_fire(np.ascontiguousarray(current, dtype=np.float32).reshape(len(current), -1),
                                     np.zeros(frames * n, np.float32), timesteps, threshold,
                                     np.tile(v_init.astype(np.float32), frames), neuron.reset == "subtract", spikes)
    return spikes.reshape(timesteps, frames, n)
