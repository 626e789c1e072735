"""The RAPL reader on a powercap tree laid out as Linux lays it out (this machine has none)."""
import os
import time

from snn_agent.energy.constants import CpuPower
from snn_agent.energy.models import MEASURED, MODELLED, CpuEnergyMeter
from snn_agent.energy.rapl import MIN_WINDOW_S, RaplPackages

MAX_RANGE_UJ = 262143328850


def _zone(root, name, zone_name, energy_uj, max_range=MAX_RANGE_UJ):
    path = os.path.join(root, name)
    os.makedirs(path)
    for field, value in (("name", zone_name), ("energy_uj", energy_uj), ("max_energy_range_uj", max_range)):
        with open(os.path.join(path, field), "w") as f:
            f.write(f"{value}\n")


def _set(root, name, energy_uj):
    with open(os.path.join(root, name, "energy_uj"), "w") as f:
        f.write(f"{energy_uj}\n")


def _two_socket_machine(root):
    """Two packages, their core/dram sub-zones, a platform (psys) zone and the control-type folder."""
    os.makedirs(os.path.join(root, "intel-rapl"))
    _zone(root, "intel-rapl:0", "package-0", 1_000_000)
    _zone(root, "intel-rapl:0:0", "core", 600_000)
    _zone(root, "intel-rapl:0:1", "dram", 200_000)
    _zone(root, "intel-rapl:1", "package-1", 5_000_000)
    _zone(root, "intel-rapl:1:0", "core", 3_000_000)
    _zone(root, "intel-rapl:2", "psys", 9_000_000)
    return root


def test_only_the_top_level_package_zones_are_read(tmp_path):
    rapl = RaplPackages(_two_socket_machine(str(tmp_path)))
    assert [os.path.basename(os.path.dirname(p)) for p, _ in rapl.zones] == ["intel-rapl:0", "intel-rapl:1"]
    start = rapl.read()
    _set(tmp_path, "intel-rapl:0", 3_000_000)  # +2 J
    _set(tmp_path, "intel-rapl:0:0", 2_000_000)  # a part of those 2 J, not more energy
    _set(tmp_path, "intel-rapl:1", 5_500_000)  # +0.5 J
    _set(tmp_path, "intel-rapl:2", 19_000_000)  # the platform, packages included
    assert abs(rapl.joules_between(start, rapl.read()) - 2.5) < 1e-9


def test_a_counter_that_wrapped_is_unwrapped_with_its_range(tmp_path):
    _zone(str(tmp_path), "intel-rapl:0", "package-0", MAX_RANGE_UJ - 400_000)
    rapl = RaplPackages(str(tmp_path))
    start = rapl.read()
    _set(tmp_path, "intel-rapl:0", 600_000)
    assert abs(rapl.joules_between(start, rapl.read()) - 1.0) < 1e-9


def test_the_meter_measures_only_windows_of_many_counter_updates(tmp_path):
    _zone(str(tmp_path), "intel-rapl:0", "package-0", 1_000_000)
    meter = CpuEnergyMeter(CpuPower(core_power_w=5.0), powercap_root=str(tmp_path))
    start = meter.read()
    _set(tmp_path, "intel-rapl:0", 1_050_000)
    one_frame = meter.energy(start, meter.read(), frames=1)
    assert one_frame.kind == MODELLED and "CPU time" in one_frame.source

    start = meter.read()
    time.sleep(MIN_WINDOW_S)
    _set(tmp_path, "intel-rapl:0", 3_050_000)
    many_frames = meter.energy(start, meter.read(), frames=500)
    assert many_frames.kind == MEASURED and "whole CPU package" in many_frames.source
    assert abs(many_frames.joules - 2.0 / 500) < 1e-12


def test_no_powercap_tree_means_modelled_energy(tmp_path):
    meter = CpuEnergyMeter(powercap_root=str(tmp_path / "absent"))
    start = meter.read()
    time.sleep(MIN_WINDOW_S)
    assert not meter.rapl.available and meter.energy(start, meter.read()).kind == MODELLED
