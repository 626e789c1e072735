"""The embedded default: our numpy SNN engine on the CPU."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..energy.constants import CpuPower
from ..energy.models import CpuEnergyMeter
from ..engine.cpu_engine import SNNEngine
from ..ir import NeuronConfig
from .base import Backend, BackendResult, Capabilities


class CpuBackend(Backend):
    name = "cpu"
    capabilities = Capabilities(adapt_timesteps=True, learn_online=False)

    def __init__(self, cpu_power: CpuPower = CpuPower(), compiled_frames: bool = True):
        """compiled_frames: single frames as one compiled call (see engine.cpu_engine); False keeps
        them on the numpy path, for comparison."""
        super().__init__()
        self.meter = CpuEnergyMeter(cpu_power)
        self.compiled_frames = compiled_frames
        self.engine: Optional[SNNEngine] = None

    def _prepare(self, model_dir: str) -> None:
        self.engine = SNNEngine(self.model, self.compiled_frames)
        # One BLAS thread: the engine's matrices are small (threads cost more than they give), the
        # robot's other software needs the other cores, and energy is billed per thread.
        from threadpoolctl import threadpool_limits
        self._blas_limit = threadpool_limits(limits=1, user_api="blas")
        # compiles the single-frame kernels, or loads them from numba's cache, now rather than
        # on the first camera frame
        self.engine.run(np.zeros((1,) + tuple(self.model.network.preprocessing.input_shape), np.float32), 1)

    def infer(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None) -> BackendResult:
        start = self.meter.read()
        started = time.perf_counter()
        result = self.engine.run(x, timesteps, neuron)
        seconds = time.perf_counter() - started
        energy = self.meter.energy(start, self.meter.read(), max(x.shape[0], 1))
        return BackendResult(result.scores, seconds, energy, result.ops)
