"""bench/stdp.py's choices: the tuned baseline network's inference T is chosen on validation (the
test set chooses nothing), and the results file records that choice and the fields issue 20 asks for."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import stdp as bench  # noqa: E402

from snn_agent.learning.stdp_topspark import Enhancement  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results", "stdp.json")


def deployed(validation, validation_energy, test):
    return {"validation_accuracy": validation, "validation_inference_energy_j": validation_energy,
            "test_accuracy": test, "inference_energy_j": validation_energy}


def test_inference_t_is_the_cheapest_on_validation_within_two_points_whatever_the_test_says():
    baseline = {"T": 250, "validation_accuracy": 0.72, "test_accuracy": 0.70, "inference_energy_j": 80e-6}
    points = {"100": deployed(0.705, 24e-6, 0.60),   # within 2 points on validation; test far below
              "80": deployed(0.701, 20e-6, 0.69),    # within, cheapest: chosen
              "64": deployed(0.699, 18e-6, 0.72)}    # 2.1 points below on validation: not, whatever its test
    point = bench.inference_point(baseline, points)
    assert point["T"] == 80 and point["within_tolerance_on_validation"]
    assert point["inference_energy_reduction"] == 4.0 and abs(point["accuracy_gap_points"] - 1.0) < 1e-9
    assert point["target_met"]
    del points["80"], points["100"]  # none within: the most accurate on validation, and the miss is said
    point = bench.inference_point(baseline, points)
    assert point["T"] == 64 and not point["within_tolerance_on_validation"]


def test_homeostasis_variants_are_the_decay_as_chosen_slower_and_none():
    taus = [e.tau_theta_images for e in bench.decay_variants(Enhancement(tau_theta_images=5000.0))]
    assert taus == [5000.0, 5000.0 * bench.HOMEOSTASIS_SLOWER, None]
    assert [e.tau_theta_images for e in bench.decay_variants(Enhancement())] == [None]


def test_the_results_file_records_the_choices_it_made_on_validation():
    with open(RESULTS) as f:
        results = json.load(f)
    assert not results["run"]["quick"]
    recorded = results["inference_point"]  # the kept network (the tuned baseline's first seed) run at reduced T
    assert recorded == bench.inference_point(results["baseline"]["per_seed"][0], results["baseline_network_at_reduced_t"])
    point = results["best_point"]
    for field in ("T", "baseline_T", "training_energy_reduction", "inference_energy_reduction", "accuracy",
                  "baseline_accuracy"):
        assert field in point
    assert len(point["accuracy_per_seed"]) >= 2 and len(point["baseline_accuracy_per_seed"]) >= 2
    assert abs(point["accuracy"] - sum(point["accuracy_per_seed"]) / len(point["accuracy_per_seed"])) < 1e-9
    assert {"ours_images_per_s", "peer", "peer_images_per_s"} <= set(results["speed"])
    for t, searched in results["searched"].items():  # every T's homeostasis refined alike
        assert len(searched["homeostasis"]["variants"]) >= 1


def test_a_final_point_is_the_mean_over_its_seeds_with_each_seeds_figures_and_the_spread():
    runs = [{"T": 64, "enhanced": True, "seed": seed, "test_accuracy": accuracy, "validation_accuracy": accuracy + 0.01,
             "training_ops": {"input_spikes": spikes}, "margin_weight_per_mv": weight,
             "learning_curve": [{"images": 100, "validation_accuracy": accuracy}]}
            for seed, accuracy, spikes, weight in ((0, 0.60, 1000, 0.001), (1, 0.64, 1200, 0.001), (2, 0.68, 1400, 0.003))]
    row = bench.mean_over_seeds(runs)
    assert row["T"] == 64 and row["enhanced"] is True and row["seeds"] == [0, 1, 2]
    assert abs(row["test_accuracy"] - 0.64) < 1e-12 and abs(row["test_accuracy_spread_points"] - 8.0) < 1e-9
    assert row["training_ops"] == {"input_spikes": 1200.0}
    assert row["margin_weight_per_mv"] == [0.001, 0.001, 0.003]  # differs per seed: each seed's kept
    assert row["learning_curve"] == [{"images": 100, "validation_accuracy": 0.64}]
    assert row["test_accuracy_per_seed"] == [0.60, 0.64, 0.68] and row["per_seed"] == runs


def test_the_gap_is_paired_seed_by_seed_with_an_interval_that_widens_with_the_spread():
    gap = bench.paired_gap([0.70, 0.70, 0.68], [0.67, 0.68, 0.64])
    assert [round(g, 9) for g in gap["accuracy_gap_points_per_seed"]] == [3.0, 2.0, 4.0]
    low, high = gap["accuracy_gap_points_95ci"]
    assert abs(gap["accuracy_gap_points_sd"] - 1.0) < 1e-9
    assert abs((low + high) / 2 - 3.0) < 1e-9 and abs((high - low) / 2 - 4.303 / 3 ** 0.5) < 1e-3  # t(2) = 4.303
    steady = bench.paired_gap([0.70, 0.70, 0.68], [0.67, 0.67, 0.65])  # the same mean seed by seed: no spread
    assert steady["accuracy_gap_points_95ci"][1] - steady["accuracy_gap_points_95ci"][0] < 1e-9


def test_networks_read_at_the_baseline_t_are_their_own_row_with_the_reduced_ts_training_energy():
    costs = {"enhanced": True, "enhancement": {}, "training_energy_j_per_run": 1.0, "cpu_s_per_training_image": 1.0,
             "cpu_s_per_inference_image": 1.0}
    baseline = {"T": 250, "training_energy_j": 400e-6, "inference_energy_j": 80e-6, "test_accuracy": 0.70,
                "test_accuracy_per_seed": [0.71, 0.69], "validation_accuracy": 0.71, **costs}
    runs = [{**costs, "T": 64, "seed": seed, "test_accuracy": accuracy, "validation_accuracy": accuracy,
             "training_energy_j": 100e-6, "inference_energy_j": 20e-6, "margin_weight_per_mv": 0.001,
             "read_at_t": {"T": 250, "validation_accuracy": read, "test_accuracy": read, "inference_energy_j": 80e-6,
                           "margin_weight_per_mv": 0.0}}
            for seed, accuracy, read in ((0, 0.66, 0.70), (1, 0.64, 0.68))]
    point = bench.best_point(baseline, [bench.mean_over_seeds(runs)])
    assert point["T"] == 64 and abs(point["accuracy"] - 0.65) < 1e-12  # the reduced-T figure stays the reduced T's
    read = point["read_at_baseline_t"]
    assert read["trained_at_T"] == 64 and read["read_at_T"] == 250 and read["training_energy_reduction"] == 4.0
    assert read["inference_energy_reduction"] == 1.0 and read["accuracy_per_seed"] == [0.70, 0.68]
    assert [round(g, 9) for g in read["accuracy_gap_points_per_seed"]] == [1.0, 1.0] and read["within_tolerance_on_test"]
