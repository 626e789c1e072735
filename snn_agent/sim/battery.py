"""A linear battery, as Gazebo's LinearBatteryPlugin models one with its open-circuit voltage slope and
internal resistance at zero: a constant voltage, a capacity, and a charge drained by a base load plus
whatever energy is reported drawn. Percentages are 0..1, as sensor_msgs/BatteryState defines them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LinearBattery:
    voltage_v: float = 12.0
    capacity_ah: float = 2.0
    charge_fraction: float = 1.0  # initial charge
    base_load_w: float = 5.0  # motors, sensors: everything but the SNN

    def __post_init__(self):
        if self.voltage_v <= 0 or self.capacity_ah <= 0:
            raise ValueError("battery voltage and capacity must be positive")
        if not 0.0 <= self.charge_fraction <= 1.0:
            raise ValueError("initial charge must be within 0..1")
        self.energy_j = self.charge_fraction * self.capacity_j
        self.power_w = self.base_load_w  # mean draw over the last step, for BatteryState.current

    @property
    def capacity_j(self) -> float:
        return self.capacity_ah * 3600.0 * self.voltage_v

    @property
    def percentage(self) -> float:
        return self.energy_j / self.capacity_j

    @property
    def charge_ah(self) -> float:
        return self.energy_j / (3600.0 * self.voltage_v)

    def step(self, seconds: float, extra_energy_j: float = 0.0) -> None:
        """Drain the base load over `seconds` plus energy reported drawn in that time."""
        if seconds <= 0:
            raise ValueError("a battery step needs a positive duration")
        drawn_j = self.base_load_w * seconds + max(extra_energy_j, 0.0)
        self.power_w = drawn_j / seconds
        self.energy_j = max(0.0, self.energy_j - drawn_j)

    @property
    def current_a(self) -> float:
        """Negative while discharging, as sensor_msgs/BatteryState defines it."""
        return -self.power_w / self.voltage_v if self.energy_j > 0 else 0.0
