"""The CPU packages' energy counters (RAPL, read through Linux powercap), where a machine has them.

What a reading covers: the whole package (every core, every process, the uncore), not one process
or thread. Only the top-level package zones count (`intel-rapl:N` named `package-N`): their
sub-zones (`intel-rapl:N:M`: core, uncore, dram) are parts of the same energy, and a `psys` zone
holds the whole platform, package included; summing them counts energy twice.
The counter advances in steps about a millisecond apart, so a window of one 0.2 ms frame reads
zero or a whole step: readings are compared only over windows of MIN_WINDOW_S or more.
"""
from __future__ import annotations

import os
import re

POWERCAP_ROOT = "/sys/class/powercap"
# ~100 counter updates (~1 ms apart): the step a window can be off by is then ~1 % of it.
MIN_WINDOW_S = 0.1
_TOP_LEVEL_ZONE = re.compile(r"intel-rapl:\d+")


class RaplPackages:
    """Energy of every CPU package, summed, in joules between two readings."""

    def __init__(self, root: str = POWERCAP_ROOT):
        self.zones = []  # (energy_uj path, max_energy_range_uj)
        names = sorted(os.listdir(root)) if os.path.isdir(root) else []
        for name in names:
            zone = os.path.join(root, name)
            if not _TOP_LEVEL_ZONE.fullmatch(name) or not _read(zone, "name", str).startswith("package"):
                continue
            energy, max_range = os.path.join(zone, "energy_uj"), _read(zone, "max_energy_range_uj", int)
            if os.access(energy, os.R_OK) and max_range > 0:  # without its range a wrap cannot be undone
                self.zones.append((energy, max_range))

    @property
    def available(self) -> bool:
        return bool(self.zones)

    def read(self):
        """Each package's counter (uJ), or None where one cannot be read."""
        try:
            return [int(open(path).read()) for path, _ in self.zones]
        except (OSError, ValueError):
            return None

    def joules_between(self, start, end) -> float:
        """Energy between two readings; a counter that wrapped (at max_energy_range_uj) once
        between them is unwrapped. A window must be short enough for one wrap at most (a 2^32 uJ
        range lasts ~40 s at 100 W)."""
        total = 0
        for (_, max_range), a, b in zip(self.zones, start, end):
            total += b - a if b >= a else b + max_range - a
        return total * 1e-6


def _read(zone: str, field: str, kind):
    try:
        with open(os.path.join(zone, field)) as f:
            return kind(f.read().strip())
    except (OSError, ValueError):
        return kind()
