"""An STDP network in the robot: what adapting to the camera stream without labels (learning.stdp_rate)
and relabelling from feedback do to accuracy, and what they cost per frame.

A 400-neuron network is trained without labels, labelled on a labelling split, saved, and loaded
as the agent loads it (engine/stdp_engine.py, learner learning/stdp_online.py: the code the node
runs, without ROS). A stream of frames it never saw then runs through it, frame by frame, under
each condition: frozen; adapting at each stdp_rate; with feedback on every 10th frame
(relabelling). The rates are compared on a validation stream (held-out training images); the
frozen network and the best rate are then run once on the test stream. All of it twice: with the
frames as they are, and drifted as a camera over-correcting its exposure sees them (the drift of
bench/learning.py, data.prepare.exposure_drift): what adapting is for.

The network: TopSpark's best point from bench/results/stdp.json (its T and enhanced parameters, every
image scaled to the training split's mean pixel: the network bench/stdp.py chose), or with --defaults
Diehl & Cook's parameters at T=100 (images scaled to the training images' mean pixel; with
--raw-input as they are: the runs before input scaling).

Per frame: CPU time (measured, this machine, shared with other jobs), synaptic (STDP) updates
counted as Loihi's learning engine does them, and their energy on Loihi (modelled:
energy.models.loihi_learning_energy, 120 pJ per synaptic update, Davies et al. 2018, in
energy/constants.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.results_file import output_path, write_results  # noqa: E402
from snn_agent.data import datasets  # noqa: E402
from snn_agent.data.prepare import drift_text, exposure_drift  # noqa: E402
from snn_agent.engine import stdp_engine  # noqa: E402
from snn_agent.learning import stdp  # noqa: E402
from snn_agent.learning.online import LearningSettings  # noqa: E402
from snn_agent.learning.stdp_online import StdpLearner  # noqa: E402
from snn_agent.learning.stdp_topspark import Enhancement, enhance  # noqa: E402

FEEDBACK_EVERY = 10
RATES = (0.0, 0.25, 1.0, 4.0)
STDP_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "stdp.json")


def best_point_params(path: str, n_neurons: int) -> tuple:
    """The parameters of bench/stdp.py's best point (its T, enhanced) with n_neurons, and what they are."""
    try:
        with open(path) as f:
            results = json.load(f)
        point = results["best_point"]
        baseline = stdp.StdpParams.from_dict(results["baseline_params"])
        params = enhance(replace(baseline, n_neurons=n_neurons), point["T"], Enhancement(**point["enhancement"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: no usable best point ({exc}); run bench/stdp.py, or pass --defaults") from exc
    source = (f"TopSpark's best point in {os.path.relpath(path)} (commit {results['run']['commit'][:7]}): T={point['T']}, "
              f"enhanced, trained and read there ({100 * point['accuracy']:.1f} % on its test set)")
    return params, source


def stream(model_dir: str, images, labels, rate, feedback: bool, drifted: bool = False) -> dict:
    """Frames one by one through a fresh load of the model; rate None: frozen; drifted: each frame as
    a camera over-correcting its exposure sees it (data.prepare.exposure_drift)."""
    model, engine = stdp_engine.load(model_dir)
    learner = StdpLearner(engine, model.class_names, LearningSettings(enabled=True, stdp_rate=rate or 0.0)) \
        if rate is not None or feedback else None
    if rate is None:
        engine.plasticity = None  # frozen weights and thresholds; the learner only relabels
    timesteps = engine.network.params.timesteps
    right, seconds, updates, energy = np.zeros(len(images), bool), 0.0, 0.0, 0.0
    for i, (image, label) in enumerate(zip(images, labels)):
        x = image[None, None].astype(np.float32) / 255
        x = exposure_drift(x) if drifted else x
        started = time.perf_counter()
        result = engine.run(x, timesteps)
        scores = learner.classify(engine.hidden_spikes(result)[0], timesteps) if learner else result.scores[0]
        seconds += time.perf_counter() - started
        right[i] = np.argmax(scores) == label
        if feedback and i % FEEDBACK_EVERY == 0:
            learner.feedback(int(label))
        if learner and rate is not None:
            updates, energy = learner.synaptic_updates, learner.energy_j
    n = len(images)
    return {"stdp_rate": rate, "feedback_every": FEEDBACK_EVERY if feedback else 0, "drifted": drifted,
            "accuracy": float(right.mean()), "accuracy_last_third": float(right[-(n // 3):].mean()), "frames": n, "ms_per_frame_measured": 1e3 * seconds / n, "synaptic_updates_per_frame": updates / n,
            "learning_uj_per_frame_loihi_modelled": 1e6 * energy / n}


def conditions(model_dir, images, labels, rates, drifted: bool = False) -> list:
    rows = []
    for rate in (None,) + tuple(rates):
        for feedback in (False, True):
            rows.append(stream(model_dir, images, labels, rate, feedback, drifted))
            r = rows[-1]
            print(f"  {'frozen' if rate is None else f'rate {rate:g}':>9} {'yes' if feedback else 'no':>8} "
                  f"{100 * r['accuracy']:>7.2f}% {100 * r['accuracy_last_third']:>10.2f}% {r['ms_per_frame_measured']:>8.2f} "
                  f"{r['synaptic_updates_per_frame']:>10.0f} {r['learning_uj_per_frame_loihi_modelled']:>9.3f}", flush=True)
    return rows


def compare(model_dir: str, validation: tuple, test: tuple, drifted: bool) -> dict:
    """Every condition on the validation stream; the frozen network and the rate that adapted best
    there (without feedback) on the test stream."""
    header = (f"  {'learning':>9} {'feedback':>8} {'accuracy':>8} {'last third':>11} {'ms/frame':>8} {'STDP upd':>10} "
              f"{'uJ Loihi':>9}")
    seen = f"as a camera over-correcting its exposure sees them ({drift_text()})" if drifted else "as they are"
    print(f"validation stream ({len(validation[1])} held-out training images, {seen}), feedback every "
          f"{FEEDBACK_EVERY}th frame:\n{header}", flush=True)
    val_rows = conditions(model_dir, *validation, RATES, drifted)
    adapting = [r for r in val_rows if r["stdp_rate"] is not None and not r["feedback_every"]]
    best = max(adapting, key=lambda r: r["accuracy"])["stdp_rate"]
    print(f"test stream ({len(test[1])} test images, {seen}), the best rate on validation ({best:g}) and frozen:\n{header}")
    return {"validation": val_rows, "best_rate_on_validation": best, "test": conditions(model_dir, *test, (best,), drifted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller network, fewer images (seconds)")
    parser.add_argument("--out", help="JSON path (default bench/results/stdp_robot.json)")
    parser.add_argument("--defaults", action="store_true",
                        help="Diehl & Cook's parameters at T=100 instead of bench/stdp.py's best point")
    parser.add_argument("--raw-input", action="store_true",
                        help="with --defaults: images as they are (input_mean 0), as the runs before input scaling")
    parser.add_argument("--stdp-results", default=STDP_RESULTS, help="where the best point is read from")
    args = parser.parse_args()
    # full: bench/stdp.py's splits (train on the first 50,000, label on the next 5,000, validate after them)
    n_neurons, n_train, n_labelled, n_stream = (100, 1000, 1000, 500) if args.quick else (400, 50000, 5000, 3000)
    train = datasets.load("fashion-mnist", "train")
    test = datasets.load("fashion-mnist", "test")
    label_split = slice(50000, 50000 + n_labelled)
    validation = slice(label_split.stop, label_split.stop + n_stream)
    if args.raw_input and not args.defaults:
        parser.error("--raw-input goes with --defaults (the best point's network scales its images)")
    if args.defaults:
        input_mean = 0.0 if args.raw_input else float(stdp.as_pixels(train.images[:n_train]).mean())
        params = stdp.StdpParams(n_neurons=n_neurons, timesteps=100, input_mean=input_mean)
        source = f"Diehl & Cook's parameters, T=100, {'raw images' if args.raw_input else 'images scaled'}"
    else:
        params, source = best_point_params(args.stdp_results, n_neurons)
    stdp.warm_up()
    print(f"training {n_neurons} neurons on {n_train} images: {source}; input_mean {params.input_mean:.4f}", flush=True)
    network, _ = stdp.train_and_label(params, train.images[:n_train, :, :, 0], train.images[label_split, :, :, 0],
                                      train.labels[label_split], 10)
    with tempfile.TemporaryDirectory() as model_dir:
        network.save(model_dir, train.class_names)
        clean, drifted = (compare(model_dir, (train.images[validation, :, :, 0], train.labels[validation]),
                                  (test.images[:n_stream, :, :, 0], test.labels[:n_stream]), drifted)
                          for drifted in (False, True))
    path = output_path("stdp_robot.json", args.quick, args.out)
    write_results(path, {"network": {"n_neurons": n_neurons, "timesteps": params.timesteps, "trained_on": n_train,
                                     "labelled_on": n_labelled, "input_mean": params.input_mean, "parameters": source,
                                     "params": params.to_dict()},
                         "energy_note": "CPU time measured on a shared 2-core machine; learning energy modelled "
                                        "for Loihi from counted synaptic updates (120 pJ each, Davies et al. 2018)",
                         **clean, "drift": {"transform": drift_text(), **drifted}}, args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
