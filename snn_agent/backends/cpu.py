"""The embedded default: our numpy SNN engine on the CPU."""
from __future__ import annotations

import os
import time
from typing import Optional

import numpy as np

from ..energy.constants import CpuPower
from ..energy.models import CpuEnergyMeter
from ..engine import stdp_engine
from ..engine.cpu_engine import SNNEngine
from ..ir import NeuronConfig, SNNModel
from ..learning.stdp_online import UNSUPERVISED
from .base import Backend, BackendError, BackendResult, Capabilities


# An STDP network runs on its own weights only, and learns with its own rule (learning/stdp_online.py)
STDP_CAPABILITIES = Capabilities(adapt_timesteps=True, learn_online=True, learning=UNSUPERVISED)


class CpuBackend(Backend):
    name = "cpu"
    capabilities = Capabilities(adapt_timesteps=True, learn_online=True, switch_weights=True, learning="emulated")

    def __init__(self, cpu_power: CpuPower = CpuPower(), compiled_frames: bool = True):
        """compiled_frames: single frames as one compiled call (see engine.cpu_engine); False keeps
        them on the numpy path, for comparison."""
        super().__init__()
        self.meter = CpuEnergyMeter(cpu_power)
        self.compiled_frames = compiled_frames
        self.engine: Optional[SNNEngine] = None  # the model's own weights
        self._engines: dict = {}  # OperatingPoint.weights -> its engine
        self._features_engine: Optional[SNNEngine] = None  # the model's weights, for `features`

    def load(self, model_dir: str) -> None:
        """A converted model (snn.json), or a trained STDP network (stdp_params.json)."""
        if not stdp_engine.is_stdp_model(model_dir):
            super().load(model_dir)
            return
        self.model, engine = stdp_engine.load(model_dir)
        self.capabilities = STDP_CAPABILITIES
        self._model_dir = model_dir
        self.engine = self._engines[""] = engine

    def _prepare(self, model_dir: str) -> None:
        self._model_dir = model_dir
        self.engine = self._engines[""] = SNNEngine(self.model, self.compiled_frames)
        # compiles the single-frame kernels, or loads them from numba's cache, now rather than
        # on the first camera frame
        self.engine.run(np.zeros((1,) + tuple(self.model.network.preprocessing.input_shape), np.float32), 1)
        # One BLAS thread: the robot's other software needs the other cores, and energy is billed
        # to the calling thread only, so a BLAS worker thread's time would go unbilled. Set after
        # the kernels are loaded: they call scipy's OpenBLAS, which numba loads with them, and a
        # limit reaches only the libraries already loaded (set before, the compiled frames ran
        # their products on two threads).
        from threadpoolctl import threadpool_limits
        self._blas_limit = threadpool_limits(limits=1, user_api="blas")

    def load_weights(self, weights: str) -> None:
        """An operating point's own weights: a conversion of the same network (same input and
        classes) in a directory under the model's. Held beside the model's, so that switching
        points costs nothing but caches."""
        if weights in self._engines:
            return
        path = os.path.normpath(os.path.join(self._model_dir, weights))
        model = SNNModel.load(path)
        own = self.model
        if (tuple(model.network.preprocessing.input_shape) != tuple(own.network.preprocessing.input_shape)
                or model.layers[-1].n_neurons != own.layers[-1].n_neurons):
            raise BackendError(f"weights {weights!r} ({path}): a network with another input or other classes "
                               f"than the model's; an operating point's weights must be the same network, trained "
                               f"for its T")
        self._engines[weights] = SNNEngine(model, self.compiled_frames)

    features_path = "hidden spikes from the cpu engine, the frames' own path"

    def features(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None) -> np.ndarray:
        if self._features_engine is None:  # an engine of its own: it runs beside the frames' inference
            self._features_engine = SNNEngine(self.model, compiled_frames=False)
        return self._features_engine.hidden_spikes(self._features_engine.run(x, timesteps, neuron))

    def describe(self) -> str:
        return "cpu (STDP network)" if self.capabilities is STDP_CAPABILITIES else self.name

    def infer(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None,
              weights: str = "") -> BackendResult:
        engine = self._engines.get(weights)
        if engine is None:
            self.load_weights(weights)
            engine = self._engines[weights]
        start = self.meter.read()
        started = time.perf_counter()
        result = engine.run(x, timesteps, neuron)
        seconds = time.perf_counter() - started
        energy = self.meter.energy(start, self.meter.read(), max(x.shape[0], 1))
        return BackendResult(result.scores, seconds, energy, result.ops,
                             engine.hidden_spikes(result) if self.with_features else None)
