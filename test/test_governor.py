"""The governor's choices, without ROS (the node's behaviour is tested in test_agent_governor.py)."""
import math

import pytest

from snn_agent.adaptation.governor import Governor, GovernorSettings
from snn_agent.adaptation.operating_points import OperatingPoint, PointTable, mark_pareto

POINTS = [OperatingPoint(t, acc, latency_ms=0.1 * t, energy_j=1e-6 * t, energy_kind="modelled")
          for t, acc in ((2, 0.80), (4, 0.86), (8, 0.90), (16, 0.91), (32, 0.915))]


def governor(**settings):
    return Governor(list(POINTS), GovernorSettings(**settings))


def test_budget_picks_most_accurate_point_that_fits():
    g = governor(policy="budget")
    assert g.set_budget(9e-6) is None
    assert g.choose(0).point.timesteps == 8
    assert g.set_budget(100.0) is None
    assert g.choose(0).point.timesteps == 32


def test_impossible_budget_takes_cheapest_and_flags_it():
    g = governor(policy="budget")
    g.set_budget(1e-9)
    decision = g.choose(0)
    assert decision.point.timesteps == 2 and decision.over_budget


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_invalid_budgets_are_rejected_and_previous_kept(bad):
    g = governor(policy="budget")
    g.set_budget(5e-6)
    assert "rejected" in g.set_budget(bad)
    assert g.published_budget_j == 5e-6
    assert g.choose(0).point.timesteps == 4


def test_hysteresis_needs_margin_to_move_up_but_moves_down_at_once():
    g = governor(policy="budget", hysteresis=0.2)
    g.set_budget(8e-6)
    assert g.choose(0).point.timesteps == 8
    g.set_budget(16.5e-6)  # covers T=16 (16e-6) but not with the 20 % margin
    assert g.choose(0).point.timesteps == 8
    g.set_budget(20e-6)
    assert g.choose(0).point.timesteps == 16
    g.set_budget(15.9e-6)  # below the current point: down immediately
    assert g.choose(0).point.timesteps == 8


def test_min_accuracy_and_latency_limits():
    g = governor(policy="budget", min_accuracy=0.9, max_latency_ms=2.0)
    g.set_budget(1.0)
    assert g.choose(0).point.timesteps == 16  # T=32 is too slow (3.2 ms)
    g.settings.max_latency_ms = 0.5
    assert g.choose(0).point.timesteps == 4  # nothing meets 0.9 in time: best of what fits


def test_fixed_policy_ignores_budget():
    g = governor(policy="fixed", timesteps=16)
    g.set_budget(1e-9)
    assert g.choose(0).point.timesteps == 16


def test_draining_battery_lowers_t_monotonically():
    # A 1 Wh battery; the robot draws 1 W besides the SNN; 10 frames/s over a 900 s mission.
    g = governor(policy="battery", mission_time_s=900, battery_reserve=0.1, frame_rate_hz=10)
    capacity = 3600.0
    chosen = []
    charge = 0.95
    for second in range(0, 880, 10):
        g.update_battery(second, charge, capacity)
        chosen.append(g.choose(second).point.timesteps)
        charge -= (1.0 * 10 + 10 * 10 * g.current.energy_j * 3e5) / capacity  # heavy compute share
    assert chosen[-1] < max(chosen)
    assert all(b <= a for a, b in zip(chosen, chosen[1:])), chosen


def test_auto_takes_tighter_of_budget_and_battery():
    g = governor(policy="auto", mission_time_s=100, battery_reserve=0.0, frame_rate_hz=1)
    assert g.choose(0).reason.startswith("auto policy: no budget")
    g.update_battery(0, 1.0, 1.0)
    g.update_battery(1, 0.9999, 1.0)
    assert g.battery_budget(1) is None  # readings 1 s apart are too close to tell a drain rate
    g.update_battery(4, 0.9996, 1.0)  # battery affords ~1e-2 J per frame: everything
    assert g.choose(4).point.timesteps == 32
    g.set_budget(4e-6)
    decision = g.choose(4)
    assert decision.point.timesteps == 4 and "published" in decision.reason


