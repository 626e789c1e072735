"""`snn-agent profile`: accuracy against T for each target, and the operating points stored with
the model (model_dir/operating_points.json, one table per backend) that the governor runs on:

  cpu       the ideal target on our CPU engine: latency measured, energy from the CPU meter
  lava      the loihi target, searched with LoihiEngine (bit-exact with Lava): latency and energy
            modelled for the chip (T + depth steps; counted ops x Davies et al. 2018 + static power)
  openvino  the DNN: frame-decimation rates instead of T
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Optional
import numpy as np

from ..backends.cpu import CpuBackend
from ..data import datasets
from ..data.prepare import model_input
from ..engine import SNNEngine
from ..engine.dnn import predict
from ..evaluation import accuracy, accuracy_vs_timesteps
from ..energy.constants import LoihiEnergy
from ..engine.loihi_engine import LoihiEngine
from ..ir import ModelFormatError, SNNModel
from ..progress import PhasedProgress, ProgressBar
from .calibration import BIAS_IMAGES, LAYER_SCALES, dnn_channel_rates
from .operating_points import (DEFAULT_GRID, DEFAULT_THRESHOLD_SCALES, DEFAULT_V_INITS, LATENCY_BUDGET_S,
                               LOIHI_V_DECAYS, MeasuredCost, PointTable, decimation_points, label_persistence,
                               loihi_cost, mark_pareto, remeasure_side_by_side, search, search_steps)

# Parameter enhancement pays at small T; past this the plain conversion is kept, which saves
# most of the profiling time (large T dominate it). Per-layer scales and bias calibration, which
# cost some 50 more runs per T, only up to LAYER_ENHANCE_MAX_T, where rounding is coarsest.
ENHANCE_MAX_T = 32
LAYER_ENHANCE_MAX_T = 8


# Fewer samples than this in either split measure nothing: one sample moves an accuracy by 5 points.
MIN_SPLIT_SAMPLES = 20
# What `profile` takes without --n and --calib-n: as many images per split as the searches run in
# DEFAULT_BUDGET_MIN (with convert, five minutes for the suite's small CNNs on this 2-core
# machine), at most MAX_IMAGES (held-out standard error ~0.7 points at 90 %), at least
# MIN_IMAGES (~2 points), whatever the budget.
DEFAULT_BUDGET_MIN = 3.5
MAX_IMAGES = 2000
MIN_IMAGES = 200
SPEED_T = 16  # the T at which an engine's speed is measured for the budget
# Held-out frames whose counted ops price every loihi point (the same frames for each, so points
# compare paired). A frame's synaptic ops vary by 10-13 % (the suite's VGG-style CNN, T = 4 and 32),
# so the mean of 32 is within ~2 % (one standard error); 100 cost the loihi search a third of its time.
ENERGY_FRAMES = 32
# besides the searches: the DNN's accuracy, the CPU backend's latency side by side, OpenVINO's
FIXED_COST_S = LATENCY_BUDGET_S + 15.0


@dataclass
class ProfileData:
    calib: tuple  # (x, labels) used to choose neuron parameters
    heldout: tuple  # (x, labels) every reported accuracy comes from
    name: str
    split: str = ""  # how the samples were divided, in words (printed by the CLI)


def split_data(spec: str, model: SNNModel, n_test: int, n_calib: int) -> ProfileData:
    """Named data sets: calibrate on the training split, report on the test split. User files:
    the first samples calibrate, the rest are held out; `n_calib` of them, or, in a data set too
    small to hold `n_calib` and a held-out split as large, half of it (calibration and held-out
    halves). Refuses only a data set too small to give MIN_SPLIT_SAMPLES to each split."""
    pre = model.network.preprocessing
    if spec in datasets.NAMED_DATASETS:
        test = datasets.load(spec, "test").subset(n_test)
        calib = datasets.load(spec, "train").subset(n_calib)
        split = f"{len(calib)} training samples calibrate, {len(test)} test samples are held out"
    else:
        data = datasets.load(spec)
        chosen = n_calib if len(data) >= 2 * n_calib else len(data) // 2
        if min(chosen, len(data) - chosen) < MIN_SPLIT_SAMPLES:
            raise datasets.DatasetError(
                f"{spec}: {len(data)} samples; profiling needs at least {MIN_SPLIT_SAMPLES} to choose the neuron "
                f"parameters and {MIN_SPLIT_SAMPLES} more to measure them on (the held-out split)")
        calib, test = data.subset(chosen), data.subset(n_test, offset=chosen)
        split = f"the first {len(calib)} of {len(data)} samples calibrate, the next {len(test)} are held out" + \
            ("" if chosen == n_calib else f" (--calib-n={n_calib} would leave too few to hold out: split in halves)")
    return ProfileData((model_input(calib, pre), calib.labels), (model_input(test, pre), test.labels), test.name,
                       split)


def within_budget(model_dir: str, model: SNNModel, data: ProfileData, grid, budget_s: float, loihi: bool,
                  heldout_given: bool = False, calib_given: bool = False, per_layer: bool = False) -> ProfileData:
    """`data` cut to the images per split (the same number, at least MIN_IMAGES) whose profile fits
    budget_s (_planned_work over each engine's measured speed; the two targets' searches side by
    side where side_by_side()). A split the user sized (heldout_given, calib_given) keeps its size,
    and its time counts against the budget."""
    plans = _planned_work(model_dir, model, data, grid, loihi, per_layer)
    heldout_n, calib_n = len(data.heldout[1]), len(data.calib[1])

    def sizes(n: int) -> tuple:
        return calib_n if calib_given else min(n, calib_n), heldout_n if heldout_given else min(n, heldout_n)

    def seconds(n: int) -> float:
        each = [work(*sizes(n)) / speed for work, speed in plans.values()]
        return FIXED_COST_S + (max(each) if side_by_side() else sum(each))

    n = max(heldout_n, calib_n)
    while n > MIN_IMAGES and seconds(n) > budget_s:
        n = max(MIN_IMAGES, int(n * 0.9))
    c, h = sizes(n)
    planned_s = seconds(n)
    split = data.split if (c, h) == (calib_n, heldout_n) else \
        f"{data.split}; the budget takes the first {c} calibration and {h} held-out samples"
    speeds = ", ".join(f"{name} {speed:.0f}" for name, (_, speed) in plans.items())
    split += (f" (~{planned_s / 60:.1f} of --budget-min {budget_s / 60:g} minutes, from the engines' speed "
              f"measured here: {speeds} image-steps/s)")
    if planned_s > budget_s:
        parts = ", ".join(f"{name} ~{work(c, h) / speed / 60:.1f}" for name, (work, speed) in plans.items())
        split += (f"; OVER the budget even at {n} images ({parts} minutes of search): --no-loihi or a shorter "
                  f"--timesteps grid would cut it")
    return ProfileData((data.calib[0][:c], data.calib[1][:c]), (data.heldout[0][:h], data.heldout[1][:h]), data.name,
                       split)


def _planned_work(model_dir: str, model: SNNModel, data: ProfileData, grid, loihi: bool, per_layer: bool,
                  energy_frames: int = ENERGY_FRAMES) -> dict:
    """{target: (image-steps it plans for (calibration, held-out) images, its engine's image-steps
    per second measured on a few calibration frames)}: target_work and the energy runs of
    at most two loihi points per T (the plain and a searched one). Points for other weights
    (--weights) are not planned."""
    x, labels = data.calib[0][:64], data.calib[1][:64]
    n_layers = len(model.thresholds)
    plans = {}
    if model.target == "ideal":
        tiers = _tiers(grid, [], (), per_layer)
        plans["ideal"] = (lambda c, h: sum(target_work("ideal", tiers, c, h, model.neuron, n_layers,
                                                    grid).values()),
                          engine_speed(SNNEngine(model).run, x, labels))
    if loihi:
        target = loihi_model(model_dir, data)
        loihi_tiers = _tiers(grid, [], LOIHI_V_DECAYS, per_layer)
        plans["loihi"] = (lambda c, h: sum(target_work("loihi", loihi_tiers, c, h, target.neuron, n_layers,
                                                    grid).values())
                          + 2 * min(energy_frames, h) * sum(grid),
                          engine_speed(LoihiEngine(target).run, x[:16], labels[:16]))
    return plans


def side_by_side() -> bool:
    """Whether `profile` searches the loihi target in a second process beside the ideal target's:
    where there is a second core (their engines are single-threaded)."""
    return (os.cpu_count() or 1) >= 2


def engine_speed(run, x: np.ndarray, labels: np.ndarray) -> float:
    """Image-steps per second of `run` as the searches call it (evaluation.accuracy's batches) at
    SPEED_T, after a first call that compiles what numba has not cached."""
    accuracy(run, x[:2], labels[:2], SPEED_T)
    start = time.perf_counter()
    accuracy(run, x, labels, SPEED_T)
    return len(x) * SPEED_T / (time.perf_counter() - start)


def _tiers(grid, reference_rates: Optional[list], v_decays: tuple, per_layer: bool = False) -> list:
    """(T values, label, search options) of each tier: up to LAYER_ENHANCE_MAX_T the bias
    calibration (and with per_layer the per-layer threshold scales before it), up to
    ENHANCE_MAX_T the global threshold scale and v_init (and the leak, where the target has one:
    v_decays), the plain conversion above it. reference_rates None: no bias calibration."""
    small = dict(reference_rates=reference_rates, v_decays=v_decays, **({} if per_layer else dict(layer_scales=())))
    tiers = [([t for t in grid if t <= LAYER_ENHANCE_MAX_T],
              f"T <= {LAYER_ENHANCE_MAX_T}, {'per-layer and ' if per_layer else ''}bias", small),
             ([t for t in grid if LAYER_ENHANCE_MAX_T < t <= ENHANCE_MAX_T], f"T <= {ENHANCE_MAX_T}, global",
              dict(layer_scales=(), v_decays=v_decays)),
             ([t for t in grid if t > ENHANCE_MAX_T], f"T > {ENHANCE_MAX_T}, plain",
              dict(threshold_scales=(), v_inits=(), layer_scales=()))]
    return [tier for tier in tiers if tier[0]]


def _tier_work(name: str, tiers: list, calib_n: int, heldout_n: int, neuron, n_layers: int, one_run: bool,
               plain_known: bool = True) -> dict:
    """{phase: image-steps} of each tier's search (search_steps) on splits of these sizes, for the
    profile's one progress and its budget. plain_known: the search is given the plain conversion's
    held-out accuracy."""
    work = {}
    for timesteps, label, options in tiers:
        pairs = [(s, v) for s in options.get("threshold_scales", DEFAULT_THRESHOLD_SCALES)
                 for v in options.get("v_inits", DEFAULT_V_INITS)]
        n_options = 1 + sum(pair != (neuron.threshold_scale, neuron.v_init) for pair in pairs)
        work[f"{name}: operating points ({label})"] = search_steps(
            timesteps, calib_n, heldout_n, n_options, n_layers, options.get("layer_scales", LAYER_SCALES),
            options.get("v_decays", ()), options.get("reference_rates") is not None, one_run, plain_known)
    return work


def target_work(name: str, tiers: list, calib_n: int, heldout_n: int, neuron, n_layers: int, grid) -> dict:
    """{phase: image-steps} of a target's profile (without points for other weights): the plain
    conversion's accuracy at every T from one run at the largest (the Loihi-exact engine's forks
    and drains not counted), then the searches."""
    return {f"{name}: accuracy vs T": heldout_n * max(grid),
            **_tier_work(name, tiers, calib_n, heldout_n, neuron, n_layers, one_run=True)}


def _search_points(name: str, run, cost, data: ProfileData, neuron, tiers: list, phases: PhasedProgress,
                   latency_kind: str = "measured", weights: str = "", scores_by_timesteps=None,
                   plain_heldout: Optional[dict] = None) -> list:
    """The operating points of every tier (_tiers), each search one phase of `phases` (_tier_work).
    For weights trained for their T (weights) no bias calibration (reference_rates None in the tiers):
    their SNN at that T computes what they were trained on, not the Clip DNN whose rates
    calibration matches (calibrated anyway, the bundled T=1 point lost 0.67 points on the test set)."""
    points = []
    for timesteps, label, options in tiers:
        points += search(run, cost, data.calib, data.heldout, neuron, timesteps, latency_kind=latency_kind,
                         progress=phases.part(f"{name}: operating points ({label})"), weights=weights,
                         scores_by_timesteps=scores_by_timesteps, plain_heldout=plain_heldout, **options)
    return mark_pareto(points)


def _calibration(data: ProfileData, **notes) -> dict:
    """What a table records of its data: the set, the split's sizes and how they were chosen."""
    return {"data": data.name, "calibration_samples": len(data.calib[1]),
            "heldout_samples": len(data.heldout[1]), "split": data.split, **notes}


