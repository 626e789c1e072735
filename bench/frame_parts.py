#!/usr/bin/env python3
"""Where a single frame's time goes on the `cpu` backend: the part that T does not cut.

    .venv/bin/python bench/frame_parts.py [--quick]

1. Held cost against T: the bundled model at plain parameters for T = 1..12, and the enhanced T=2
   operating point, each on the same test frames in blocks of 64 (MeasuredCost.interleaved, as
   bench/adaptation.py measures); a straight line through the plain points splits a frame into a
   fixed part and a part per step. 4x from T=12 at T=2 needs the fixed part under 4/3 of a step.
   Taken 3 times, 10 s apart (once with --quick): this machine's state moves both parts within
   seconds.
2. The fixed part's pieces, each timed alone on the same frames, interleaved as in 1 (median of
   single calls): the Python around the compiled call (engine.run against frame_kernels.run_chain
   called bare), numba's dispatch of a call with run_chain's arguments (a kernel that returns at
   once), and both convolutions gathered by index and by runs (what frame_kernels.MIN_MEAN_RUN
   chooses between): the first on the image, the second on the first layer's spikes at T=2 and T=12.
Latency measured (wall time); nothing here is an energy figure. Writes bench/results/frame_parts.json (bench/results/quick/ with --quick).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from snn_agent.adaptation.operating_points import BLOCK_FRAMES, MeasuredCost, PointTable  # noqa: E402
from snn_agent.adaptation.profiling import split_data  # noqa: E402
from snn_agent.backends.cpu import CpuBackend  # noqa: E402
from snn_agent.engine import frame_kernels  # noqa: E402
from results_file import output_path, write_results  # noqa: E402

MODEL_DIR = os.path.join(ROOT, "models", "fashion_cnn_snn")
BASELINE_T = 12  # bench/adaptation.py's baseline for the bundled model
PLAIN_T = (1, 2, 3, 4, 6, 8, 12)
REPEATS, REPEAT_GAP_S = 3, 10.0


@njit(cache=True)
def returns_at_once(x, timesteps, layout, weights, indices, n_spiking, biases, thresholds, v_starts, subtract):
    return x.shape[0]


def interleaved_medians_us(calls: dict) -> dict:
    """name -> (function, inputs), all inputs as long: each function's median time of a call, in us.
    As MeasuredCost.interleaved: blocks of BLOCK_FRAMES inputs, the functions in a random order per
    block, a block's first call (after another function's) left out."""
    times = {name: [] for name in calls}
    n = len(next(iter(calls.values()))[1])
    rng = np.random.default_rng(0)
    for function, inputs in calls.values():
        function(inputs[0])
    for start in range(0, n, BLOCK_FRAMES):
        for name in rng.permutation(list(calls)):
            function, inputs = calls[name]
            for i in range(start, min(start + BLOCK_FRAMES, n)):
                began = time.perf_counter()
                function(inputs[i])
                if i > start:
                    times[name].append(time.perf_counter() - began)
    return {name: 1e6 * float(np.median(t)) for name, t in times.items()}


def held_costs(cpu, frames, enhanced_t2, rounds) -> dict:
    plain = cpu.model.neuron
    configs = [(t, plain) for t in PLAIN_T] + [(2, enhanced_t2)]
    costs = MeasuredCost(cpu.infer, frames).interleaved(configs, rounds)
    plain_us = [1e3 * c.latency_ms for c in costs[:len(PLAIN_T)]]
    per_step, fixed = np.polyfit(PLAIN_T, plain_us, 1)
    return {"plain_us": dict(zip(map(str, PLAIN_T), plain_us)), "enhanced_T2_us": 1e3 * costs[-1].latency_ms,
            "fixed_us": float(fixed), "per_step_us": float(per_step),
            "fixed_needed_for_4x_us": float(4.0 / 3.0 * per_step),
            "ratio_T12_to_enhanced_T2": plain_us[-1] / (1e3 * costs[-1].latency_ms)}


def kernel_parts(cpu, frames, enhanced_t2) -> dict:
    """The pieces, timed alone. Reads the engine's packed arguments (private: this bench measures
    the engine's inside)."""
    engine, plain = cpu.engine, cpu.model.neuron
    rows = [f.reshape(1, -1) for f in frames]
    calls = {}
    for label, timesteps, neuron in (("T=2 enhanced", 2, enhanced_t2), ("T=12 plain", BASELINE_T, plain)):
        arguments = engine._frame_arguments + engine._parameters(neuron).frame_arguments
        calls[f"engine.run, {label}"] = (lambda r, t=timesteps, n=neuron: engine.run(r[None], t, n), frames)
        calls[f"run_chain bare, {label}"] = (lambda r, t=timesteps, a=arguments: frame_kernels.run_chain(r, t, *a), rows)
    arguments = engine._frame_arguments + engine._parameters(plain).frame_arguments
    calls["numba dispatch of run_chain's arguments"] = (lambda r: returns_at_once(r, 2, *arguments), rows)

    first, second = engine._layers[0].conv_plan, engine._layers[1].conv_plan
    point = engine._parameters(plain)
    inputs = {"first convolution (image)": (first, rows)}
    for t in (2, BASELINE_T):
        inputs[f"second convolution T={t}"] = (second, [
            spikes_of_first_layer(r, first, point.thresholds[0], point.biases[0], t, plain.v_init) for r in rows])
    for name, (plan, layer_inputs) in inputs.items():
        index, runs = plan.index.astype(frame_kernels.INDEX_DTYPE), frame_kernels.gather_runs(plan.index, plan.zero)
        calls[f"{name}, by index"] = (lambda r, i=index, p=plan: frame_kernels.conv_product(r, i, p.matrix),
                                      layer_inputs)
        calls[f"{name}, by runs (mean run {index.size / len(runs):.1f})"] = (
            lambda r, g=runs, p=plan, n=index.shape[0]: frame_kernels.conv_product_by_runs(r, g, n, p.matrix),
            layer_inputs)
    parts = interleaved_medians_us(calls)
    for label in ("T=2 enhanced", "T=12 plain"):
        parts[f"Python around the call, {label}"] = parts[f"engine.run, {label}"] - parts[f"run_chain bare, {label}"]
    return parts


