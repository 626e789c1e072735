"""Pairing ground-truth labels with the frames they belong to (the node's running accuracy)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional


class LabelPairing:
    """Pairs ground-truth labels with the frames they belong to, for the running accuracy.

    A label (std_msgs/Int32) has no header, and the replay publishes each stamped image and then its
    label; across processes either may arrive first, and a best-effort image may never arrive. So a
    label belongs to the newest image if that one has none yet and was stamped before the label
    arrived; a label that finds no such image waits for the next image, and belongs to it only if
    that image was stamped before the label arrived (else its own image was lost). Pairing by count
    alone would shift every later pair after one lost image.
    """

    def __init__(self, keep: int = 256):
        self._frames: OrderedDict = OrderedDict()  # frame id -> [stamp ns, label, predicted class]
        self._waiting: Optional[tuple] = None  # (arrival ns, label) of a label ahead of its image
        self._next_id = 0
        self._keep = keep
        self.unpaired = 0  # labels whose image was lost

    def image(self, stamp_ns: int) -> int:
        """A frame arrived (good or bad); returns its id for prediction()."""
        frame_id, self._next_id = self._next_id, self._next_id + 1
        entry = [stamp_ns, None, None]
        if self._waiting is not None:
            arrival_ns, label = self._waiting
            self._waiting = None
            if stamp_ns <= arrival_ns:
                entry[1] = label
            else:
                self.unpaired += 1
        self._frames[frame_id] = entry
        if len(self._frames) > self._keep:
            self._frames.popitem(last=False)
        return frame_id

    def label(self, arrival_ns: int, label: int) -> Optional[tuple]:
        """A label arrived; returns (predicted, label) when it completes a classified frame."""
        if self._frames:
            frame_id = next(reversed(self._frames))
            entry = self._frames[frame_id]
            if entry[1] is None and entry[0] <= arrival_ns:
                entry[1] = label
                return self._pair(entry)
        if self._waiting is not None:
            self.unpaired += 1
        self._waiting = (arrival_ns, label)
        return None

    def prediction(self, frame_id: int, class_id: int) -> Optional[tuple]:
        """A frame was classified; returns (predicted, label) when its label is known."""
        entry = self._frames.get(frame_id)
        if entry is None:  # evicted: classified long after newer frames arrived
            return None
        entry[2] = class_id
        return self._pair(entry)

    @staticmethod
    def _pair(entry: list) -> Optional[tuple]:
        # each field is set once, so a frame completes (and counts) exactly once
        return None if entry[1] is None or entry[2] is None else (entry[2], entry[1])
