"""The governor: picks the operating point (T and its neuron parameters) the robot can afford.

Policies:
  fixed    the configured `timesteps` (nearest profiled point), whatever the budget
  budget   the published energy budget (J per inference)
  battery  a budget derived from the battery: energy left above the reserve, minus what the rest
           of the robot draws, spread over the frames left in the mission
  auto     the tighter of the two; the battery alone while no budget has been published

Within a budget it takes the most accurate point whose energy and latency fit (and whose accuracy
meets `min_accuracy` when any does). It moves to a more expensive point only when the budget
exceeds that point's energy by the hysteresis margin, so a budget hovering at a boundary does not
make it flap. Nothing here knows about ROS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .operating_points import OperatingPoint

POLICIES = ("fixed", "budget", "battery", "auto")
# The drain rate needs readings this far apart: two messages delivered back to back would
# otherwise make a tiny difference look like an enormous power.
MIN_DRAIN_WINDOW_S = 3.0


@dataclass
class GovernorSettings:
    policy: str = "auto"
    timesteps: int = 16  # for `fixed`
    min_accuracy: float = 0.0  # points below it are used only when nothing else fits
    max_latency_ms: float = math.inf
    mission_time_s: float = 3600.0  # the mission the battery must last, from node start
    battery_reserve: float = 0.2  # fraction of capacity never to spend
    frame_rate_hz: float = 10.0  # expected inferences per second, for the battery budget
    hysteresis: float = 0.1  # relative margin before moving to a costlier point


@dataclass
class Decision:
    point: OperatingPoint
    reason: str
    budget_j: Optional[float]  # the budget in force (None: none)
    over_budget: bool = False  # no point fits: the cheapest was taken


@dataclass
class DrainSample:
    """One point of the drain window (a battery_input.BatteryReading, placed in time)."""
    time_s: float
    energy_j: float  # energy left in the battery
    capacity_j: float
    compute_j: float  # the agent's own compute energy spent so far, when the reading came


class Governor:
    def __init__(self, points: list, settings: GovernorSettings = GovernorSettings()):
        if not points:
            raise ValueError("the governor needs at least one operating point")
        self.points = sorted(points, key=lambda p: p.energy_j)
        self.settings = settings
        self.published_budget_j: Optional[float] = None
        self._battery: list = []  # recent readings, for the drain rate
        self._compute_j = 0.0  # energy the agent's inferences have spent, reported by the node
        self._start_s: Optional[float] = None
        self.current: Optional[OperatingPoint] = None

    # --- inputs --------------------------------------------------------------------------------
    def set_budget(self, joules: float) -> Optional[str]:
        """Accept a budget in J per inference; returns the reason when it is rejected."""
        if not isinstance(joules, (int, float)) or math.isnan(joules) or math.isinf(joules):
            return f"energy budget {joules!r} rejected: not a finite number"
        if joules < 0:
            return f"energy budget {joules!r} rejected: negative"
        self.published_budget_j = float(joules)
        return None

    def update_battery(self, time_s: float, fraction: float, capacity_j: float) -> None:
        """fraction of charge in 0..1 (callers convert Gazebo's 0..100), capacity in joules."""
        if self._start_s is None:
            self._start_s = time_s
        self._battery.append(DrainSample(time_s, fraction * capacity_j, capacity_j, self._compute_j))
        while len(self._battery) > 2 and self._battery[-1].time_s - self._battery[0].time_s > 60.0:
            self._battery.pop(0)  # a one-minute window follows load changes without chasing noise

    def add_compute_energy(self, joules: float) -> None:
        """The energy of one inference (or of any compute the battery pays for)."""
        self._compute_j += max(0.0, joules)

    def start(self, time_s: float) -> None:
        self._start_s = time_s

    @property
    def mission_started(self) -> bool:
        return self._start_s is not None

    def inherit(self, previous: "Governor") -> None:
        """Take over the budget, battery history and mission clock of the governor replaced."""
        self.published_budget_j = previous.published_budget_j
        self._battery = list(previous._battery)
        self._compute_j = previous._compute_j
        self._start_s = previous._start_s

    def charge_fraction(self) -> Optional[float]:
        """The latest battery reading's charge, 0..1; None before any."""
        last = self._battery[-1] if self._battery else None
        return last.energy_j / last.capacity_j if last and last.capacity_j > 0 else None

    # --- the choice ----------------------------------------------------------------------------
    def other_power_w(self) -> Optional[float]:
        """[W] what the rest of the robot (motors, sensors) draws, from the drain window; None
        before readings span MIN_DRAIN_WINDOW_S. The window's times are the caller's clock: on
        simulated time, watts of simulated time."""
        if len(self._battery) < 2:
            return None
        first, last = self._battery[0], self._battery[-1]
        elapsed = last.time_s - first.time_s
        if elapsed < MIN_DRAIN_WINDOW_S:
            return None
        # the drain over the window less our own compute in the same window (not the compute
        # power now: after a switch the window still holds the old point's share, and subtracting
        # the new one misjudges the rest of the robot and flaps between points)
        compute_j = last.compute_j - first.compute_j
        return max(0.0, (first.energy_j - last.energy_j - compute_j) / elapsed)

    def battery_budget(self, now_s: float) -> Optional[float]:
        """J per inference the battery can afford, or None before readings span MIN_DRAIN_WINDOW_S."""
        other_w = self.other_power_w()
        if other_w is None or self._start_s is None:
            return None
        last = self._battery[-1]
        time_left = max(self.settings.mission_time_s - (now_s - self._start_s), 1.0)
        spendable = last.energy_j - self.settings.battery_reserve * last.capacity_j - other_w * time_left
        frames_left = time_left * self.settings.frame_rate_hz
        return max(spendable, 0.0) / max(frames_left, 1.0)

    def choose(self, now_s: float) -> Decision:
        s = self.settings
        if s.policy == "fixed":
            point = min(self.points, key=lambda p: (abs(p.timesteps - s.timesteps), p.energy_j))
            return self._commit(Decision(point, f"fixed policy: T={s.timesteps}", None))
        battery = self.battery_budget(now_s) if s.policy in ("battery", "auto") else None
        published = self.published_budget_j if s.policy in ("budget", "auto") else None
        budgets = [(b, name) for b, name in ((published, "published budget"), (battery, "battery")) if b is not None]
        if not budgets:
            point = self._best(math.inf)
            if point is None:  # the latency limit excludes every point
                return self._commit(Decision(self.points[0], f"no point meets max_latency_ms "
                                             f"{s.max_latency_ms}: cheapest", None, over_budget=True))
            return self._commit(Decision(point, f"{s.policy} policy: no budget yet, most accurate point", None))
        budget, source = min(budgets)
        point = self._best(budget)
        if point is None:
            cheapest = self.points[0]
            return self._commit(Decision(cheapest, f"{source} {budget:.3g} J is below every point: "
                                         f"cheapest (T={cheapest.timesteps})", budget, over_budget=True))
        return self._commit(Decision(point, f"{source} {budget:.3g} J", budget))

    def _best(self, budget: float) -> Optional[OperatingPoint]:
        s = self.settings
        current = self.current

        def affordable(p: OperatingPoint) -> bool:
            # staying needs the budget to cover the point; moving up needs the hysteresis margin too
            needed = p.energy_j if (current is None or p.energy_j <= current.energy_j) \
                else p.energy_j * (1 + s.hysteresis)
            return needed <= budget and p.latency_ms <= s.max_latency_ms

        fits = [p for p in self.points if affordable(p)]
        accurate = [p for p in fits if p.accuracy >= s.min_accuracy]
        pool = accurate or fits
        if not pool:
            return None
        return max(pool, key=lambda p: (p.accuracy, -p.energy_j))

    def _commit(self, decision: Decision) -> Decision:
        self.current = decision.point
        return decision
