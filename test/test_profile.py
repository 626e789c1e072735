"""`snn-agent profile`: both targets' accuracy curves and a table per backend (cpu, lava, openvino)
in operating_points.json, on a copy of the bundled model (its cached loihi target included)."""
import contextlib
import io
import json
import os
import shutil

import pytest

from snn_agent import cli
from snn_agent.adaptation.operating_points import PointTable, decimation_points, label_persistence
from snn_agent.data import datasets

BUNDLED_SNN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "fashion_cnn_snn")

GRID = (2, 4, 8, 48)  # 48 > ENHANCE_MAX_T: the plain-conversion branch too

# The data set the bundled model was trained for, else the digits fallback: the profile's tables,
# costs and files are the same either way; only accuracy floors need the model's own data.
DATA = datasets.default_dataset_name()
FLOOR = 0.5 if DATA == "fashion-mnist" else 0.0


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("profile") / "model"
    shutil.copytree(BUNDLED_SNN, model_dir, ignore=shutil.ignore_patterns("operating_points.json", "*.png"))
    return model_dir


@pytest.fixture(scope="module")
def report(profiled):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rc = cli.main(["profile", str(profiled), "--data", DATA, "--n", "150", "--calib-n", "100",
                       "--timesteps", ",".join(map(str, GRID)), "--weights", "for_t1:1", "--json"])
    out = buffer.getvalue()
    assert rc == 0, out
    return json.loads(out.strip().splitlines()[-1]), out


def test_json_has_both_targets_over_the_grid(report):
    data, out = report
    assert data["n"] == 150 and FLOOR < data["dnn_accuracy"] <= 1.0
    assert set(data["targets"]) == {"ideal", "loihi"}
    for curve in data["targets"].values():
        assert sorted(int(t) for t in curve) == list(GRID)
        assert all(FLOOR < a <= 1.0 for a in curve.values())
    assert "loihi" in out and "modelled chip time" in out


def test_operating_points_per_backend(report, profiled):
    cpu = PointTable.load(str(profiled), "cpu")
    lava = PointTable.load(str(profiled), "lava")
    openvino = PointTable.load(str(profiled), "openvino")
    assert (cpu.target, lava.target, openvino.target) == ("ideal", "loihi", "dnn")
    # the network trained for T = 1 (--weights for_t1:1): a cpu point of its own, after the grid's
    trained = cpu.points[-1]
    assert (trained.timesteps, trained.weights) == (1, "for_t1") and trained.accuracy > FLOOR
    assert trained.latency_ms < cpu.points[-2].latency_ms  # one step against T=48
    assert "weights trained for T=1 (for_t1)" in report[1]
    cpu.points = cpu.points[:-1]
    assert all(not p.weights for p in cpu.points + lava.points + openvino.points)
    for table in (cpu, lava):
        assert [p.timesteps for p in table.points] == list(GRID)
        assert any(p.pareto for p in table.points)
        assert all(FLOOR < p.accuracy <= 1.0 and p.energy_j > 0 and p.latency_ms > 0 for p in table.points)
        assert table.points[-1].energy_j > table.points[0].energy_j  # T=48 costs more than T=2
        assert table.points[-1].latency_ms > table.points[0].latency_ms
    assert {p.latency_kind for p in cpu.points} == {"measured"}
    # lava: modelled, strictly growing with T (chip steps x step time; static power per step)
    assert {p.latency_kind for p in lava.points} == {"modelled"}
    assert all(a.latency_ms < b.latency_ms and a.energy_j < b.energy_j for a, b in zip(lava.points, lava.points[1:]))
    assert lava.points[0].latency_ms == pytest.approx((2 + 4) * 10e-3)  # (T + depth) x 10 us
    # openvino: decimation rates, energy falling as 1/rate, every frame classified when affordable
    assert [p.timesteps for p in openvino.points] == [0] * len(openvino.points)
    assert openvino.points[0].decimation == 1 and openvino.points[0].accuracy == pytest.approx(report[0]["dnn_accuracy"])
    # a skipped frame is right as often as the replayed camera repeats a label: measured, and said
    persistence = label_persistence(datasets.load(DATA, "test").labels[:150])
    assert openvino.calibration["label_persistence"] == pytest.approx(persistence) and persistence < 0.3  # shuffled test images
    assert openvino.points[1].accuracy == pytest.approx(report[0]["dnn_accuracy"] * (1 + persistence) / 2)
    assert f"right with probability {persistence:.3f}" in report[1]
    assert all(a.energy_j > b.energy_j for a, b in zip(openvino.points, openvino.points[1:]))
    assert (profiled / "profile.png").stat().st_size > 10_000


def test_weights_option_is_checked():
    for bad in ("for_t1", "for_t1:", ":1", "for_t1:0", "for_t1:x"):
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["profile", "m", "--weights", bad])
    args = cli.build_parser().parse_args(["profile", "m", "--weights", "a/b:2,1", "--weights", "c:1"])
    assert args.weights == [("a/b", (1, 2)), ("c", (1,))]


def test_decimation_accuracy_falls_with_the_rate():
    assert label_persistence([3, 3, 1, 1, 1, 2]) == pytest.approx(3 / 5)
    points = decimation_points(0.9, 1.0, 1e-3, "modelled", persistence=0.5, rates=(1, 2, 4))
    assert [p.accuracy for p in points] == pytest.approx([0.9, 0.9 * 1.5 / 2, 0.9 * 2.5 / 4])
    assert all(p.pareto for p in points)


def test_measured_costs_interleave_every_configuration_in_short_blocks():
    """side_by_side on a measured cost runs each configuration on every frame, in blocks of frames
    whose order of configurations is drawn per block, so that a machine whose speed drifts weighs on
    all of them alike; a block's first frame (after another configuration) is counted apart."""
    from snn_agent.adaptation.operating_points import BLOCK_FRAMES, MeasuredCost, side_by_side
    from snn_agent.backends.cpu import CpuBackend
    from snn_agent.data.prepare import model_input
    from snn_agent.ir import SNNModel

    model = SNNModel.load(BUNDLED_SNN)
    backend = CpuBackend()
    backend.load(BUNDLED_SNN)
    frames = model_input(datasets.load(DATA, "test").subset(4 * BLOCK_FRAMES), model.network.preprocessing)
    calls = []

    def infer(x, timesteps, neuron):
        calls.append((timesteps, x.tobytes()))
        return backend.infer(x, timesteps, neuron)

    try:
        costs = side_by_side(MeasuredCost(infer, frames), [(2, model.neuron), (12, model.neuron)], rounds=2)
    finally:
        backend.close()
    assert len(calls) == 2 + 2 * len(frames) * 2  # a warm-up each, then every frame x config x round
    runs = [calls[i:i + BLOCK_FRAMES] for i in range(2, len(calls), BLOCK_FRAMES)]
    assert all(len({t for t, _ in run}) == 1 for run in runs)  # a configuration's block runs back to back
    blocks = [runs[i:i + 2] for i in range(0, len(runs), 2)]
    assert all(sorted(a[0][0] for a in pair) == [2, 12] for pair in blocks)  # both on every block...
    assert all(pair[0][j][1] == pair[1][j][1] for pair in blocks for j in range(BLOCK_FRAMES))  # ...of the same frames
    assert len({pair[0][0][0] for pair in blocks}) == 2  # in both orders
    assert len(costs) == 2 and costs[1].energy_j > costs[0].energy_j > 0  # T=12 costs more CPU energy than T=2
    assert costs[1].switch_latency_ms > costs[0].switch_latency_ms > 0