def profile_ideal(model_dir: str, data: ProfileData, grid=DEFAULT_GRID, latency_frames: int = 200,
                  trained_weights: tuple = (), per_layer: bool = False):
    """Accuracy vs T with the plain conversion, and the CPU backend's operating points (latency
    measured on this CPU, one frame at a time; energy from the CPU backend's meter).
    trained_weights: (directory, T grid) pairs (`--weights DIR:T[,T...]`): each directory's network, trained
    for those T, gets its points at them too, searched the same way (OperatingPoint.weights)."""
    model = SNNModel.load(model_dir)
    engine = SNNEngine(model)
    n_layers = len(model.thresholds)
    tiers = _tiers(grid, dnn_channel_rates(model, data.calib[0][:BIAS_IMAGES]), (), per_layer)
    trained = [(directory, SNNEngine(SNNModel.load(os.path.join(model_dir, directory))),
                _tiers(its_grid, None, (), per_layer)) for directory, its_grid in trained_weights]
    work = target_work("ideal", tiers, len(data.calib[1]), len(data.heldout[1]), model.neuron, n_layers, grid)
    for directory, its_engine, its_tiers in trained:
        work.update(_tier_work(f"ideal, weights {directory}", its_tiers, len(data.calib[1]), len(data.heldout[1]),
                               its_engine.model.neuron, n_layers, one_run=True, plain_known=False))
    phases = PhasedProgress(ProgressBar("ideal: accuracy and operating points"), work)
    plain = accuracy_vs_timesteps(engine.run, *data.heldout, grid, phases.part("ideal: accuracy vs T"),
                                  scores_by_timesteps=engine.scores_by_timesteps)
    # the search leaves latency and energy to the side-by-side measurement of every point below
    points = _search_points("ideal", engine.run, None, data, model.neuron, tiers, phases,
                            scores_by_timesteps=engine.scores_by_timesteps, plain_heldout=plain)
    for directory, its_engine, its_tiers in trained:
        points += _search_points(f"ideal, weights {directory}", its_engine.run, None, data, its_engine.model.neuron,
                                 its_tiers, phases, weights=directory, scores_by_timesteps=its_engine.scores_by_timesteps)
    phases.seconds()
    backend = CpuBackend()
    backend.load(model_dir)
    try:
        cost = MeasuredCost(backend.infer, data.heldout[0][:latency_frames])
        print(f"ideal: latency and energy of every point, side by side (within ~{LATENCY_BUDGET_S:.0f} s)...",
              file=sys.stderr)
        remeasure_side_by_side(points, cost, model.neuron.reset)
    finally:
        backend.close()
    table = PointTable("cpu", "ideal", points, _calibration(
        data, latency="measured: median single-frame wall time of the CPU backend on this machine, "
                      "while the point is held: all points measured in interleaved blocks of frames"))
    return plain, table


