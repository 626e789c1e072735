"""One frame through a whole chain network in one compiled call (numba).

On a robot the engine sees one frame at a time. The time-batched numpy path of cpu_engine then
pays numpy's per-call overhead dozens of times per frame, whatever T: at small T that fixed cost
was most of a frame (0.7 ms of 0.86 ms at T=2 on the bundled model), so cutting timesteps
could not cut latency much. Here the layer loop, the neuron updates and the synaptic-operation
count are compiled, and only the arithmetic remains (spikes are counted by whoever reads them):
- a convolution gathers its windows and makes one BLAS product for all timesteps; spike maps at
  10-20 % density are not sparse enough for scattering each spike through the kernel to win
  (measured: 1.5-2x slower, and no faster once vectorized; the batched path's CNN layers, 5-10 %
  spikes and 32-64 channels, do scatter: ops.SpikeConvPlan). The gather copies runs: in
  channels-last maps a window row (kx, c) is contiguous, so a layer with many channels copies
  kw x C values at a time (gather_runs); with few (an image's one channel: runs of ~5) it reads
  one precomputed index entry per value (ops.Conv2dNhwcPlan), which is faster there;
- a dense layer adds the weight rows of its active inputs: at a few % density that is several
  times less work than the product;
- integrate-and-fire is a branch-free loop that compiles to vector instructions.
Same arithmetic as the batched path: results agree to float32 rounding. Maps are channels-last,
flattened: index (y * W + x) * C + c; the image is read as it comes (cpu_engine reorders the first
layer's index or weights once).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit

CONV, DENSE = 0, 1  # layer kinds of run_chain
# Columns of run_chain's layout table, one row per layer. Every layer's arrays live in flat arrays
# (weights, indices, biases) at these offsets: numba compiles for array types, not for a model,
# so one compiled run_chain serves every chain network (typed lists would do the same, but build
# themselves by compiling code in every process that creates one, which numba does not cache).
# A conv's INDEX_START points at its gather index, or with N_RUNS > 0 at its runs (gather_runs).
KIND, WEIGHT_START, WEIGHT_ROWS, WEIGHT_COLS, INDEX_START, POSITIONS, BIAS_START, N_OUT, N_RUNS = range(9)
LAYOUT_COLUMNS = 9
# A conv copies runs when its runs average at least this many values (bench/frame_parts.py on the
# bundled model: the image's 5x5 windows average 4.5 and are faster by index, 13.8 against 20.5 us;
# the spike maps' 3x3x16 windows average 42.5: 31 against 40 us at T=2, 149 against 202 at T=12)
MIN_MEAN_RUN = 8
RUN_COLUMNS = 4  # a run: output position, first tap, first input value (n_in: padding, zeros), length
# Gather indices and runs are unsigned: numba wraps a negative signed index around (a test and a
# select on every read); the bundled model's first gather, timed alone in a loop, took 5.3 us with
# int32 and 3.7 with uint32 (inside a whole frame the gain is within the noise). Unsigned 32-bit
# mixes with numba's int64 into int64 (uint64 would give floats).
INDEX_DTYPE = np.uint32
IF_BLOCK = 2048  # neurons integrate_and_fire takes through every step at once (8 KB of potentials)


def gather_runs(index: np.ndarray, n_in: int) -> np.ndarray:
    """A conv gather index (positions, K) into an input of n_in values (n_in: padding) as runs
    of consecutive taps that read consecutive inputs, or padding: (runs, RUN_COLUMNS) INDEX_DTYPE."""
    inside = index < n_in
    continues = np.zeros(index.shape, bool)
    continues[:, 1:] = (inside[:, 1:] & inside[:, :-1] & (index[:, 1:] == index[:, :-1] + 1)) | \
                       (~inside[:, 1:] & ~inside[:, :-1])
    position, tap = np.nonzero(~continues)  # every row starts a run, so none crosses rows
    starts = position * index.shape[1] + tap
    length = np.diff(np.append(starts, index.size))
    source = np.where(inside[position, tap], index[position, tap], n_in)
    return np.stack([position, tap, source, length], axis=1).astype(INDEX_DTYPE)


@njit(cache=True)
def conv_product(x, index, matrix):
    """x: (rows, n_in) float32; index: (positions, K) INDEX_DTYPE into a row, n_in for padding; matrix:
    (K, O). Returns (rows, positions * O) currents without bias, in the matrix's dtype (float32;
    the Loihi-exact engine passes float64 where float32 sums would not be exact)."""
    rows, n_in = x.shape
    positions, taps = index.shape
    # each row copied once beside a zero, which every tap in the padding reads: a branch per tap
    # made the gather (most of a convolution's time) ~20 % slower
    padded = np.zeros(n_in + 1, matrix.dtype)
    columns = np.empty((rows * positions, taps), matrix.dtype)
    for r in range(rows):
        padded[:n_in] = x[r]
        for p in range(positions):
            column, taps_of_p = columns[r * positions + p], index[p]
            for k in range(taps):
                column[k] = padded[taps_of_p[k]]
    return np.dot(columns, matrix).reshape(rows, -1)


@njit(cache=True)
def conv_product_by_runs(x, runs, positions, matrix):
    """conv_product with the gather as runs (gather_runs): (rows, positions * O) currents."""
    rows, n_in = x.shape
    taps = matrix.shape[0]
    columns = np.empty((rows * positions, taps), matrix.dtype)
    for r in range(rows):
        source = x[r]
        for j in range(runs.shape[0]):
            position, tap, start, length = runs[j, 0], runs[j, 1], runs[j, 2], runs[j, 3]
            # slices, not offsets into the row: numba then knows the indices are not negative and
            # vectorizes the copy
            column = columns[r * positions + position, tap:tap + length]
            if start >= n_in:
                column[:] = 0.0
            else:
                values = source[start:start + length]
                for i in range(length):
                    column[i] = values[i]
    return np.dot(columns, matrix).reshape(rows, -1)


@njit(cache=True)
def dense_accumulate(x, weight_t, summed):
    """x: (rows, n_in) float32; weight_t: (n_in, n_out) float32. Returns (rows, n_out) currents, or
    with `summed` their sum as one row, without bias (in weight_t's dtype, as conv_product)."""
    rows, n_in = x.shape
    n_out = weight_t.shape[1]
    out = np.zeros((1 if summed else rows, n_out), weight_t.dtype)
    for r in range(rows):
        row = 0 if summed else r
        for i in range(n_in):
            value = x[r, i]
            if value == 0.0:
                continue
            for k in range(n_out):
                out[row, k] += value * weight_t[i, k]
    return out


@njit(cache=True)
def integrate_and_fire(current, bias, timesteps, threshold, v_start, subtract, spikes):
    """Integrate-and-fire over T steps. current: (T or 1, n) without bias (one row: a constant input);
    threshold: float32, v_start: (n,) float32 potentials at the start, in units of potential
    (float32 throughout, as the batched path). Reset by subtracting the threshold, firing at the threshold (the batched path's rule:
    spikes so far = floor((v0 + input so far) / threshold)); or reset to zero, firing strictly
    above it (Loihi). Writes the spikes as float32 0/1 into `spikes` (T, n).

    Branch-free, storing only the potential and the spike, so that it compiles to vector
    instructions (a spike counter in the same loop stops that: 3-5x slower)."""
    n = current.shape[1]
    v = v_start.copy()
    one, zero = np.float32(1.0), np.float32(0.0)
    # a block of neurons through every step before the next block: a batch's layer (millions of
    # neurons) then keeps its potentials in cache instead of streaming them from memory each step
    # (the suite's VGG-style CNN, 250 frames at T = 8: 2-3x faster); a frame's layer is one block
    for start in range(0, n, IF_BLOCK):
        stop = min(start + IF_BLOCK, n)
        # slices, not offsets: numba then knows the indices are not negative and vectorizes
        potentials, biases = v[start:stop], bias[start:stop]
        for t in range(timesteps):
            row = current[0 if current.shape[0] == 1 else t, start:stop]
            out = spikes[t, start:stop]
            if subtract:
                for i in range(stop - start):
                    potential = potentials[i] + (row[i] + biases[i])
                    fired = one if potential >= threshold else zero
                    potentials[i] = potential - fired * threshold
                    out[i] = fired
            else:
                for i in range(stop - start):
                    potential = potentials[i] + (row[i] + biases[i])
                    fired = one if potential > threshold else zero
                    potentials[i] = potential * (one - fired)
                    out[i] = fired


@njit(cache=True)
def spikes_offset(n_classes, n_in):
    """Where the spikes start in run_chain's output: after the scores and the input's flags,
    rounded up to 16 values (64 bytes), so that the spike rows are as aligned as their own
    array's would be (unaligned, the T=12 frame was 2-5 % slower)."""
    return (n_classes + n_in + 15) // 16 * 16


@njit(cache=True)
def run_chain(x, timesteps, layout, weights, indices, n_spiking, biases, thresholds, v_starts, subtract):
    """One frame through a chain whose last layer gives the scores (its mean input over the steps).

    x: (1, n) float32 image, a constant current (its synapses work every step), in the order the
    first layer's gather index or weight rows read it. Per layer (a row of `layout`, columns above):
    its kind; its weight matrix (conv: (kh*kw*C, O) rows in (ky, kx, c) order; dense: the
    transposed weight), its gather index (conv: (positions, kh*kw*C)) or runs, all flat. n_spiking: the
    spiking layers' neurons together. Then the operating point's: each layer's bias and each
    neuron's potential at the start (float32, channels-last, flat, both at the layer's
    BIAS_START) and threshold (float32).
    Returns one array (1, classes + n + T * n_spiking), in sections: the scores, which inputs are
    nonzero (1.0 or 0.0), every spike (each spiking layer's (T, n) block after the previous one's,
    flat). One array, not three: each array returned costs numba ~0.5 us to hand to Python, a
    percent of a T=2 frame. Counting spikes and synaptic operations is left to whoever
    reads them (cpu_engine.FrameOpCounts): a robot's frame loop does not."""
    n_layers = layout.shape[0]
    n_classes, n_in = layout[n_layers - 1, N_OUT], x.shape[1]
    head = spikes_offset(n_classes, n_in)
    output = np.empty((1, head + timesteps * n_spiking), np.float32)
    scores, sections = output[0, :n_classes], output[0]
    for i in range(n_in):
        sections[n_classes + i] = 1.0 if x[0, i] != 0.0 else 0.0
    spikes = sections[head:]
    spikes_start = 0
    rows = x
    for layer in range(n_layers):
        spec = layout[layer]
        start, n_rows, n_cols = spec[WEIGHT_START], spec[WEIGHT_ROWS], spec[WEIGHT_COLS]
        matrix = weights[start:start + n_rows * n_cols].reshape((n_rows, n_cols))
        n_out = spec[N_OUT]
        bias = biases[spec[BIAS_START]:spec[BIAS_START] + n_out]
        last = layer == n_layers - 1
        if spec[KIND] == CONV:
            start, positions, n_runs = spec[INDEX_START], spec[POSITIONS], spec[N_RUNS]
            if n_runs:
                runs = indices[start:start + n_runs * RUN_COLUMNS].reshape((n_runs, RUN_COLUMNS))
                current = conv_product_by_runs(rows, runs, positions, matrix)
            else:
                index = indices[start:start + positions * n_rows].reshape((positions, n_rows))
                current = conv_product(rows, index, matrix)
        else:
            current = dense_accumulate(rows, matrix, last)
        if last:
            scores[:] = current.sum(axis=0) / np.float32(rows.shape[0]) + bias
            return output
        threshold = thresholds[layer]
        rows = spikes[spikes_start:spikes_start + timesteps * n_out].reshape((timesteps, n_out))
        integrate_and_fire(current, bias, timesteps, threshold, v_starts[spec[BIAS_START]:spec[BIAS_START] + n_out],
                           subtract, rows)
        spikes_start += timesteps * n_out
    raise ValueError("run_chain: no layers")


def compiled_run_chain(n_inputs: int, program_arguments: tuple, point_arguments: tuple):
    """run_chain compiled for one engine's argument types, to be called without numba's dispatcher,
    which types every argument on every call (~2 us for these ten, 2-3 % of a T=2 frame). The
    caller must pass exactly these types: a (1, n_inputs) C-contiguous, aligned, writeable float32
    image, T as a Python int, then arrays and scalars of the types given here (cpu_engine._run_frame
    sees to it)."""
    sample = (np.zeros((1, n_inputs), np.float32), 1) + tuple(program_arguments) + tuple(point_arguments)
    return run_chain.compile(tuple(numba.typeof(a) for a in sample))


def warm_up() -> None:
    """Compile the kernels (or load them from numba's cache: ~15 s the first time on a small
    machine, under a second after) on a two-layer network; the types, not the model, decide
    what is compiled, so every chain model then starts at full speed (`make setup` calls this)."""
    rng = np.random.default_rng(0)
    image = rng.random((1, 4 * 4 * 1), dtype=np.float32)  # 4x4x1 -> 3x3 conv (pad 1) -> 4x4x2 -> dense 3
    taps = (np.arange(9, dtype=INDEX_DTYPE).reshape(1, 9) + np.zeros((16, 1), INDEX_DTYPE)).ravel()
    layout = np.zeros((2, LAYOUT_COLUMNS), np.int64)
    layout[0, [KIND, WEIGHT_START, WEIGHT_ROWS, WEIGHT_COLS, POSITIONS, N_OUT]] = [CONV, 0, 9, 2, 16, 32]
    layout[1, [KIND, WEIGHT_START, WEIGHT_ROWS, WEIGHT_COLS, BIAS_START, N_OUT]] = [DENSE, 18, 32, 3, 32, 3]
    run_chain(image, 2, layout, rng.random(18 + 96, dtype=np.float32), taps, 32, np.zeros(35, np.float32),
              np.ones(2, np.float32), np.full(35, 0.5, np.float32), True)
