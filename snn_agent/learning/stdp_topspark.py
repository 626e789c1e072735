"""TopSpark's training half (Putra & Shafique, IROS 2023): train and infer at fewer timesteps with
neuron parameters enhanced for each T, chosen on a validation split.

An Enhancement says how a reduced T's parameters differ from the baseline's: input rate, threshold
and its adaptation increment, membrane decay and refractory periods (time compression: the
baseline's time constants in steps divided by it), inhibition and learning rate. search() picks one
per T greedily, one parameter at a time, by validation accuracy (never the test set).

Energy per image is *modelled* from the operations the kernel counts, priced with Loihi's figures
(snn_agent/energy/constants.py, Davies et al. 2018): synaptic ops, synaptic (STDP) updates at
120 pJ, neuron updates (inactive / spiking).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, replace
from typing import Callable

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

    def to_dict(self) -> dict:
        return asdict(self)


NONE = Enhancement()
# In a model directory (optional): per T the Enhancement of the saved parameters (stdp_params.json,
# the T the network trained at) that runs the network at that T: {"<T>": {Enhancement fields}}
ENHANCEMENTS_FILE = "stdp_enhancements.json"


def save_enhancements(directory: str, enhancements: dict) -> None:
    """enhancements: T -> Enhancement, relative to the parameters saved in `directory`."""
    with open(os.path.join(directory, ENHANCEMENTS_FILE), "w") as f:
        json.dump({str(t): e.to_dict() for t, e in sorted(enhancements.items())}, f, indent=1)


def load_enhancements(directory: str) -> dict:
    """T -> Enhancement ({} without the file). Raises ValueError for a file that is not one."""
    path = os.path.join(directory, ENHANCEMENTS_FILE)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            return {int(t): Enhancement(**values) for t, values in json.load(f).items()}
    except (ValueError, TypeError, AttributeError, OSError) as exc:
        raise ValueError(f"{path} is not a table of TopSpark enhancements per T: {exc}") from exc


def enhanced_for(params: StdpParams, timesteps: int, enhancements: dict) -> tuple[StdpParams, int]:
    """The parameters that run the network at `timesteps`: those of the nearest T that has an
    enhancement (the trained T counts, with none; a tie goes to the larger T), applied at
    `timesteps`. Returns them and that T."""
    table = {params.timesteps: NONE, **enhancements}
    chosen = min(table, key=lambda t: (abs(t - timesteps), -t))
    return enhance(params, timesteps, table[chosen]), chosen


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
                   w_inh_exc=params.w_inh_exc * e.inhibition_gain, rule=rule)


def options(baseline_t: int, timesteps: int) -> dict:
    """Per Enhancement field the values search() tries, in the order it tries them, scaled by how
    much T is cut (s = baseline_t / timesteps). The ranges come from a random search at T=100 and
    T=64 on the validation split (the best trials raised theta_plus and inhibition, compressed time
    about 2x and raised the learning rate)."""
    s = baseline_t / timesteps
    root = math.sqrt(s)
    return {"time_compression": [root, s], "theta_plus_gain": [1 / root, root, s],
            "inhibition_gain": [0.5, 2.0, 4.0], "learning_rate_gain": [root, s],
            "input_rate_gain": [0.5, root, s], "threshold_shift": [-4.0, 4.0, 12.0]}


def search(evaluate: Callable[[Enhancement], float], baseline_t: int, timesteps: int,
           log: Callable[[str], None] = lambda line: None) -> tuple[Enhancement, float, list]:
    """Greedy: from no enhancement, try each field's options in turn and keep what raises the score
    (validation accuracy, from `evaluate`). Returns the best, its score and every trial."""
    best, best_score = NONE, evaluate(NONE)
    trials = [(best, best_score)]
    log(f"T={timesteps}: none -> {best_score:.3f}")
    for name, values in options(baseline_t, timesteps).items():
        for value in values:
            candidate = replace(best, **{name: value})
            score = evaluate(candidate)
            trials.append((candidate, score))
            log(f"T={timesteps}: {name}={value:.3g} -> {score:.3f}")
            if score > best_score:
                best, best_score = candidate, score
    return best, best_score, trials


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
