"""A plastic score layer over the frozen converted network.

The converted SNN up to its last hidden layer extracts features; the score layer becomes a
readout that learns from labelled frames (rules.py) and grows by a class at runtime. Its input is
the last hidden layer's spike train plus an always-on bias input (a neuron that fires at each of
the frame's T steps), so that the score layer's bias is a weight like the others and learns too:

    score[c] = scale * (W[c] . counts) / T,   counts = spikes of each input over the frame

With W = round(W_float / scale) this is the converted layer's own score, W_float . rate + b.
Rows are held for `max_classes` classes from the start (a chip's synapses are allocated once);
a class is active once the model knows it or a label adds it.

The readout also keeps the mean of its inputs over the frames it classified (per step, a running
mean over the last ~MEAN_HORIZON frames): the mean frame a centred rule replays (rules.py).

Who applies a teaching run is a trainer: EmulatedTrainer (Lava's fixed point on the CPU, exact),
FloatTrainer (the same rule in float: the ideal target, and the host readout over a DNN's
activations) or lava_readout.LavaTrainer (Lava's LearningDense on the simulated or real chip).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..ir import Layer
from . import fixed_point
from .rules import T_EPOCH, ReadoutRule

EMULATED, ON_CHIP, HOST = "emulated", "on-chip", "host"  # the kinds of learning /diagnostics reports
MEAN_HORIZON = 1000  # frames: the mean input follows a drifting stream at this horizon
# rehearsal (the graded rule): the labelled frames kept to replay, the most recent, and how often each
# is replayed per pass against the old-class memory's one (chosen on the easy pair's validation stream
# with 100 memory frames per class: docs/learning.md)
MAX_LABELLED = 256
LABELLED_REPLAYS = 4


@dataclass
class LearningOps:
    """What teaching cost, in the operations Loihi's learning engine performs."""

    runs: int = 0  # teaching runs (replays of a frame)
    steps: int = 0  # chip steps they took
    synaptic_updates: int = 0  # synapses the learning rule was evaluated on (x0 = 1: pre spike x rows)
    synaptic_ops: int = 0  # spikes the replays sent through the readout's synapses
    trace_updates: int = 0  # pre and post trace updates, one each per epoch
    changed: int = 0  # weights that changed

    def add(self, other: "LearningOps") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class FrameInput:
    """One frame's input to the readout (PlasticReadout.inputs): per step, and counted once."""

    spikes: np.ndarray  # (steps, inputs + 1): hidden spikes (or a DNN's activations, one step), the bias input last
    counts: np.ndarray  # (inputs + 1,) float64: each input's sum over the frame

    @classmethod
    def of(cls, spikes: np.ndarray) -> "FrameInput":
        return cls(spikes, spikes.sum(axis=0, dtype=np.float64))


@dataclass
class TeachResult:
    label: int
    predicted: int  # the readout's answer before teaching
    ops: LearningOps = field(default_factory=LearningOps)
    added_class: bool = False

    @property
    def correct_before(self) -> bool:
        return self.predicted == self.label


class EmulatedTrainer:
    """Lava's fixed-point learning emulated on the CPU (fixed_point.py): integer weights."""

    kind = EMULATED
    dtype = np.int32

    def __init__(self):
        self.stream = fixed_point.LavaRoundingStream()
        fixed_point.warm_up()  # the compiled kernel now, not on the first feedback

    def teach(self, weights: np.ndarray, pre: np.ndarray, up, down, rule: ReadoutRule) -> int:
        return fixed_point.teach(weights, pre, up, down, rule.products, self.stream.next(len(pre)))

    def load(self, weights: np.ndarray) -> None:
        """Weights set from outside (a checkpoint, a reset): nothing to send anywhere."""

    def close(self) -> None:
        pass


class FloatTrainer:
    """The rule in float, without rounding: w[row] += rate * x for the rows in `up`, -= for those in
    `down`, summed over the frame's steps. `pre` may be graded (a DNN's activations, one step)."""

    dtype = np.float64

    def __init__(self, kind: str = HOST):
        self.kind = kind

    def teach(self, weights: np.ndarray, pre: np.ndarray, up, down, rule: ReadoutRule) -> int:
        change = rule.rate * pre.sum(axis=0)
        weights[np.asarray(up, int)] += change
        weights[np.asarray(down, int)] -= change
        return int(np.count_nonzero(change)) * (len(up) + len(down))

    def load(self, weights: np.ndarray) -> None:
        pass

    def close(self) -> None:
        pass


