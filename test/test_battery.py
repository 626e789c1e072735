import pytest

from snn_agent.sim.battery import LinearBattery


def test_linear_battery_drains_base_load_and_reported_energy():
    battery = LinearBattery(voltage_v=10.0, capacity_ah=1.0, charge_fraction=0.5, base_load_w=2.0)
    assert battery.capacity_j == 36000.0 and battery.percentage == 0.5
    battery.step(100.0, extra_energy_j=800.0)  # 200 J base + 800 J compute
    assert battery.energy_j == pytest.approx(17000.0)
    assert battery.current_a == pytest.approx(-1.0)  # 10 W mean at 10 V, negative: discharging
    assert battery.charge_ah == pytest.approx(17000.0 / 36000.0)
    battery.step(1e6)
    assert battery.energy_j == 0.0 and battery.percentage == 0.0  # never negative
    assert battery.current_a == 0.0  # an empty battery delivers nothing


def test_invalid_battery_rejected():
    with pytest.raises(ValueError):
        LinearBattery(capacity_ah=0.0)
    with pytest.raises(ValueError):
        LinearBattery(charge_fraction=1.5)
    with pytest.raises(ValueError):
        LinearBattery().step(0.0)
