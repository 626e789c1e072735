#!/usr/bin/env python3
"""Conversion accuracy on Fashion-MNIST: the DNN, then the SNN at T in {4..128} for each target.

    .venv/bin/python bench/conversion.py [--quick] [--model models/fashion_cnn.onnx]
    .venv/bin/python bench/conversion.py --suite [--quick]
    .venv/bin/python bench/conversion.py --timing [--models vgg] [--baseline OTHER_CHECKOUT] [--repeats N]
    .venv/bin/python bench/conversion.py --timing [--models vgg resnet] [--baseline ...] --profile [PROFILE_ARGS]

--suite: models nobody trained for spikes (bench/plain_models.py: an MLP, a VGG-style CNN with
BatchNorm and MaxPool, a ResNet-style CNN with residual Add, Concat and average pooling; trained
with torch on Fashion-MNIST, cached), each converted by `snn-agent convert` with its default
options (timed), then the DNN, the ideal target over T and the loihi target at T=32 on the test set;
with --profiled also `snn-agent profile` (its defaults: parameters chosen on training images) and
its operating points at T <= 32 on the same test images. Writes bench/results/conversion_suite.json.

Targets:
  ideal     our conversion: clip-ceiling / percentile normalization, reset by subtraction,
            initial potential half a threshold (float, CPU engine)
  loihi     what Loihi runs: 8-bit weights with exponent, fixed point, reset to zero (Lava's CUBA
            LIF, emulated bit-exactly by our engine)
  baseline  the classic recipe: max normalization, reset to zero, no initial potential, no
            calibration: what each of our techniques buys is the gap to it
Writes bench/results/conversion.json (bench/results/quick/ with --quick).

--timing: `snn-agent convert` with its default options on the suite's models, each run a fresh
process timed from outside (wall, and its CPU time from the OS), the load average beside it, and
each phase's wall and CPU seconds from its report.json; with --baseline, the same command from
another checkout (e.g. the main branch) in turn with this one (A B A B), on the same ONNX file,
and whether the two made the same loihi target (thresholds and initial voltages, integers).
Writes bench/results/conversion_timing.json.

--timing --profile [PROFILE_ARGS]: `snn-agent convert` then `snn-agent profile PROFILE_ARGS` (none:
its defaults) of the suite's models (default vgg and resnet), each a fresh process, timed the same
way, A B A B with --baseline, and whether both trees' profiles wrote the same accuracy figures.
Writes bench/results/profile_timing.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from snn_agent.adaptation.operating_points import PointTable  # noqa: E402
from snn_agent.conversion.convert import ConversionOptions, convert  # noqa: E402
from snn_agent.conversion.onnx_import import load_onnx  # noqa: E402
from snn_agent.data import datasets  # noqa: E402
from snn_agent.data.prepare import model_input  # noqa: E402
from snn_agent.engine import SNNEngine  # noqa: E402
from snn_agent.engine.dnn import predict  # noqa: E402
from snn_agent.evaluation import accuracy, accuracy_vs_timesteps  # noqa: E402
from snn_agent.ir import NeuronConfig  # noqa: E402
from snn_agent.progress import ProgressBar  # noqa: E402
from results_file import output_path, write_results  # noqa: E402

GRID = (4, 8, 16, 32, 64, 128)
GOALS = {"ideal": {8: 1.0, 16: 0.5}, "loihi": {16: 2.0, 32: 1.0}}  # max points below the DNN
SUITE_GRID = (8, 16, 32, 64, 128)
SUITE_GOALS = {"ideal": {8: 1.0, 16: 0.5, 64: 0.3, 128: 0.3}, "loihi": {32: 1.0}}
SUITE_CONVERT_SECONDS = 120  # the default conversion, loihi target included
CONVERT_AND_PROFILE_SECONDS = 300  # `convert` then `profile` of a suite CNN (issue 22)


def targets(network, calib_x):
    """name -> run(x, T, neuron) for every target this build can produce."""
    ideal = convert(network, calib_x)
    runs = {"ideal": SNNEngine(ideal).run}
    try:
        from snn_agent.conversion.loihi import to_loihi
        from snn_agent.engine.loihi_engine import LoihiEngine
    except ImportError as exc:
        print(f"loihi target unavailable in this build: {exc}")
    else:
        runs["loihi"] = LoihiEngine(to_loihi(ideal, calib_x)).run
    baseline = convert(network, calib_x, ConversionOptions(percentile=100.0, use_clip_ceiling=False, v_init=0.0,
                                                                  calibrate=False))
    baseline.neuron = NeuronConfig("zero", 0.0, 1.0)
    runs["baseline"] = SNNEngine(baseline).run
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 test images instead of 10,000")
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "fashion_cnn.onnx"))
    ap.add_argument("--suite", action="store_true", help="the plain models of bench/plain_models.py instead")
    ap.add_argument("--models", nargs="+", help="with --suite: only these (default: all of bench/plain_models.py)")
    ap.add_argument("--grid", type=int, nargs="+", default=list(SUITE_GRID),
                    help="with --suite: the T values of the ideal target (default: %(default)s)")
    ap.add_argument("--test-images", type=int, default=0,
                    help="with --suite: the first N test images (default: all 10,000; --quick: 1,000)")
    ap.add_argument("--profiled", action="store_true",
                    help="with --suite: also `snn-agent profile` (its defaults) and its points' accuracy on the test set")
    ap.add_argument("--timing", action="store_true", help="time `snn-agent convert` of the suite's models (--models)")
    ap.add_argument("--baseline", help="with --timing: another checkout whose convert runs in turn with this one's")
    ap.add_argument("--repeats", type=int, default=2, help="with --timing: runs of each (default 2; --quick: 1)")
    ap.add_argument("--profile", nargs=argparse.REMAINDER, metavar="PROFILE_ARGS",
                    help="with --timing: time `snn-agent convert` then `snn-agent profile PROFILE_ARGS` (last option; "
                         "none: profile's defaults)")
    ap.add_argument("--out", help="the JSON file (default: bench/results/conversion.json, or bench/results/quick/ with --quick)")
    args = ap.parse_args()
    out = output_path("conversion_suite.json" if args.suite else "profile_timing.json" if args.timing and
                      args.profile is not None else "conversion_timing.json" if args.timing else "conversion.json",
                      args.quick, args.out)
    if args.timing and args.profile is not None:
        return profile_timing(args.quick, out, args.models or ["vgg", "resnet"], args.baseline,
                              1 if args.quick else args.repeats, args.profile)
    if args.timing:
        return timing(args.quick, out, args.models or ["vgg"], args.baseline, 1 if args.quick else args.repeats)

    if not datasets.fashion_mnist_available():
        sys.exit("bench/conversion.py needs Fashion-MNIST: apt-get install dataset-fashion-mnist")
    if args.suite:
        return suite(args.quick, out, args.models, args.test_images, tuple(args.grid), args.profiled)
    network = load_onnx(args.model)
    test = datasets.load("fashion-mnist", "test").subset(1000 if args.quick else 0)
    calib = datasets.load("fashion-mnist", "train").subset(1000)
    x, labels = model_input(test, network.preprocessing), test.labels
    calib_x = model_input(calib, network.preprocessing)
    dnn_accuracy = float((predict(network, x) == labels).mean())
    results = {"dnn_accuracy": dnn_accuracy, "n_test": int(len(labels)), "model": os.path.relpath(args.model, ROOT),
               "targets": {}, "seconds": {}}
    for name, run in targets(network, calib_x).items():
        start = time.perf_counter()
        bar = ProgressBar(f"{name:<8}")
        table = {}
        for i, t in enumerate(GRID):
            table[t] = accuracy(run, x, labels, t)
            bar(i + 1, len(GRID))
        results["targets"][name] = table
        results["seconds"][name] = round(time.perf_counter() - start, 1)

    print(f"\nFashion-MNIST test, {len(labels)} images. DNN accuracy {100 * dnn_accuracy:.2f} %")
    names = list(results["targets"])
    print(f"{'T':>5}" + "".join(f"{n + ' %':>12}{'vs DNN':>8}" for n in names))
    for t in GRID:
        row = f"{t:>5}"
        for n in names:
            acc = results["targets"][n][t]
            row += f"{100 * acc:>12.2f}{100 * (acc - dnn_accuracy):>+8.2f}"
        print(row)
    print("\ngoals (points below the DNN):")
    results["goals"] = {}
    for name, goals in GOALS.items():
        for t, limit in goals.items():
            if name in results["targets"]:
                gap = 100 * (dnn_accuracy - results["targets"][name][t])
                met = gap <= limit
                results["goals"][f"{name}@T={t}"] = {"gap_points": round(gap, 3), "limit": limit, "met": met}
                print(f"  {name:<6} T={t:<4} gap {gap:+.2f} (limit {limit}) {'MET' if met else 'MISSED'}")
    write_results(out, results, args.quick)
    print(f"wrote {out}")
    return 0


def convert_and_measure(name: str, test, log=print, grid=SUITE_GRID, profiled: bool = False) -> dict:
    """`snn-agent convert` (default options) of the suite's model `name`, timed, and its accuracy
    on `test`: the DNN's, the ideal target's over `grid`, the loihi target's at T=32; with
    `profiled`, also `snn-agent profile` (its defaults) and its operating points' accuracy on `test`
    (profiled_points)."""
    from plain_models import trained_onnx
    from snn_agent.conversion.loihi import LOIHI_DIR
    from snn_agent.conversion.pipeline import convert_model
    from snn_agent.engine.loihi_engine import LoihiEngine
    from snn_agent.ir import SNNModel

    onnx_path = trained_onnx(name, log)
    with tempfile.TemporaryDirectory() as out_dir:
        start = time.perf_counter()
        ideal = convert_model(onnx_path, "fashion-mnist", out_dir, progress=ProgressBar(f"{name}: convert"))
        seconds = time.perf_counter() - start
        loihi_dir = os.path.join(out_dir, LOIHI_DIR)
        loihi = SNNModel.load(loihi_dir) if os.path.isdir(loihi_dir) else None
        profile_run = timed_cli(ROOT, ["profile", out_dir]) if profiled else None
        tables = {backend: PointTable.load(out_dir, backend) for backend in ("cpu", "lava")} if profiled else {}
    network = load_onnx(onnx_path)
    x, labels = model_input(test, network.preprocessing), test.labels
    with open(onnx_path, "rb") as f:  # the trained model itself: training is not bit-reproducible across machines
        onnx_sha256 = hashlib.sha256(f.read()).hexdigest()
    row = {"onnx": os.path.basename(onnx_path), "onnx_sha256": onnx_sha256,
           "dnn_accuracy": float((predict(network, x) == labels).mean()), "convert_seconds": round(seconds, 1),
           "calibration": ideal.info.get("calibration"),
           "exports": ideal.info["exports"], "spiking_layers": sum(layer.spiking for layer in ideal.layers),
           "targets": {"ideal": {}}}
    engine = SNNEngine(ideal)  # every T of the grid from one run at the largest (the same scores)
    row["targets"]["ideal"] = accuracy_vs_timesteps(engine.run, x, labels, grid, ProgressBar(f"{name}: ideal over T"),
                                                    scores_by_timesteps=engine.scores_by_timesteps)
    if loihi is not None:
        row["targets"]["loihi"] = {32: accuracy(LoihiEngine(loihi).run, x, labels, 32)}
    if profiled:
        row["profiled"] = {"profile": profile_run,
                           **profiled_points(tables, ideal, loihi, x, labels, grid, row["targets"])}
    return row


def profiled_points(tables: dict, ideal, loihi, x, labels, grid, plain: dict) -> dict:
    """The accuracy on (x, labels) of what `profile` hands the node: its cpu points at every T of
    `grid` up to ENHANCE_MAX_T (above it the points are the plain conversion, measured already)
    and its lava point at T=32, each with its parameters (chosen on the calibration split only);
    a point that kept the plain conversion takes its accuracy from `plain` ({target: {T: accuracy}})."""
    from snn_agent.adaptation.profiling import ENHANCE_MAX_T
    from snn_agent.engine.loihi_engine import LoihiEngine

    measured = {}
    for target, backend, model, engine, ts in (
            ("ideal", "cpu", ideal, SNNEngine, [t for t in grid if t <= ENHANCE_MAX_T]),
            ("loihi", "lava", loihi, LoihiEngine, [32])):
        points = {p.timesteps: p for p in tables[backend].points} if tables.get(backend) else {}
        ts = [t for t in ts if t in points and not points[t].weights]
        if model is None or not ts:
            continue
        run = engine(model).run
        neurons = {t: points[t].neuron(model.neuron.reset) for t in ts}
        measured[target] = {t: plain[target][t] if neuron == model.neuron and t in plain.get(target, {})
                            else accuracy(run, x, labels, t, neuron) for t, neuron in neurons.items()}
        measured.setdefault("points", {})[target] = {t: points[t].enhancement for t in ts}
    return measured


def suite(quick: bool, out: str, models=None, test_images: int = 0, grid=SUITE_GRID, profiled: bool = False) -> int:
    from plain_models import ARCHITECTURES

    test = datasets.load("fashion-mnist", "test").subset(1000 if quick else test_images)
    results = {"n_test": int(len(test.labels)), "grid": list(grid), "models": {}, "goals": {}}
    for name in models or ARCHITECTURES:
        row = results["models"][name] = convert_and_measure(name, test, grid=grid, profiled=profiled)
        print(f"\n{name}: {row}", flush=True)  # each model as it finishes: the whole suite takes a while
    print(f"\nFashion-MNIST test, {len(test.labels)} images; points against each model's DNN "
          f"(machine shared with other work: convert times are wall clock under load)")
    print(f"{'model':<8}{'DNN %':>7}" + "".join(f"{'T=' + str(t):>8}" for t in grid) + f"{'loihi32':>9}{'convert s':>11}")
    for name, row in results["models"].items():
        dnn = row["dnn_accuracy"]
        cells = "".join(f"{100 * (row['targets']['ideal'][t] - dnn):>+8.2f}" for t in grid)
        loihi = row["targets"].get("loihi")
        print(f"{name:<8}{100 * dnn:>7.2f}{cells}{(f'{100 * (loihi[32] - dnn):+.2f}' if loihi else '-'):>9}"
              f"{row['convert_seconds']:>11.1f}")
        profiled_row = row.get("profiled", {})
        if profiled_row:
            print(f"{'  profile':<15}" + "".join(f"{100 * (profiled_row['ideal'][t] - dnn):>+8.2f}" if t in
                                                profiled_row.get("ideal", {}) else f"{'':>8}" for t in grid)
                  + (f"{100 * (profiled_row['loihi'][32] - dnn):>+9.2f}" if "loihi" in profiled_row else ""))
        for target, goals in SUITE_GOALS.items():
            for t, limit in goals.items():
                for source, suffix in ((row["targets"], ""), (profiled_row, " with profile")):
                    if t in source.get(target, {}):
                        gap = 100 * (dnn - source[target][t])
                        results["goals"][f"{name} {target}@T={t}{suffix}"] = {"gap_points": round(gap, 3),
                                                                               "limit": limit, "met": gap <= limit}
        results["goals"][f"{name} convert seconds"] = {"seconds": row["convert_seconds"],
                                                       "limit": SUITE_CONVERT_SECONDS,
                                                       "met": row["convert_seconds"] <= SUITE_CONVERT_SECONDS}
    print("\ngoals:")
    for key, goal in results["goals"].items():
        figure = f"gap {goal['gap_points']:+.2f} points" if "gap_points" in goal else f"{goal['seconds']:.0f} s"
        print(f"  {key:<40} {figure} (limit {goal['limit']}) {'MET' if goal['met'] else 'MISSED'}")
    write_results(out, results, quick)
    print(f"wrote {out}")
    return 0


def timed_cli(checkout: str, arguments: list, stdout=subprocess.DEVNULL) -> dict:
    """`snn-agent ARGUMENTS` run from `checkout` in a fresh process: its wall and CPU seconds (the
    OS's account of the child) and the load average before and after."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snn_agent.cli", *arguments], cwd=checkout,
                   env=dict(os.environ, PYTHONPATH=checkout), check=True, stdout=stdout, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": round(wall, 1),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def timed_convert(checkout: str, onnx_path: str, out_dir: str) -> dict:
    """`snn-agent convert ONNX -o OUT` (default options) from `checkout` (timed_cli), and its
    report.json's phases where it records them."""
    row = timed_cli(checkout, ["convert", onnx_path, "-o", out_dir])
    with open(os.path.join(out_dir, "report.json")) as f:
        row["phases"] = json.load(f).get("conversion_seconds")
    return row


def timed_profile(checkout: str, model_dir: str, profile_args: list) -> dict:
    """`snn-agent profile MODEL_DIR PROFILE_ARGS --json` from `checkout` (timed_cli), and what it
    measured: its split of the data (the images its budget took), each target's accuracy against T
    and every operating point's held-out accuracy."""
    with tempfile.TemporaryFile("w+") as out:
        row = timed_cli(checkout, ["profile", model_dir, *profile_args, "--json"], stdout=out)
        out.seek(0)
        lines = out.read().strip().splitlines()
    report = json.loads(lines[-1])
    row["data"] = next((line[len("data: "):] for line in lines if line.startswith("data: ")), None)  # the split
    row["targets"] = report["targets"]
    row["point_accuracy"] = {backend: {str(p["decimation"] if backend == "openvino" else p["timesteps"]): p["accuracy"]
                                       for p in points} for backend, points in report["operating_points"].items()}
    return row


def same_loihi_target(dir_a: str, dir_b: str) -> bool:
    """Whether two conversions made the same loihi target: weights, biases, fixed point and the
    initial voltages LoihiEngine (and Lava) start from, all integers."""
    from snn_agent.conversion.loihi import LOIHI_DIR
    from snn_agent.engine.loihi_engine import LoihiEngine
    from snn_agent.ir import SNNModel

    a, b = (SNNModel.load(os.path.join(d, LOIHI_DIR)) for d in (dir_a, dir_b))
    same = all(np.array_equal(x.weight, y.weight) and np.array_equal(x.bias, y.bias) and x.fixed_point == y.fixed_point
               for x, y in zip(a.layers, b.layers))
    return same and all(np.array_equal(x, y) for x, y in zip(LoihiEngine(a).initial_voltages(a.neuron),
                                                              LoihiEngine(b).initial_voltages(b.neuron)))


SHARED_MACHINE = "wall and CPU under the load average shown: the machine was shared with other work"


def _trees(baseline: str) -> dict:
    return {"this": ROOT} if not baseline else {"this": ROOT, "baseline": os.path.abspath(baseline)}


def in_turn(trees: dict, repeats: int, scratch: str, measure) -> dict:
    """{tree: [measure(checkout, SCRATCH/TREE+REPEAT) of each repeat]}, the trees in turn (A B A B:
    the pairs see the same load)."""
    runs = {tree: [] for tree in trees}
    for repeat in range(repeats):
        for tree, checkout in trees.items():
            print(f"{tree}, run {repeat + 1} of {repeats}:", end=" ", flush=True)
            runs[tree].append(measure(checkout, os.path.join(scratch, f"{tree}{repeat}")))
    return runs


def profile_timing(quick: bool, out: str, models: list, baseline: str, repeats: int, profile_args: list) -> int:
    """`snn-agent convert` (default options) then `snn-agent profile` (PROFILE_ARGS) of each model,
    from this tree and the baseline in turn (A B A B), each a fresh process timed from outside;
    and whether the two trees' profiles wrote the same accuracy figures."""
    from plain_models import trained_onnx

    trees = _trees(baseline)
    results = {"repeats": repeats, "trees": trees, "profile_args": profile_args, "note": SHARED_MACHINE,
               "goal_wall_s": CONVERT_AND_PROFILE_SECONDS, "models": {}}
    for name in models:
        onnx_path = trained_onnx(name)

        def convert_and_profile(checkout: str, model_dir: str) -> dict:
            row = {"convert": timed_convert(checkout, onnx_path, model_dir)}
            row["profile"] = timed_profile(checkout, model_dir, profile_args)
            row["total_wall_s"] = round(row["convert"]["wall_s"] + row["profile"]["wall_s"], 1)
            row["total_cpu_s"] = round(row["convert"]["cpu_s"] + row["profile"]["cpu_s"], 1)
            row["within_goal"] = row["total_wall_s"] <= CONVERT_AND_PROFILE_SECONDS
            print(f"{name}: convert {row['convert']['wall_s']} s, profile {row['profile']['wall_s']} s wall "
                  f"({row['total_cpu_s']} s CPU in all), load {row['profile']['load_average']}", flush=True)
            return row

        with tempfile.TemporaryDirectory() as scratch:
            runs = in_turn(trees, repeats, scratch, convert_and_profile)
        row = {"runs": runs, "median": {tree: {key: float(np.median([r[key] for r in rs])) for key in ("total_wall_s", "total_cpu_s")}
                                        for tree, rs in runs.items()}}
        if baseline:
            first = {tree: (rs[0]["profile"]["targets"], rs[0]["profile"]["point_accuracy"]) for tree, rs in runs.items()}
            row["same_accuracy_figures"] = first["this"] == first["baseline"]
        results["models"][name] = row
        write_results(out, results, quick)  # each model as it ends: a long run stopped keeps what it measured
    print(f"\n`snn-agent convert` + `snn-agent profile {' '.join(profile_args)}`, median of {repeats} runs each; "
          f"machine shared: load average per run in the JSON")
    print(f"{'model':<8}" + "".join(f"{tree + ' wall s':>16}{tree + ' CPU s':>15}" for tree in trees))
    for name, row in results["models"].items():
        print(f"{name:<8}" + "".join(f"{row['median'][t]['total_wall_s']:>16.1f}{row['median'][t]['total_cpu_s']:>15.1f}"
                                     for t in trees))
        if "same_accuracy_figures" in row:
            print(f"  the same accuracy figures as the baseline (every T, every point): {row['same_accuracy_figures']}")
    write_results(out, results, quick)
    print(f"wrote {out}")
    return 0


def timing(quick: bool, out: str, models: list, baseline: str, repeats: int) -> int:
    from plain_models import trained_onnx
    from snn_agent.conversion.loihi import LOIHI_DIR, evaluate_loihi
    from snn_agent.ir import SNNModel

    trees = _trees(baseline)
    validation = datasets.load("fashion-mnist", "train").subset(1000, offset=55_000)  # plain_models' validation split
    results = {"repeats": repeats, "trees": trees, "validation_images": len(validation.labels),
               "note": SHARED_MACHINE, "models": {}}
    for name in models:
        onnx_path = trained_onnx(name)

        def convert_once(checkout: str, out_dir: str) -> dict:
            row = timed_convert(checkout, onnx_path, out_dir)
            print(f"{name}: {row}", flush=True)
            return row

        with tempfile.TemporaryDirectory() as scratch:
            runs = in_turn(trees, repeats, scratch, convert_once)
            row = {"runs": runs, "median": {tree: {key: float(np.median([r[key] for r in rs])) for key in ("wall_s", "cpu_s")}
                                            for tree, rs in runs.items()}}
            first = os.path.join(scratch, "this0")
            if os.path.isdir(os.path.join(first, LOIHI_DIR)):
                loihi = SNNModel.load(os.path.join(first, LOIHI_DIR))
                x = model_input(validation, loihi.network.preprocessing)
                row["loihi_validation_accuracy"] = {"this": evaluate_loihi(loihi, x, validation.labels, (16, 32))}
                if baseline:
                    row["same_loihi_target"] = same_loihi_target(first, os.path.join(scratch, "baseline0"))
                    if not row["same_loihi_target"]:
                        other = SNNModel.load(os.path.join(scratch, "baseline0", LOIHI_DIR))
                        row["loihi_validation_accuracy"]["baseline"] = evaluate_loihi(other, x, validation.labels, (16, 32))
        results["models"][name] = row
    print(f"\n`snn-agent convert` (default options), median of {repeats} runs each; machine shared: load average per run in the JSON")
    print(f"{'model':<8}" + "".join(f"{tree + ' wall s':>16}{tree + ' CPU s':>15}" for tree in trees))
    for name, row in results["models"].items():
        print(f"{name:<8}" + "".join(f"{row['median'][t]['wall_s']:>16.1f}{row['median'][t]['cpu_s']:>15.1f}" for t in trees))
        if "same_loihi_target" in row:
            print(f"  same loihi target as the baseline: {row['same_loihi_target']}")
        print(f"  loihi target on {len(validation.labels)} validation images: {row.get('loihi_validation_accuracy')}")
        phases = row["runs"]["this"][0]["phases"] or {}
        for phase, seconds in phases.items():
            print(f"    {phase:<30} wall {seconds['wall']:>7.1f} s  CPU {seconds['cpu']:>6.1f} s")
    write_results(out, results, quick)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
