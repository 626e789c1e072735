"""The learner the agent holds: scores frames with the plastic readout, keeps the last frames for
feedback, teaches the one a label names, prices each learning step, checkpoints.

Feedback names its frame by an id (the image's stamp) or, without one, means the most recently
classified frame. A label for a frame no longer held (or already taught) is counted and dropped,
never applied to another frame. A label the readout does not know adds a class.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..energy.constants import CpuPower, LoihiEnergy
from ..energy.models import CpuEnergyMeter, loihi_learning_energy
from ..ir import Layer
from . import checkpoint as checkpoints
from .learner import FeedbackOutcome, LearnerBase
from .readout import EMULATED, HOST, ON_CHIP, EmulatedTrainer, FloatTrainer, FrameInput, PlasticReadout
from .rules import ReadoutRule

log = logging.getLogger("snn_agent")


PERCEPTRON, GRADED = "perceptron", "graded"  # the rules the node offers (learning.rule)
RULES = (PERCEPTRON, GRADED)


@dataclass
class LearningSettings:
    enabled: bool = False
    rule_name: str = PERCEPTRON  # learning.rule: PERCEPTRON (rate, margin, max_repeats, centred) or GRADED
    # rate, margin, replays, centring: bench/learning.py's choice on its validation streams (both
    # pairs' old classes losing at most a point, half a drift's loss back within 500 labelled
    # frames on average over three streams: learning_rotation.json); the node's learning.rate can
    # change the rate
    rate: float = 2.0 ** -6  # weight units per pre spike, a power of two (rules.rate_problem)
    margin: float = 0.0  # see ReadoutRule; 100 (learning_graded.json's choice) learns new classes more slowly
    # and, at T = 16, a drift a little faster
    max_repeats: int = 1
    centred: bool = False  # see ReadoutRule: learns new classes faster, cannot undo a drift
    # the graded rule with rehearsal (ReadoutRule.graded, .rehearsal): bench/learning.py's choice for
    # the new-class target (learning_rotation.json: at T = 16, 88.7 % on all 10 classes); it needs the
    # model's old-class memory (learning/memory.py)
    graded_rate: float = 2.0 ** -3
    graded_levels: int = 8
    rehearsal: int = 1  # passes over the kept labelled frames and the memory after each labelled frame
    max_classes: int = 0  # 0: the model's classes (then no class can be added)
    class_names: list = field(default_factory=list)  # names of added classes, by index
    checkpoint_dir: str = ""  # "": no checkpoints
    checkpoint_every: int = 50  # updates between checkpoints
    held_frames: int = 16  # classified frames kept for feedback
    # an STDP network adapting: its trained STDP rates times stdp_rate, its thresholds decaying with a
    # time constant of stdp_threshold_decay frames (0: the network's own); bench/stdp_robot.py's choice
    # on validation streams, clean and under an exposure drift (stdp_robot.json)
    stdp_rate: float = 0.0
    stdp_threshold_decay: float = 1000.0

    def rule(self) -> ReadoutRule:
        if self.rule_name not in RULES:
            raise ValueError(f"learning rule {self.rule_name!r}: one of {', '.join(RULES)}")
        if self.rule_name == GRADED:
            return ReadoutRule(self.graded_rate, graded=self.graded_levels, rehearsal=self.rehearsal)
        return ReadoutRule(self.rate, self.margin, self.max_repeats, self.centred)


@dataclass(frozen=True)
class MemorySource:
    """The model's old-class memory (learning/memory.py) as the learner needs it: `hidden(T)` gives
    its frames' hidden layer output at T through the backend's own path, (frames, steps, n), and
    `labels` their classes; `description` says where they came from and how they are computed."""

    labels: np.ndarray
    hidden: Callable[[int], np.ndarray]
    description: str


@dataclass
class _HeldFrame:
    pre: FrameInput
    timesteps: int


class OnlineLearner(LearnerBase):
    def __init__(self, layer: Layer, class_names: list, fingerprint: str, settings: LearningSettings, trainer,
                 cpu_power: CpuPower = CpuPower(), loihi_constants: LoihiEnergy = LoihiEnergy(),
                 memory: Optional[MemorySource] = None):
        """memory: the old-class memory the graded rule rehearses (required where rehearsal > 0)."""
        super().__init__(settings, fingerprint)  # updates: feedback frames applied (taught or already right)
        if settings.rule().rehearsal and memory is None:
            raise ValueError("the graded rule's rehearsal replays the model's old-class memory, and none was given")
        self.trainer = trainer
        self.memory = memory
        self._memory_counts: dict = {}  # T -> the memory's readout inputs at T
        self.meter = CpuEnergyMeter(cpu_power)
        self.loihi_constants = loihi_constants
        self._layer, self._class_names = layer, class_names
        self.readout = self._fresh_readout()
        self._restore()

    @property
    def kind(self) -> str:
        return self.trainer.kind

    @property
    def class_names(self) -> list:
        return self.readout.class_names

    def _fresh_readout(self) -> PlasticReadout:
        s = self.settings
        return PlasticReadout.from_layer(self._layer, self._class_names, s.rule(), self.trainer, s.max_classes,
                                         s.class_names)

    # --- frames --------------------------------------------------------------------------------
    def classify(self, hidden: np.ndarray, timesteps: int, frame_id=None) -> np.ndarray:
        """hidden: one frame's features (steps, n) -> its scores; the frame is held for feedback."""
        pre = self.readout.inputs(hidden, timesteps)
        self.readout.observe(pre)
        self._hold(_HeldFrame(pre, timesteps), frame_id)
        return self.readout.scores(pre, timesteps)

    def feedback(self, label: int, frame_id=None) -> FeedbackOutcome:
        """Teach the frame `frame_id` (None: the most recent) that it shows `label`."""
        problem = f"label {label} is negative" if label < 0 else None
        if label >= self.readout.max_classes:
            problem = f"label {label} is beyond learning.max_classes ({self.readout.max_classes} classes)"
        frame, refused = self._frame_for(problem, frame_id)
        if refused:
            return refused
        started, reading = time.perf_counter(), self.meter.read()
        if self.memory is not None:
            self.prepare_memory(frame.timesteps)  # done already where the agent prepared it (memory_pending)
            self.readout.set_memory(self._memory_counts[frame.timesteps], self.memory.labels)
        taught = self.readout.teach(frame.pre, label, frame.timesteps)
        seconds = time.perf_counter() - started
        ops = taught.ops
        loihi = loihi_learning_energy(ops.synaptic_updates, ops.synaptic_ops, ops.trace_updates, ops.steps,
                                      self.loihi_constants)
        energy = loihi if self.kind == ON_CHIP else self.meter.energy(reading, self.meter.read())
        self.updates += 1
        self.feedback_frames += 1
        self.feedback_correct += int(taught.correct_before)
        self.energy_j += energy.joules
        if taught.added_class:
            log.info("learning: added class %d (%s)", label, self.readout.class_names[label])
        self._save_when_due()
        return FeedbackOutcome(True, teach=taught, energy=energy, loihi_energy=loihi, seconds=seconds)

    def memory_pending(self, frame_id=None) -> Optional[int]:
        """The T of the frame feedback would teach (None: the most recent) where the graded rule's
        memory is not computed at it yet; else None."""
        if self.memory is None or not self._held:
            return None
        frame = self._held.get(next(reversed(self._held)) if frame_id is None else frame_id)
        return frame.timesteps if frame is not None and frame.timesteps not in self._memory_counts else None

    def prepare_memory(self, timesteps: int) -> float:
        """The memory's readout inputs at T (as `classify` makes a frame's), computed once per T
        (the backend runs its frames: seconds at large T); returns the CPU energy it took, in J,
        which the agent bills as learning. Safe beside the frame loop: the backend computes them
        on a path of its own (Backend.features)."""
        if self.memory is None or timesteps in self._memory_counts:
            return 0.0
        reading = self.meter.read()
        self._memory_counts[timesteps] = np.array([self.readout.inputs(hidden, timesteps).counts
                                                   for hidden in self.memory.hidden(timesteps)])
        joules = self.meter.energy(reading, self.meter.read()).joules
        self.energy_j += joules
        return joules

    # --- checkpoints ---------------------------------------------------------------------------
    def _checkpoint_state(self) -> dict:
        return self.readout.state()

    def _write_checkpoint(self, checkpoint: checkpoints.Checkpoint) -> None:
        checkpoints.save(self.settings.checkpoint_dir, checkpoint)

    def _read_checkpoint(self) -> Optional[checkpoints.Checkpoint]:
        return checkpoints.load(self.settings.checkpoint_dir, self.fingerprint)

    def _restore_state(self, state: dict) -> None:
        self.readout.restore(state)

    def reset(self) -> None:
        """Forget what was learned: the model's own readout again (and its checkpoint, where set)."""
        self.readout = self._fresh_readout()
        self._reset_feedback()
        if self.settings.checkpoint_dir:
            self.save()

    def close(self) -> None:
        """At shutdown: a last checkpoint (where set), then release the trainer."""
        self._save_at_close()
        self.trainer.close()

    # --- reporting -----------------------------------------------------------------------------
    def diagnostics(self) -> dict:
        values = {"learning kind": self.kind, "learning rule": rule_text(self.readout.rule),
                  "learning updates": str(self.updates), "learning classes": str(self.readout.classes),
                  **self._feedback_diagnostics(), "learning energy J": f"{self.energy_j:.6g}"}
        if self.memory is not None:
            values["learning memory"] = self.memory.description
            values["learning labelled frames kept"] = str(len(self.readout.labelled))
        return values


def rule_text(rule: ReadoutRule) -> str:
    """The rule as /diagnostics names it."""
    if rule.graded:
        return f"graded 2^-{rule.rate_exponent}, {rule.graded} levels, {rule.rehearsal} rehearsal passes"
    return (f"perceptron 2^-{rule.rate_exponent}, up to {rule.max_repeats} replays, margin {rule.margin:g}"
            + (", centred" if rule.centred else "") + (", label-only" if rule.label_only else ""))


def trainer_for(kind: str, hardware: bool = False):
    """The trainer that runs a backend's kind of learning (Backend.capabilities.learning)."""
    if kind == EMULATED:
        return EmulatedTrainer()
    if kind == HOST:
        return FloatTrainer(HOST)
    if kind == ON_CHIP:
        from .lava_readout import LavaTrainer
        return LavaTrainer(hardware=hardware)
    raise ValueError(f"no learning of kind {kind!r}; kinds: {EMULATED}, {ON_CHIP}, {HOST}")
