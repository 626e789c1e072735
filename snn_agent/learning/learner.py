"""What every learner the agent holds keeps the same way: the frames held for feedback, the
feedback counts, and its checkpoints' bookkeeping (written, restored, errors) for /diagnostics.
The readout's learner (online.py) and the STDP network's (stdp_online.py) build on it."""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

from ..energy.models import EnergyEstimate
from . import checkpoint as checkpoints
from .readout import TeachResult

log = logging.getLogger("snn_agent")


@dataclass
class FeedbackOutcome:
    applied: bool
    reason: str = ""  # why not, where not applied
    teach: Optional[TeachResult] = None
    energy: Optional[EnergyEstimate] = None  # what the learning step cost where it ran
    loihi_energy: Optional[EnergyEstimate] = None  # what it costs on Loihi, modelled from its ops
    seconds: float = 0.0  # wall time of the learning step


class LearnerBase:
    def __init__(self, settings, fingerprint: str):
        self.settings = settings
        self.fingerprint = fingerprint
        self.checkpoint_errors: list = []
        self.last_checkpoint: Optional[float] = None  # time.time() of the last one written or restored
        self.last_checkpoint_updates = 0
        self._reset_feedback()

    def _reset_feedback(self) -> None:
        self.updates = 0
        self.feedback_frames = 0
        self.feedback_correct = 0  # feedback frames the learner had right before it learned from them
        self.dropped_feedback = 0
        self.energy_j = 0.0
        self.last_checkpoint_updates = 0
        self._held: OrderedDict = OrderedDict()

    # --- frames held for feedback --------------------------------------------------------------
    def _hold(self, frame, frame_id=None) -> None:
        key = frame_id if frame_id is not None else object()
        self._held[key] = frame
        self._held.move_to_end(key)
        while len(self._held) > self.settings.held_frames:
            self._held.popitem(last=False)

    def _frame_for(self, label_problem: Optional[str], frame_id=None) -> tuple:
        """The held frame feedback names (frame_id, None: the most recent), no longer held, and None;
        or None and the outcome that drops the feedback (and counts it): label_problem says why the
        label cannot be used (None: it can), or the frame is gone."""
        if label_problem is None:
            if frame_id is None and self._held:
                frame_id = next(reversed(self._held))
            frame = self._held.pop(frame_id, None)
            if frame is not None:
                return frame, None
            label_problem = "the frame is no longer held (or was taught already)"
        self.dropped_feedback += 1
        return None, FeedbackOutcome(False, label_problem)

    def memory_pending(self, frame_id=None) -> Optional[int]:
        """Where a learner keeps a memory computed per T (online.py): the T feedback would need it
        at and that is not ready; else None."""
        return None

    # --- checkpoints ---------------------------------------------------------------------------
    def save(self) -> bool:
        """Write a checkpoint now (where a directory is set); False and an error kept on failure."""
        if not self.settings.checkpoint_dir:
            self._error("no learning.checkpoint_dir set: nothing to save to")
            return False
        try:
            self._write_checkpoint(checkpoints.Checkpoint(self._checkpoint_state(), self.updates, self.fingerprint,
                                                          time.time()))
        except OSError as exc:
            self._error(f"cannot write the learning checkpoint in {self.settings.checkpoint_dir}: {exc}")
            return False
        self.last_checkpoint, self.last_checkpoint_updates = time.time(), self.updates
        return True

    def _save_when_due(self) -> None:
        if self.settings.checkpoint_dir and self.updates - self.last_checkpoint_updates >= self.settings.checkpoint_every:
            self.save()

    def _restore(self) -> None:
        if not self.settings.checkpoint_dir:
            return
        try:
            found = self._read_checkpoint()
            if found is None:
                return
            self._restore_state(found.state)
        except (checkpoints.CheckpointError, ValueError, KeyError) as exc:
            self._error(str(exc))
            return
        self.updates = self.last_checkpoint_updates = found.updates
        self.last_checkpoint = found.saved_at
        log.info("learning: restored %d updates from %s", found.updates, self.settings.checkpoint_dir)

    def _error(self, message: str) -> None:
        log.error(message)
        self.checkpoint_errors.append(message)

    def _save_at_close(self) -> None:
        if self.settings.checkpoint_dir and self.updates != self.last_checkpoint_updates:
            self.save()

    def _checkpoint_state(self) -> dict:
        raise NotImplementedError

    def _write_checkpoint(self, checkpoint: checkpoints.Checkpoint) -> None:
        raise NotImplementedError

    def _read_checkpoint(self) -> Optional[checkpoints.Checkpoint]:
        raise NotImplementedError

    def _restore_state(self, state: dict) -> None:
        raise NotImplementedError

    # --- reporting -----------------------------------------------------------------------------
    def _feedback_diagnostics(self) -> dict:
        age = time.time() - self.last_checkpoint if self.last_checkpoint is not None else None
        return {
            "learning feedback accuracy": f"{self.feedback_correct / self.feedback_frames:.4f}"
            if self.feedback_frames else "n/a",
            "learning feedback dropped": str(self.dropped_feedback),
            "learning checkpoint age s": f"{age:.1f}" if age is not None else "never",
            "learning checkpoint errors": str(len(self.checkpoint_errors)),
            "learning last checkpoint error": self.checkpoint_errors[-1] if self.checkpoint_errors else "",
        }
