"""The STDP network's rule on Lava: LearningDense with STDPLoihi (Loihi's on-chip learning, simulated
on the CPU with Lava's floating-point model).

STDPLoihi builds dw = lr * A_minus * x0 * y1 + lr * A_plus * y0 * x1: a pre spike (x0) weighted
by the post trace (y1), a post spike (y0) by the pre trace (x1). With t_epoch = 1 the rule applies
every step to traces that have decayed and taken the step's spikes, as ours does; Loihi's traces
add an impulse per spike, so ours must run with trace_additive. Lava writes learning rates as
powers of two (lava.magma.core.learning.utils.float_to_literal) with exponents from -7 to 8: nu_pre
and nu_post must be powers of two for the two to agree, and Diehl & Cook's 1e-4 is below 2^-7, so
the network runs in Lava with weights (and every potential) scaled by WEIGHT_SCALE. Lava's float model bounds weights only by their sign (no w_max), and
adds both terms before bounding; ours bounds each term, so they agree while no weight reaches a
bound.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .stdp import StdpNetwork, StdpParams, StdpRule, input_pixels

WEIGHT_SCALE = 2.0 ** 6  # Lava's weights and potentials per unit of ours in the network (module doc)


def check_loihi_rule(rule: StdpRule, weight_scale: float = 1.0) -> None:
    """Raise ValueError where Lava would run a different rule than `rule` (weights scaled by
    weight_scale in Lava)."""
    if rule.kind != "pair":
        raise ValueError(f"STDPLoihi is pair STDP; rule {rule.kind!r} has no Lava counterpart here")
    if not rule.trace_additive:
        raise ValueError("Loihi's traces add an impulse per spike: use StdpRule(trace_additive=True)")
    for name in ("nu_pre", "nu_post"):
        value = getattr(rule, name) * weight_scale
        if value <= 0 or 2.0 ** round(math.log2(value)) != value or not -7 <= math.log2(value) <= 8:
            raise ValueError(f"{name}={getattr(rule, name)}: Lava writes learning rates (times the weight "
                             f"scale {weight_scale}) as powers of two from 2^-7 to 2^8; use one")


def stdp_loihi(rule: StdpRule, weight_scale: float = 1.0):
    """The Lava learning rule for `rule` (impulses of 1 as our traces; applied every step)."""
    from lava.proc.learning_rules.stdp_learning_rule import STDPLoihi

    check_loihi_rule(rule, weight_scale)
    return STDPLoihi(learning_rate=1.0, A_plus=rule.nu_post * weight_scale, A_minus=-rule.nu_pre * weight_scale,
                     tau_plus=rule.tau_pre,
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


def lava_params(params: StdpParams) -> StdpParams:
    """`params` with a rule Lava runs the same way: learning rates rounded to powers of two (at
    WEIGHT_SCALE), traces that add per spike, and no upper bound (Lava's float model has none;
    normalization keeps every weight below weight_norm anyway); and every neuron that crosses its
    threshold spikes (no one_spike: Lava's neurons cannot draw one of them)."""
    def rounded(nu):
        return 2.0 ** round(math.log2(nu * WEIGHT_SCALE)) / WEIGHT_SCALE
    rule = replace(params.rule, kind="pair", nu_pre=rounded(params.rule.nu_pre), nu_post=rounded(params.rule.nu_post),
                   trace_additive=True, w_max=params.weight_norm)
    return replace(params, rule=rule, one_spike=False)  # Lava's neurons have no one-spike rule


def lateral_inhibition(params: StdpParams, exc):
    """The inhibitory population in Lava (weights and potentials scaled by WEIGHT_SCALE): each
    excitatory neuron of `exc` drives its LIF partner, whose spike inhibits every other excitatory
    neuron. Returns the inhibitory LIF."""
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIF

    S, n = WEIGHT_SCALE, params.n_neurons
    inh = LIF(shape=(n,), du=1.0, dv=1 - math.exp(-1 / params.tau_mem_inh),
              vth=(params.v_thresh_inh - params.v_rest_inh) * S)
    to_inh = Dense(weights=np.eye(n) * params.w_exc_inh * S)
    from_inh = Dense(weights=-params.w_inh_exc * S * (1 - np.eye(n)))
    exc.s_out.connect(to_inh.s_in)
    to_inh.a_out.connect(inh.a_in)
    inh.s_out.connect(from_inh.s_in)
    from_inh.a_out.connect(exc.a_in)
    return inh


def train_ours(params: StdpParams, images, seed: int = 0) -> tuple[StdpNetwork, dict]:
    network = StdpNetwork.create(params, seed)
    return network, network.train(images, seed).mean_ops()


def train_on_lava(params: StdpParams, images, seed: int = 0) -> tuple[StdpNetwork, dict]:
    """Train the network in Lava (floating_pt): Poisson input from a RingBuffer into LearningDense
    (STDPLoihi) into ATRLIF excitatory neurons (Lava's neuron with an adaptive threshold: theta_0
    the threshold above rest, theta_step = theta_plus; refractoriness by its decaying r instead of
    a reset and a fixed period), each driving one LIF inhibitory neuron that inhibits all the
    others. Between images, as ours: states and traces reset, weights normalized. Returns the
    trained network (weights, thresholds above the baseline as theta) and its mean operation
    counts per image (synaptic updates as Loihi's learning engine does them)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.atrlif.process import ATRLIF
    from lava.proc.dense.process import LearningDense
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    S = WEIGHT_SCALE
    pixels = input_pixels(images, params)
    n, n_in, steps = params.n_neurons, params.n_inputs, params.timesteps
    rng = np.random.default_rng(seed)
    rates = np.minimum(1.0, pixels * params.input_rate)
    rasters = rng.random((len(pixels), steps, n_in)) < rates[:, None, :]  # Bernoulli per step, as ours
    threshold = (params.v_thresh - params.v_rest) * S
    exc = ATRLIF(shape=(n,), delta_i=1.0, delta_v=1 - math.exp(-1 / params.tau_mem),
                 delta_theta=1 / params.tau_theta, delta_r=1 - math.exp(-1 / params.refractory),
                 theta_0=threshold, theta=threshold, theta_step=params.theta_plus * S)
    plastic = LearningDense(weights=StdpNetwork.create(params, seed).weights.T.astype(np.float64) * S,
                            learning_rule=stdp_loihi(params.rule, S))
    source = RingBuffer(data=rasters.reshape(-1, n_in).T.astype(np.float64))
    source.s_out.connect(plastic.s_in)
    plastic.a_out.connect(exc.a_in)
    exc.s_out.connect(plastic.s_in_bap)
    inh = lateral_inhibition(params, exc)
    exc_monitor, inh_monitor = Monitor(), Monitor()
    exc_monitor.probe(exc.s_out, len(pixels) * steps)
    inh_monitor.probe(inh.s_out, len(pixels) * steps)
    zeros = np.zeros(n)
    try:
        for _ in range(len(pixels)):
            exc.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
            w = plastic.weights.get()
            plastic.weights.set(w * (params.weight_norm * S / w.sum(axis=1, keepdims=True)))
            for var in (exc.v, exc.i, exc.r, inh.v, inh.u):
                var.set(zeros)
            plastic.x1.set(np.zeros(n_in))
            plastic.y1.set(zeros)
        exc_spikes = exc_monitor.get_data()[exc.name]["s_out"].sum() / len(pixels)
        inh_spikes = inh_monitor.get_data()[inh.name]["s_out"].sum() / len(pixels)
        network = StdpNetwork(params, plastic.weights.get().T / S, (exc.theta.get() - threshold) / S,
                              np.full(n, -1, np.int64))
    finally:
        exc.stop()
    input_spikes = rasters.sum() / len(pixels)
    ops = {"synaptic_ops": input_spikes * n + exc_spikes + inh_spikes * (n - 1),
           "synaptic_updates": input_spikes * n + exc_spikes * n_in, "neuron_updates": 2 * n * steps,
           "exc_spikes": exc_spikes, "inh_spikes": inh_spikes, "input_spikes": input_spikes}
    return network, {k: float(v) for k, v in ops.items()}
