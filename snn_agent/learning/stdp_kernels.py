"""The STDP network's compiled, event-driven loop (numba): many images in one call.

Work follows spikes, not synapses:
- Poisson input is drawn as spike times (geometric gaps), not as one random number per input per
  step, and sorted into steps once per image;
- a pre-synaptic spike adds its weight row to the excitatory currents (weights are (inputs,
  neurons), so the row is contiguous) and depresses only the synapses onto neurons that have fired
  during this image (every other post trace is zero);
- a post-synaptic spike potentiates only the synapses from inputs that have fired;
- traces are not decayed every step: each keeps its value at its last spike and the step of that
  spike, and is read as value * decay^(steps since) from a table;
- the inhibitory population is one neuron per excitatory neuron (Diehl & Cook): an excitatory spike
  drives its partner, whose spike inhibits every other excitatory neuron by a constant;
- with one_spike (BindsNET's DiehlAndCookNodes default), of the neurons that cross the threshold in a
  step only one, drawn at random, spikes; all of them reset, turn refractory and raise theta.
Timing as BindsNET's Network.run (so the peer comparison is like for like): every connection carries
the previous step's spikes; traces decay, then take the step's spikes, then the rule uses them.

The parameters arrive as one float64 array laid out by the column names below (numba compiles for
array types, so one compiled function serves every parameter set; stdp.py builds the array).
"""
from __future__ import annotations

import numpy as np
from numba import njit

# columns of the parameter array (StdpParams.as_array)
(INPUT_RATE, V_REST, V_RESET, V_THRESH, DECAY, REFRACTORY, THETA_PLUS, THETA_DECAY_PER_IMAGE,
 V_REST_INH, V_RESET_INH, V_THRESH_INH, DECAY_INH, REFRACTORY_INH, W_EXC_INH, W_INH_EXC, WEIGHT_NORM,
 RULE, NU_PRE, NU_POST, DECAY_PRE, DECAY_POST, W_MIN, W_MAX, TRACE_ADDITIVE, ONE_SPIKE) = range(25)
N_PARAMS = 25
PAIR, WEIGHT_DEPENDENT = 0, 1  # rules: additive pair STDP; soft bounds (dw scaled by distance to the bound)
# columns of the per-image operation counts. SYNAPTIC_UPDATES counts as Loihi's learning engine works:
# every synapse of a neuron that spiked (pre or post) is updated in that step, whatever the traces;
# WEIGHT_CHANGES counts what this kernel does (only synapses whose other trace is non-zero).
SYNAPTIC_OPS, SYNAPTIC_UPDATES, NEURON_UPDATES, EXC_SPIKES, INH_SPIKES, INPUT_SPIKES, WEIGHT_CHANGES = range(7)
N_COUNTS = 7


@njit(cache=True)
def poisson_events(rates, timesteps, times, inputs, starts, order):
    """Spike times of independent Bernoulli inputs (probability rates[i] per step) drawn as geometric
    gaps; returns nothing, fills order[starts[t]:starts[t + 1]] with the inputs firing at step t."""
    n_events = 0
    for i in range(rates.shape[0]):
        p = rates[i]
        if p <= 0.0:
            continue
        t = 0 if p >= 1.0 else np.random.geometric(p) - 1
        while t < timesteps:
            times[n_events] = t
            inputs[n_events] = i
            n_events += 1
            t += 1 if p >= 1.0 else np.random.geometric(p)
    starts[:] = 0
    for e in range(n_events):
        starts[times[e] + 1] += 1
    for t in range(timesteps):
        starts[t + 1] += starts[t]
    fill = starts[:timesteps].copy()
    for e in range(n_events):  # inputs in increasing order within a step: deterministic summation order
        order[fill[times[e]]] = inputs[e]
        fill[times[e]] += 1


