"""Reading a sensor_msgs/BatteryState as the governor needs it, without importing ROS.

Drivers disagree: REP/ROS 2 says `percentage` is 0..1, Gazebo's LinearBatteryPlugin publishes
0..100, and NaN means "unknown" for every field. The scale is a property of the publisher, decided
once from what it sends (scale_evidence) or configured, never guessed per message: a Gazebo battery
at 0.5 % sends 0.5. This turns a message into a charge fraction and an energy capacity in joules,
or says why it cannot.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional


PERCENTAGE_SCALES = ("auto", "fraction", "percent")


@dataclass
class BatteryReading:
    fraction: Optional[float]  # 0..1, None when unknown
    capacity_j: Optional[float]  # None when unknown
    problem: Optional[str] = None  # why the reading cannot be used


def _known(value) -> bool:
    return value is not None and not math.isnan(value) and not math.isinf(value)


def scale_evidence(percentage: float, charge_ah: float, capacity_ah: float) -> Optional[str]:
    """What one message says about its publisher's percentage scale: "percent" for a value above 1,
    else whichever scale agrees with charge / capacity where both are known; None when it cannot
    tell (a value <= 1 alone fits both: 0.5 may be half charged or nearly flat)."""
    if not _known(percentage):
        return None
    if percentage > 1.0:
        return "percent"
    if _known(charge_ah) and _known(capacity_ah) and capacity_ah > 0:
        ratio = charge_ah / capacity_ah
        return "fraction" if abs(percentage - ratio) <= abs(percentage / 100.0 - ratio) else "percent"
    return None


def read_battery(percentage: float, voltage: float, charge_ah: float, capacity_ah: float,
                 design_capacity_ah: float, fallback_capacity_j: float, scale: str = "fraction") -> BatteryReading:
    """Fraction from `percentage` read in `scale` ("fraction": 0..1 as ROS defines it, "percent":
    0..100 as Gazebo's plugin publishes), or from the charge when the percentage is unknown; capacity
    in J from capacity (or design capacity) x voltage, else the configured fallback."""
    capacity = capacity_ah if _known(capacity_ah) and capacity_ah > 0 else design_capacity_ah
    capacity_j = capacity * 3600.0 * voltage if _known(capacity) and capacity > 0 and _known(voltage) \
        and voltage > 0 else (fallback_capacity_j if fallback_capacity_j > 0 else None)
    if _known(percentage):
        fraction = percentage / 100.0 if scale == "percent" else percentage
    elif _known(charge_ah) and _known(capacity) and capacity > 0:
        fraction = charge_ah / capacity
    elif _known(charge_ah) and _known(voltage) and capacity_j:  # capacity from battery_capacity_wh
        fraction = charge_ah * 3600.0 * voltage / capacity_j
    else:
        return BatteryReading(None, capacity_j, "percentage and charge are unknown (NaN)")
    if not 0.0 <= fraction <= 1.0:
        return BatteryReading(None, capacity_j, f"charge fraction {fraction:.3g} is outside 0..1 "
                                                f"(percentage {percentage:g} read as {scale})")
    if capacity_j is None:
        return BatteryReading(fraction, None, "capacity unknown: set the battery_capacity_wh parameter")
    return BatteryReading(fraction, capacity_j)
