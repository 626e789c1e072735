"""A dependency-free progress bar for long command-line work (conversion, profiling)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, label: str, stream=None, width: int = 30):
        # sys.stderr looked up now, not at import: pytest's capture or a redirect may have replaced it
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.start = time.perf_counter()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == 0:  # the work starts now: what came before it is not its time
            self.start = now
        if done < total and now - self._last < 0.1:  # redrawing faster than the eye is wasted work
            return
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
