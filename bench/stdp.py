"""TopSpark's training half on the STDP network (Diehl & Cook 2015, snn_agent/learning/stdp*.py).

    PYTHONPATH=. .venv/bin/python bench/stdp.py [--quick]

Fashion-MNIST, 400 excitatory neurons, learning without labels. Splits: training images
[0, 50000) train (the first --train of them), [50000, 55000) label the neurons, [55000, 60000)
validate (choices are made there); the test set is used once per reported network.
1. Search, every T alike (the baseline T's too: the fair baseline is one tuned as well as the reduced
   points): the defaults and --trials random draws of the parameters (stdp_topspark.search_space),
   each trained on --search-train images and validated; the --finalists best confirmed at two more
   seeds on --confirm-train images; the best mean wins (--searched: taken from an earlier results
   file instead). Homeostasis refined: theta's decay as chosen, 4x slower and none, each at two seeds
   on --refine-train images, the best mean kept (the decay acts over more images than a search run
   has). Then, on --train images (all 50,000 by default), every T with BindsNET's defaults
   and with its chosen parameters, each at --seeds seeds (reported as their mean, each seed's
   figures beside it: one network's accuracy moves by points with the seed), validated after 5 %, 10 %, 20 %, 40 %, 70 % and all of the
   images (learning curve); the best validated of those networks is kept (early stopping) and
   tested once. Every validation labels the neurons and chooses the readout's margin weight
   (stdp.choose_margin_weight: spike counts plus the end potential's margin).
2. best_point: of the reduced T that cut training energy >= 3.5x, the one with the largest cut whose
   *validation* accuracy is within 2 points of the tuned baseline's (none within: the most
   accurate); its test figures are reported beside the tuned baseline's (and the defaults'), with the
   gap seed by seed (paired: same seeds) and a 95 % t interval of its mean. Its own row beside it
   (read_at_baseline_t, not the reduced-T figure): the same networks, trained at the reduced T, read
   at the baseline T with the baseline's input rate (labelled there; training energy of the reduced T).
   The tuned baseline network is saved (--model-dir, else a temporary directory) and run frozen at
   each of --inference-timesteps with inference parameters searched on validation (what the robot
   does when T is cut; they become its operating points); inference_point: of those T, the one with
   the lowest validation inference energy whose validation accuracy is within 2 points of the
   baseline's (chosen by the bench, not by hand), tested once.
3. Speed: ours and BindsNET's DiehlAndCook2015 on the same images, same T, same network, in this
   run (BindsNET from its own venv, --bindsnet-python); scaling: ours at 100 / 400 / 1600 neurons.
4. Lava: the network with LearningDense + STDPLoihi on a few images, beside ours on the same ones.
Energy per image is **modelled** (operation counts priced with Loihi's figures,
snn_agent/energy/constants.py LoihiEnergy: synaptic op 23.6 pJ, synaptic update 120 pJ, neuron update
52 / 81 pJ); CPU time per image is **measured** (on a shared machine: noisy).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from results_file import output_path, write_results  # noqa: E402
from snn_agent.data import datasets  # noqa: E402
from snn_agent.energy.constants import LoihiEnergy  # noqa: E402
from snn_agent.learning import stdp, stdp_lava, stdp_topspark  # noqa: E402
from snn_agent.learning.stdp import StdpParams  # noqa: E402
from snn_agent.learning.stdp_topspark import Enhancement  # noqa: E402

N_CLASSES = 10
BINDSNET_PYTHON = os.environ.get("SNN_AGENT_BINDSNET_PYTHON", "/work/venvs/bindsnet/bin/python")
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stdp_bindsnet_peer.py")
ACCURACY_TOLERANCE = 0.02  # TopSpark: within 2 points of the baseline
TRAINING_REDUCTION_TARGET = 3.5  # TopSpark: training energy 3.5x lower
INFERENCE_REDUCTION_TARGET = 3.3  # TopSpark: inference energy 3.3x lower
HOMEOSTASIS_SLOWER = 4.0  # refine_homeostasis tries theta's decay as searched, this much slower, and none
# the T the tuned baseline network may run at (inference only; inference_point chooses on validation)
INFERENCE_T = (200, 160, 128, 100, 90, 80, 72, 64, 50)
BASE = StdpParams()  # the baseline parameters (main sets its T)


class Splits:
    """Pixels and classes of the train / label / validation / test splits (module doc)."""

    def __init__(self, n_label: int, n_validation: int, n_test: int):
        train = datasets.load("fashion-mnist", "train")
        test = datasets.load("fashion-mnist", "test")
        x, y = stdp.as_pixels(train.images), train.labels
        self.train = x[:50000]
        self.label = (x[50000:50000 + n_label], y[50000:50000 + n_label])
        self.validation = (x[55000:55000 + n_validation], y[55000:55000 + n_validation])
        self.test = (stdp.as_pixels(test.images[:n_test]), test.labels[:n_test])
        self.class_names = train.class_names


SPLITS: Splits | None = None  # set before the worker pool forks: the workers read the images from it


@dataclass(frozen=True)
class Job:
    """One network to train and measure: at T with an enhancement of the baseline parameters, on
    the first n_train training images, labelled and validated on the first n_eval of those splits
    (and tested: test); validated also after each of `checkpoints` training images (learning curve)."""

    T: int
    enhancement: Enhancement
    n_train: int
    n_eval: int
    seed: int = 0
    test: bool = False
    checkpoints: tuple = ()
    save_to: str = ""  # a model directory to save the trained network in ("": none)
    read_at: int = 0  # with test: the trained network also read at this T (read_at_t; 0: not)


def label_and_validate(network: stdp.StdpNetwork, n_eval: int, seed: int) -> tuple[float, float]:
    """Label the neurons, choose the readout's margin weight on validation (it goes into
    network.params): the validation accuracy with it, and with spike counts alone."""
    label_images, label_classes = SPLITS.label
    network.assign_labels(network.respond(label_images[:n_eval], seed + 1).spike_counts, label_classes[:n_eval],
                          N_CLASSES)
    images, classes = SPLITS.validation[0][:n_eval], SPLITS.validation[1][:n_eval]
    record = network.respond(images, 2)
    weight, accuracy = stdp.choose_margin_weight(network, record, classes, N_CLASSES)
    network.params = replace(network.params, margin_weight=weight)
    return accuracy, float(np.mean(network.classify(record.spike_counts, N_CLASSES) == classes))


def frames_with_few_spikes(record: stdp.RunRecord) -> dict:
    """The fractions of images that drew no output spike, and exactly one (counts alone cannot rank
    the classes of the first, and rank the second by one neuron's label)."""
    totals = record.spike_counts.sum(axis=1)
    return {"no_spike": float(np.mean(totals == 0)), "one_spike": float(np.mean(totals == 1))}


def read_at_t(network: stdp.StdpNetwork, timesteps: int, n_eval: int, seed: int) -> dict:
    """The trained network run frozen at `timesteps` with the baseline's input rate (as the baseline
    reads an image: the same input spikes), its own neuron parameters: labelled at that T, margin
    weight chosen on validation, tested once. Training energy stays that of the T it trained at."""
    params = replace(network.params.with_timesteps(timesteps), input_rate=BASE.input_rate, margin_weight=0.0)
    reader = stdp.StdpNetwork(params, network.weights, network.theta, network.labels)
    validation, _ = label_and_validate(reader, n_eval, seed)
    accuracy, record = stdp.accuracy(reader, *SPLITS.test, N_CLASSES)
    return {"T": timesteps, "validation_accuracy": validation, "test_accuracy": accuracy,
            "margin_weight_per_mv": reader.params.margin_weight,
            "inference_energy_j": stdp_topspark.modelled_energy_j(record.mean_ops(), learning=False)}


def measure(job: Job) -> dict:
    """Train (no labels), label, validate (and test): accuracies, modelled energies, measured times.
    With checkpoints, the network validated best at any of them is the one kept and reported (early
    stopping, chosen on validation); its training figures are those of the images it trained on."""
    params = stdp_topspark.enhance(BASE, job.T, job.enhancement)
    network = stdp.StdpNetwork.create(params, job.seed)
    ends = sorted({c for c in job.checkpoints if c < job.n_train}) + [job.n_train]
    records, curve, start, best = [], [], 0, None
    for k, end in enumerate(ends):
        records.append(network.train(SPLITS.train[start:end], 1000 * job.seed + k))
        start = end
        validation, counts_validation = label_and_validate(network, job.n_eval, job.seed)
        curve.append({"images": end, "validation_accuracy": validation,
                      "validation_accuracy_counts_readout": counts_validation})
        if best is None or validation > best["validation_accuracy"]:
            best = {**curve[-1], "records": len(records),
                    "network": stdp.StdpNetwork(network.params, network.weights.copy(), network.theta.copy(),
                                                network.labels.copy())}
    network, kept = best["network"], records[:best["records"]]
    trained = stdp.RunRecord(np.concatenate([r.spike_counts for r in kept]), np.concatenate([r.op_counts for r in kept]),
                             sum(r.seconds for r in kept), sum(r.cpu_seconds for r in kept))
    row = {"T": job.T, "enhanced": job.enhancement != stdp_topspark.NONE, "enhancement": job.enhancement.to_dict(),
           "seed": job.seed, "n_train": job.n_train, "stopped_at_images": best["images"],
           "validation_accuracy": best["validation_accuracy"],
           "validation_accuracy_counts_readout": best["validation_accuracy_counts_readout"],
           "margin_weight_per_mv": network.params.margin_weight,
           "training_energy_j": stdp_topspark.modelled_energy_j(trained.mean_ops(), learning=True),
           "training_energy_j_per_run": stdp_topspark.modelled_energy_j(trained.mean_ops(), learning=True) * best["images"],
           "training_ops": trained.mean_ops(), "cpu_s_per_training_image": trained.cpu_seconds / best["images"],
           "wall_s_per_training_image": trained.seconds / best["images"],
           "mean_theta_mv": float(network.theta.mean())}
    if len(curve) > 1:
        row["learning_curve"] = curve
    if job.test:
        accuracy, inference = stdp.accuracy(network, *SPLITS.test, N_CLASSES)
        row.update(test_accuracy=accuracy,
                   test_accuracy_counts_readout=float(np.mean(network.classify(inference.spike_counts, N_CLASSES)
                                                              == SPLITS.test[1])),
                   test_frames=frames_with_few_spikes(inference),
                   inference_energy_j=stdp_topspark.modelled_energy_j(inference.mean_ops(), learning=False),
                   inference_ops=inference.mean_ops(),
                   cpu_s_per_inference_image=inference.cpu_seconds / len(SPLITS.test[1]))
        if job.read_at:
            row["read_at_t"] = read_at_t(network, job.read_at, job.n_eval, job.seed)
    if job.save_to:
        network.save(job.save_to, SPLITS.class_names)
    return row


def mean_over_seeds(runs: list) -> dict:
    """One row for one T and parameter set trained at several seeds (measure()'s rows, same T and
    enhancement): every number (and every dict of numbers) the mean over the seeds (the readout's
    margin weights: each seed's), the learning
    curve averaged checkpoint by checkpoint, the test accuracy's spread over the seeds (points), and
    each seed's own row (per_seed). The seed spread says how much of a difference is noise."""
    def mean(values):
        if all(v == values[0] for v in values):
            return values[0]
        if all(isinstance(v, dict) for v in values):
            return {k: mean([v[k] for v in values]) for k in values[0]}
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return float(np.mean(values))
        return values

    row = {k: mean([r[k] for r in runs]) for k in runs[0] if k not in ("seed", "learning_curve")}
    row["margin_weight_per_mv"] = [r["margin_weight_per_mv"] for r in runs]  # each seed's choice (a mean is none)
    row["seeds"] = [r["seed"] for r in runs]
    if "learning_curve" in runs[0]:
        row["learning_curve"] = [mean(points) for points in zip(*(r["learning_curve"] for r in runs))]
    accuracies = [r["test_accuracy"] for r in runs]
    row["test_accuracy_per_seed"] = accuracies
    row["validation_accuracy_per_seed"] = [r["validation_accuracy"] for r in runs]
    row["test_accuracy_spread_points"] = 100 * (max(accuracies) - min(accuracies))
    row["per_seed"] = runs
    return row


def deployed_at_reduced_t(directory: str, reduced: list, n_trials: int) -> dict:
    """The saved tuned baseline network run frozen at each reduced T (what the robot does when the
    governor cuts T): per T the network's own parameters and n_trials random draws from
    stdp_topspark.inference_space applied on top of them, each validated with the labels the
    neurons got at the baseline T (the robot keeps them); the best on validation (with its
    validation energy) is tested once and written as the directory's operating point for that T."""
    network = stdp.StdpNetwork.load(directory)
    result, points, notes = {}, {}, {}
    for t in reduced:
        trials = []
        for e in [stdp_topspark.NONE] + stdp_topspark.draw(stdp_topspark.inference_space(BASE.timesteps, t),
                                                           n_trials, seed=t):
            params = stdp_topspark.enhance(network.params, t, e)
            record = network.run(SPLITS.validation[0], False, 2, params)
            weight, validation = stdp.choose_margin_weight(network, record, SPLITS.validation[1], N_CLASSES)
            trials.append((e, validation, replace(params, margin_weight=weight), record))
        e, validation, points[t], validated = max(trials, key=lambda trial: trial[1])
        accuracy, record = stdp.accuracy(network, *SPLITS.test, N_CLASSES, params=points[t])
        result[str(t)] = {"enhancement": e.to_dict(), "margin_weight_per_mv": points[t].margin_weight,
                          "validation_accuracy": validation,
                          "validation_inference_energy_j": stdp_topspark.modelled_energy_j(validated.mean_ops(),
                                                                                           learning=False),
                          "test_accuracy": accuracy, "test_frames": frames_with_few_spikes(record),
                          "inference_energy_j": stdp_topspark.modelled_energy_j(record.mean_ops(), learning=False),
                          "cpu_s_per_inference_image": record.cpu_seconds / len(SPLITS.test[1]),
                          "trials": [{"enhancement": e.to_dict(), "validation_accuracy": a} for e, a, _, _ in trials]}
        notes[t] = {"enhancement": e.to_dict(), "validation_accuracy": validation,
                    "chosen_by": "bench/stdp.py inference search (validation), on top of the network's parameters"}
        print(f"  tuned baseline network at T={t}: validation {100 * validation:.1f} %, test {100 * accuracy:.1f} %",
              flush=True)
    stdp.save_operating_points(directory, points, notes)
    return result


def inference_point(baseline: dict, deployed: dict) -> dict:
    """The T to run the tuned baseline network at, chosen on validation: of the T (deployed) whose
    validation accuracy is within the tolerance of the baseline's, the one with the lowest
    validation inference energy (modelled); none within: the most accurate. Its test figures,
    measured once, are reported beside the baseline's."""
    within = {t: d for t, d in deployed.items()
              if d["validation_accuracy"] >= baseline["validation_accuracy"] - ACCURACY_TOLERANCE}
    t = (min(within, key=lambda t: within[t]["validation_inference_energy_j"]) if within
         else max(deployed, key=lambda t: deployed[t]["validation_accuracy"]))
    d = deployed[t]
    return {"T": int(t), "baseline_T": baseline["T"],
            "chosen_by": "lowest validation inference energy within 2 points of the baseline's validation accuracy",
            "validation_accuracy": d["validation_accuracy"], "baseline_validation_accuracy": baseline["validation_accuracy"],
            "within_tolerance_on_validation": bool(within), "accuracy": d["test_accuracy"],
            "baseline_accuracy": baseline["test_accuracy"],
            "accuracy_gap_points": 100 * (baseline["test_accuracy"] - d["test_accuracy"]),
            "inference_energy_reduction": baseline["inference_energy_j"] / d["inference_energy_j"],
            "within_tolerance_on_test": bool(baseline["test_accuracy"] - d["test_accuracy"] <= ACCURACY_TOLERANCE),
            "target_met": bool(baseline["test_accuracy"] - d["test_accuracy"] <= ACCURACY_TOLERANCE
                               and baseline["inference_energy_j"] / d["inference_energy_j"] >= INFERENCE_REDUCTION_TARGET)}


def run_jobs(jobs: list, workers: int, what: str, started: float) -> list:
    """measure() every job on a pool of forked workers; rows in the jobs' order, progress printed."""
    rows = [None] * len(jobs)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for done, (i, row) in enumerate(pool.imap_unordered(measure_numbered, list(enumerate(jobs))), 1):
            rows[i] = row
            print(f"  [{time.time() - started:6.0f} s] {what} {done}/{len(jobs)}: T={row['T']} seed={row['seed']} "
                  f"{row['n_train']} images -> validation {100 * row['validation_accuracy']:.1f} %", flush=True)
    return rows


def measure_numbered(numbered: tuple) -> tuple:
    return numbered[0], measure(numbered[1])


def search(all_t: list, n_trials: int, n_search: int, n_eval: int, n_finalists: int, n_confirm: int,
           workers: int, started: float) -> dict:
    """Per T (the baseline's included, same budget): random search (the plain parameters and
    n_trials draws from stdp_topspark.search_space, n_search training images each, one seed), then
    the n_finalists best confirmed with n_confirm training images at two other seeds; the chosen
    enhancement has the best mean validation accuracy of the two. Every run is validated as the
    final ones are (margin readout, early stopping: here the best of a quarter, half and all of its
    images), so parameters that act over many images (homeostasis' decay) are judged on runs long
    enough to show it."""
    candidates = {t: [stdp_topspark.NONE] + stdp_topspark.draw(stdp_topspark.search_space(BASE.timesteps, t),
                                                                n_trials, seed=t) for t in all_t}
    jobs = [Job(t, e, n_search, n_eval, checkpoints=(n_search // 4, n_search // 2)) for t in all_t for e in candidates[t]]
    explored = run_jobs(jobs, workers, "search", started)
    best = {t: stdp_topspark.finalists([(r["enhancement"], r["validation_accuracy"]) for r in explored if r["T"] == t],
                                       n_finalists) for t in all_t}
    jobs = [Job(t, Enhancement(**e), n_confirm, SPLITS.label[1].size, seed, checkpoints=(n_confirm // 4, n_confirm // 2))
            for t in all_t
            for e, _ in best[t] for seed in (1, 2)]
    confirmed = run_jobs(jobs, workers, "finalists", started)
    chosen = {}
    for t in all_t:
        scores = [(e, float(np.mean([r["validation_accuracy"] for r in confirmed if r["T"] == t and r["enhancement"] == e])))
                  for e, _ in best[t]]
        e, score = max(scores, key=lambda pair: pair[1])
        chosen[t] = {"enhancement": Enhancement(**e), "confirmed_validation_accuracy": score,
                     "trials": [{"enhancement": r["enhancement"], "validation_accuracy": r["validation_accuracy"]}
                                for r in explored if r["T"] == t],
                     "finalists": [{"enhancement": r["enhancement"], "seed": r["seed"],
                                    "validation_accuracy": r["validation_accuracy"]} for r in confirmed if r["T"] == t]}
    return chosen


def searched_before(path: str, all_t: list) -> dict:
    """Each T's chosen parameters (and its search record) from an earlier stdp.json's `searched`,
    instead of searching again; ValueError where that file did not search a T asked for."""
    with open(path) as f:
        previous = json.load(f)
    missing = [t for t in all_t if str(t) not in previous.get("searched", {})]
    if missing:
        raise ValueError(f"{path} has no search for T={missing}")
    return {t: {**previous["searched"][str(t)], "enhancement": Enhancement(**previous["searched"][str(t)]["enhancement"]),
                "reused_from": {"file": path, "run": previous.get("run")}} for t in all_t}


def decay_variants(e: Enhancement) -> list:
    """e with theta's decay as chosen, HOMEOSTASIS_SLOWER times slower, and none (the baseline's
    1e7 steps), without repeats."""
    slower = None if e.tau_theta_images is None else e.tau_theta_images * HOMEOSTASIS_SLOWER
    variants = [replace(e, tau_theta_images=tau) for tau in (e.tau_theta_images, slower, None)]
    return [v for i, v in enumerate(variants) if v not in variants[:i]]


def refine_homeostasis(chosen: dict, n_refine: int, workers: int, started: float) -> None:
    """Per T (every T alike), the chosen enhancement's decay_variants, each trained on n_refine
    images at two seeds (1, 2) with early stopping (the best of a quarter, half and all); the best
    mean validation accuracy replaces chosen[t]'s enhancement (its record: `homeostasis`). Why:
    theta's decay acts over thousands of images, which the search's short runs cannot judge."""
    variants = {t: decay_variants(c["enhancement"]) for t, c in chosen.items()}
    jobs = [Job(t, e, n_refine, SPLITS.label[1].size, seed, checkpoints=(n_refine // 4, n_refine // 2))
            for t, es in variants.items() for e in es for seed in (1, 2)]
    rows = run_jobs(jobs, workers, "homeostasis", started)
    for t, es in variants.items():
        scored = [{"enhancement": e.to_dict(), "validation_accuracy_per_seed":
                   [r["validation_accuracy"] for r in rows if r["T"] == t and r["enhancement"] == e.to_dict()]}
                  for e in es]
        for s in scored:
            s["mean_validation_accuracy"] = float(np.mean(s["validation_accuracy_per_seed"]))
        best = max(scored, key=lambda s: s["mean_validation_accuracy"])
        chosen[t]["enhancement"] = Enhancement(**best["enhancement"])
        chosen[t]["homeostasis"] = {"n_train": n_refine, "seeds": [1, 2], "variants": scored}
        print(f"  T={t}: theta's decay {best['enhancement']['tau_theta_images'] or 'none'} (images), "
              f"validation {100 * best['mean_validation_accuracy']:.1f} % (mean of 2 seeds)", flush=True)


def best_point(baseline: dict, rows: list) -> dict:
    """Chosen on validation, reported on test: of the reduced-T rows that cut training energy by at
    least TRAINING_REDUCTION_TARGET against the tuned baseline, the one with the largest cut whose
    accuracy is within the tolerance of the baseline's; none within it: the most accurate of them
    (the gap then reported); no row cutting enough: the most accurate row."""
    def reduction(r):
        return baseline["training_energy_j"] / r["training_energy_j"]
    cheap = [r for r in rows if reduction(r) >= TRAINING_REDUCTION_TARGET] or rows
    within = [r for r in cheap if r["validation_accuracy"] >= baseline["validation_accuracy"] - ACCURACY_TOLERANCE]
    best = max(within, key=reduction) if within else max(cheap, key=lambda r: r["validation_accuracy"])
    return {"T": best["T"], "baseline_T": baseline["T"], "enhanced": best["enhanced"],
            "enhancement": best["enhancement"], "baseline_enhancement": baseline["enhancement"],
            "training_energy_reduction": baseline["training_energy_j"] / best["training_energy_j"],
            # over the whole run (per image x the images the kept network trained on: early stopping differs per T)
            "training_energy_reduction_per_run": baseline["training_energy_j_per_run"] / best["training_energy_j_per_run"],
            "inference_energy_reduction": baseline["inference_energy_j"] / best["inference_energy_j"],
            "training_cpu_time_reduction": baseline["cpu_s_per_training_image"] / best["cpu_s_per_training_image"],
            "inference_cpu_time_reduction": baseline["cpu_s_per_inference_image"] / best["cpu_s_per_inference_image"],
            "accuracy": best["test_accuracy"], "baseline_accuracy": baseline["test_accuracy"],
            "accuracy_gap_points": 100 * (baseline["test_accuracy"] - best["test_accuracy"]),
            "seeds": best["seeds"], "accuracy_per_seed": best["test_accuracy_per_seed"],
            "baseline_accuracy_per_seed": baseline["test_accuracy_per_seed"],
            "validation_accuracy": best["validation_accuracy"],
            "baseline_validation_accuracy": baseline["validation_accuracy"],
            "within_tolerance_on_validation": bool(within),
            "within_tolerance_on_test": bool(baseline["test_accuracy"] - best["test_accuracy"] <= ACCURACY_TOLERANCE),
            **paired_gap(baseline["test_accuracy_per_seed"], best["test_accuracy_per_seed"]),
            **({"read_at_baseline_t": read_at_baseline_t(baseline, best)} if "read_at_t" in best else {})}


def paired_gap(baseline_per_seed: list, per_seed: list) -> dict:
    """The accuracy gap seed by seed (the baseline and the point trained at the same seed: same
    initial weights and input draws), in points: each, their standard deviation and a 95 % t
    interval of the mean (does the seeds' spread allow the gap to be within 2 points?)."""
    gaps = 100 * (np.asarray(baseline_per_seed) - np.asarray(per_seed))
    mean = float(gaps.mean())
    sd = float(gaps.std(ddof=1)) if len(gaps) > 1 else float("nan")
    half = float(stats.t.ppf(0.975, len(gaps) - 1) * sd / np.sqrt(len(gaps))) if len(gaps) > 1 else float("nan")
    return {"accuracy_gap_points_per_seed": gaps.tolist(), "accuracy_gap_points_sd": sd,
            "accuracy_gap_points_95ci": [mean - half, mean + half]}


def read_at_baseline_t(baseline: dict, point: dict) -> dict:
    """Its own row, not the reduced-T figure: the networks trained at the point's T (its training
    energy) read at the baseline T with the baseline's input rate (measure: read_at_t), against the
    baseline on test, seed by seed."""
    per_seed = [r["read_at_t"]["test_accuracy"] for r in point["per_seed"]]
    accuracy = float(np.mean(per_seed))
    return {"trained_at_T": point["T"], "read_at_T": point["read_at_t"]["T"],
            "training_energy_reduction": baseline["training_energy_j"] / point["training_energy_j"],
            "inference_energy_reduction": baseline["inference_energy_j"] / point["read_at_t"]["inference_energy_j"],
            "accuracy": accuracy, "accuracy_per_seed": per_seed, "baseline_accuracy": baseline["test_accuracy"],
            "accuracy_gap_points": 100 * (baseline["test_accuracy"] - accuracy),
            "validation_accuracy": point["read_at_t"]["validation_accuracy"],
            "baseline_validation_accuracy": baseline["validation_accuracy"],
            "within_tolerance_on_test": bool(baseline["test_accuracy"] - accuracy <= ACCURACY_TOLERANCE),
            **paired_gap(baseline["test_accuracy_per_seed"], per_seed)}


def ours_images_per_s(images, n_neurons: int, timesteps: int) -> float:
    network = stdp.StdpNetwork.create(StdpParams(n_neurons=n_neurons, timesteps=timesteps))
    record = network.train(images)
    return len(images) / record.seconds


def bindsnet_images_per_s(images, n_neurons: int, timesteps: int) -> dict:
    """BindsNET's DiehlAndCook2015 in its own venv (a subprocess), or why it did not run."""
    if not os.path.isfile(BINDSNET_PYTHON):
        return {"error": f"BindsNET's venv not found ({BINDSNET_PYTHON}; set SNN_AGENT_BINDSNET_PYTHON, or create "
                         f"it: python3.11 -m venv /work/venvs/bindsnet && /work/venvs/bindsnet/bin/pip install "
                         f"bindsnet==0.3.4): peer not measured"}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "images.npy")
        np.save(path, images)
        done = subprocess.run([BINDSNET_PYTHON, PEER_SCRIPT, path, str(n_neurons), str(timesteps)],
                              capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": f"BindsNET failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(images, timesteps: int) -> dict:
    """Ours, BindsNET, ours again on the same images (the machine is shared: both of ours reported)."""
    stdp.warm_up()
    first = ours_images_per_s(images, 400, timesteps)
    peer = bindsnet_images_per_s(images, 400, timesteps)
    second = ours_images_per_s(images, 400, timesteps)
    result = {"images": len(images), "T": timesteps, "n_neurons": 400,
              "ours_images_per_s": float(np.mean([first, second])), "ours_runs_images_per_s": [first, second],
              "peer": "bindsnet DiehlAndCook2015", "peer_images_per_s": peer.get("images_per_s"), "peer_run": peer}
    if result["peer_images_per_s"]:
        result["speedup"] = result["ours_images_per_s"] / result["peer_images_per_s"]
    return result


def scaling(images, timesteps: int) -> list:
    return [{"n_neurons": n, "s_per_training_image": 1.0 / ours_images_per_s(images, n, timesteps)}
            for n in (100, 400, 1600)]


def lava_beside_ours(splits: Splits, n_train: int, n_eval: int, n_neurons: int, timesteps: int) -> dict:
    """The network trained by Lava (LearningDense + STDPLoihi) and by ours on the same few images
    with the same Lava-compatible rule; both labelled and tested on the same subset by ours."""
    params = stdp_lava.lava_params(StdpParams(n_neurons=n_neurons, timesteps=timesteps))
    label = (splits.label[0][:n_eval], splits.label[1][:n_eval])
    test = (splits.test[0][:n_eval], splits.test[1][:n_eval])
    result = {"n_train": n_train, "n_eval": n_eval, "n_neurons": n_neurons, "T": timesteps, "rule": params.rule.__dict__}
    for name, train in (("ours", stdp_lava.train_ours), ("lava", stdp_lava.train_on_lava)):
        start = time.perf_counter()
        network, ops = train(params, splits.train[:n_train])
        seconds = time.perf_counter() - start
        network.assign_labels(network.respond(label[0]).spike_counts, label[1], N_CLASSES)
        accuracy, _ = stdp.accuracy(network, *test, N_CLASSES)
        result[name] = {"accuracy": accuracy, "s_per_training_image": seconds / n_train,
                        "training_energy_j": stdp_topspark.modelled_energy_j(ops, learning=True), "ops": ops}
    return result


def plot(baseline_plain: dict, baseline: dict, rows: list, deployed: dict, deployed_network: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(6, 9))
    for enhanced, style, first in ((False, "o--", baseline_plain), (True, "s-", baseline)):
        chosen = sorted((r for r in rows if r["enhanced"] == enhanced), key=lambda r: r["T"]) + [first]
        label = "tuned on validation (TopSpark)" if enhanced else "BindsNET defaults (fewer steps only)"
        ts = [r["T"] for r in chosen]
        mean = np.array([100 * r["test_accuracy"] for r in chosen])
        spread = np.array([[mean[i] - 100 * min(r["test_accuracy_per_seed"]), 100 * max(r["test_accuracy_per_seed"]) - mean[i]]
                           for i, r in enumerate(chosen)]).T
        top.errorbar(ts, mean, yerr=spread, fmt=style, capsize=3, label=f"{label}, seeds' mean and range")
        middle.plot(ts, [1e6 * r["training_energy_j"] for r in chosen], style, label=label)
    read = sorted((r for r in rows if "read_at_t" in r), key=lambda r: r["T"])
    top.plot([r["T"] for r in read], [100 * r["read_at_t"]["test_accuracy"] for r in read], "D", mfc="none",
             label=f"tuned, trained at T, read at T={baseline['T']} (seeds' mean)")
    ts = sorted(int(t) for t in deployed)
    top.plot(ts + [baseline["T"]],
             [100 * deployed[str(t)]["test_accuracy"] for t in ts] + [100 * deployed_network["test_accuracy"]],
             "^:", label="a network trained at the baseline T, run at T (inference only)")
    top.axhline(100 * (baseline["test_accuracy"] - ACCURACY_TOLERANCE), color="grey", lw=0.8, ls=":",
                label="tuned baseline - 2 points")
    top.set_ylabel("test accuracy (%)")
    top.legend(fontsize=7)
    middle.set_ylabel("training energy / image\n(uJ, modelled, Loihi)")
    middle.set_xlabel("training (and inference) timesteps T")
    for r in [baseline_plain, baseline] + rows:
        if "learning_curve" in r:
            curve = r["learning_curve"]
            tuned = "tuned" if r["enhanced"] else "defaults"  # the mean over the seeds
            bottom.plot([c["images"] for c in curve], [100 * c["validation_accuracy"] for c in curve], ".-",
                        label=f"T={r['T']} {tuned}")
    bottom.set_xlabel("training images")
    bottom.set_ylabel("validation accuracy (%)")
    bottom.legend(fontsize=7)
    top.set_title(f"STDP network, Fashion-MNIST, {baseline['n_train']} training images, baseline T={baseline['T']}",
                  fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(baseline: dict, rows: list) -> None:
    print(f"\n{'T':>4} {'parameters':>10} {'stopped':>7} {'val acc':>8} {'test acc':>8} {'counts':>7} {'0 spk':>6} "
          f"{'train uJ*':>10} {'x less':>7} {'run mJ*':>8} {'infer uJ*':>10} {'x less':>7} {'train CPU ms/img':>17}")
    for r in rows:
        print(f"{r['T']:>4} {'tuned' if r['enhanced'] else 'defaults':>10} {r['stopped_at_images']:>7} "
              f"{100 * r['validation_accuracy']:>7.2f}% {100 * r['test_accuracy']:>7.2f}% "
              f"{100 * r['test_accuracy_counts_readout']:>6.2f}% {100 * r['test_frames']['no_spike']:>5.1f}% "
              f"{1e6 * r['training_energy_j']:>10.1f} "
              f"{baseline['training_energy_j'] / r['training_energy_j']:>7.2f} {1e3 * r['training_energy_j_per_run']:>8.1f} "
              f"{1e6 * r['inference_energy_j']:>10.2f} "
              f"{baseline['inference_energy_j'] / r['inference_energy_j']:>7.2f} {1e3 * r['cpu_s_per_training_image']:>17.2f}")
    print("* modelled (Loihi's per-operation energy, Davies et al. 2018); x less: against the tuned baseline; "
          "CPU ms measured (thread CPU time, shared machine); stopped: training images of the network kept "
          "(best on validation); counts: test accuracy of the same network read by spike counts alone; "
          "0 spk: test images with no output spike; run mJ: training energy of the whole run (per image x the images "
          "the kept network trained on)")


def main() -> None:
    global SPLITS, BASE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small splits and runs (a check that the bench works)")
    ap.add_argument("--train", type=int, help="training images per reported network (default 50000: all; quick 1000)")
    ap.add_argument("--search-train", type=int, help="training images per search trial (default 3000; quick 200)")
    ap.add_argument("--confirm-train", type=int, help="training images per finalist run (default 8000; quick 300)")
    ap.add_argument("--refine-train", type=int, help="training images per run refining theta's decay after the "
                                                      "search (default 20000; quick 300; 0: no refinement)")
    ap.add_argument("--trials", type=int, help="random draws per T (default 16; quick 3)")
    ap.add_argument("--finalists", type=int, help="trials per T confirmed at two seeds (default 3; quick 2)")
    ap.add_argument("--baseline-t", type=int, default=250, help="baseline timesteps (BindsNET's 250 x 1 ms)")
    ap.add_argument("--timesteps", type=int, nargs="+", help="reduced T (default 100 64 50; quick 64)")
    ap.add_argument("--inference-timesteps", type=int, nargs="+",
                    help="T the tuned baseline network may run at, inference only, one chosen on validation "
                         f"(default {' '.join(map(str, INFERENCE_T))} and the reduced T; quick 100 64)")
    ap.add_argument("--seeds", type=int, help="seeds each final network trains at, reported as their mean and "
                                             "spread (default 3; quick 2)")
    ap.add_argument("--workers", type=int, default=2, help="training processes at once (default 2: this machine's cores)")
    ap.add_argument("--model-dir", help="keep the tuned baseline network there, with its operating points at the "
                                        "inference T (docs/stdp.md; default: a temporary directory)")
    ap.add_argument("--searched", help="take each T's chosen parameters from this earlier stdp.json instead of "
                                       "searching again (its search, made on validation, is recorded as reused)")
    ap.add_argument("--raw-input", action="store_true",
                    help="the images as they are, not each scaled to the training split's mean pixel "
                         "(StdpParams.input_mean; the runs before it)")
    ap.add_argument("--out", help="the JSON (default bench/results/stdp.json, quick: bench/results/quick/)")
    args = ap.parse_args()
    quick = args.quick
    n_train = args.train or (1000 if quick else 50000)
    n_search = args.search_train or (200 if quick else 3000)
    n_confirm = args.confirm_train or (300 if quick else 8000)
    n_refine = (300 if quick else 20000) if args.refine_train is None else args.refine_train
    n_trials = args.trials or (3 if quick else 16)
    n_finalists = args.finalists or (2 if quick else 3)
    seeds = range(args.seeds or (2 if quick else 3))
    reduced = args.timesteps or ([64] if quick else [100, 64, 50])
    n_search_eval = 200 if quick else 2000
    out = output_path("stdp.json", quick, args.out)
    SPLITS = Splits(500 if quick else 5000, 500 if quick else 5000, 1000 if quick else 10000)
    # every network, at every T, reads each image scaled to the training split's mean pixel (chosen on
    # validation, docs/stdp.md); the speed, scaling and Lava runs keep BindsNET's raw images
    BASE = StdpParams(timesteps=args.baseline_t, input_mean=0.0 if args.raw_input else float(SPLITS.train.mean()))
    started = time.time()

    print(f"speed: ours vs BindsNET, 400 neurons, T={BASE.timesteps}", flush=True)
    speed_result = speed(SPLITS.train[:10 if quick else 50], BASE.timesteps)
    print(json.dumps({k: v for k, v in speed_result.items() if k != "peer_run"}), flush=True)
    print("scaling", flush=True)
    scaling_result = scaling(SPLITS.train[:50 if quick else 200], BASE.timesteps)
    print(json.dumps(scaling_result), flush=True)

    all_t = [BASE.timesteps] + reduced
    if args.searched:
        print(f"each T's parameters as {args.searched} chose them (no search)", flush=True)
        chosen = searched_before(args.searched, all_t)
    else:
        print(f"search on validation, every T alike: {n_trials} random draws + the defaults ({n_search} training "
              f"images each), {n_finalists} finalists x 2 seeds ({n_confirm} images each)", flush=True)
        chosen = search(all_t, n_trials, n_search, n_search_eval, n_finalists, n_confirm, args.workers, started)
    if n_refine:
        print(f"homeostasis: theta's decay as chosen, {HOMEOSTASIS_SLOWER:g}x slower and none, every T alike "
              f"({n_refine} training images, 2 seeds)", flush=True)
        refine_homeostasis(chosen, n_refine, args.workers, started)
    print(f"final runs ({n_train} training images each, seeds {list(seeds)}; test set once per network)", flush=True)
    checkpoints = tuple(c for c in (n_train // 20, n_train // 10, n_train // 5, 2 * n_train // 5, 7 * n_train // 10)
                        if c > 0)
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="stdp_model_")
    # the tuned baseline network of the first seed is the one kept (the model directory) and run at reduced T
    # every tuned reduced-T network is also read at the baseline T (its own row: read_at_baseline_t)
    jobs = [Job(t, e, n_train, len(SPLITS.label[1]), seed, test=True, checkpoints=checkpoints,
                save_to=model_dir if (t == BASE.timesteps and e != stdp_topspark.NONE and seed == seeds[0]) else "",
                read_at=BASE.timesteps if (t != BASE.timesteps and e != stdp_topspark.NONE) else 0)
            for t in all_t for e in (stdp_topspark.NONE, chosen[t]["enhancement"]) for seed in seeds]
    runs = run_jobs(jobs, args.workers, "final", started)
    finals = [mean_over_seeds(runs[i:i + len(seeds)]) for i in range(0, len(runs), len(seeds))]
    baseline_plain, baseline = finals[0], finals[1]
    deployed_network = baseline["per_seed"][0]
    rows = finals[2:]
    point = best_point(baseline, rows)
    point["baseline_defaults_accuracy"] = baseline_plain["test_accuracy"]
    print_table(baseline, finals)
    print("best point:", json.dumps({k: v for k, v in point.items() if k != "read_at_baseline_t"}))
    if "read_at_baseline_t" in point:
        r = point["read_at_baseline_t"]
        print(f"trained at T={r['trained_at_T']} ({r['training_energy_reduction']:.2f}x less training energy, "
              f"modelled), read at T={r['read_at_T']}: test {100 * r['accuracy']:.2f} % against "
              f"{100 * r['baseline_accuracy']:.2f} % ({r['accuracy_gap_points']:.1f} points below; per seed "
              f"{', '.join(f'{g:.1f}' for g in r['accuracy_gap_points_per_seed'])})", flush=True)
    print(f"the tuned baseline network run frozen at reduced T ({n_trials} random draws each, validation)", flush=True)
    inference_t = sorted(set(args.inference_timesteps or ((100, 64) if quick else INFERENCE_T)) | set(reduced),
                         reverse=True)
    deployed = deployed_at_reduced_t(model_dir, inference_t, n_trials)
    for t, d in deployed.items():  # against the network itself at the baseline T
        d["inference_energy_reduction"] = deployed_network["inference_energy_j"] / d["inference_energy_j"]
        d["accuracy_gap_points"] = 100 * (deployed_network["test_accuracy"] - d["test_accuracy"])
        print(f"  T={t}: validation {100 * d['validation_accuracy']:.2f} %, test {100 * d['test_accuracy']:.2f} % "
              f"({d['accuracy_gap_points']:.1f} points below the tuned baseline), inference energy "
              f"{d['inference_energy_reduction']:.2f}x lower (modelled)", flush=True)
    chosen_inference = inference_point(deployed_network, deployed)
    print("inference point (T chosen on validation):", json.dumps(chosen_inference), flush=True)
    if not args.model_dir:
        shutil.rmtree(model_dir)

    print("Lava beside ours", flush=True)
    lava = lava_beside_ours(SPLITS, 3 if quick else 10, 100 if quick else 500, 100, 50 if quick else 100)
    print(json.dumps({k: v for k, v in lava.items() if k in ("ours", "lava")}, default=str), flush=True)

    png = os.path.splitext(out)[0] + ".png"
    os.makedirs(os.path.dirname(png), exist_ok=True)
    plot(baseline_plain, baseline, rows, deployed, deployed_network, png)
    write_results(out, {
        "dataset": "fashion-mnist", "n_neurons": BASE.n_neurons, "n_train": n_train,
        "search": {"reused_from": args.searched, "trials_per_T": n_trials, "search_train": n_search, "search_eval": n_search_eval,
                   "finalists_per_T": n_finalists, "finalist_seeds": [1, 2], "confirm_train": n_confirm,
                   "homeostasis_refine_train": n_refine, "homeostasis_slower": HOMEOSTASIS_SLOWER,
                   "space": {str(t): {k: asdict(r) for k, r in stdp_topspark.search_space(BASE.timesteps, t).items()}
                             for t in all_t}},
        "splits": {"train": "train[0:50000] (first n_train)", "label": "train[50000:55000]",
                   "validation": "train[55000:60000]", "test": f"test[0:{len(SPLITS.test[1])}]"},
        "baseline_params": BASE.to_dict(), "energy_constants": LoihiEnergy().__dict__,
        "energy_note": "training/inference energy per image modelled from counted operations with Loihi's figures; "
                       "cpu_s measured (thread CPU time) on a machine shared with other jobs, two runs at once",
        "baseline": baseline, "baseline_defaults": baseline_plain, "rows": rows,
        "searched": {str(t): {**c, "enhancement": c["enhancement"].to_dict()} for t, c in chosen.items()},
        "best_point": point, "baseline_network_at_reduced_t": deployed,
        "inference_point": chosen_inference, "speed": speed_result, "scaling": scaling_result, "lava": lava,
        "plot": os.path.relpath(png, os.path.dirname(out)), "bench_seconds": time.time() - started,
        "machine_shared": True}, quick)
    print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
