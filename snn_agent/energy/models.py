"""Energy per inference from counted operations (Loihi), latency (accelerators) or CPU time."""
from __future__ import annotations

import time
from dataclasses import dataclass

from .constants import AcceleratorPower, CpuPower, LoihiEnergy
from .rapl import MIN_WINDOW_S, POWERCAP_ROOT, RaplPackages

MEASURED = "measured"
MODELLED = "modelled"


@dataclass
class EnergyEstimate:
    joules: float
    kind: str  # MEASURED or MODELLED
    source: str  # what the figure comes from, for logs and reports

    @property
    def label(self) -> str:
        return f"{self.joules * 1e3:.4f} mJ ({self.kind}: {self.source})"


def loihi_energy(ops_per_frame: dict, timesteps: int, constants: LoihiEnergy = LoihiEnergy(),
                 synaptic_updates: float = 0.0) -> EnergyEstimate:
    """Dynamic energy from counted ops plus static power over the chip time of T steps.

    ops_per_frame: the engine's OpCounts.per_frame() (spikes, synaptic_ops, neuron_updates).
    Spikes count as active neuron updates; each spike also travels once within its tile.
    """
    spikes = ops_per_frame["spikes"]
    updates = ops_per_frame["neuron_updates"]
    dynamic = (ops_per_frame["synaptic_ops"] * constants.synaptic_op_j
               + spikes * (constants.neuron_update_active_j + constants.spike_in_tile_j)
               + (updates - spikes) * constants.neuron_update_inactive_j
               + synaptic_updates * constants.synaptic_update_j)
    static = constants.static_power_w * timesteps * constants.timestep_s
    return EnergyEstimate(dynamic + static, MODELLED, "Loihi ops x Davies et al. 2018 + static power")


def accelerator_energy(latency_s: float, constants: AcceleratorPower = AcceleratorPower(),
                       measured_latency: bool = False) -> EnergyEstimate:
    kind = "latency measured, power from Blouw et al. 2018" if measured_latency else "Blouw et al. 2018"
    return EnergyEstimate(latency_s * constants.active_power_w, MODELLED, kind)


def accelerator_latency(dnn_macs: float, constants: AcceleratorPower = AcceleratorPower()) -> float:
    """Modelled latency of one DNN inference on the stick: 2 ops per MAC at the sustained rate."""
    return constants.overhead_s + 2.0 * dnn_macs / constants.ops_per_s


class CpuEnergyMeter:
    """CPU energy of a code section. Measured where the machine has RAPL counters and the section
    spans at least rapl.MIN_WINDOW_S (many frames): the whole package's energy, every process on it
    included, so the figure is an upper bound for the section's own. Otherwise modelled: the calling
    thread's CPU time x configured core power. Thread time, not process time, so that ROS executor
    threads running beside the inference are not billed to it; BLAS must then run single-threaded
    (the engine does), as it should on a robot that shares its cores."""

    def __init__(self, constants: CpuPower = CpuPower(), powercap_root: str = POWERCAP_ROOT):
        self.constants = constants
        self._modelled_source = f"CPU time x {constants.core_power_w} W per core"
        self.rapl = RaplPackages(powercap_root)

    def read(self):
        """An opaque reading; pass two of them to `energy`."""
        return (self.rapl.read() if self.rapl.available else None, time.perf_counter(), time.thread_time())

    def energy(self, start, end, frames: int = 1) -> EnergyEstimate:
        """The energy between two readings, per frame of the `frames` the section processed."""
        window_s = end[1] - start[1]
        if start[0] is not None and end[0] is not None and window_s >= MIN_WINDOW_S:
            return EnergyEstimate(self.rapl.joules_between(start[0], end[0]) / frames, MEASURED,
                                  f"RAPL, whole CPU package(s) over {window_s:.2f} s and {frames} frames")
        return EnergyEstimate((end[2] - start[2]) * self.constants.core_power_w / frames, MODELLED,
                              self._modelled_source)


def loihi_learning_energy(synaptic_updates: int, synaptic_ops: int, trace_updates: int, steps: int,
                          constants: LoihiEnergy = LoihiEnergy()) -> EnergyEstimate:
    """A learning step on Loihi, from counted operations (learning.readout.LearningOps): each
    synapse the rule is evaluated on at 120 pJ (Davies et al.'s pairwise STDP update), each spike the
    replay sends through a synapse as a synaptic op, each trace update as an inactive neuron update
    (Davies et al. give no trace figure; a trace lives in the neuron's compartment), plus the chip's
    static power over the steps."""
    dynamic = (synaptic_updates * constants.synaptic_update_j + synaptic_ops * constants.synaptic_op_j
               + trace_updates * constants.neuron_update_inactive_j)
    static = constants.static_power_w * steps * constants.timestep_s
    return EnergyEstimate(dynamic + static, MODELLED, "Loihi learning ops x Davies et al. 2018 + static power")
