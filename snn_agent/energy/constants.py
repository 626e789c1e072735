"""Published energy and power figures, in one place, each with its source.

Every figure computed from these is *modelled*; a figure read from a meter (RAPL) is *measured*.
Override any of them from config when you have better numbers for your robot: the agent node's
parameters `energy.<section>.<field>` (config/agent.yaml, `energy:` mapping), sections below.
"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class LoihiEnergy:
    """Loihi per-operation energy: Davies et al., IEEE Micro 38(1) 2018, Table 2 (pre-silicon, 0.75 V)."""

    synaptic_op_j: float = 23.6e-12  # one synaptic spike operation
    synaptic_update_j: float = 120e-12  # one pairwise STDP weight update (learning only)
    neuron_update_inactive_j: float = 52e-12
    neuron_update_active_j: float = 81e-12  # a neuron update that emits a spike
    # every spike is counted as travelling within its tile: the model places no layer on the mesh,
    # so tile hops (3.0 / 4.0 pJ east-west / north-south in the same table) are left out (a lower bound)
    spike_in_tile_j: float = 1.7e-12
    # Static power of one chip: Frady et al. 2020 report 3.34 W over 32 chips (~0.1 W per chip).
    static_power_w: float = 3.34 / 32
    # Time per SNN timestep on the chip; lava-dl's PilotNet runs 408.9 inferences/s on Loihi 2
    # (lava-dl tutorial), i.e. ~2.4 ms per inference. 10 us per step is Loihi's typical barrier
    # sync period for small networks (Davies et al. 2018, Fig. 6 range); used only for static energy.
    timestep_s: float = 10e-6


@dataclass(frozen=True)
class AcceleratorPower:
    """Edge DNN accelerator power. Defaults: Intel/Movidius NCS, Blouw et al. 2018 (keyword spotting):
    0.647 W running, 1.5 mJ per inference. Energy is counted per inference only: the stick's idle
    draw (0.210 W in the same paper) between frames is the robot's, not the inference's."""

    active_power_w: float = 0.647
    # Sustained throughput used to model latency when the stick is absent: 100 GOPS is the
    # order the Myriad X reaches on small CNNs (Intel NCS2 product brief: 1 TOPS peak, ~10 % on
    # tiny models whose run time is dominated by USB transfers).
    ops_per_s: float = 100e9
    # Fixed per-inference overhead (USB round trip), NCS2 typical ~1 ms for a 28x28 input.
    overhead_s: float = 1.0e-3


@dataclass(frozen=True)
class CpuPower:
    """Per-core active power for the CPU model when RAPL is absent. 5 W per core is a typical
    mobile x86 core under load (e.g. a 15 W TDP 4-core laptop/robot SoC, Intel ARK). Override for
    your board (a Raspberry Pi 4 core is ~1 W)."""

    core_power_w: float = 5.0


def override(constants, values: dict):
    """A copy of a constants dataclass with some fields replaced; unknown names are an error."""
    known = {f.name for f in fields(constants)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown energy constants {sorted(unknown)} for {type(constants).__name__}; "
                         f"known: {sorted(known)}")
    return type(constants)(**{**{f.name: getattr(constants, f.name) for f in fields(constants)}, **values})


# parameter section -> constants class: the agent node declares energy.<section>.<field> for each field
ENERGY_SECTIONS = {"loihi": LoihiEnergy, "accelerator": AcceleratorPower, "cpu": CpuPower}


def constants_from(values: dict) -> dict:
    """{"loihi.synaptic_op_j": 2e-11, ...} -> {section: constants instance} for every section,
    defaults where a field is not given; unknown sections or fields are an error."""
    by_section = {section: {} for section in ENERGY_SECTIONS}
    for key, value in values.items():
        section, _, name = key.partition(".")
        if section not in by_section:
            raise ValueError(f"unknown energy section {section!r} in {key!r}; known: {sorted(ENERGY_SECTIONS)}")
        by_section[section][name] = float(value)
    return {section: override(ENERGY_SECTIONS[section](), given) for section, given in by_section.items()}
