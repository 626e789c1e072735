#!/usr/bin/env python3
"""Operating points' CPU latency and energy when frames come at a camera's rate, against back to back.

    .venv/bin/python bench/paced.py [--quick] [--rate 30]

bench/adaptation.py times frames back to back, as a profile does. A robot's camera leaves the
core idle between frames (33 ms at 30 frames/s), and a frame that follows an idle gap starts from
cold caches. Here the bundled model's `cpu` operating points (T <= the baseline) and the
baseline (the `ideal` target's own, from bench/results/adaptation.json unless --baseline-t says;
plain conversion) each run on the same test frames, all configurations interleaved in blocks of
BLOCK_FRAMES (operating_points.py, stated in the JSON) in a random order (MeasuredCost.interleaved;
a configuration's cost is that of the frames it runs after its own), twice: back to back, and with an idle gap of 1/rate before every
frame. Latency measured (median), energy = CPU time x 5 W (modelled).
Writes bench/results/paced.json (bench/results/quick/ with --quick).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from snn_agent.adaptation.operating_points import BLOCK_FRAMES, MeasuredCost, PointTable  # noqa: E402
from snn_agent.adaptation.profiling import split_data  # noqa: E402
from snn_agent.backends.cpu import CpuBackend  # noqa: E402
from results_file import output_path, write_results  # noqa: E402

MODEL_DIR = os.path.join(ROOT, "models", "fashion_cnn_snn")
ADAPTATION_RESULTS = os.path.join(ROOT, "bench", "results", "adaptation.json")


def ideal_baseline_t() -> int:
    """The ideal (cpu) target's baseline T from the full run of bench/adaptation.py."""
    try:
        with open(ADAPTATION_RESULTS) as f:
            return int(json.load(f)["targets"]["ideal"]["baseline_T"])
    except (OSError, KeyError, ValueError) as exc:
        raise SystemExit(f"{ADAPTATION_RESULTS} holds no ideal-target baseline ({exc!r}): run "
                         f"bench/adaptation.py first, or give --baseline-t")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="40 frames, 1 round (instead of 100 x 2)")
    ap.add_argument("--rate", type=float, default=30.0, help="camera frames per second (the idle gap is 1/rate)")
    ap.add_argument("--baseline-t", type=int, help="the baseline T (default: the ideal target's in "
                                                    "bench/results/adaptation.json)")
    ap.add_argument("--out", help="the JSON file (default: bench/results/paced.json, or bench/results/quick/ with --quick)")
    args = ap.parse_args()
    out = output_path("paced.json", args.quick, args.out)
    if not args.rate > 0:
        ap.error(f"--rate must be > 0, got {args.rate}")

    baseline_t = args.baseline_t or ideal_baseline_t()
    cpu = CpuBackend()
    cpu.load(MODEL_DIR)
    frames, rounds = (40, 1) if args.quick else (100, 2)
    x = split_data("fashion-mnist", cpu.model, frames, 10).heldout[0]
    points = [p for p in PointTable.load(MODEL_DIR, "cpu").points if p.timesteps <= baseline_t]
    plain = cpu.model.neuron
    configs = [(baseline_t, plain)] + [p.configuration(plain.reset) for p in points]
    labels = [f"baseline T={baseline_t} (plain)"] + [f"T={p.timesteps} ({p.enhancement})" for p in points]
    cost = MeasuredCost(cpu.infer, x)
    gap = 1.0 / args.rate
    print(f"{len(configs)} configurations x {frames} frames x {rounds} rounds, back to back, then with "
          f"{gap * 1e3:.1f} ms idle before every frame (~{len(configs) * frames * rounds * gap:.0f} s)...", flush=True)
    started = time.time()
    regimes = {"back_to_back": cost.interleaved(configs, rounds), "paced": cost.interleaved(configs, rounds, gap)}

    rows = []
    for i, label in enumerate(labels):
        row = {"configuration": label, "T": configs[i][0]}
        for regime, costs in regimes.items():
            latency_ms, energy_j = costs[i].latency_ms, costs[i].energy_j
            base_latency, base_energy = costs[0].latency_ms, costs[0].energy_j
            row[regime] = {"latency_ms": latency_ms, "energy_j": energy_j,
                           "latency_reduction": base_latency / latency_ms, "energy_reduction": base_energy / energy_j}
        rows.append(row)
    print(f"\nbundled model, cpu backend, {frames} Fashion-MNIST test frames; latency measured (median), "
          f"energy CPU time x 5 W (modelled); reductions against the baseline (T={baseline_t}) in the same regime; "
          f"blocks of {BLOCK_FRAMES} frames")
    print(f"{'configuration':58s} {'back to back: ms':>17s} {'lat /':>6s} {'E /':>6s}   "
          f"{'paced ' + format(args.rate, 'g') + ' fps: ms':>19s} {'lat /':>6s} {'E /':>6s}")
    for row in rows:
        b, p = row["back_to_back"], row["paced"]
        print(f"{row['configuration'][:58]:58s} {b['latency_ms']:17.3f} {b['latency_reduction']:6.2f} "
              f"{b['energy_reduction']:6.2f}   {p['latency_ms']:19.3f} {p['latency_reduction']:6.2f} "
              f"{p['energy_reduction']:6.2f}")
    result = {"model": "models/fashion_cnn_snn", "backend": "cpu", "baseline_T": baseline_t,
              "cost_block_frames": BLOCK_FRAMES, "frames": frames, "rounds": rounds,
              "rate_hz": args.rate, "latency": "measured (median single-frame wall time)",
              "energy": "modelled: CPU time x 5 W per core", "rows": rows, "seconds": time.time() - started}
    write_results(out, result, args.quick)
    print(f"wrote {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
