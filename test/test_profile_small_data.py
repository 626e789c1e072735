"""`snn-agent profile` on a data file of a few hundred samples: the split is chosen from its size
and said; only a file too small to give both splits anything to measure is refused."""
import json

import numpy as np
import pytest

from snn_agent import cli
from test_conversion import skl2onnx_digits_mlp


def test_profile_on_500_samples_splits_them_in_halves(tmp_path, capsys):
    onnx_path, _, x, labels = skl2onnx_digits_mlp(tmp_path)
    model_dir = tmp_path / "model"
    np.savez(tmp_path / "train.npz", x=x[:1200], y=labels[:1200])
    assert cli.main(["convert", str(onnx_path), "--calib", str(tmp_path / "train.npz"), "-o", str(model_dir),
                     "--no-loihi", "--preprocessing", '{"scale": 1.0}']) == 0
    small = tmp_path / "small.npz"
    np.savez(small, x=x[1200:1700], y=labels[1200:1700])
    capsys.readouterr()
    assert cli.main(["profile", str(model_dir), "--data", str(small), "--timesteps", "8,32", "--no-loihi",
                     "--json"]) == 0
    out = capsys.readouterr().out
    assert "data: the first 250 of 500 samples calibrate, the next 250 are held out (--calib-n=2000 would " \
           "leave too few to hold out: split in halves)" in out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["n"] == 250
    assert report["targets"]["ideal"]["32"] > 0.8

    # without --n and --calib-n a budget too small for anything takes the fewest images it measures on
    assert cli.main(["profile", str(model_dir), "--data", str(small), "--timesteps", "8,32", "--no-loihi",
                     "--no-openvino", "--budget-min", "0.001", "--json"]) == 0
    out = capsys.readouterr().out
    assert "the budget takes the first 200 calibration and 200 held-out samples" in out
    assert json.loads(out.strip().splitlines()[-1])["n"] == 200
    with pytest.raises(SystemExit, match="--budget-min must be a positive number of minutes"):
        cli.main(["profile", str(model_dir), "--data", str(small), "--budget-min", "0"])

    tiny = tmp_path / "tiny.npz"
    np.savez(tiny, x=x[:30], y=labels[:30])
    assert cli.main(["profile", str(model_dir), "--data", str(tiny), "--no-loihi", "--no-openvino"]) == 2
    assert "30 samples; profiling needs at least 20 to choose the neuron parameters and 20 more" in \
        capsys.readouterr().err