def loihi_model(model_dir: str, data: ProfileData):
    """The loihi target of a model directory: its cached one (model_dir/loihi), built on first use
    from the calibration data set the model names, or else from the profile's calibration split."""
    from ..conversion.loihi import LOIHI_DIR, loihi_target, to_loihi

    try:
        return loihi_target(model_dir)[0]
    except ModelFormatError:
        model = SNNModel.load(model_dir)
        print(f"{model_dir}: no loihi target and no calibration data set named; building it from the "
              f"profile's calibration split ({len(data.calib[1])} samples of {data.name})")
        loihi = to_loihi(model, data.calib[0], progress=ProgressBar("loihi: threshold search"))
        loihi.save(os.path.join(model_dir, LOIHI_DIR))
        return loihi


def profile_loihi(model_dir: str, data: ProfileData, grid=DEFAULT_GRID, energy_frames: int = ENERGY_FRAMES,
                  constants: LoihiEnergy = LoihiEnergy(), per_layer: bool = False, show_progress: bool = True):
    """Accuracy vs T of the loihi target (LoihiEngine: bit-exact with Lava's fixed point; every T
    from one forked run), and the lava backend's operating points: the threshold scale, initial
    voltage and leak searched per T with the same engine; latency and energy modelled for the chip
    (operating_points.loihi_cost), not timed on Lava's simulator. show_progress False: no progress
    bar (profile runs it in a second process beside the ideal target's)."""
    model = loihi_model(model_dir, data)
    engine = LoihiEngine(model)
    tiers = _tiers(grid, dnn_channel_rates(SNNModel.load(model_dir), data.calib[0][:BIAS_IMAGES]), LOIHI_V_DECAYS,
                   per_layer)
    phases = PhasedProgress(ProgressBar("loihi: accuracy and operating points") if show_progress else None,
                            target_work("loihi", tiers, len(data.calib[1]), len(data.heldout[1]), model.neuron,
                                        len(model.thresholds), grid))
    plain = accuracy_vs_timesteps(engine.run, *data.heldout, grid, phases.part("loihi: accuracy vs T"),
                                  scores_by_timesteps=engine.scores_by_timesteps)
    cost = loihi_cost(engine, data.heldout[0][:energy_frames], constants)
    points = _search_points("loihi", engine.run, cost, data, model.neuron, tiers, phases, latency_kind="modelled",
                            scores_by_timesteps=engine.scores_by_timesteps, plain_heldout=plain)
    phases.seconds()
    table = PointTable("lava", "loihi", points, _calibration(
        data, latency=f"modelled chip time: (T + {engine.depth}) steps x {constants.timestep_s * 1e6:g} us "
                      f"per step (energy/constants.py); Lava's simulator is not timed",
        energy=f"modelled: ops counted by LoihiEngine on {min(energy_frames, len(data.heldout[1]))} held-out "
               f"frames x Davies et al. 2018 + {constants.static_power_w:.3g} W static over T + {engine.depth} steps"))
    return plain, table


