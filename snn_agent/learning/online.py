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
from typing import Optional

import numpy as np

from ..energy.constants import CpuPower, LoihiEnergy
from ..energy.models import CpuEnergyMeter, loihi_learning_energy
from ..ir import Layer
from . import checkpoint as checkpoints
from .learner import FeedbackOutcome, LearnerBase
from .readout import EMULATED, HOST, ON_CHIP, EmulatedTrainer, FloatTrainer, FrameInput, PlasticReadout
from .rules import ReadoutRule

log = logging.getLogger("snn_agent")


@dataclass
class LearningSettings:
    enabled: bool = False
    # rate, margin, replays, centring: bench/learning.py's choice on its validation streams (both
    # pairs' old classes losing at most a point, half a drift's loss back within 500 labelled
    # frames); the node's learning.rate can change the rate
    rate: float = 2.0 ** -6  # weight units per pre spike, a power of two (rules.rate_problem)
    margin: float = 0.0  # see ReadoutRule
    max_repeats: int = 1
    centred: bool = False  # see ReadoutRule: learns new classes faster, cannot undo a drift
    max_classes: int = 0  # 0: the model's classes (then no class can be added)
    class_names: list = field(default_factory=list)  # names of added classes, by index
    checkpoint_dir: str = ""  # "": no checkpoints
    checkpoint_every: int = 50  # updates between checkpoints
    held_frames: int = 16  # classified frames kept for feedback
    stdp_rate: float = 0.25  # an STDP network adapting: its trained STDP rates times this (bench/stdp_robot.py)

    def rule(self) -> ReadoutRule:
        return ReadoutRule(self.rate, self.margin, self.max_repeats, self.centred)


@dataclass
class _HeldFrame:
    pre: FrameInput
    timesteps: int


class OnlineLearner(LearnerBase):
    def __init__(self, layer: Layer, class_names: list, fingerprint: str, settings: LearningSettings, trainer,
                 cpu_power: CpuPower = CpuPower(), loihi_constants: LoihiEnergy = LoihiEnergy()):
        super().__init__(settings, fingerprint)  # updates: feedback frames applied (taught or already right)
        self.trainer = trainer
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
        return {"learning kind": self.kind, "learning updates": str(self.updates),
                "learning classes": str(self.readout.classes), **self._feedback_diagnostics(),
                "learning energy J": f"{self.energy_j:.6g}"}


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
