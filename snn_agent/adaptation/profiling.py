"""`snn-agent profile`: accuracy against T for each target, and the operating points stored with
the model (model_dir/operating_points.json) that the governor runs on."""
from __future__ import annotations

import os
from dataclasses import dataclass
import numpy as np

from ..backends.cpu import CpuBackend
from ..data import datasets
from ..data.prepare import model_input
from ..engine import SNNEngine
from ..engine.dnn import predict
from ..evaluation import accuracy_vs_timesteps
from ..ir import SNNModel
from ..progress import ProgressBar
from .operating_points import DEFAULT_GRID, PointTable, mark_pareto, measure_cost, search

# Parameter enhancement pays at small T; past this the plain conversion is kept, which saves
# most of the profiling time (large T dominate it).
ENHANCE_MAX_T = 32


@dataclass
class ProfileData:
    calib: tuple  # (x, labels) used to choose neuron parameters
    heldout: tuple  # (x, labels) every reported accuracy comes from
    name: str


def split_data(spec: str, model: SNNModel, n_test: int, n_calib: int) -> ProfileData:
    """Named data sets: calibrate on the training split, report on the test split. User files:
    the first `n_calib` samples calibrate, the rest are held out."""
    pre = model.network.preprocessing
    if spec in ("fashion-mnist", "digits"):
        test = datasets.load(spec, "test").subset(n_test)
        calib = datasets.load(spec, "train").subset(n_calib)
    else:
        data = datasets.load(spec)
        if len(data) <= n_calib:
            raise datasets.DatasetError(f"{spec}: {len(data)} samples; profiling needs more than "
                                        f"--calib-n={n_calib} (the rest is the held-out split)")
        calib, test = data.subset(n_calib), data.subset(n_test, offset=n_calib)
    return ProfileData((model_input(calib, pre), calib.labels), (model_input(test, pre), test.labels), test.name)


def profile_ideal(model_dir: str, data: ProfileData, grid=DEFAULT_GRID, latency_frames: int = 30):
    """Accuracy vs T with the plain conversion, and the CPU backend's operating points."""
    model = SNNModel.load(model_dir)
    engine = SNNEngine(model)
    plain = accuracy_vs_timesteps(engine.run, *data.heldout, grid, ProgressBar("ideal: accuracy vs T"))
    backend = CpuBackend()
    backend.load(model_dir)
    cost = measure_cost(backend.infer, data.heldout[0][:latency_frames])
    enhanced = search(engine.run, cost, data.calib, data.heldout, model.neuron,
                      [t for t in grid if t <= ENHANCE_MAX_T], progress=ProgressBar("ideal: operating points"))
    rest = search(engine.run, cost, data.calib, data.heldout, model.neuron,
                  [t for t in grid if t > ENHANCE_MAX_T], threshold_scales=(), v_inits=())
    table = PointTable("cpu", "ideal", mark_pareto(enhanced + rest),
                       {"data": data.name, "calibration_samples": len(data.calib[1]),
                        "heldout_samples": len(data.heldout[1])})
    table.save(model_dir)
    return plain, table


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
        energy = np.array([p.energy_j for p in table.points])
        acc = np.array([100 * p.accuracy for p in table.points])
        front = np.array([p.pareto for p in table.points])
        kind = table.points[0].energy_kind if table.points else ""
        right.scatter(energy[~front], acc[~front], marker="x", alpha=0.6)
        line, = right.plot(energy[front], acc[front], marker="o", label=f"{table.backend} ({kind}) Pareto front")
        for p in table.points:
            right.annotate(f"T={p.timesteps}", (p.energy_j, 100 * p.accuracy), fontsize=7,
                           xytext=(3, -8), textcoords="offset points", color=line.get_color())
    right.set(xscale="log", xlabel="energy per inference (J)", ylabel="accuracy (%)",
              title="operating points (enhanced neuron parameters)")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_points(table: PointTable, out=None) -> None:
    print(f"\noperating points for backend {table.backend} (target {table.target}), "
          f"held-out accuracy, energy {table.points[0].energy_kind if table.points else ''}:", file=out)
    print(f"{'T':>5}{'thr x':>7}{'v0':>6}{'accuracy':>10}{'latency ms':>12}{'energy J':>12}  pareto", file=out)
    for p in table.points:
        print(f"{p.timesteps:>5}{p.threshold_scale:>7.2f}{p.v_init:>6.2f}{p.accuracy:>10.4f}"
              f"{p.latency_ms:>12.3f}{p.energy_j:>12.3e}  {'*' if p.pareto else ''}", file=out)

