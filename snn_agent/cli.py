"""`snn-agent`: convert a DNN, profile it against T, run the robot graph.

    snn-agent convert MODEL.onnx --calib DATASET -o OUT/
    snn-agent profile OUT/ --data DATASET [--weights DIR:T[,T...]] [--json]
    snn-agent memory OUT/ --dataset DATASET [--per-class N]   (the graded learning rule's old-class memory)
    snn-agent run [--config config/agent.yaml] [--duration S] [--json]
    snn-agent run --sim mujoco [--duration S] [--json]     (the closed-loop mission, docs/simulation.md)
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys



def _convert(args) -> int:
    from .conversion.convert import ConversionOptions
    from .conversion.pipeline import convert_model
    from .progress import ProgressBar

    options = ConversionOptions(percentile=args.percentile, calibration_images=args.calib_images,
                                per_channel=args.per_channel, calibrate=not args.no_calibration)
    pre = json.loads(args.preprocessing) if args.preprocessing else None
    from .conversion.loihi import LoihiOptions

    loihi = None if args.no_loihi else LoihiOptions()
    snn = convert_model(args.model, args.calib, args.out, options, pre, ProgressBar("convert"), loihi)
    print(f"\nConverted {args.model} -> {args.out}  (target ideal; calibration: {args.calib}, "
          f"{snn.info['calibration_images']} images, percentile {args.percentile}"
          f"{', per channel' if args.per_channel else ''})")
    calibrated = snn.info.get("calibration")
    print(f"weights refit in {len(calibrated['refit_layers'])} layers, initial potentials calibrated per channel in "
          f"{calibrated['layers']} layers at T={calibrated['timesteps']} on {calibrated['images']} images in "
          f"{calibrated['seconds']:.1f} s" if calibrated else "not calibrated (--no-calibration)")
    if calibrated and calibrated.get("converged"):
        print(f"from T={calibrated['converged']['runs_from_t']} on: a second weight set, refit at "
              f"T={calibrated['converged']['timesteps']} (a T=8 refit leaves a floor at large T)")
    if snn.info["dropped_postprocessing"]:
        print(f"dropped exporter post-processing: {', '.join(snn.info['dropped_postprocessing'])}")
    print(f"{'layer':<22}{'kind':<7}{'neurons':>9}{'synapses':>11}{'DNN MACs':>11}{'scale':>9}  {'from':<13}{'DNN sparsity':>12}")
    for row in snn.info["layers"]:
        scale = f"{row['scale']:.3f}" if "scale" in row else "-"
        sparsity = f"{row['dnn_sparsity']:.1%}" if "dnn_sparsity" in row else "-"
        print(f"{row['name'][:21]:<22}{row['kind']:<7}{row['neurons']:>9}{row['synapses']:>11}"
              f"{row['dnn_macs']:>11}{scale:>9}  {row.get('scale_from', 'score layer'):<13}{sparsity:>12}")
        if "channel_scale" in row:
            c = row["channel_scale"]
            print(f"{'':<22}per-channel scales ({c['channels']}): min {c['min']:.3f}, median {c['median']:.3f}, "
                  f"max {c['max']:.3f}")
    if "loihi" in snn.info:
        fixed = snn.info["loihi"]
        print(f"\nloihi target (8-bit weights, fixed point; input x{fixed['input_scale']:.1f} as graded spikes, "
              f"threshold scales {fixed['threshold_scales']} chosen at T={fixed['search_timesteps']}):")
        print(f"{'layer':<22}{'weight scale':>13}{'max |w|':>9}{'vth':>8}  limited by")
        for row in fixed["layers"]:
            print(f"{row['name'][:21]:<22}{row['weight_scale']:>13.2f}{row['max_weight']:>9}{row['vth']:>8}  "
                  f"{row['limited_by']}")
    for name, outcome in snn.info["exports"].items():
        print(f"{name}: {outcome}")
    return 0


def _profile(args) -> int:
    from .adaptation import profiling
    from .ir import SNNModel

    model = SNNModel.load(args.model_dir)
    grid = sorted({int(t) for t in args.timesteps.split(",")})
    data = profiling.split_data(args.data, model, profiling.MAX_IMAGES if args.n is None else args.n,
                                profiling.MAX_IMAGES if args.calib_n is None else args.calib_n)
    if args.n is None or args.calib_n is None:
        budget_min = profiling.DEFAULT_BUDGET_MIN if args.budget_min is None else args.budget_min
        if not budget_min > 0:
            raise SystemExit(f"--budget-min must be a positive number of minutes, got {args.budget_min}")
        data = profiling.within_budget(args.model_dir, model, data, grid, budget_min * 60,
                                       loihi=not args.no_loihi and model.network.is_chain,
                                       heldout_given=args.n is not None, calib_given=args.calib_n is not None,
                                       per_layer=args.per_layer)
    print(f"data: {data.split}")
    dnn_accuracy = profiling.dnn_accuracy(args.model_dir, data)
    targets, tables, skipped = {}, [], []
    trained_weights = args.weights
    if trained_weights:
        skipped.append("lava and openvino backends: points with their own weights (--weights); on the chip "
                       "another weight set is another network to load")
    loihi_reason = "--no-loihi" if args.no_loihi else None if model.network.is_chain else \
        "they take a chain of layers; this network has residual Add or Concat branches"
    if loihi_reason:
        skipped.append(f"loihi target / lava backend: {loihi_reason}")
    # the loihi target's search in a second process beside the ideal target's, where there is a core
    # for it: a spawned one (a forked copy of a process running OpenVINO's and BLAS's threads can hang)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as beside:
        loihi_apart = None
        if not loihi_reason and model.target == "ideal" and profiling.side_by_side():
            print("loihi: searched in a second process beside the ideal target (no progress bar of its own; its "
                  "table follows)", file=sys.stderr)
            loihi_apart = beside.submit(profiling.profile_loihi, args.model_dir, data, grid, per_layer=args.per_layer,
                                        show_progress=False)
        if model.target == "ideal":  # a directory holding only a loihi target has no ideal one
            targets["ideal"], table = profiling.profile_ideal(args.model_dir, data, grid,
                                                               trained_weights=trained_weights,
                                                               per_layer=args.per_layer)
            tables.append(table)
        if not loihi_reason:
            targets["loihi"], table = loihi_apart.result() if loihi_apart else \
                profiling.profile_loihi(args.model_dir, data, grid, per_layer=args.per_layer)
            tables.append(table)
    if args.no_openvino:
        skipped.append("openvino backend: --no-openvino")
    else:
        try:
            tables.append(profiling.profile_openvino(args.model_dir, data, dnn_accuracy))
        except Exception as exc:  # noqa: BLE001 - the SNN tables stand without the DNN's
            skipped.append(f"openvino backend: {exc}")
    for table in tables:
        table.save(args.model_dir)
    print(f"\nDNN accuracy {dnn_accuracy:.4f} on {len(data.heldout[1])} held-out images of {data.name}")
    print("accuracy of the plain conversion per target (threshold x1, v0 = half a threshold; "
          "loihi: LoihiEngine, bit-exact with Lava):")
    print(f"{'T':>5}" + "".join(f"{name:>10}" for name in targets))
    for t in grid:
        print(f"{t:>5}" + "".join(f"{targets[name][t]:>10.4f}" for name in targets))
    for table in tables:
        profiling.print_points(table)
    for reason in skipped:
        print(f"not profiled: {reason}")
    plot = os.path.join(args.model_dir, "profile.png")
    profiling.plot_profile(targets, dnn_accuracy, tables, plot,
                           f"{os.path.basename(os.path.normpath(args.model_dir))} on {data.name}")
    print(f"plot: {plot}\noperating points ({', '.join(t.backend for t in tables)}): "
          f"{os.path.join(args.model_dir, 'operating_points.json')}")
    if args.json:
        print(json.dumps({"dnn_accuracy": dnn_accuracy, "n": len(data.heldout[1]), "targets": targets,
                          "operating_points": {t.backend: [vars(p) for p in t.points] for t in tables}}))
    return 0


def _memory(args) -> int:
    from .data import datasets
    from .ir import SNNModel
    from .learning import memory

    model = SNNModel.load(args.model_dir)
    try:
        split = "train" if args.dataset in datasets.NAMED_DATASETS else "the whole set"  # a file has no splits
        old_classes = memory.from_dataset(datasets.training_set(args.dataset), split, model.class_names,
                                          args.per_class)
    except memory.MemoryFileError as exc:
        raise SystemExit(f"snn-agent memory: error: {exc}")
    path = memory.save(args.model_dir, old_classes)
    print(f"{path}: {len(old_classes.labels)} images of {len(model.class_names)} classes, {old_classes.source} "
          f"({os.path.getsize(path) / 1e6:.2f} MB)")
    return 0


def _weights_option(text: str) -> tuple:
    """`--weights DIR:T[,T...]` -> (DIR, (T, ...))."""
    directory, _, timesteps = text.rpartition(":")
    try:
        grid = tuple(sorted({int(t) for t in timesteps.split(",")}))
    except ValueError:
        grid = ()
    if not directory or not grid or grid[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected DIR:T[,T...], e.g. for_t1:1 (DIR relative to the "
                                         f"model directory, each T >= 1)")
    return directory, grid


def build_parser() -> argparse.ArgumentParser:
    from .learning.memory import MEMORY_PER_CLASS

    parser = argparse.ArgumentParser(prog="snn-agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    convert = sub.add_parser("convert", help="convert an ONNX DNN into an SNN model directory")
    convert.add_argument("model", help="the DNN as ONNX")
    convert.add_argument("--calib", default="fashion-mnist",
                         help="calibration data: fashion-mnist, digits, an .npz (x, y) or a folder of class folders")
    convert.add_argument("-o", "--out", required=True, help="output model directory")
    convert.add_argument("--percentile", type=float, default=99.9,
                         help="activation percentile used as a layer's scale when it has no Clip ceiling")
    convert.add_argument("--calib-images", type=int, default=1000, help="calibration images to use")
    convert.add_argument("--per-channel", action="store_true",
                         help="one scale per output channel (conv) or neuron (dense) instead of one per layer: "
                              "channels with small activations are not starved of spikes at small T")
    convert.add_argument("--no-calibration", action="store_true",
                         help="skip the calibration of each channel's initial potential (docs/conversion.md); "
                              "layers with a Clip ceiling are never calibrated")
    convert.add_argument("--no-loihi", action="store_true",
                         help="skip the loihi target and its netx file (the lava backend makes them on first use)")
    convert.add_argument("--preprocessing", help='JSON overriding the model metadata, e.g. '
                         '\'{"scale": 0.00392, "mean": [0.5], "std": [0.5], "input_shape": [1, 28, 28]}\'')
    convert.set_defaults(func=_convert)

    profile = sub.add_parser("profile", help="accuracy against timesteps for each target, the operating points "
                             "of the cpu, lava and openvino backends (model_dir/operating_points.json), a plot")
    profile.add_argument("model_dir")
    profile.add_argument("--data", default="fashion-mnist", help="test data (same forms as --calib)")
    profile.add_argument("--n", type=int, default=None,
                         help="held-out test images (0 = all; default: as many as --budget-min allows, at most 2000)")
    profile.add_argument("--calib-n", type=int, default=None,
                         help="images that choose the neuron parameters (half search, half check what is kept); a data "
                              "file with fewer than twice this many is split in halves (default: as --n)")
    profile.add_argument("--budget-min", type=float, default=None,
                         help="minutes the profile may take where --n or --calib-n is not given: the image counts "
                              "are chosen from the engines' speed measured at the start (default 3.5)")
    profile.add_argument("--timesteps", default="2,3,4,6,8,12,16,24,32,48,64,96,128", help="comma-separated T grid")
    profile.add_argument("--weights", action="append", default=[], metavar="DIR:T[,T...]", type=_weights_option,
                         help="also points at these T with the weights in DIR (relative to model_dir): a conversion "
                              "of the same network trained for them, e.g. for_t1:1 (cpu backend; repeatable)")
    profile.add_argument("--per-layer", action="store_true",
                         help="also search per-layer threshold scales at T <= 8 (before the bias calibration): "
                              "several times the search's time; docs/adaptation.md says what it gained")
    profile.add_argument("--no-loihi", action="store_true", help="skip the loihi target (and the lava backend's table)")
    profile.add_argument("--no-openvino", action="store_true", help="skip the openvino backend's decimation table")
    profile.add_argument("--json", action="store_true", help="last line: one JSON object")
    profile.set_defaults(func=_profile)

    memory = sub.add_parser("memory", help="store the old-class memory the graded learning rule rehearses "
                                           "(model_dir/learning_memory.npz): images of the model's training set")
    memory.add_argument("model_dir")
    memory.add_argument("--dataset", default="fashion-mnist",
                        help="the model's training data (same forms as --calib; a known dataset's training split), "
                             "its classes matched to the model's by name")
    memory.add_argument("--per-class", type=int, default=MEMORY_PER_CLASS,
                        help=f"images of each of the model's classes: the first ones of the dataset (default "
                             f"{MEMORY_PER_CLASS}, bench/learning.py's choice)")
    memory.set_defaults(func=_memory)

    try:
        from .ros import run_graph
    except ImportError as exc:  # rclpy absent: convert and profile still work
        run = sub.add_parser("run", help="(unavailable: rclpy cannot be imported)")
        run.set_defaults(func=lambda _args, _exc=exc: sys.exit(f"snn-agent run needs ROS 2 (rclpy): {_exc}"))
    else:
        run = sub.add_parser("run", help="bring up the agent with a replayed camera and a simulated battery "
                                         "(--sim mujoco: the closed-loop mission in the arena's MuJoCo twin)")
        run_graph.add_arguments(run)
        run.set_defaults(func=run_graph.main)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .conversion.onnx_import import UnsupportedModelError
    from .data.datasets import DatasetError
    from .ir import ModelFormatError
    from .backends.base import BackendError

    try:
        return args.func(args) or 0
    except (UnsupportedModelError, DatasetError, ModelFormatError, BackendError, FileNotFoundError) as exc:
        print(f"snn-agent {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
