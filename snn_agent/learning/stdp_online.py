"""The learner the agent holds for an STDP network (engine/stdp_engine.py): the network keeps
adapting to the camera stream without labels, and feedback relabels its neurons.

- Unsupervised: while learning is enabled, every frame runs with STDP and homeostasis on (the
  training kernels, stdp_kernels.run_images with learn), at the trained learning rates times
  `LearningSettings.stdp_rate`. Each frame is one update.
- Feedback: a label adds the frame's per-neuron spike counts to that class's response tally; each
  neuron that has responded to a feedback frame takes the class with its highest mean response per
  feedback frame (Diehl & Cook's assignment, over the feedback frames); the others keep their
  label. Labels never touch the weights.
- Energy: the frame's CPU time, measured by the backend, already holds the learning (one kernel
  pass does both). What it would cost on Loihi is modelled from the counted operations
  (energy.models.loihi_learning_energy: synaptic updates at 120 pJ, trace updates) and reported.
- Checkpoints: weights, thresholds, labels and the tally, in `stdp.npz` beside the readout's
  (checkpoint.save_arrays: atomic, the model's fingerprint, corrupt ones set aside).
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Optional

import numpy as np

from ..energy.constants import LoihiEnergy
from ..energy.models import loihi_learning_energy
from . import checkpoint as checkpoints
from .online import FeedbackOutcome, LearningSettings
from .readout import TeachResult

log = logging.getLogger("snn_agent")

UNSUPERVISED = "unsupervised"  # the kind of learning /diagnostics reports
CHECKPOINT_FILE = "stdp.npz"


class StdpLearner:
    def __init__(self, engine, class_names: list, settings: LearningSettings,
                 loihi_constants: LoihiEnergy = LoihiEnergy()):
        self.engine = engine
        self.network = engine.network
        self.class_names = list(class_names)
        self.settings = settings
        self.fingerprint = engine.fingerprint
        self.loihi_constants = loihi_constants
        self.kind = UNSUPERVISED
        self._model_state = self._state()  # what reset goes back to
        self._reset_counters()
        self.checkpoint_errors: list = []
        self.last_checkpoint: Optional[float] = None
        self.last_checkpoint_updates = 0
        self._restore()
        engine.plasticity = settings.stdp_rate

    def _reset_counters(self) -> None:
        n_classes, n = len(self.class_names), self.network.params.n_neurons
        self.tally = np.zeros((n_classes, n))  # per class the summed spike counts of its feedback frames
        self.tally_frames = np.zeros(n_classes)
        self.updates = self.feedback_frames = self.feedback_correct = self.dropped_feedback = 0
        self.synaptic_updates = 0.0
        self.energy_j = 0.0  # modelled on Loihi
        self._held: "OrderedDict[object, np.ndarray]" = OrderedDict()

    # --- frames --------------------------------------------------------------------------------
    def classify(self, hidden: np.ndarray, timesteps: int, frame_id=None) -> np.ndarray:
        """hidden: one frame's spike counts (1, n), from a run that learned -> its scores; the frame
        is held for feedback."""
        counts = hidden[0]
        ops = self.engine.last_ops
        self.updates += 1
        self.synaptic_updates += ops["synaptic_updates"]
        self.energy_j += loihi_learning_energy(int(ops["synaptic_updates"]), 0,
                                               int(ops["input_spikes"] + ops["exc_spikes"]), 0,
                                               self.loihi_constants).joules
        key = frame_id if frame_id is not None else object()
        self._held[key] = counts
        self._held.move_to_end(key)
        while len(self._held) > self.settings.held_frames:
            self._held.popitem(last=False)
        if self.settings.checkpoint_dir and self.updates - self.last_checkpoint_updates >= self.settings.checkpoint_every:
            self.save()
        return self.network.class_scores(counts[None], len(self.class_names))[0]

    def feedback(self, label: int, frame_id=None) -> FeedbackOutcome:
        """The frame `frame_id` (None: the most recent) shows `label`: relabel the neurons."""
        if not 0 <= label < len(self.class_names):
            self.dropped_feedback += 1
            return FeedbackOutcome(False, f"label {label} is not one of the STDP network's {len(self.class_names)} "
                                          f"classes (its neurons can be relabelled, not a class added)")
        if frame_id is None and self._held:
            frame_id = next(reversed(self._held))
        counts = self._held.pop(frame_id, None)
        if counts is None:
            self.dropped_feedback += 1
            return FeedbackOutcome(False, "the frame is no longer held (or was taught already)")
        started = time.perf_counter()
        predicted = int(np.argmax(self.network.class_scores(counts[None], len(self.class_names))[0]))
        self.tally[label] += counts
        self.tally_frames[label] += 1
        self._relabel()
        self.feedback_frames += 1
        self.feedback_correct += int(predicted == label)
        return FeedbackOutcome(True, teach=TeachResult(label, predicted), seconds=time.perf_counter() - started)

    def _relabel(self) -> None:
        seen = self.tally_frames > 0
        mean = np.zeros_like(self.tally)
        mean[seen] = self.tally[seen] / self.tally_frames[seen, None]
        responded = mean.max(axis=0) > 0
        self.network.labels = np.where(responded, mean.argmax(axis=0), self.network.labels)

    # --- checkpoints ---------------------------------------------------------------------------
    def _state(self) -> dict:
        n = self.network
        return {"weights": n.weights.copy(), "theta": n.theta.copy(), "labels": n.labels.copy()}

    def _set_state(self, state: dict) -> None:
        n = self.network
        if state["weights"].shape != n.weights.shape or state["theta"].shape != n.theta.shape:
            raise ValueError(f"checkpoint weights {state['weights'].shape} do not fit this network's {n.weights.shape}")
        n.weights[:] = state["weights"]
        n.theta[:] = state["theta"]
        n.labels = state["labels"].astype(np.int64)

    def save(self) -> bool:
        """Write a checkpoint now (where a directory is set); False and an error kept on failure."""
        if not self.settings.checkpoint_dir:
            self._error("no learning.checkpoint_dir set: nothing to save to")
            return False
        state = {**self._state(), "tally": self.tally, "tally_frames": self.tally_frames}
        try:
            checkpoints.save_arrays(self.settings.checkpoint_dir, CHECKPOINT_FILE,
                                    checkpoints.Checkpoint(state, self.updates, self.fingerprint, time.time()))
        except OSError as exc:
            self._error(f"cannot write the learning checkpoint in {self.settings.checkpoint_dir}: {exc}")
            return False
        self.last_checkpoint, self.last_checkpoint_updates = time.time(), self.updates
        return True

    def reset(self) -> None:
        """Forget what was learned: the model's own weights, thresholds and labels again (and its
        checkpoint, where set)."""
        self._set_state(self._model_state)
        self._reset_counters()
        self.last_checkpoint_updates = 0
        if self.settings.checkpoint_dir:
            self.save()

    def _restore(self) -> None:
        if not self.settings.checkpoint_dir:
            return
        try:
            found = checkpoints.load_arrays(self.settings.checkpoint_dir, CHECKPOINT_FILE, self.fingerprint)
            if found is None:
                return
            self._set_state(found.state)
            self.tally, self.tally_frames = found.state["tally"], found.state["tally_frames"]
        except (checkpoints.CheckpointError, ValueError, KeyError) as exc:
            self._error(str(exc))
            return
        self.updates = self.last_checkpoint_updates = found.updates
        self.last_checkpoint = found.saved_at
        log.info("learning: restored the STDP network after %d updates from %s", found.updates,
                 self.settings.checkpoint_dir)

    def _error(self, message: str) -> None:
        log.error(message)
        self.checkpoint_errors.append(message)

    def close(self) -> None:
        """At shutdown (or when learning stops): a last checkpoint (where set); the network runs frozen."""
        if self.settings.checkpoint_dir and self.updates != self.last_checkpoint_updates:
            self.save()
        self.engine.plasticity = None

    # --- reporting -----------------------------------------------------------------------------
    def diagnostics(self) -> dict:
        age = time.time() - self.last_checkpoint if self.last_checkpoint is not None else None
        return {
            "learning kind": self.kind,
            "learning updates": str(self.updates),
            "learning classes": str(len(self.class_names)),
            "learning feedback frames": str(self.feedback_frames),
            "learning feedback accuracy": f"{self.feedback_correct / self.feedback_frames:.4f}"
            if self.feedback_frames else "n/a",
            "learning feedback dropped": str(self.dropped_feedback),
            "learning synaptic updates": f"{self.synaptic_updates:.0f}",
            "learning energy J (Loihi, modelled)": f"{self.energy_j:.6g}",
            "learning checkpoint age s": f"{age:.1f}" if age is not None else "never",
            "learning checkpoint errors": str(len(self.checkpoint_errors)),
            "learning last checkpoint error": self.checkpoint_errors[-1] if self.checkpoint_errors else "",
        }
