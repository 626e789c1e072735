"""The network for T = 1 is the one chosen on the validation split (bench/t1_variants.py), and the
training script holds that split out of every choice."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from t1_variants import BUNDLED_T1, recipe_without_teacher, trained_with  # noqa: E402

CHOICE = os.path.join(ROOT, "bench", "results", "t1_variants.json")


def test_the_bundled_t1_network_is_the_recipe_chosen_on_validation():
    with open(CHOICE) as f:
        choice = json.load(f)
    assert not choice["run"]["quick"] and choice["epochs"] == 20
    assert len(choice["candidates"]) >= 2 and choice["validation"]["images"] == 5000
    chosen = choice["candidates"][choice["chosen"]]
    assert chosen["accuracy"] == max(c["accuracy"] for c in choice["candidates"].values())
    assert recipe_without_teacher(trained_with(BUNDLED_T1)) == recipe_without_teacher(chosen["trained_with"])
    assert "--validation 0" in choice["production_command"]


def test_a_validation_split_as_large_as_the_training_set_is_refused():
    run = subprocess.run([sys.executable, os.path.join(ROOT, "models", "train_fashion_cnn.py"),
                          "--validation", "60000", "--epochs", "1"], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "--validation 60000: between 0 and 59999" in run.stderr
