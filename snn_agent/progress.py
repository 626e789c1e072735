"""A dependency-free progress bar for long command-line work (conversion, profiling)."""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional


class ProgressBar:
    def __init__(self, label: str, stream=None, width: int = 30):
        # sys.stderr looked up now, not at import: pytest's capture or a redirect may have replaced it
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.start = time.perf_counter()
        self._last = 0.0
        self._finished = False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == 0:  # the work starts now: what came before it is not its time
            self.start = now
        if done < total and now - self._last < 0.1:  # redrawing faster than the eye is wasted work
            return
        if done >= total and self._finished:  # phases that end at the whole's end report it again
            return
        self._finished = done >= total
        self._last = now
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        elapsed = now - self.start
        # the whole task's time, extrapolated from the part done, from the first update on
        expected = f" of ~{elapsed / fraction:.0f}s" if 0 < fraction < 1 else ""
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{total} {elapsed:5.1f}s{expected}   ")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


class PhasedProgress:
    """One progress over several phases of known expected work (any unit, the same for all), and
    each phase's wall and CPU seconds. A phase's share of the progress is its share of the work,
    so that a progress bar's total time, extrapolated from the part done, holds from the first
    phase's first update rather than from the last phase. A phase's time runs from the end of the
    one before it (or from the start) to its last update (part) or to mark."""

    UNITS = 1000  # the whole, in thousandths

    def __init__(self, progress: Optional[Callable[[int, int], None]], work: dict):
        self.work = {name: self.UNITS * w / max(sum(work.values()), 1e-9) for name, w in work.items()}
        self.total = self.UNITS
        self.progress = progress
        self.done = 0  # the last progress reported
        self.times: dict = {}
        self.last = self.start = (time.perf_counter(), time.process_time())
        if progress:
            progress(0, self.total)  # the work starts now (a ProgressBar's clock too)

    def part(self, name: str) -> Callable[[int, int], None]:
        """The progress of phase `name`: its (done, total) as part of the whole."""
        names = list(self.work)
        before = sum(self.work[n] for n in names[:names.index(name)])  # the phases run in this order
        share = self.work[name]

        def update(done: int, total: int) -> None:
            self.done = min(round(before + share * min(done, total) / max(total, 1)), self.total)
            if self.progress:
                self.progress(self.done, self.total)
            if done >= total:
                self.mark(name)

        return update

    def mark(self, name: str) -> None:
        """Phase `name` ends now."""
        now = (time.perf_counter(), time.process_time())
        self.times[name] = now[0] - self.last[0], now[1] - self.last[1]
        self.last = now

    def seconds(self) -> dict:
        """All is done: -> {phase: {"wall": s, "cpu": s}} and the total; CPU: this process's, all
        its threads."""
        if self.progress and self.done < self.total:  # phases that had less to do than expected
            self.progress(self.total, self.total)
        now = (time.perf_counter(), time.process_time())
        rows = dict(self.times, total=(now[0] - self.start[0], now[1] - self.start[1]))
        return {name: {"wall": round(wall, 2), "cpu": round(cpu, 2)} for name, (wall, cpu) in rows.items()}
