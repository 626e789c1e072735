"""The STDP network's rule on Lava: LearningDense with STDPLoihi (Loihi's on-chip learning, simulated
on the CPU with Lava's floating-point model).

STDPLoihi builds dw = lr * A_minus * x0 * y1 + lr * A_plus * y0 * x1: a pre spike (x0) weighted
by the post trace (y1), a post spike (y0) by the pre trace (x1). With t_epoch = 1 the rule applies
every step to traces that have decayed and taken the step's spikes, as ours does; Loihi's traces
add an impulse per spike, so ours must run with trace_additive. Lava writes learning rates as
powers of two (lava.magma.core.learning.utils.float_to_literal): nu_pre and nu_post must be powers
of two for the two to agree. Lava's float model bounds weights only by their sign (no w_max), and
adds both terms before bounding; ours bounds each term, so they agree while no weight reaches a
bound.
"""
from __future__ import annotations

import math

import numpy as np

from .stdp import StdpRule


def check_loihi_rule(rule: StdpRule) -> None:
    """Raise ValueError where Lava would run a different rule than `rule`."""
    if rule.kind != "pair":
        raise ValueError(f"STDPLoihi is pair STDP; rule {rule.kind!r} has no Lava counterpart here")
    if not rule.trace_additive:
        raise ValueError("Loihi's traces add an impulse per spike: use StdpRule(trace_additive=True)")
    for name in ("nu_pre", "nu_post"):
        value = getattr(rule, name)
        if value <= 0 or 2.0 ** round(math.log2(value)) != value:
            raise ValueError(f"{name}={value}: Lava writes learning rates as powers of two; use one")


def stdp_loihi(rule: StdpRule):
    """The Lava learning rule for `rule` (impulses of 1 as our traces; applied every step)."""
    from lava.proc.learning_rules.stdp_learning_rule import STDPLoihi

    check_loihi_rule(rule)
    return STDPLoihi(learning_rate=1.0, A_plus=rule.nu_post, A_minus=-rule.nu_pre, tau_plus=rule.tau_pre,
                     tau_minus=rule.tau_post, x1_impulse=1.0, y1_impulse=1.0, t_epoch=1)


def lava_weight_change(weights: np.ndarray, pre_raster: np.ndarray, post_raster: np.ndarray,
                       rule: StdpRule) -> np.ndarray:
    """Run Lava's LearningDense (floating_pt) with pre spikes into s_in and post spikes into the
    back-propagating port s_in_bap, step by step from the rasters (T, inputs) and (T, neurons);
    returns the weights after, as (inputs, neurons) like ours."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.dense.process import LearningDense
    from lava.proc.io.source import RingBuffer

    timesteps = len(pre_raster)
    dense = LearningDense(weights=np.asarray(weights, np.float64).T.copy(), learning_rule=stdp_loihi(rule))
    pre = RingBuffer(data=pre_raster.T.astype(np.float64))
    post = RingBuffer(data=post_raster.T.astype(np.float64))
    pre.s_out.connect(dense.s_in)
    post.s_out.connect(dense.s_in_bap)
    try:
        dense.run(condition=RunSteps(num_steps=timesteps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
        return dense.weights.get().T.copy()
    finally:
        dense.stop()
