"""An STDP network in the robot: what adapting to the camera stream without labels (learning.stdp_rate,
learning.stdp_threshold_decay) and relabelling from feedback do to accuracy, and what they cost per frame.

A 400-neuron network is trained without labels, labelled on a labelling split, saved, and loaded
as the agent loads it (engine/stdp_engine.py, learner learning/stdp_online.py: the code the node
runs, without ROS). Streams of frames it never saw then run through it, frame by frame: clean, and
drifted as a camera over-correcting its exposure sees them (the drift of bench/learning.py,
data.prepare.exposure_drift: what adapting is for). On a validation stream (held-out training
images) the frozen network and every adapting setting (STDP rate x the thresholds' decay time
constant) run clean and drifted; the setting with the best mean over the two is chosen. On the test
stream, clean and drifted: frozen, the chosen setting without and with feedback on every 10th
frame (relabelling), and the previous default.

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
from typing import Optional

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
THRESHOLD_DECAYS = (0.0, 300.0, 1000.0, 3000.0)  # frames; 0: the network's own (Diehl & Cook: 1e7 steps)
SETTINGS = tuple((rate, decay) for rate in RATES for decay in THRESHOLD_DECAYS)
# the node's defaults before threshold decay, shown beside the chosen setting on the test streams
PREVIOUS_SETTING = (0.25, 0.0)
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


def stream(model_dir: str, images, labels, setting: Optional[tuple], feedback: bool, drifted: bool) -> dict:
    """Frames one by one through a fresh load of the model. setting: (stdp_rate, threshold decay in
    frames) while adapting, None: frozen; drifted: each frame as a camera over-correcting its exposure
    sees it (data.prepare.exposure_drift)."""
    model, engine = stdp_engine.load(model_dir)
    rate, decay = setting or (0.0, 0.0)
    learner = StdpLearner(engine, model.class_names, LearningSettings(enabled=True, stdp_rate=rate,
                                                                      stdp_threshold_decay=decay)) \
        if setting is not None or feedback else None
    if setting is None:
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
        if learner and setting is not None:
            updates, energy = learner.synaptic_updates, learner.energy_j
    n = len(images)
    row = {"adapting": setting is not None, "stdp_rate": rate if setting else None,
           "threshold_decay_frames": decay if setting else None, "feedback_every": FEEDBACK_EVERY if feedback else 0,
           "drifted": drifted, "accuracy": float(right.mean()), "accuracy_last_third": float(right[-(n // 3):].mean()),
           "frames": n, "ms_per_frame_measured": 1e3 * seconds / n, "synaptic_updates_per_frame": updates / n,
           "learning_uj_per_frame_loihi_modelled": 1e6 * energy / n}
    print(f"  {'drifted' if drifted else 'clean':>7} {setting_text(setting):>24} {'yes' if feedback else 'no':>8} "
          f"{100 * row['accuracy']:>7.2f}% {100 * row['accuracy_last_third']:>10.2f}% {row['ms_per_frame_measured']:>8.2f} "
          f"{row['synaptic_updates_per_frame']:>10.0f} {row['learning_uj_per_frame_loihi_modelled']:>9.3f}", flush=True)
    return row


def setting_text(setting: Optional[tuple]) -> str:
    return "frozen" if setting is None else f"rate {setting[0]:g}, decay {setting[1]:g}"


HEADER = (f"  {'stream':>7} {'learning':>24} {'feedback':>8} {'accuracy':>8} {'last third':>11} {'ms/frame':>8} "
          f"{'STDP upd':>10} {'uJ Loihi':>9}")


def choose_setting(model_dir: str, images, labels) -> tuple:
    """Every (stdp_rate, threshold decay) adapting without feedback, and the frozen network, on the
    validation stream clean and drifted; the setting with the best mean accuracy over the two."""
    print(f"validation stream ({len(labels)} held-out training images), clean and drifted ({drift_text()}):\n{HEADER}")
    rows = [stream(model_dir, images, labels, setting, False, drifted)
            for setting in (None,) + SETTINGS for drifted in (False, True)]
    def mean_accuracy(setting):
        return np.mean([r["accuracy"] for r in rows if (r["stdp_rate"], r["threshold_decay_frames"]) == setting])
    return max(SETTINGS, key=mean_accuracy), rows


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
        chosen, validation_rows = choose_setting(model_dir, train.images[validation, :, :, 0], train.labels[validation])
        print(f"test stream ({n_stream} test images): frozen, the setting chosen on validation ({setting_text(chosen)}) "
              f"with and without feedback every {FEEDBACK_EVERY}th frame, and the previous default "
              f"({setting_text(PREVIOUS_SETTING)}):\n{HEADER}")
        test_rows = [stream(model_dir, test.images[:n_stream, :, :, 0], test.labels[:n_stream], setting, feedback, drifted)
                     for drifted in (False, True)
                     for setting, feedback in ((None, False), (chosen, False), (chosen, True), (PREVIOUS_SETTING, False))]
    path = output_path("stdp_robot.json", args.quick, args.out)
    write_results(path, {"network": {"n_neurons": n_neurons, "timesteps": params.timesteps, "trained_on": n_train,
                                     "labelled_on": n_labelled, "input_mean": params.input_mean, "parameters": source,
                                     "params": params.to_dict()},
                         "energy_note": "CPU time measured on a shared 2-core machine; learning energy modelled "
                                        "for Loihi from counted synaptic updates (120 pJ each, Davies et al. 2018)",
                         "drift": drift_text(), "validation": validation_rows,
                         "chosen_on_validation": {"stdp_rate": chosen[0], "threshold_decay_frames": chosen[1],
                                                  "criterion": "mean accuracy over the clean and the drifted stream"},
                         "test": test_rows}, args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
