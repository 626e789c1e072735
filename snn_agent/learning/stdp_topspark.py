"""TopSpark's training half (Putra & Shafique, IROS 2023): train and infer at fewer timesteps with
neuron parameters enhanced for each T, chosen on a validation split.

An Enhancement says how a reduced T's parameters differ from the baseline's: input rate, threshold
and its adaptation increment, membrane decay and refractory periods (time compression: the
baseline's time constants in steps divided by it), inhibition, learning rate and the homeostasis'
decay. The search (bench/stdp.py) draws Enhancements at random from search_space, the same budget
at every T (the baseline's included), and confirms the best few with more training images and two
seeds, all on the validation split (never the test set).

Energy per image is *modelled* from the operations the kernel counts, priced with Loihi's figures
(snn_agent/energy/constants.py, Davies et al. 2018): synaptic ops, synaptic (STDP) updates at
120 pJ, neuron updates (inactive / spiking).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..energy.constants import LoihiEnergy
from .stdp import StdpParams


@dataclass(frozen=True)
class Enhancement:
    input_rate_gain: float = 1.0
    threshold_shift: float = 0.0  # mV added to the excitatory threshold
    theta_plus_gain: float = 1.0
    time_compression: float = 1.0  # membrane time constants and refractory periods divided by it
    inhibition_gain: float = 1.0
    learning_rate_gain: float = 1.0
    # homeostasis: theta's decay time constant in images (tau_theta = this x T steps, so the decay per
    # image is the same at every T); None keeps the baseline's (Diehl & Cook: 1e7 steps, no decay to speak of)
    tau_theta_images: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


NONE = Enhancement()


def enhance(params: StdpParams, timesteps: int, e: Enhancement) -> StdpParams:
    """The baseline parameters at `timesteps` with enhancement e applied."""
    c = e.time_compression
    rule = replace(params.rule, nu_pre=params.rule.nu_pre * e.learning_rate_gain,
                   nu_post=params.rule.nu_post * e.learning_rate_gain,
                   tau_pre=params.rule.tau_pre / c, tau_post=params.rule.tau_post / c)
    return replace(params, timesteps=int(timesteps), input_rate=params.input_rate * e.input_rate_gain,
                   v_thresh=params.v_thresh + e.threshold_shift, theta_plus=params.theta_plus * e.theta_plus_gain,
                   tau_mem=params.tau_mem / c, tau_mem_inh=params.tau_mem_inh / c,
                   refractory=max(1, round(params.refractory / c)),
                   refractory_inh=max(1, round(params.refractory_inh / c)),
                   w_inh_exc=params.w_inh_exc * e.inhibition_gain, rule=rule,
                   tau_theta=params.tau_theta if e.tau_theta_images is None else e.tau_theta_images * timesteps)


@dataclass(frozen=True)
class Range:
    """Where the search draws one Enhancement field: uniform in [low, high], or log-uniform."""

    low: float
    high: float
    log: bool = True

    def draw(self, rng: np.random.Generator) -> float:
        if self.low == self.high:
            return self.low
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))


def search_space(baseline_t: int, timesteps: int) -> dict:
    """Per Enhancement field the range search draws from, the same at every T except where scaled by
    how much T is cut (s = baseline_t / timesteps: 1 at the baseline, which gets the same search).
    The input rate may fall, never rise, at a reduced T (so training energy falls at least as fast
    as T), and stays the encoding's at the baseline T (raising it there would inflate every
    reduction, since input spikes drive the energy)."""
    s = baseline_t / timesteps
    root = math.sqrt(s)
    return {"time_compression": Range(0.5 * root, 2.0 * s), "theta_plus_gain": Range(0.5, 2.0 * root),
            "inhibition_gain": Range(2.0, 32.0), "learning_rate_gain": Range(1.0, 4.0 * root),
            "threshold_shift": Range(-8.0, 2.0, log=False), "tau_theta_images": Range(1000.0, 100000.0),
            "input_rate_gain": Range(0.5, 1.0) if s > 1 else Range(1.0, 1.0)}


def inference_space(baseline_t: int, timesteps: int) -> dict:
    """The fields that matter to a trained network run frozen at a reduced T (applied on top of the
    parameters it trained with): time compression, threshold, inhibition, and an input rate that
    may fall, never rise (so inference energy falls at least as fast as T)."""
    s = baseline_t / timesteps
    return {"time_compression": Range(0.5, s), "threshold_shift": Range(-8.0, 2.0, log=False),
            "inhibition_gain": Range(0.5, 2.0), "input_rate_gain": Range(0.5, 1.0)}


def draw(space: dict, n: int, seed: int) -> list:
    """n Enhancements drawn at random from space (random search: every trial varies every field)."""
    rng = np.random.default_rng(seed)
    return [Enhancement(**{name: r.draw(rng) for name, r in space.items()}) for _ in range(n)]


def finalists(trials: list, n: int) -> list:
    """The n best (Enhancement, score) trials, best first."""
    return sorted(trials, key=lambda trial: -trial[1])[:n]


def modelled_energy_j(ops: dict, learning: bool, loihi: LoihiEnergy = LoihiEnergy()) -> float:
    """Energy of one image on Loihi (modelled) from mean operation counts (RunRecord.mean_ops):
    synaptic ops, STDP updates (with learning), and neuron updates, spiking or not."""
    spikes = ops["exc_spikes"] + ops["inh_spikes"]
    energy = (ops["synaptic_ops"] * loihi.synaptic_op_j
              + (ops["neuron_updates"] - spikes) * loihi.neuron_update_inactive_j
              + spikes * loihi.neuron_update_active_j)
    if learning:
        energy += ops["synaptic_updates"] * loihi.synaptic_update_j
    return energy
