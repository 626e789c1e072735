"""Does an STDP network fit the lava backend? Seconds per frame in Lava's CPU simulation, learning
(stdp_lava.train_on_lava: LearningDense with STDPLoihi) and inference only (the same structure with
Dense, LIF excitatory neurons, floating_pt), against our kernel, same frames, one run.

Measured wall time on this machine (shared); per-frame figures are the difference between k frames
and one frame, divided by k - 1 (Lava's start-up is in the one-frame run).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.results_file import output_path, write_results  # noqa: E402
from snn_agent.data import datasets  # noqa: E402
from snn_agent.learning import stdp, stdp_lava  # noqa: E402


def lava_inference_s(params: stdp.StdpParams, network: stdp.StdpNetwork, pixels: np.ndarray) -> float:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    S, n, steps = stdp_lava.WEIGHT_SCALE, params.n_neurons, params.timesteps
    rasters = np.random.default_rng(0).random((len(pixels), steps, params.n_inputs)) < pixels[:, None, :] * params.input_rate
    source = RingBuffer(data=rasters.reshape(-1, params.n_inputs).T.astype(np.float64))
    forward = Dense(weights=network.weights.T.astype(np.float64) * S)
    exc = LIF(shape=(n,), du=1.0, dv=1 - math.exp(-1 / params.tau_mem), vth=(params.v_thresh - params.v_rest) * S)
    source.s_out.connect(forward.s_in)
    forward.a_out.connect(exc.a_in)
    stdp_lava.lateral_inhibition(params, exc)
    started = time.perf_counter()
    try:
        for _ in range(len(pixels)):
            exc.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
    finally:
        exc.stop()
    return time.perf_counter() - started


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 frames instead of 5")
    parser.add_argument("--out", help="JSON path (default bench/results/stdp_lava_fit.json)")
    args = parser.parse_args()
    k = 3 if args.quick else 5
    params = stdp_lava.lava_params(stdp.StdpParams(n_neurons=100, timesteps=100))
    pixels = stdp.as_pixels(datasets.load("fashion-mnist", "test").images[:k, :, :, 0])
    network = stdp.StdpNetwork.create(params)
    stdp.warm_up()
    rows = {
        "lava_learning": [timed(lambda m=m: stdp_lava.train_on_lava(params, pixels[:m])) for m in (1, k)],
        "lava_inference": [lava_inference_s(params, network, pixels[:m]) for m in (1, k)],
        "ours_learning": [timed(lambda m=m: stdp.StdpNetwork.create(params).train(pixels[:m])) for m in (1, k)],
        "ours_inference": [timed(lambda m=m: network.respond(pixels[:m])) for m in (1, k)],
    }
    table = {name: {"one_frame_s": one, f"{k}_frames_s": many, "per_frame_s": (many - one) / (k - 1)}
             for name, (one, many) in rows.items()}
    print(f"100 neurons, T=100, {k} frames (measured wall time, shared machine)")
    print(f"{'':>16} {'1 frame s':>10} {f'{k} frames s':>11} {'per frame ms':>13}")
    for name, r in table.items():
        print(f"{name:>16} {r['one_frame_s']:>10.3f} {r[f'{k}_frames_s']:>11.3f} {1e3 * r['per_frame_s']:>13.2f}")
    path = output_path("stdp_lava_fit.json", args.quick, args.out)
    write_results(path, {"n_neurons": 100, "timesteps": 100, "frames": k, "seconds": table}, args.quick)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