class PlasticReadout:
    """The score layer's weights, which classes are active, and their names."""

    def __init__(self, weights: np.ndarray, scale: float, active: np.ndarray, class_names: list,
                 rule: ReadoutRule, trainer):
        self.weights = weights  # (max_classes, inputs + 1): the last column is the bias input's
        self.scale = scale
        self.active = active  # (max_classes,) bool
        self.class_names = class_names  # max_classes names
        self.rule = rule
        self.trainer = trainer
        self.input_mean = np.zeros(weights.shape[1])  # per step of a frame (the bias input's is 1)
        self.observed = 0  # frames in input_mean
        self.model_rows = active.copy()  # the rows the model brought: the graded rule leaves them as they are
        # rehearsal (the graded rule): the labelled frames' counts and labels, and the old classes'
        # memory (set_memory): frames of the model's training set, as counts over a frame of T steps
        self.labelled: list = []
        self.memory = (np.zeros((0, weights.shape[1])), np.zeros(0, int))
        self._order = np.random.default_rng(0)  # the order of a rehearsal pass

    @classmethod
    def from_layer(cls, layer: Layer, model_class_names: list, rule: ReadoutRule, trainer, max_classes: int = 0,
                   class_names: Optional[list] = None) -> "PlasticReadout":
        """A score layer (the backend's: Backend.score_layer) as a readout of up to max_classes
        classes (0: the layer's)."""
        if layer.kind != "dense" or layer.spiking or len(layer.input_shape) != 1:
            raise ValueError(f"a learning readout needs a non-spiking dense score layer over a flat hidden layer; "
                             f"the model's last layer {layer.name!r} is a {layer.kind} layer over {layer.input_shape}")
        known = layer.n_neurons
        max_classes = max_classes or known
        if max_classes < known:
            raise ValueError(f"max_classes {max_classes} is below the model's {known} classes")
        weight = np.concatenate([layer.weight.astype(np.float64), layer.bias.astype(np.float64)[:, None]], axis=1)
        # weight units: the largest weight is 255, so that a rate means the same for every trainer; an
        # integer trainer rounds them (8 bits and a sign, as Loihi holds them)
        scale = float(np.abs(weight).max()) / fixed_point.WEIGHT_MAX or 1.0
        weights = np.zeros((max_classes, weight.shape[1]), trainer.dtype)
        weights[:known] = weight / scale if trainer.dtype == np.float64 else np.rint(weight / scale)
        active = np.zeros(max_classes, bool)
        active[:known] = True
        names = class_names_for(max_classes, model_class_names, class_names or [])
        readout = cls(weights, scale, active, names, rule, trainer)
        trainer.load(readout.weights)
        return readout

    @property
    def classes(self) -> int:
        return int(self.active.sum())

    @property
    def max_classes(self) -> int:
        return len(self.active)

    def inputs(self, hidden: np.ndarray, timesteps: int) -> FrameInput:
        """hidden: (steps, n) one frame's hidden spikes (or a DNN's activations, one step) -> the
        readout's input, with the bias input on at the frame's first T steps."""
        bias = np.zeros((len(hidden), 1), hidden.dtype)
        bias[:timesteps] = 1
        return FrameInput.of(np.concatenate([hidden, bias], axis=1))

    def observe(self, frame: FrameInput) -> None:
        """A classified frame's input (from `inputs`) joins the mean input."""
        counts = frame.counts
        self.observed += 1
        self.input_mean += (counts / max(counts[-1], 1) - self.input_mean) / min(self.observed, MEAN_HORIZON)

    def centred_frames(self, frame: FrameInput) -> tuple:
        """The frame less the mean input over its duration, as two inputs to replay: what it has
        above the mean and what it has below it. Spikes (each input's count difference, the mean
        rounded, at the first steps) or, for graded inputs, the differences in the first step.
        Replaying the difference, not the frame and then the mean, keeps the chip's stochastic
        rounding to the change itself: Lava's fixed point rounds every synapse of an epoch with one
        random number, which made two large opposite runs far noisier than their small sum."""
        pre, counts = frame.spikes, frame.counts
        mean = self.input_mean * counts[-1]  # the bias input counts the frame's steps
        if pre.dtype != bool:
            above, below = np.zeros_like(pre), np.zeros_like(pre)
            above[0], below[0] = np.maximum(counts - mean, 0), np.maximum(mean - counts, 0)
            return above, below
        difference = counts - np.rint(mean)
        return spike_train(difference, len(pre)), spike_train(-difference, len(pre))

    def scores(self, frame: FrameInput, timesteps: int) -> np.ndarray:
        """(max_classes,) scores in the converted model's units; -inf for inactive classes."""
        raw = self._raw(frame.counts, timesteps)
        return np.where(self.active, raw * self.scale, -np.inf)

    def _raw(self, counts: np.ndarray, timesteps: int) -> np.ndarray:
        """Scores in weight units per step, where the margin is given."""
        return self.weights @ counts / max(timesteps, 1)

    def add_class(self, label: int) -> None:
        if not 0 <= label < self.max_classes:
            raise ValueError(f"class {label} is out of range: the readout holds {self.max_classes} classes "
                             f"(learning.max_classes)")
        self.active[label] = True

    def teach(self, frame: FrameInput, label: int, timesteps: int) -> TeachResult:
        """Teach one frame (its readout input, from `inputs`) that it shows `label`: replays it
        until the label wins by the rule's margin, at most rule.max_repeats times (label-only: the
        winner's row is not lowered); graded: by its error, then rehearses (teach_graded)."""
        added = not (0 <= label < self.max_classes and self.active[label])
        if added:
            self.add_class(label)
        counts = frame.counts
        result = TeachResult(label, -1, added_class=added)
        if self.rule.graded:
            return self.teach_graded(frame, result, timesteps)
        above, below = self.centred_frames(frame) if self.rule.centred and self.observed else (frame.spikes, None)
        for repeat in range(self.rule.max_repeats + 1):
            raw = np.where(self.active, self._raw(counts, timesteps), -np.inf)
            if repeat == 0:
                result.predicted = int(np.argmax(raw))
            others = raw.copy()
            others[label] = -np.inf
            winner = int(np.argmax(others)) if np.isfinite(others).any() else -1
            if winner < 0 or raw[label] - raw[winner] > self.rule.margin or repeat == self.rule.max_repeats:
                break
            lowered = [] if self.rule.label_only else [winner]
            changed = self.trainer.teach(self.weights, above, [label], lowered, self.rule)
            result.ops.add(self._ops(above != 0, changed))
            if below is not None:  # the roles swapped: the label's row down, the winner's up
                changed = self.trainer.teach(self.weights, below, lowered, [label], self.rule)
                result.ops.add(self._ops(below != 0, changed))
        return result

    def teach_graded(self, frame: FrameInput, result: TeachResult, timesteps: int) -> TeachResult:
        """The graded rule (rules.py): the frame taught by its error, kept, then rule.rehearsal passes
        over the kept labelled frames (each LABELLED_REPLAYS times) and the old-class memory, in a
        random order, each taught by its error: the 40 labels of two new classes used as an offline
        fit uses them, and the memory's frames as the new rows' negatives. A frame the readout already
        answers confidently changes nothing and costs only its scores."""
        result.predicted = int(np.argmax(np.where(self.active, self._raw(frame.counts, timesteps), -np.inf)))
        self._graded_run(frame.counts, result.label, timesteps, result.ops, frame.spikes)
        self.labelled = (self.labelled + [(frame.counts, result.label)])[-MAX_LABELLED:]
        memory_counts, memory_labels = self.memory
        items = [item for item in self.labelled for _ in range(LABELLED_REPLAYS)] + list(zip(memory_counts, memory_labels))
        for _ in range(self.rule.rehearsal):
            for i in self._order.permutation(len(items)):
                counts, label = items[i]  # scored at its own steps (its bias input's count): the node's T changes
                self._graded_run(counts, int(label), int(counts[-1]), result.ops)
        return result

    def _graded_run(self, counts: np.ndarray, label: int, timesteps: int, ops: LearningOps,
                    pre: Optional[np.ndarray] = None) -> None:
        """One frame taught by its error: the added rows' error (teacher minus softmax output, in
        the converted model's score units) in rule.graded levels, one replay per level reached.
        pre: the input a replay sends; None for a stored frame, whose spikes are made from its counts
        only where a level is reached (most rehearsed frames are not taught)."""
        scores = np.where(self.active, self._raw(counts, timesteps) * self.scale, -np.inf)
        output = np.exp(scores - scores.max())
        error = -output / output.sum()
        error[label] += 1.0
        error[self.model_rows] = 0.0
        levels = np.rint(error * self.rule.graded).astype(int)
        if not levels.any():
            return
        pre = self._replayed(counts) if pre is None else pre
        spiking = pre != 0
        for level in range(1, self.rule.graded + 1):
            up, down = np.flatnonzero(levels >= level), np.flatnonzero(levels <= -level)
            if not up.size and not down.size:
                break
            ops.add(self._ops(spiking, self.trainer.teach(self.weights, pre, up, down, self.rule)))

    def _replayed(self, counts: np.ndarray) -> np.ndarray:
        """A stored frame's counts as the input a replay sends: spikes over the frame's steps (the
        bias input counts them), or, graded inputs (the host readout), the counts in one step."""
        if self.trainer.dtype == np.float64:
            return counts[None, :]
        return spike_train(counts, int(counts[-1]))

    def set_memory(self, counts: np.ndarray, labels: np.ndarray) -> None:
        """The old classes' memory the graded rule rehearses: readout inputs (counts, bias input last:
        it counts the frame's steps) of frames of the model's own training set, with their classes.
        Stored with the model (learning/memory.py), not learned."""
        self.memory = (np.asarray(counts, np.float64), np.asarray(labels, int))

    def _ops(self, spiking: np.ndarray, changed: int) -> LearningOps:
        steps, n_pre = spiking.shape
        pre_spikes = int(np.count_nonzero(spiking))
        return LearningOps(runs=1, steps=T_EPOCH * steps, synaptic_updates=pre_spikes * self.max_classes,
                           synaptic_ops=pre_spikes * self.max_classes,
                           trace_updates=steps * (n_pre + self.max_classes), changed=changed)

    def state(self) -> dict:
        """What a checkpoint holds (checkpoint.py)."""
        kept = len(self.labelled)
        return {"weights": self.weights.copy(), "scale": self.scale, "active": self.active.copy(),
                "class_names": list(self.class_names), "input_mean": self.input_mean.copy(),
                "observed": self.observed,
                "labelled_counts": np.array([counts for counts, _ in self.labelled], np.float64).reshape(
                    kept, self.weights.shape[1]),
                "labelled_labels": np.array([label for _, label in self.labelled], np.int64)}

    def restore(self, state: dict) -> None:
        weights = np.asarray(state["weights"])
        if weights.shape != self.weights.shape:
            raise ValueError(f"checkpoint weights {weights.shape} do not fit this readout's {self.weights.shape} "
                             f"(max classes x hidden inputs + 1)")
        labelled = None  # checkpoints from before the graded rule keep no labelled frames
        if "labelled_counts" in state:
            counts = np.asarray(state["labelled_counts"], np.float64).reshape(-1, weights.shape[1])
            labelled = [(row, int(label)) for row, label in zip(counts, state["labelled_labels"])][-MAX_LABELLED:]
        self.weights = weights.astype(self.weights.dtype)
        self.scale = float(state["scale"])
        self.active = np.asarray(state["active"], bool).copy()
        self.class_names = list(state["class_names"])
        if "input_mean" in state:  # checkpoints from before the mean input have none
            self.input_mean = np.asarray(state["input_mean"], np.float64).copy()
            self.observed = int(state["observed"])
        if labelled is not None:
            self.labelled = labelled
        self.trainer.load(self.weights)


def spike_train(counts: np.ndarray, steps: int) -> np.ndarray:
    """(steps, n) spikes with each input's count (rounded, clipped to 0..steps) in a row of steps
    starting at a step of its own (input i at step i mod steps): the epochs' shared random numbers
    (fixed_point.py) then round different inputs' changes apart instead of all together."""
    at = (np.arange(steps)[:, None] - np.arange(len(counts))[None, :]) % max(steps, 1)
    return at < np.rint(counts)[None, :]


def class_names_for(max_classes: int, model_names: list, given: list) -> list:
    """Each class's name: the given names (learning.class_names) first, then the model's, then class_<i>."""
    names = []
    for index in range(max_classes):
        if index < len(given) and given[index]:
            names.append(str(given[index]))
        elif index < len(model_names):
            names.append(str(model_names[index]))
        else:
            names.append(f"class_{index}")
    return names
