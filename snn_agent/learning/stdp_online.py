"""The learner the agent holds for an STDP network (engine/stdp_engine.py): the network keeps
adapting to the camera stream without labels, and feedback relabels its neurons.

- Unsupervised: while learning is enabled, every frame runs with STDP and homeostasis on (the
  training kernels, stdp_kernels.run_images with learn), at the trained learning rates times
  `LearningSettings.stdp_rate`, and the thresholds decay with a time constant of
  `LearningSettings.stdp_threshold_decay` frames (homeostasis both ways: a threshold rises with its
  neuron's spikes and falls while it is silent, so a network a changed camera silenced fires and
  adapts again). Each frame is one update.
- Scores: as the frozen engine's (the model's readout, stdp.activity: spike counts plus the margin
  where the model has a margin weight), so turning learning on does not change how frames are read.
- Feedback: a label adds the frame's per-neuron spike counts to that class's response tally (which
  starts from the model's labelling images where it saved them); each neuron takes the class with
  its highest mean response per frame in the tally (Diehl & Cook's assignment); neurons silent in
  it keep their label. Labels never touch the weights.
- Energy: the frame's CPU time, measured by the backend, already holds the learning (one kernel
  pass does both). What it would cost on Loihi is modelled from the counted operations
  (energy.models.loihi_learning_energy: synaptic updates at 120 pJ, trace updates) and reported;
  at stdp_rate 0 nothing is (the weights stay, so the learning engine would not run; the thresholds
  are each neuron's own state, updated with it).
- Checkpoints: weights, thresholds, labels and the tally, in `stdp.npz` beside the readout's
  (checkpoint.save_arrays: atomic, the model's fingerprint, corrupt ones set aside).
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..energy.constants import LoihiEnergy
from ..energy.models import loihi_learning_energy
from . import checkpoint as checkpoints
from . import stdp
from .learner import FeedbackOutcome, LearnerBase
from .online import LearningSettings
from .readout import TeachResult

UNSUPERVISED = "unsupervised"  # the kind of learning /diagnostics reports
CHECKPOINT_FILE = "stdp.npz"


class StdpLearner(LearnerBase):
    def __init__(self, engine, class_names: list, settings: LearningSettings,
                 loihi_constants: LoihiEnergy = LoihiEnergy()):
        super().__init__(settings, engine.fingerprint)  # updates: frames adapted to
        self.engine = engine
        self.network = engine.network
        self.class_names = list(class_names)
        self.loihi_constants = loihi_constants
        self.kind = UNSUPERVISED
        self._reset_tally()
        self._restore()
        engine.plasticity = settings.stdp_rate
        engine.threshold_decay_frames = settings.stdp_threshold_decay

    def _reset_tally(self) -> None:
        """Per class the summed spike counts of its frames and how many: the model's labelling
        images where it saved them (StdpNetwork.label_tally), then the feedback frames."""
        self.tally = np.zeros((len(self.class_names), self.network.params.n_neurons))
        self.tally_frames = np.zeros(len(self.class_names))
        saved = self.network.label_tally
        if saved is not None:
            self.tally[:len(saved)], self.tally_frames[:len(saved)] = saved, self.network.label_frames
        self.synaptic_updates = 0.0

    # --- frames --------------------------------------------------------------------------------
    def classify(self, hidden: np.ndarray, timesteps: int, frame_id=None) -> np.ndarray:
        """hidden: one frame's spike counts (1, n), from the engine's last run (which learned) -> its
        scores, read as the frozen engine reads them (the model's margin readout: the engine's
        votes); the frame is held for feedback (counts for the tally, votes for its prediction)."""
        counts, votes = hidden[0], self.engine.last_votes[0]
        ops = self.engine.last_ops
        self.updates += 1
        # the kernel counts synaptic updates only where the weights learn (not at stdp_rate 0): where
        # they do not, a chip's learning engine would not run, and nothing is priced
        if ops["synaptic_updates"]:
            self.synaptic_updates += ops["synaptic_updates"]
            self.energy_j += loihi_learning_energy(int(ops["synaptic_updates"]), 0,
                                                   int(ops["input_spikes"] + ops["exc_spikes"]), 0,
                                                   self.loihi_constants).joules
        self._hold((counts, votes), frame_id)
        self._save_when_due()
        return self.network.class_scores(votes[None], len(self.class_names))[0]

    def feedback(self, label: int, frame_id=None) -> FeedbackOutcome:
        """The frame `frame_id` (None: the most recent) shows `label`: relabel the neurons."""
        problem = None if 0 <= label < len(self.class_names) else (
            f"label {label} is not one of the STDP network's {len(self.class_names)} classes (its neurons can be "
            f"relabelled, not a class added)")
        frame, refused = self._frame_for(problem, frame_id)
        if refused:
            return refused
        counts, votes = frame
        started = time.perf_counter()
        predicted = int(np.argmax(self.network.class_scores(votes[None], len(self.class_names))[0]))
        self.tally[label] += counts
        self.tally_frames[label] += 1
        self.network.labels = stdp.labels_from_tally(self.tally, self.tally_frames, self.network.labels)
        self.feedback_frames += 1
        self.feedback_correct += int(predicted == label)
        return FeedbackOutcome(True, teach=TeachResult(label, predicted), seconds=time.perf_counter() - started)

    # --- checkpoints ---------------------------------------------------------------------------
    def _network_state(self) -> dict:
        n = self.network
        return {"weights": n.weights.copy(), "theta": n.theta.copy(), "labels": n.labels.copy()}

    def _set_network_state(self, state: dict) -> None:
        n = self.network
        if state["weights"].shape != n.weights.shape or state["theta"].shape != n.theta.shape:
            raise ValueError(f"checkpoint weights {state['weights'].shape} do not fit this network's {n.weights.shape}")
        n.weights[:] = state["weights"]
        n.theta[:] = state["theta"]
        n.labels = state["labels"].astype(np.int64)

    def _checkpoint_state(self) -> dict:
        return {**self._network_state(), "tally": self.tally, "tally_frames": self.tally_frames}

    def _write_checkpoint(self, checkpoint: checkpoints.Checkpoint) -> None:
        checkpoints.save_arrays(self.settings.checkpoint_dir, CHECKPOINT_FILE, checkpoint)

    def _read_checkpoint(self) -> Optional[checkpoints.Checkpoint]:
        return checkpoints.load_arrays(self.settings.checkpoint_dir, CHECKPOINT_FILE, self.fingerprint)

    def _restore_state(self, state: dict) -> None:
        self._set_network_state(state)
        self.tally, self.tally_frames = state["tally"], state["tally_frames"]

    def reset(self) -> None:
        """Forget what was learned: the model's own weights, thresholds and labels again (and its
        checkpoint, where set)."""
        self._set_network_state(dict(zip(("weights", "theta", "labels"), self.engine.saved)))
        self._reset_feedback()
        self._reset_tally()
        if self.settings.checkpoint_dir:
            self.save()

    def close(self) -> None:
        """At shutdown (or when learning stops): a last checkpoint (where set); the network runs frozen."""
        self._save_at_close()
        self.engine.plasticity = None

    # --- reporting -----------------------------------------------------------------------------
    def diagnostics(self) -> dict:
        return {"learning kind": self.kind, "learning updates": str(self.updates),
                "learning classes": str(len(self.class_names)), "learning feedback frames": str(self.feedback_frames),
                **self._feedback_diagnostics(), "learning synaptic updates": f"{self.synaptic_updates:.0f}",
                "learning energy J (Loihi, modelled)": f"{self.energy_j:.6g}"}