def profile_openvino(model_dir: str, data: ProfileData, dnn_acc: float, latency_frames: int = 200):
    """The DNN backend's operating points: frame-decimation rates (decimation_points), from the
    DNN's held-out accuracy and its OpenVINO latency and energy on the CPU. A skipped frame keeps
    the last label: right as often as the held-out images, in the order the camera replay
    publishes them, repeat the previous image's label (measured, not assumed)."""
    from ..backends.openvino import OpenVinoBackend

    backend = OpenVinoBackend(device="CPU")
    backend.load(model_dir)
    try:
        latency_ms, energy = MeasuredCost(backend.infer, data.heldout[0][:latency_frames])(0, None)
    finally:
        backend.close()
    persistence = label_persistence(data.heldout[1])
    table = PointTable("openvino", "dnn", decimation_points(dnn_acc, latency_ms, energy.joules, energy.kind, persistence),
                       _calibration(data, latency="measured: median single-frame wall time, OpenVINO on the CPU",
                                    accuracy=f"per camera frame: the DNN's on classified frames; a skipped frame "
                                             f"keeps the last label, right with probability {persistence:.3f} x the "
                                             f"DNN's accuracy: the label persistence measured on the {len(data.heldout[1])} "
                                             f"held-out {data.name} images in the order the camera replay publishes "
                                             f"them (a camera watching one scene holds a label longer: profile on a "
                                             f"recording of it)",
                                    label_persistence=persistence))
    return table