def spikes_of_first_layer(image_row, plan, threshold, bias, timesteps, v_init):
    current = frame_kernels.conv_product(image_row, plan.index.astype(frame_kernels.INDEX_DTYPE), plan.matrix)
    spikes = np.empty((timesteps, current.shape[1]), np.float32)
    v_start = np.full(current.shape[1], np.float32(v_init) * threshold, np.float32)
    frame_kernels.integrate_and_fire(current, bias, timesteps, threshold, v_start, True, spikes)
    return spikes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="60 frames, 1 round, 1 measurement (instead of 200 x 2, 3 times)")
    ap.add_argument("--out", help="the JSON file (default: bench/results/frame_parts.json, or bench/results/quick/ with --quick)")
    args = ap.parse_args()
    out = output_path("frame_parts.json", args.quick, args.out)
    n_frames, rounds, repeats = (60, 1, 1) if args.quick else (200, 2, REPEATS)

    started = time.time()
    cpu = CpuBackend()
    cpu.load(MODEL_DIR)
    frames = split_data("fashion-mnist", cpu.model, n_frames, 10).heldout[0]
    t2 = next(p for p in PointTable.load(MODEL_DIR, "cpu").points if p.timesteps == 2)
    enhanced_t2 = t2.neuron(cpu.model.neuron.reset)
    print(f"{len(PLAIN_T) + 1} configurations x {n_frames} frames x {rounds} rounds, in held blocks, "
          f"{repeats} time(s)...", flush=True)
    held = []
    for repeat in range(repeats):
        if repeat:
            time.sleep(REPEAT_GAP_S)
        held.append(held_costs(cpu, frames, enhanced_t2, rounds))
    parts = kernel_parts(cpu, frames, enhanced_t2)

    print(f"\nbundled model, cpu backend, {n_frames} Fashion-MNIST test frames, latency measured (median)")
    for repeat, costs in enumerate(held, 1):
        print(f"held frame cost ({repeat}/{repeats}), plain parameters: "
              + ", ".join(f"T={t} {us:.1f}" for t, us in costs["plain_us"].items())
              + f" us; enhanced T=2 {costs['enhanced_T2_us']:.1f} us")
        print(f"  line through the plain points: {costs['fixed_us']:.1f} us per frame + {costs['per_step_us']:.1f} us "
              f"per step; 4x at T=2 needs the fixed part under {costs['fixed_needed_for_4x_us']:.1f} us; "
              f"T=12 / enhanced T=2 = {costs['ratio_T12_to_enhanced_T2']:.2f}x")
    print("pieces, each timed alone (us, median of single calls):")
    for name, us in parts.items():
        print(f"  {name:62s} {us:7.1f}")
    result = {"model": "models/fashion_cnn_snn", "backend": "cpu", "frames": n_frames, "rounds": rounds,
              "latency": "measured (median single-frame wall time)", "held_repeats": held, "pieces_us": parts,
              "seconds": time.time() - started}
    write_results(out, result, args.quick)
    print(f"wrote {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
