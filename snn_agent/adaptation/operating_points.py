"""Operating points: for each T, the neuron parameters that recover accuracy, and what T costs.

TopSpark's parameter enhancement, searched offline per model and backend: for every T in a grid,
the threshold scale and initial membrane potential that maximise accuracy on a calibration split,
then per-layer threshold scales and a bias calibration (calibration.py); then accuracy on a
held-out split, latency and energy per inference are measured for that T. A model may also come
with the same network trained for a small T (OperatingPoint.weights): its points are searched
the same way. The governor picks among these points at run time (the backend applies a point's
T, parameters and weights together). For a DNN backend the points are frame-decimation rates
instead of T (see `decimation_points`).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterable, NamedTuple, Optional

import numpy as np

from ..evaluation import accuracy, accuracy_vs_timesteps
from ..ir import NeuronConfig
from .calibration import (BIAS_IMAGES, BIAS_PASSES, COORDINATE_PASSES, LAYER_SCALES, calibrate_biases,
                          refine_layer_scales)

POINTS_JSON = "operating_points.json"
DEFAULT_GRID = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
DEFAULT_THRESHOLD_SCALES = (0.8, 0.9, 1.0, 1.1)
DEFAULT_V_INITS = (0.25, 0.5, 0.75)
# Leaks tried on the loihi target (Loihi's 12-bit dv: 0.4 %, 1.6 % and 6.25 % of v lost per step).
# A leak drains the charge a rate code counts, so it is expected to lose; it is searched because
# the chip has it and the cost of trying is three runs per T.
LOIHI_V_DECAYS = (16, 64, 256)


@dataclass
class OperatingPoint:
    timesteps: int  # 0 for a DNN backend
    accuracy: float  # on the held-out split
    latency_ms: float
    energy_j: float  # per inference
    energy_kind: str  # measured or modelled
    threshold_scale: float = 1.0
    v_init: float = 0.5
    decimation: int = 1  # DNN backends: classify one frame in `decimation`
    pareto: bool = False
    # "measured" (wall clock on this machine) or "modelled" (e.g. Loihi: chip steps x step time)
    latency_kind: str = "measured"
    layer_threshold_scales: list = field(default_factory=list)  # see NeuronConfig
    bias_shifts: list = field(default_factory=list)
    v_decay: Optional[int] = None  # see NeuronConfig (the loihi target's leak)
    # "": the model's own weights. Else a directory, relative to the model directory, holding a
    # conversion of the same network trained for this T (TopSpark trains at the reduced T too):
    # at T = 1 no neuron parameter recovers what training for it does.
    weights: str = ""

    def neuron(self, reset: str) -> NeuronConfig:
        return NeuronConfig(reset, self.v_init, self.threshold_scale, tuple(self.layer_threshold_scales),
                            tuple(self.bias_shifts), self.v_decay)

    def configuration(self, reset: str) -> tuple:
        """What a backend's infer takes after the frames: (T, neuron parameters, weights)."""
        return self.timesteps, self.neuron(reset), self.weights

    @property
    def enhancement(self) -> str:
        """A short account of the parameters, for tables and logs."""
        parts = [f"thr x{self.threshold_scale:g}", f"v0 {self.v_init:g}"]
        if self.layer_threshold_scales and any(s != 1.0 for s in self.layer_threshold_scales):
            parts.append("layers x" + "/".join(f"{s:g}" for s in self.layer_threshold_scales))
        if self.bias_shifts:
            parts.append("bias cal")
        if self.v_decay:
            parts.append(f"leak dv {self.v_decay}")
        if self.weights:
            parts.append(f"weights trained for T={self.timesteps} ({self.weights})")
        return ", ".join(parts)


@dataclass
class PointTable:
    backend: str
    target: str
    points: list = field(default_factory=list)
    calibration: dict = field(default_factory=dict)  # data set, split sizes

    def save(self, model_dir: str) -> str:
        path = os.path.join(model_dir, POINTS_JSON)
        tables = _read_all(path)
        tables[self.backend] = {"target": self.target, "calibration": self.calibration,
                                "points": [asdict(p) for p in self.points]}
        with open(path, "w") as f:
            json.dump(tables, f, indent=1)
        return path

    @classmethod
    def load(cls, model_dir: str, backend: str) -> Optional["PointTable"]:
        """The table for a backend, or None when the model was not profiled for it."""
        entry = _read_all(os.path.join(model_dir, POINTS_JSON)).get(backend)
        if entry is None:
            return None
        return cls(backend, entry["target"], [OperatingPoint(**p) for p in entry["points"]],
                   entry.get("calibration", {}))