def test_pareto_and_table_roundtrip(tmp_path):
    points = mark_pareto([OperatingPoint(4, 0.9, 1, 4e-6, "modelled"), OperatingPoint(8, 0.89, 2, 8e-6, "modelled")])
    assert points[0].pareto and not points[1].pareto
    PointTable("cpu", "ideal", points, {"data": "x"}).save(str(tmp_path))
    loaded = PointTable.load(str(tmp_path), "cpu")
    assert loaded.points == points and PointTable.load(str(tmp_path), "lava") is None
    assert math.isclose(loaded.points[1].energy_j, 8e-6)


def test_battery_reading_accepts_gazebo_percent_and_nan_fields():
    from snn_agent.adaptation.battery_input import read_battery

    nan = float("nan")
    ros = read_battery(0.5, 12.0, nan, 2.0, nan, 0.0)
    assert ros.fraction == 0.5 and ros.capacity_j == 2.0 * 3600 * 12
    gazebo = read_battery(75.0, 12.0, nan, 2.0, nan, 0.0, scale="percent")
    assert gazebo.fraction == 0.75
    assert read_battery(0.5, 12.0, nan, 2.0, nan, 0.0, scale="percent").fraction == 0.005  # nearly flat
    assert "read as fraction" in read_battery(75.0, 12.0, nan, 2.0, nan, 0.0).problem
    from_voltage = read_battery(nan, 12.0, 1.5, nan, nan, 2.0 * 3600 * 12)  # capacity from the parameter
    assert from_voltage.fraction == 0.75
    from_charge = read_battery(nan, 12.0, 1.5, nan, 2.0, 0.0)
    assert from_charge.fraction == 0.75 and from_charge.capacity_j == 2.0 * 3600 * 12
    unknown = read_battery(nan, nan, nan, nan, nan, 0.0)
    assert unknown.fraction is None and "unknown" in unknown.problem
    no_capacity = read_battery(0.4, nan, nan, nan, nan, 0.0)
    assert no_capacity.problem.startswith("capacity unknown")
    assert read_battery(0.4, nan, nan, nan, nan, 1000.0).capacity_j == 1000.0
    assert "outside" in read_battery(-0.3, 12.0, nan, 2.0, nan, 0.0).problem


def test_percentage_scale_evidence():
    from snn_agent.adaptation.battery_input import scale_evidence

    nan = float("nan")
    assert scale_evidence(75.0, nan, nan) == "percent"
    assert scale_evidence(0.5, nan, nan) is None  # half full, or nearly flat: cannot tell
    assert scale_evidence(0.5, 0.01, 2.0) == "percent"  # 0.5 % of 2 Ah is 0.01 Ah
    assert scale_evidence(0.5, 1.0, 2.0) == "fraction"
    assert scale_evidence(nan, 1.0, 2.0) is None


def test_steady_load_settles_instead_of_flapping():
    """Compute is a large share of the drain; the rest of the robot draws a steady 1 W. The
    battery affords T=4 for most of the mission: the governor must settle near it, not swing between
    the cheapest and dearest points as the drain window still holds the previous point's compute."""
    frame_rate, mission_s, capacity = 10.0, 1800.0, 3000.0
    scale = 1e4  # per-frame energies of POINTS x this: T=8 -> 0.08 J, 0.8 W at 10 frames/s
    points = [OperatingPoint(p.timesteps, p.accuracy, p.latency_ms, p.energy_j * scale, p.energy_kind)
              for p in POINTS]
    g = Governor(points, GovernorSettings(policy="battery", mission_time_s=mission_s, battery_reserve=0.1,
                                          frame_rate_hz=frame_rate))
    g.start(0.0)
    # spendable 2700 J - 1800 J of base load = 900 J over 18,000 frames = 0.05 J per frame: T=4 fits
    energy, chosen = capacity, []
    for second in range(int(mission_s) - 10):
        g.update_battery(float(second), energy / capacity, capacity)
        point = g.choose(float(second)).point
        chosen.append(point.timesteps)
        energy -= 1.0 + point.energy_j * frame_rate
        g.add_compute_energy(point.energy_j * frame_rate)
    settled = chosen[120:]
    switches = sum(a != b for a, b in zip(settled, settled[1:]))
    assert switches <= 4, (switches, sorted(set(settled)))
    assert 32 not in settled and 4 in settled  # what the budget affords, ending dearer as the mission ends
    assert energy > 0.1 * capacity - 60  # the reserve holds (within a minute of drain)