@njit(cache=True)
def trace_now(value, last, t, decay_powers, additive):
    """A trace's value at step t after a spike at step t (value at its previous spike, that spike's
    step, or -1 for none): decayed, then 1 added (additive) or set to 1."""
    if last < 0:
        return 1.0
    decayed = value * decay_powers[t - last]
    return decayed + 1.0 if additive else 1.0


@njit(cache=True)
def run_images(pixels, weights, theta, params, timesteps, learn, seed, spike_counts, op_counts, margins):
    """Present each image (pixels (N, inputs) float32 in [0, 1]) for `timesteps` steps; with `learn`
    the weights (inputs, neurons) float32 and thresholds theta (neurons,) float32 change in place.
    Writes excitatory spike counts (N, neurons) int32, operation counts (N, N_COUNTS) int64 and each
    excitatory neuron's potential minus its threshold after the last step (margins (N, neurons)
    float32, mV: how near it was to one more spike)."""
    np.random.seed(seed)
    n_images, n_in = pixels.shape
    n = weights.shape[1]
    p = params
    v_rest, v_reset, v_thresh, decay = p[V_REST], p[V_RESET], p[V_THRESH], p[DECAY]
    refractory, refractory_inh = int(p[REFRACTORY]), int(p[REFRACTORY_INH])
    v_rest_inh, v_reset_inh, v_thresh_inh, decay_inh = p[V_REST_INH], p[V_RESET_INH], p[V_THRESH_INH], p[DECAY_INH]
    w_exc_inh, w_inh_exc = p[W_EXC_INH], p[W_INH_EXC]
    one_spike = p[ONE_SPIKE] != 0.0
    pre_powers, post_powers = trace_powers(p, timesteps)

    times = np.empty(n_in * timesteps, np.int32)
    inputs = np.empty(n_in * timesteps, np.int32)
    order = np.empty(n_in * timesteps, np.int32)
    starts = np.zeros(timesteps + 1, np.int64)
    rates = np.empty(n_in, np.float64)
    v = np.empty(n, np.float64)
    v_inh = np.empty(n, np.float64)
    refractory_left = np.zeros(n, np.int32)
    refractory_left_inh = np.zeros(n, np.int32)
    current = np.empty(n, np.float32)
    exc_fired = np.empty(n, np.int32)  # this step's excitatory spikes (indices), and the last step's
    exc_fired_before = np.empty(n, np.int32)
    inh_fired = np.empty(n, np.int32)
    traces, trace_steps, active_pre, active_post, n_active, pre_now, post_now = learning_state(n_in, n)
    theta_decay = p[THETA_DECAY_PER_IMAGE]
    # with both learning rates 0 only the thresholds adapt: the weight pass would change nothing
    learn_weights = learn and (p[NU_PRE] != 0.0 or p[NU_POST] != 0.0)

    for image in range(n_images):
        for i in range(n_in):
            rates[i] = min(1.0, pixels[image, i] * p[INPUT_RATE])
        poisson_events(rates, timesteps, times, inputs, starts, order)
        v[:] = v_rest
        v_inh[:] = v_rest_inh
        refractory_left[:] = 0
        refractory_left_inh[:] = 0
        trace_steps[:] = -1
        n_active[:] = 0
        n_exc_before = n_inh = 0
        synaptic_ops = synaptic_updates = weight_changes = exc_spikes = inh_spikes = 0
        for t in range(timesteps):
            # excitatory input: the previous step's input spikes and inhibitory spikes
            current[:] = 0.0
            if t > 0:
                for e in range(starts[t - 1], starts[t]):
                    row = weights[order[e]]
                    for j in range(n):
                        current[j] += row[j]
                synaptic_ops += (starts[t] - starts[t - 1]) * n
            if n_inh > 0:
                inhibition = np.float32(w_inh_exc * n_inh)
                for j in range(n):
                    current[j] -= inhibition
                for k in range(n_inh):  # no inhibition of a neuron by its own partner
                    current[inh_fired[k]] += np.float32(w_inh_exc)
                synaptic_ops += n_inh * (n - 1)
            # inhibitory neurons, driven by the previous step's excitatory spikes
            n_inh = 0
            for j in range(n):
                v_inh[j] = v_rest_inh + (v_inh[j] - v_rest_inh) * decay_inh
            for k in range(n_exc_before):
                j = exc_fired_before[k]
                if refractory_left_inh[j] == 0:
                    v_inh[j] += w_exc_inh
            synaptic_ops += n_exc_before
            for j in range(n):
                if refractory_left_inh[j] > 0:
                    refractory_left_inh[j] -= 1
                elif v_inh[j] >= v_thresh_inh:
                    v_inh[j] = v_reset_inh
                    refractory_left_inh[j] = refractory_inh
                    inh_fired[n_inh] = j
                    n_inh += 1
            inh_spikes += n_inh
            # excitatory neurons (adaptive threshold)
            n_exc = 0
            for j in range(n):
                v[j] = v_rest + (v[j] - v_rest) * decay
                if refractory_left[j] > 0:
                    refractory_left[j] -= 1
                    continue
                v[j] += current[j]
                if v[j] >= v_thresh + theta[j]:
                    v[j] = v_reset
                    refractory_left[j] = refractory
                    exc_fired[n_exc] = j
                    n_exc += 1
            if learn:  # every neuron that crossed, as BindsNET's DiehlAndCookNodes
                for k in range(n_exc):
                    theta[exc_fired[k]] += p[THETA_PLUS]
            if one_spike and n_exc > 1:  # of those that crossed, one (at random) spikes
                exc_fired[0] = exc_fired[np.random.randint(n_exc)]
                n_exc = 1
            for k in range(n_exc):
                spike_counts[image, exc_fired[k]] += 1
            exc_spikes += n_exc
            if learn_weights:
                synaptic_updates += (starts[t + 1] - starts[t]) * n + n_exc * n_in
                weight_changes += learn_step(weights, t, order[starts[t]:starts[t + 1]], exc_fired[:n_exc], p,
                                               traces, trace_steps, active_pre, active_post, n_active,
                                               pre_powers, post_powers, pre_now, post_now)
            exc_fired_before[:n_exc] = exc_fired[:n_exc]
            n_exc_before = n_exc
        for j in range(n):
            margins[image, j] = v[j] - (v_thresh + theta[j])
        if learn:
            for j in range(n):
                theta[j] *= theta_decay
        if learn_weights:
            normalize_columns(weights, p[WEIGHT_NORM])
        counts = op_counts[image]
        counts[SYNAPTIC_OPS] = synaptic_ops
        counts[SYNAPTIC_UPDATES] = synaptic_updates
        counts[NEURON_UPDATES] = 2 * n * timesteps  # every neuron updates every step on Loihi
        counts[EXC_SPIKES] = exc_spikes
        counts[INH_SPIKES] = inh_spikes
        counts[INPUT_SPIKES] = starts[timesteps]
        counts[WEIGHT_CHANGES] = weight_changes