def _read_all(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def mark_pareto(points: list) -> list:
    """A point is on the front when no other point is at least as accurate and cheaper."""
    for p in points:
        p.pareto = not any(q is not p and q.accuracy >= p.accuracy and q.energy_j <= p.energy_j
                           and (q.accuracy > p.accuracy or q.energy_j < p.energy_j) for q in points)
    return points


def search(run: Callable, cost: Optional[Callable], calib: tuple, heldout: tuple, base: NeuronConfig,
           grid: Iterable[int] = DEFAULT_GRID, threshold_scales=DEFAULT_THRESHOLD_SCALES,
           v_inits=DEFAULT_V_INITS, progress: Optional[Callable[[int, int], None]] = None,
           latency_kind: str = "measured", layer_scales=LAYER_SCALES,
           reference_rates: Optional[list] = None, v_decays: Iterable[int] = (), weights: str = "",
           scores_by_timesteps: Optional[Callable] = None, plain_heldout: Optional[dict] = None) -> list:
    """run(x, T, neuron) -> result with .labels and .ops.channel_rates; progress(done, total): in
    image-steps run, against search_steps' total; cost(T, neuron, weights) ->
    (latency_ms, EnergyEstimate), or None to leave latency and energy at 0 for a side-by-side
    measurement afterwards (remeasure_side_by_side). weights: the OperatingPoint.weights that `run`
    runs ("": the model's own). scores_by_timesteps: the engine's, where one run reads every T
    (SNNEngine): parameters shared by several T are then measured at all of them in one run.
    plain_heldout: {T: `base`'s accuracy on heldout}, where already measured (the profile's first
    table): not measured again for the T that keep the plain conversion.

    calib and heldout are (x, labels): parameters are chosen on one and reported on the other, so
    the reported accuracy is not fitted to its own data. `base` is the model's own neuron
    configuration (the plain conversion). Per T: the global (threshold scale, v_init) grid, then
    per-layer threshold scales (layer_scales; empty: none), then a leak (v_decays, Loihi's dv;
    empty: none), then, given the DNN's per-channel rates on calib[0][:BIAS_IMAGES]
    (calibration.dnn_channel_rates), the bias calibration. The searches run on one half of the
    calibration split; what they find is kept only if it also beats what it would replace on the
    other half, images the search did not see (a search over dozens of candidates picks the one
    luckiest on its own images). The bias calibration fits rates, not labels, on the first
    BIAS_IMAGES of the split; it too must not lose accuracy on the second half.
    """
    grid = [int(t) for t in grid]
    plain = replace(base, layer_threshold_scales=(), bias_shifts=())
    options = [plain] + [replace(plain, threshold_scale=s, v_init=v) for s in threshold_scales for v in v_inits
                         if (s, v) != (plain.threshold_scale, plain.v_init)]
    n_layers = len(run(calib[0][:1], 1, plain).ops.channel_rates)
    if progress:
        work = StepCounter(progress, search_steps(grid, len(calib[1]), len(heldout[1]), len(options), n_layers,
                                                  layer_scales, v_decays, reference_rates is not None,
                                                  scores_by_timesteps is not None, bool(plain_heldout)))
        run = work.counted_run(run)
        scores_by_timesteps = scores_by_timesteps and work.counted_scores(scores_by_timesteps)
    measure = _Accuracies(run, scores_by_timesteps)
    search_half = (calib[0][0::2], calib[1][0::2])
    check_half = (calib[0][1::2], calib[1][1::2])
    best = _searched(measure, search_half, grid, options, n_layers, layer_scales, v_decays)
    kept = _checked(measure, check_half, grid, best, plain, bias=(calib[0], reference_rates))
    known = plain_heldout if plain_heldout and base == plain else {}
    on_heldout = measure(heldout, {t: neuron for t, neuron in kept.items() if neuron != plain or t not in known})
    on_heldout.update({t: known[t] for t in grid if t not in on_heldout})
    points = [_point(t, on_heldout[t], kept[t], cost, weights, latency_kind) for t in grid]
    if progress:
        work.finish()
    return mark_pareto(points)


class _Accuracies:
    """measure(data, {T: neuron}) -> {T: accuracy on data}; the T that share parameters in one go
    (one run where the engine reads every T from one: scores_by_timesteps)."""

    def __init__(self, run: Callable, scores_by_timesteps: Optional[Callable]):
        self.run, self.scores_by_timesteps = run, scores_by_timesteps

    def __call__(self, data: tuple, neuron_of: dict) -> dict:
        return {t: a for neuron, ts in _grouped(neuron_of)
                for t, a in accuracy_vs_timesteps(self.run, *data, ts, neuron=neuron,
                                                  scores_by_timesteps=self.scores_by_timesteps).items()}


def _searched(measure: _Accuracies, data: tuple, grid: list, options: list, n_layers: int, layer_scales,
              v_decays) -> dict:
    """{T: the most accurate parameters on data}: the global grid (options) at every T at once,
    then per-layer threshold scales, then a leak; on a tie the earlier candidate."""
    on_data = [measure(data, dict.fromkeys(grid, option)) for option in options] \
        if len(options) > 1 else [dict.fromkeys(grid, 0.0)]
    best = {t: options[max(range(len(options)), key=lambda i: on_data[i][t])] for t in grid}
    if layer_scales and n_layers > 1:
        start_accuracy = {t: on_data[options.index(best[t])][t] for t in grid} if len(options) > 1 else \
            measure(data, best)
        best = refine_layer_scales(lambda candidates: measure(data, candidates), best, start_accuracy, n_layers,
                                   layer_scales)
    if v_decays:  # on a tie, no leak
        best = {t: max([best[t]] + [replace(best[t], v_decay=d) for d in v_decays],
                       key=lambda c: accuracy(measure.run, *data, t, c)) for t in grid}
    return best


def _checked(measure: _Accuracies, data: tuple, grid: list, best: dict, plain: NeuronConfig, bias: tuple) -> dict:
    """{T: parameters kept}: the searched ones where they beat the plain conversion on data (images
    the search did not see), else the plain conversion; then, given bias = (calibration images,
    the DNN's rates on their first BIAS_IMAGES or None), their bias calibration where it loses
    nothing on data."""
    changed = {t: neuron for t, neuron in best.items() if neuron != plain}
    images, reference_rates = bias
    plain_on_data = measure(data, dict.fromkeys(grid, plain)) if changed or reference_rates is not None else {}
    best_on_data = measure(data, changed)
    kept, kept_accuracy = {}, {}
    for t in grid:
        better = t in changed and best_on_data[t] > plain_on_data[t]
        kept[t] = best[t] if better else plain
        kept_accuracy[t] = best_on_data[t] if better else plain_on_data.get(t)
    if reference_rates is not None:
        calibrated = {t: calibrate_biases(measure.run, images, t, kept[t], reference_rates) for t in grid}
        calibrated_on_data = measure(data, calibrated)
        kept = {t: calibrated[t] if calibrated_on_data[t] >= kept_accuracy[t] else kept[t] for t in grid}
    return kept


def _point(timesteps: int, accuracy_heldout: float, neuron: NeuronConfig, cost: Optional[Callable], weights: str,
           latency_kind: str) -> OperatingPoint:
    """The operating point of `neuron` at T, its latency and energy from cost (None: 0, for a
    side-by-side measurement afterwards)."""
    latency_ms, joules, energy_kind = 0.0, 0.0, ""
    if cost is not None:
        latency_ms, energy = cost(timesteps, neuron, weights)
        joules, energy_kind = energy.joules, energy.kind
    return OperatingPoint(timesteps, accuracy_heldout, latency_ms, joules, energy_kind, neuron.threshold_scale,
                          neuron.v_init, latency_kind=latency_kind,
                          layer_threshold_scales=list(neuron.layer_threshold_scales),
                          bias_shifts=[list(s) for s in neuron.bias_shifts], v_decay=neuron.v_decay, weights=weights)


def search_steps(grid, calib_n: int, heldout_n: int, n_options: int, n_layers: int, layer_scales=LAYER_SCALES,
                 v_decays=(), bias: bool = False, one_run: bool = False, plain_heldout_known: bool = False) -> int:
    """The image-steps (frames x T of every run) that `search` runs at most with these options:
    the total of its progress, known before it starts. one_run: scores_by_timesteps given;
    plain_heldout_known: plain_heldout given."""
    grid = [int(t) for t in grid]
    steps_of_grid = max(grid) if one_run else sum(grid)  # one run at the largest T, or one per T
    search_n, check_n = (calib_n + 1) // 2, calib_n // 2
    searched = (n_options if n_options > 1 else 0) * search_n * steps_of_grid
    if layer_scales and n_layers > 1:
        searched += COORDINATE_PASSES * n_layers * len(layer_scales) * search_n * sum(grid)
    searched += len(tuple(v_decays)) * search_n * sum(grid)
    if bias:
        searched += BIAS_PASSES * n_layers * min(calib_n, BIAS_IMAGES) * sum(grid) + check_n * sum(grid)
    if not searched:  # nothing can move from the plain conversion
        return 0 if plain_heldout_known else heldout_n * steps_of_grid
    checked = check_n * (steps_of_grid + sum(grid))  # the plain conversion and what the searches found
    return searched + checked + heldout_n * sum(grid)


class StepCounter:
    """Counts the image-steps of the runs it wraps and reports them to progress(done, total)
    against the total expected up front (search_steps), so that a progress bar's time left holds
    for the whole search, not for one T. A search that stops early (no better scale) jumps to the
    end."""

    def __init__(self, progress: Callable[[int, int], None], total: int):
        self.progress, self.total, self.done = progress, max(int(total), 1), 0
        progress(0, self.total)

    def _add(self, steps: int) -> None:
        self.done += steps
        self.progress(min(self.done, self.total - 1), self.total)

    def counted_run(self, run: Callable) -> Callable:
        def counted(x, timesteps, neuron=None):
            result = run(x, timesteps, neuron)
            self._add(len(x) * timesteps)
            return result
        return counted

    def counted_scores(self, scores_by_timesteps: Callable) -> Callable:
        def counted(x, grid, neuron=None):
            scores = scores_by_timesteps(x, grid, neuron)
            self._add(len(x) * max(grid))
            return scores
        return counted

    def finish(self) -> None:
        self.progress(self.total, self.total)


def _grouped(neuron_of: dict) -> list:
    """{T: neuron} -> [(neuron, [T, ...]), ...]: the T values that share parameters."""
    groups: list = []
    for timesteps, neuron in neuron_of.items():
        same = next((ts for known, ts in groups if known == neuron), None)
        if same is None:
            groups.append((neuron, [timesteps]))
        else:
            same.append(timesteps)
    return groups


def label_persistence(labels) -> float:
    """How often a frame shows the label of the frame before it, on a stream of labelled frames in
    the order a camera delivers them: the chance that a frame skipped by decimation still has the
    label of the last classified one."""
    labels = np.asarray(labels)
    return float(np.mean(labels[1:] == labels[:-1])) if len(labels) > 1 else 0.0


def decimation_points(dnn_accuracy: float, latency_ms: float, energy_j: float, energy_kind: str,
                      persistence: float, rates=(1, 2, 3, 4, 6, 8)) -> list:
    """A DNN cannot trade T; it saves energy by classifying one frame in `rate`. The energy per
    camera frame falls as 1/rate. Accuracy is per camera frame: the classified one has the DNN's
    accuracy, each of the rate - 1 skipped ones keeps its label, right when the scene has not
    changed (probability `persistence`, label_persistence of the stream):
    dnn_accuracy * (1 + (rate - 1) * persistence) / rate."""
    return mark_pareto([OperatingPoint(0, dnn_accuracy * (1 + (r - 1) * persistence) / r, latency_ms,
                                       energy_j / r, energy_kind, decimation=r) for r in rates])


class SideBySideCost(NamedTuple):
    """A configuration's cost measured beside others: what a frame costs while the robot holds the
    configuration, and what the first frame right after another configuration costs (a measured
    cost pays then for the caches the other one filled; a modelled one has none: the same)."""

    latency_ms: float  # median
    energy_j: float  # mean
    switch_latency_ms: float
    switch_energy_j: float


# Consecutive frames a configuration runs in MeasuredCost.interleaved before another takes over:
# at most ~20 ms of this machine's time (T <= 12 on the bundled model), shorter than the drifts it
# has to share out, and long enough for a held point to reach the cost it keeps. A point with
# weights of its own needs dozens of frames for that (each frame's dense layer reads only the rows
# of its active inputs): the bundled T=1 point (for_t1), interleaved with the model's own points in
# blocks of 128, took 93 us on a block's first frame, 74 on the next two, 58 on frames 8-15, 57 on
# 16-31 and 53-54 from then on; the model's own T=1 58, 54, 47-50; T=12 396, 292, 256-261.
BLOCK_FRAMES = 64


class MeasuredCost:
    """The cost of an operating point from a backend's infer on real frames, one frame at a time:
    median single-frame latency (measured) and mean energy per frame. Called as cost(T, neuron)
    it measures one configuration alone (what the search needs); `interleaved` measures several
    under the same machine conditions (what a comparison needs). A configuration is what infer takes
    after the frames: (T, neuron) or (T, neuron, weights) (OperatingPoint.configuration)."""

    def __init__(self, infer: Callable, frames: np.ndarray):
        self.infer, self.frames = infer, frames

    def __call__(self, *configuration):
        self.infer(self.frames[:1], *configuration)  # warm-up: first-call allocations are not the cost of T
        results = [self.infer(frame[None], *configuration) for frame in self.frames]
        energy = results[0].energy
        joules = float(np.mean([r.energy.joules for r in results]))
        return 1e3 * float(np.median([r.latency_s for r in results])), type(energy)(joules, energy.kind, energy.source)

    def energy_kind(self, *configuration) -> str:
        """Measured or modelled: what the backend's meter gives for this configuration (one frame)."""
        return self.infer(self.frames[:1], *configuration).energy.kind

    def interleaved(self, configs: list, rounds: int, pause_s: float = 0.0,
                    block: int = BLOCK_FRAMES) -> "list[SideBySideCost]":
        """The SideBySideCost of each configuration, all measured on every frame: the frames go in
        blocks of `block`, and each configuration runs a block's frames back to back, the
        configurations in a random order drawn per block (seeded). This machine's speed drifts
        within a second: measured in blocks of a few hundred frames, one configuration after
        another, two identical configurations came out 34 % apart; in blocks of a few milliseconds
        every configuration sees the same conditions. The order must be random, not rotated: in a
        rotation each configuration always follows the same one.
        A block's first frame is a switch (the previous frame ran another configuration, whose
        data evicted this one's from the caches) and is counted apart: a governor holds a point
        for many frames, and the cost of that is the point's cost. Switching on every frame
        (block=1) made the bundled T=2 point ~1.4x dearer than while held (0.150 against 0.105 ms
        with T=32 and T=128 in the mix) and T=12 hardly (0.373 against 0.366 ms).
        pause_s: idle time before every frame, as between a camera's frames (bench/paced.py);
        0: frames back to back."""
        for configuration in configs:
            self.infer(self.frames[:1], *configuration)
        held = [([], []) for _ in configs]
        switches = [([], []) for _ in configs]
        rng = np.random.default_rng(0)
        previous = None
        for _ in range(rounds):
            for start in range(0, len(self.frames), block):
                for c in rng.permutation(len(configs)):
                    for frame in self.frames[start:start + block]:
                        if pause_s:
                            time.sleep(pause_s)
                        result = self.infer(frame[None], *configs[c])
                        latencies, joules = switches[c] if c != previous else held[c]
                        latencies.append(result.latency_s)
                        joules.append(result.energy.joules)
                        previous = c
        costs = []
        for held_frames, switch_frames in zip(held, switches):
            held_frames = held_frames if held_frames[0] else switch_frames  # block=1: only switches
            switch_frames = switch_frames if switch_frames[0] else held_frames  # a lone configuration
            costs.append(SideBySideCost(*_median_and_mean(*held_frames), *_median_and_mean(*switch_frames)))
        return costs


def _median_and_mean(latencies_s: list, joules: list) -> tuple:
    return 1e3 * float(np.median(latencies_s)), float(np.mean(joules))


# The side-by-side measurement of a profile's points takes at most about this long where a frame is
# slow (the suite's VGG-style CNN: ~0.2 s a frame at T=128 on the batched path); at least
# MIN_LATENCY_FRAMES frames a round, whose median is still one frame's cost within a few percent.
LATENCY_BUDGET_S = 30.0
MIN_LATENCY_FRAMES = 16
SIDE_BY_SIDE_ROUNDS = 5


def side_by_side(cost: Callable, configs: list, rounds: int = SIDE_BY_SIDE_ROUNDS) -> "list[SideBySideCost]":
    """The SideBySideCost of each configuration ((T, neuron[, weights])) under the same conditions:
    a measured cost interleaves them in short blocks (MeasuredCost.interleaved); a modelled one is
    deterministic."""
    if isinstance(cost, MeasuredCost):
        return cost.interleaved(configs, rounds)
    return [SideBySideCost(latency_ms, energy.joules, latency_ms, energy.joules)
            for latency_ms, energy in (cost(*configuration) for configuration in configs)]


def frames_within_budget(cost: MeasuredCost, configs: list, rounds: int = SIDE_BY_SIDE_ROUNDS,
                         budget_s: float = LATENCY_BUDGET_S) -> MeasuredCost:
    """`cost` on as many of its frames as `rounds` side-by-side rounds of `configs` take within
    budget_s (one frame of each timed first), at least MIN_LATENCY_FRAMES."""
    per_round = 0.0
    for configuration in configs:
        cost.infer(cost.frames[:1], *configuration)  # warm-up
        start = time.perf_counter()
        cost.infer(cost.frames[:1], *configuration)
        per_round += time.perf_counter() - start
    fits = int(budget_s / (rounds * max(per_round, 1e-9)))
    return MeasuredCost(cost.infer, cost.frames[:max(MIN_LATENCY_FRAMES, min(len(cost.frames), fits))])


def remeasure_side_by_side(points: list, cost: MeasuredCost, reset: str) -> list:
    """The points' latency and energy measured side by side (see side_by_side), whatever the search
    left there, within LATENCY_BUDGET_S where the frames allow (frames_within_budget); the front
    re-marked."""
    configs = [p.configuration(reset) for p in points]
    cost = frames_within_budget(cost, configs)
    costs = side_by_side(cost, configs, SIDE_BY_SIDE_ROUNDS)
    for p, measured in zip(points, costs):
        p.latency_ms, p.energy_j = measured.latency_ms, measured.energy_j
        p.energy_kind = cost.energy_kind(*p.configuration(reset))
    return mark_pareto(points)


def loihi_cost(engine, frames: np.ndarray, constants=None) -> Callable:
    """A cost function for the `lava` backend from the bit-exact emulation (LoihiEngine): nothing
    is timed, as Lava's CPU simulator says nothing about the chip's speed. A frame occupies the chip
    for T + depth steps (the score layer sits `depth` synapses from the host); latency is that many
    steps x the chip's step time and energy is the counted operations x Davies et al. 2018's
    per-op energies plus static power over those steps (energy.models.loihi_energy), both modelled."""
    from ..energy.constants import LoihiEnergy
    from ..energy.models import EnergyEstimate, loihi_energy

    constants = constants or LoihiEnergy()

    def cost(timesteps: int, neuron: NeuronConfig, weights: str = ""):
        if weights:
            raise ValueError(f"loihi_cost models the engine's own weights, not {weights!r}")
        totals: dict = {}
        batch = max(1, 128 // timesteps)
        for start in range(0, len(frames), batch):
            ops = engine.run(frames[start:start + batch], timesteps, neuron).ops
            for key in ("spikes", "synaptic_ops", "neuron_updates"):
                totals[key] = totals.get(key, 0.0) + float(getattr(ops, key))
        per_frame = {key: value / max(len(frames), 1) for key, value in totals.items()}
        chip_steps = timesteps + engine.depth
        energy = loihi_energy(per_frame, chip_steps, constants)
        return 1e3 * chip_steps * constants.timestep_s, EnergyEstimate(energy.joules, energy.kind, energy.source)
    return cost
