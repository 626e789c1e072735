"""Reading a sensor_msgs/BatteryState as the governor needs it, without importing ROS.

Drivers disagree: REP/ROS 2 says `percentage` is 0..1, Gazebo's LinearBatteryPlugin publishes
0..100, and NaN means "unknown" for every field. This turns whatever arrives into a charge
fraction and an energy capacity in joules, or says why it cannot.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional


@dataclass
class BatteryReading:
    fraction: Optional[float]  # 0..1, None when unknown
    capacity_j: Optional[float]  # None when unknown
    percent_scale: bool  # True when the percentage arrived as 0..100
    problem: Optional[str] = None  # why the reading cannot be used


def _known(value) -> bool:
    return value is not None and not math.isnan(value) and not math.isinf(value)


def read_battery(percentage: float, voltage: float, charge_ah: float, capacity_ah: float,
                 design_capacity_ah: float, fallback_capacity_j: float) -> BatteryReading:
    """Fraction from `percentage` (or charge/capacity when it is unknown); capacity in J from
    capacity (or design capacity) x voltage, else the configured fallback."""
    capacity = capacity_ah if _known(capacity_ah) and capacity_ah > 0 else design_capacity_ah
    capacity_j = capacity * 3600.0 * voltage if _known(capacity) and capacity > 0 and _known(voltage) \
        and voltage > 0 else (fallback_capacity_j if fallback_capacity_j > 0 else None)
    percent_scale = False
    if _known(percentage):
        fraction = percentage
        if fraction > 1.0:  # Gazebo's plugin publishes 0..100
            fraction /= 100.0
            percent_scale = True
    elif _known(charge_ah) and _known(capacity) and capacity > 0:
        fraction = charge_ah / capacity
    else:
        return BatteryReading(None, capacity_j, False, "percentage and charge are unknown (NaN)")
    if not 0.0 <= fraction <= 1.0:
        return BatteryReading(None, capacity_j, percent_scale, f"charge fraction {fraction:.3g} is outside 0..1")
    if capacity_j is None:
        return BatteryReading(fraction, None, percent_scale,
                              "capacity unknown: set the battery_capacity_wh parameter")
    return BatteryReading(fraction, capacity_j, percent_scale)
