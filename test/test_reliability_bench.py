"""A short flood and a short soak of bench/reliability.py: the agent in a process of its own, driven
over DDS by the bench's client, as the full bench does (there for 60 s and 1 hour)."""
import json
import subprocess
import sys

from conftest import ROOT


def test_short_flood_and_soak(tmp_path):
    out = tmp_path / "reliability.json"
    proc = subprocess.run([sys.executable, "bench/reliability.py", "--quick", "--only", "flood,soak",
                           "--flood-s", "5", "--soak-s", "15", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["run"]["quick"] and results["run"]["commit"]
    flood, soak = results["flood"], results["soak"]
    assert flood["alive"] and flood["internal_errors"] == 0
    assert flood["send_rate_hz"] > 100 and flood["labels_per_s"] > 20  # the backend's own pace, not the sender's
    assert flood["rss_growth_mb"] < 30  # 5 s: a leak of the flood's size would show (the bench's target: 10 MB in 60 s)
    assert soak["alive"] and soak["internal_errors"] == 0 and soak["frames"] >= 0.8 * 15 * 30
    assert soak["lost_or_late"] < 0.2 * soak["frames"]  # a shared machine: some frames answer after 33 ms
    assert soak["rss_slope_mb_per_hour"] is not None and soak["first_window"]["n"] > 0


def test_each_corrupt_model_is_refused_with_the_file_named_and_the_old_model_kept(tmp_path):
    out = tmp_path / "reliability.json"
    proc = subprocess.run([sys.executable, "bench/reliability.py", "--quick", "--only", "corrupt", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cases = {k: v for k, v in json.loads(out.read_text())["corrupt"].items() if isinstance(v, dict)}
    assert set(cases) == {"truncated_weights", "wrong_shapes", "nan_weights", "garbage_snn_json", "missing_file",
                          "directory_is_a_file"}
    for name, case in cases.items():
        assert case["names_the_file"] and case["previous_model_running"] and case["still_classifying"], (name, case)
        assert case["alive"], name
    # what the files alone tell is refused when the parameter is set; the rest when the model loads
    assert [n for n, c in cases.items() if c["rejected_up_front"]] == ["garbage_snn_json", "missing_file",
                                                                       "directory_is_a_file"]
