#!/usr/bin/env python3
"""Which of `profile`'s searches at small T pay on models converted with the weight refit.

    .venv/bin/python bench/profile_search.py [--models resnet vgg] [--calib-n 1000] [--val-n 1000] [--quick]

For each of the conversion suite's models (bench/plain_models.py, converted by `snn-agent
convert`'s defaults), the ideal target's operating-point search at T = 2..8 with each set of
enhancements `profile` can run: the global threshold-scale and initial-potential grid alone, with
the bias calibration (profile's default), and with the per-layer threshold search before it
(`profile --per-layer`); each chosen on the first CALIB_N training images (half search, half
check) and scored on VALIDATION images (train[55000:...], never the test set), with its wall
time. Writes bench/results/profile_search.json (bench/results/quick/ with --quick).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from snn_agent.adaptation.calibration import BIAS_IMAGES, dnn_channel_rates  # noqa: E402
from snn_agent.adaptation.operating_points import search  # noqa: E402
from snn_agent.conversion.pipeline import convert_model  # noqa: E402
from snn_agent.data import datasets  # noqa: E402
from snn_agent.data.prepare import model_input  # noqa: E402
from snn_agent.engine import SNNEngine  # noqa: E402
from snn_agent.evaluation import accuracy_vs_timesteps  # noqa: E402
from snn_agent.progress import ProgressBar  # noqa: E402
from plain_models import TRAIN_IMAGES, trained_onnx  # noqa: E402
from results_file import output_path, write_results  # noqa: E402

GRID = (2, 3, 4, 6, 8)


def variants(rates: list) -> dict:
    """The searches compared: name -> `search` options."""
    return {"global": dict(layer_scales=()),
            "global + bias (default)": dict(layer_scales=(), reference_rates=rates),
            "per-layer + bias (--per-layer)": dict(reference_rates=rates)}


def compare(name: str, calib_n: int, val_n: int) -> dict:
    with tempfile.TemporaryDirectory() as out_dir:
        model = convert_model(trained_onnx(name), "fashion-mnist", out_dir, progress=ProgressBar(f"{name}: convert"),
                              loihi=None)
    train = datasets.load("fashion-mnist", "train")
    calib, val = train.subset(calib_n), train.subset(val_n, offset=TRAIN_IMAGES)
    pre = model.network.preprocessing
    calib_xy, val_xy = (model_input(calib, pre), calib.labels), (model_input(val, pre), val.labels)
    engine = SNNEngine(model)
    plain = accuracy_vs_timesteps(engine.run, *val_xy, GRID, scores_by_timesteps=engine.scores_by_timesteps)
    row = {"plain": {"validation_accuracy": plain}}
    print(f"{name}: plain {plain}", flush=True)
    for variant, options in variants(dnn_channel_rates(model, calib_xy[0][:BIAS_IMAGES])).items():
        start = time.perf_counter()
        points = search(engine.run, None, calib_xy, val_xy, model.neuron, GRID, plain_heldout=plain,
                        scores_by_timesteps=engine.scores_by_timesteps, progress=ProgressBar(f"{name}: {variant}"),
                        **options)
        row[variant] = {"validation_accuracy": {p.timesteps: p.accuracy for p in points},
                        "enhancement": {p.timesteps: p.enhancement for p in points},
                        "seconds": round(time.perf_counter() - start, 1)}
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet", "vgg"], choices=["mlp", "vgg", "resnet"])
    ap.add_argument("--calib-n", type=int, default=1000, help="training images that choose (half search, half check)")
    ap.add_argument("--val-n", type=int, default=1000, help="validation images that score each choice")
    ap.add_argument("--quick", action="store_true", help="100 + 100 images, the first model only")
    ap.add_argument("--out", help="output JSON path")
    args = ap.parse_args()
    calib_n, val_n, models = (100, 100, args.models[:1]) if args.quick else (args.calib_n, args.val_n, args.models)
    out = output_path("profile_search.json", args.quick, args.out)
    results = {"grid": GRID, "calib_n": calib_n, "val_n": val_n,
               "splits": {"calibration": f"train[0:{calib_n}]",
                          "validation": f"train[{TRAIN_IMAGES}:{TRAIN_IMAGES + val_n}]"},
               "note": "wall seconds on a machine shared with other jobs", "models": {}}
    for name in models:
        results["models"][name] = compare(name, calib_n, val_n)
        write_results(out, results, args.quick)
    print(f"\n{'model':8} {'search':32} " + "".join(f"{'T=' + str(t):>8}" for t in GRID) + f"{'s':>8}")
    for name, row in results["models"].items():
        for variant, figures in row.items():
            accuracies = figures["validation_accuracy"]
            print(f"{name:8} {variant:32} " + "".join(f"{100 * accuracies[t]:8.2f}" for t in GRID)
                  + f"{figures.get('seconds', ''):>8}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
