"""The learner the agent holds: scores frames with the plastic readout, keeps the last frames for
feedback, teaches the one a label names, prices each learning step, checkpoints.

Feedback names its frame by an id (the image's stamp) or, without one, means the most recently
classified frame. A label for a frame no longer held (or already taught) is counted and dropped,
never applied to another frame. A label the readout does not know adds a class.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..energy.constants import CpuPower, LoihiEnergy
from ..energy.models import CpuEnergyMeter, EnergyEstimate, loihi_learning_energy
from ..ir import Layer
from . import checkpoint as checkpoints
from .readout import EMULATED, HOST, ON_CHIP, EmulatedTrainer, FloatTrainer, PlasticReadout, TeachResult
from .rules import ReadoutRule

log = logging.getLogger("snn_agent")


@dataclass
class LearningSettings:
    enabled: bool = False
    rate: float = 0.125  # weight units per pre spike, a power of two (rules.rate_problem)
    margin: float = 0.0  # see ReadoutRule
    max_repeats: int = 4
    max_classes: int = 0  # 0: the model's classes (then no class can be added)
    class_names: list = field(default_factory=list)  # names of added classes, by index
    checkpoint_dir: str = ""  # "": no checkpoints
    checkpoint_every: int = 50  # updates between checkpoints
    held_frames: int = 16  # classified frames kept for feedback
    stdp_rate: float = 1.0  # an STDP network's learning rates while it adapts: the trained ones times this

    def rule(self) -> ReadoutRule:
        return ReadoutRule(self.rate, self.margin, self.max_repeats)


@dataclass
class FeedbackOutcome:
    applied: bool
    reason: str = ""  # why not, where not applied
    teach: Optional[TeachResult] = None
    energy: Optional[EnergyEstimate] = None  # what the learning step cost where it ran
    loihi_energy: Optional[EnergyEstimate] = None  # what it costs on Loihi, modelled from its ops
    seconds: float = 0.0  # wall time of the learning step


@dataclass
class _HeldFrame:
    pre: np.ndarray  # the readout's input, (steps, inputs + 1)
    timesteps: int


class OnlineLearner:
    def __init__(self, layer: Layer, class_names: list, fingerprint: str, settings: LearningSettings, trainer,
                 cpu_power: CpuPower = CpuPower(), loihi_constants: LoihiEnergy = LoihiEnergy()):
        self.settings = settings
        self.fingerprint = fingerprint
        self.trainer = trainer
        self.meter = CpuEnergyMeter(cpu_power)
        self.loihi_constants = loihi_constants
        self._layer, self._class_names = layer, class_names
        self.readout = self._fresh_readout()
        self.updates = 0  # feedback frames applied (taught or already right)
        self.feedback_frames = 0
        self.feedback_correct = 0  # feedback frames the readout had right before teaching
        self.dropped_feedback = 0
        self.energy_j = 0.0
        self.checkpoint_errors: list = []
        self.last_checkpoint: Optional[float] = None  # time.time() of the last one written or restored
        self.last_checkpoint_updates = 0
        self._held: "OrderedDict[object, _HeldFrame]" = OrderedDict()
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
        key = frame_id if frame_id is not None else object()
        self._held[key] = _HeldFrame(pre, timesteps)
        self._held.move_to_end(key)
        while len(self._held) > self.settings.held_frames:
            self._held.popitem(last=False)
        return self.readout.scores(pre, timesteps)

    def feedback(self, label: int, frame_id=None) -> FeedbackOutcome:
        """Teach the frame `frame_id` (None: the most recent) that it shows `label`."""
        if label < 0:
            self.dropped_feedback += 1
            return FeedbackOutcome(False, f"label {label} is negative")
        if label >= self.readout.max_classes:
            self.dropped_feedback += 1
            return FeedbackOutcome(False, f"label {label} is beyond learning.max_classes "
                                          f"({self.readout.max_classes} classes)")
        if frame_id is None and self._held:
            frame_id = next(reversed(self._held))
        frame = self._held.pop(frame_id, None)
        if frame is None:
            self.dropped_feedback += 1
            return FeedbackOutcome(False, "the frame is no longer held (or was taught already)")
        started, reading = time.perf_counter(), self.meter.read()
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
        if self.settings.checkpoint_dir and self.updates - self.last_checkpoint_updates >= self.settings.checkpoint_every:
            self.save()
        return FeedbackOutcome(True, teach=taught, energy=energy, loihi_energy=loihi, seconds=seconds)

    # --- checkpoints ---------------------------------------------------------------------------
    def save(self) -> bool:
        """Write a checkpoint now (where a directory is set); False and an error kept on failure."""
        if not self.settings.checkpoint_dir:
            self._error("no learning.checkpoint_dir set: nothing to save to")
            return False
        try:
            checkpoints.save(self.settings.checkpoint_dir, checkpoints.Checkpoint(
                self.readout.state(), self.updates, self.fingerprint, time.time()))
        except OSError as exc:
            self._error(f"cannot write the learning checkpoint in {self.settings.checkpoint_dir}: {exc}")
            return False
        self.last_checkpoint, self.last_checkpoint_updates = time.time(), self.updates
        return True

    def reset(self) -> None:
        """Forget what was learned: the model's own readout again (and its checkpoint, where set)."""
        self.readout = self._fresh_readout()
        self.updates = self.feedback_frames = self.feedback_correct = self.dropped_feedback = 0
        self.energy_j = 0.0
        self.last_checkpoint_updates = 0
        self._held.clear()
        if self.settings.checkpoint_dir:
            self.save()

    def _restore(self) -> None:
        if not self.settings.checkpoint_dir:
            return
        try:
            found = checkpoints.load(self.settings.checkpoint_dir, self.fingerprint)
            if found is None:
                return
            self.readout.restore(found.state)
        except (checkpoints.CheckpointError, ValueError) as exc:
            self._error(str(exc))
            return
        self.updates = self.last_checkpoint_updates = found.updates
        self.last_checkpoint = found.saved_at
        log.info("learning: restored %d updates, %d classes from %s", found.updates, self.readout.classes,
                 checkpoints.path_in(self.settings.checkpoint_dir))

    def _error(self, message: str) -> None:
        log.error(message)
        self.checkpoint_errors.append(message)

    def close(self) -> None:
        """At shutdown: a last checkpoint (where set), then release the trainer."""
        if self.settings.checkpoint_dir and self.updates != self.last_checkpoint_updates:
            self.save()
        self.trainer.close()

    # --- reporting -----------------------------------------------------------------------------
    def diagnostics(self) -> dict:
        age = time.time() - self.last_checkpoint if self.last_checkpoint is not None else None
        return {
            "learning kind": self.kind,
            "learning updates": str(self.updates),
            "learning classes": str(self.readout.classes),
            "learning feedback accuracy": f"{self.feedback_correct / self.feedback_frames:.4f}"
            if self.feedback_frames else "n/a",
            "learning feedback dropped": str(self.dropped_feedback),
            "learning energy J": f"{self.energy_j:.6g}",
            "learning checkpoint age s": f"{age:.1f}" if age is not None else "never",
            "learning checkpoint errors": str(len(self.checkpoint_errors)),
            "learning last checkpoint error": self.checkpoint_errors[-1] if self.checkpoint_errors else "",
        }


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