@njit(cache=True)
def trace_powers(p, timesteps):
    """decay^k for k = 0..timesteps, of the pre and of the post trace."""
    return p[DECAY_PRE] ** np.arange(timesteps + 1), p[DECAY_POST] ** np.arange(timesteps + 1)


@njit(cache=True)
def learning_state(n_in, n):
    """Traces (inputs then neurons: each trace's value at its last spike), the steps of those spikes
    (-1: none this image), the inputs and neurons that have fired this image (active) and how many
    (n_active: inputs, neurons), and room for one step's traces of the active ones."""
    traces = np.zeros(n_in + n, np.float64)
    trace_steps = np.full(n_in + n, -1, np.int64)
    return (traces, trace_steps, np.empty(n_in, np.int32), np.empty(n, np.int32), np.zeros(2, np.int64),
            np.empty(n_in, np.float64), np.empty(n, np.float64))


@njit(cache=True)
def learn_step(weights, t, pre_fired, post_fired, p, traces, trace_steps, active_pre, active_post, n_active,
               pre_powers, post_powers, pre_now, post_now):
    """One step of the rule: traces take step t's spikes (pre_fired: inputs, post_fired: neurons),
    then each pre spike depresses its synapses onto the active neurons by their post traces, and
    each post spike potentiates its synapses from the active inputs by their pre traces. Weights
    stay in [w_min, w_max]. Returns the number of weights changed."""
    n_in = weights.shape[0]
    rule, nu_pre, nu_post, w_min, w_max = int(p[RULE]), p[NU_PRE], p[NU_POST], p[W_MIN], p[W_MAX]
    additive = p[TRACE_ADDITIVE] != 0.0
    for i in pre_fired:
        if trace_steps[i] < 0:
            active_pre[n_active[0]] = i
            n_active[0] += 1
        traces[i] = trace_now(traces[i], trace_steps[i], t, pre_powers, additive)
        trace_steps[i] = t
    for j in post_fired:
        if trace_steps[n_in + j] < 0:
            active_post[n_active[1]] = j
            n_active[1] += 1
        traces[n_in + j] = trace_now(traces[n_in + j], trace_steps[n_in + j], t, post_powers, additive)
        trace_steps[n_in + j] = t
    n_active_pre, n_active_post = n_active[0], n_active[1]
    updates = 0
    if len(pre_fired) > 0 and n_active_post > 0:
        for a in range(n_active_post):  # post traces read once per step
            j = n_in + active_post[a]
            post_now[a] = nu_pre * traces[j] * post_powers[t - trace_steps[j]]
        for i in pre_fired:
            row = weights[i]
            for a in range(n_active_post):
                j = active_post[a]
                w = row[j]
                dw = post_now[a] * ((w - w_min) if rule == WEIGHT_DEPENDENT else 1.0)
                row[j] = max(w_min, w - dw)
        updates += len(pre_fired) * n_active_post
    if len(post_fired) > 0:
        for a in range(n_active_pre):
            i = active_pre[a]
            pre_now[a] = nu_post * traces[i] * pre_powers[t - trace_steps[i]]
        for j in post_fired:
            for a in range(n_active_pre):
                i = active_pre[a]
                w = weights[i, j]
                dw = pre_now[a] * ((w_max - w) if rule == WEIGHT_DEPENDENT else 1.0)
                weights[i, j] = min(w_max, w + dw)
        updates += len(post_fired) * n_active_pre
    return updates


