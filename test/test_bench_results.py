"""Bench results: a quick run leaves the full results alone, and every JSON says what made it."""
import glob
import hashlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from results_file import QuickRunIntoFullResults, output_path  # noqa: E402

FULL_RESULTS = os.path.join(ROOT, "bench", "results")


def _digests():
    return {p: hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in glob.glob(os.path.join(FULL_RESULTS, "*.json")) + glob.glob(os.path.join(FULL_RESULTS, "*.png"))}


def test_a_quick_bench_run_writes_beside_the_full_results_with_its_record():
    before = _digests()
    quick_json = os.path.join(FULL_RESULTS, "quick", "frame_parts.json")
    if os.path.exists(quick_json):
        os.remove(quick_json)
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "frame_parts.py"), "--quick"],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    assert _digests() == before, "a --quick run changed bench/results/"
    with open(quick_json) as f:
        run = json.load(f)["run"]
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert run["commit"] == head and isinstance(run["dirty"], bool)
    assert run["host"]["cores"] == os.cpu_count() and run["host"]["cpu_model"]
    assert run["quick"] is True and run["command"].endswith("bench/frame_parts.py --quick")
    assert run["date"].startswith("20")


def test_a_quick_run_may_not_be_pointed_at_the_full_results():
    with pytest.raises(QuickRunIntoFullResults):
        output_path("paced.json", True, os.path.join(FULL_RESULTS, "paced.json"))
    assert output_path("paced.json", True) == os.path.join(FULL_RESULTS, "quick", "paced.json")
    assert output_path("paced.json", False) == os.path.join(FULL_RESULTS, "paced.json")
