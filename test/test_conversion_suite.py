"""The conversion suite's smallest model (bench/plain_models.py: a plain MLP trained with torch on
Fashion-MNIST, no ceilings, no SNN-aware training) through `snn-agent convert` with its default
options: on a subset of the test set, within the suite's gaps to its DNN (bench/conversion.py)."""
import os
import sys

import pytest

from conftest import ROOT
from snn_agent.data import datasets

pytestmark = pytest.mark.skipif(not datasets.fashion_mnist_available(), reason="needs dataset-fashion-mnist")
sys.path.insert(0, os.path.join(ROOT, "bench"))

SUBSET = 2000


def test_plain_mlp_converts_within_the_suite_gaps():
    from conversion import SUITE_GOALS, convert_and_measure  # bench/conversion.py

    row = convert_and_measure("mlp", datasets.load("fashion-mnist", "test").subset(SUBSET))
    assert row["exports"] == {"openvino": "openvino/model.xml", "nir": "model.nir", "netx": "loihi.net"}
    assert row["dnn_accuracy"] > 0.8
    assert row["calibration"]["refit_check"]["images"] == 1000 - 256  # the weight refit checked on held-out images
    for target, goals in SUITE_GOALS.items():
        for t, limit in goals.items():
            gap = 100 * (row["dnn_accuracy"] - row["targets"][target][t])
            assert gap <= limit, f"{target} at T={t}: {gap:.2f} points below the DNN (limit {limit})"