@njit(cache=True)
def learn_from_rasters(weights, pre_raster, post_raster, p):
    """The rule alone on given spikes: pre_raster (T, inputs) and post_raster (T, neurons) bool;
    changes weights in place, returns the number of weights changed (tests, Lava comparison)."""
    timesteps = pre_raster.shape[0]
    n_in, n = weights.shape
    traces, trace_steps, active_pre, active_post, n_active, pre_now, post_now = learning_state(n_in, n)
    pre_powers, post_powers = trace_powers(p, timesteps)
    updates = 0
    for t in range(timesteps):
        updates += learn_step(weights, t, np.nonzero(pre_raster[t])[0].astype(np.int32),
                              np.nonzero(post_raster[t])[0].astype(np.int32), p, traces, trace_steps,
                              active_pre, active_post, n_active, pre_powers, post_powers, pre_now, post_now)
    return updates


@njit(cache=True)
def normalize_columns(weights, norm):
    """Scale each neuron's incoming weights to sum to `norm` (Diehl & Cook), in place."""
    n_in, n = weights.shape
    sums = np.zeros(n, np.float64)
    for i in range(n_in):
        for j in range(n):
            sums[j] += weights[i, j]
    scale = np.empty(n, np.float32)
    for j in range(n):
        scale[j] = norm / sums[j] if sums[j] > 0 else 1.0
    for i in range(n_in):
        for j in range(n):
            weights[i, j] *= scale[j]