def dnn_accuracy(model_dir: str, data: ProfileData) -> float:
    from ..conversion.onnx_import import load_onnx
    from ..conversion.pipeline import SOURCE_ONNX

    network = load_onnx(os.path.join(model_dir, SOURCE_ONNX))
    x, labels = data.heldout
    return float((predict(network, x) == labels).mean())


def plot_profile(targets: dict, dnn_acc: float, tables: list, path: str, title: str) -> None:
    """Left: accuracy against T per target. Right: accuracy against energy, Pareto front marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, table in targets.items():
        left.plot(list(table), [100 * a for a in table.values()], marker="o", label=f"SNN {name}")
    left.axhline(100 * dnn_acc, color="k", linestyle="--", label="DNN")
    left.set(xscale="log", xlabel="timesteps T", ylabel="accuracy (%)", title=title)
    left.set_xscale("log", base=2)
    left.grid(True, alpha=0.3)
    left.legend()
    for table in tables:
        points = sorted(table.points, key=lambda p: p.energy_j)  # the front drawn left to right
        energy = np.array([p.energy_j for p in points])
        acc = np.array([100 * p.accuracy for p in points])
        front = np.array([p.pareto for p in points])
        kind = table.points[0].energy_kind if table.points else ""
        line, = right.plot(energy[front], acc[front], marker="o",
                           label=f"{table.backend} / {table.target} ({kind}) Pareto front")
        right.scatter(energy[~front], acc[~front], marker="x", alpha=0.6, color=line.get_color())
        for p in points:
            text = (f"T={p.timesteps}" + ("*" if p.weights else "")) if p.timesteps else f"1/{p.decimation}"
            right.annotate(text, (p.energy_j, 100 * p.accuracy), fontsize=7,
                           xytext=(3, -8), textcoords="offset points", color=line.get_color())
    right.set(xscale="log", xlabel="energy per inference (J)", ylabel="held-out accuracy (%)",
              title="operating points per backend\n(x: off the front; T=1*: weights trained for that T)")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_points(table: PointTable, out=None) -> None:
    first = table.points[0] if table.points else None
    print(f"\noperating points for backend {table.backend} (target {table.target}), held-out accuracy, "
          f"energy {first.energy_kind if first else ''}, latency {first.latency_kind if first else ''}:", file=out)
    for key in ("latency", "energy", "accuracy"):
        if key in table.calibration:
            print(f"  {key}: {table.calibration[key]}", file=out)
    rate = bool(first and first.timesteps == 0)
    print(f"{'1/r' if rate else 'T':>5}{'accuracy':>10}{'latency ms':>12}{'energy J':>12}  pareto  "
          f"{'' if rate else 'neuron parameters'}", file=out)
    for p in table.points:
        print(f"{p.decimation if rate else p.timesteps:>5}{p.accuracy:>10.4f}{p.latency_ms:>12.4f}{p.energy_j:>12.3e}"
              f"  {'*' if p.pareto else ' ':<6}  {'' if rate else p.enhancement}", file=out)

