"""One interface, several implementations (as Lava's Process / ProcessModel).

A Backend loads a converted model directory and runs one batch of preprocessed frames at T
timesteps with the current neuron parameters. It returns scores, the operations it counted, its
latency and the energy of the inference, labelled measured or modelled.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..energy.models import EnergyEstimate
from ..engine import stdp_engine
from ..engine.cpu_engine import OpCounts
from ..ir import Layer, NeuronConfig, SNNModel
from ..learning import stdp


class BackendError(RuntimeError):
    """A backend that cannot load or run; the node falls back to the CPU engine."""


@dataclass(frozen=True)
class Capabilities:
    adapt_timesteps: bool  # False for a DNN: the governor decimates frames instead
    learn_online: bool
    # how its readout learns (learning.readout): "emulated" (Lava's fixed point on the CPU), "on-chip"
    # (Lava's LearningDense, simulated or on Loihi), "host" (float, beside an accelerator); "": not at all
    learning: str = ""
    # runs operating points that bring their own weights (OperatingPoint.weights)
    switch_weights: bool = False


@dataclass
class BackendResult:
    scores: np.ndarray  # (frames, classes)
    latency_s: float  # wall time of the whole batch
    energy: EnergyEstimate  # per frame
    ops: Optional[OpCounts] = None  # None where the backend cannot count spikes (a DNN)
    # the last hidden layer's output per frame, (frames, steps, n): spikes, or a DNN's activations
    # (one step); given where Backend.with_features is set (a learning readout reads it)
    hidden: Optional[np.ndarray] = None

    @property
    def labels(self) -> np.ndarray:
        return self.scores.argmax(axis=1)


class Backend(ABC):
    name: str = "abstract"
    capabilities = Capabilities(adapt_timesteps=True, learn_online=False)
    why_not_stdp = "it runs converted networks only"  # why it refuses an STDP network (docs/stdp.md)

    def __init__(self):
        self.model: Optional[SNNModel] = None
        self.with_features = False  # give each result's hidden layer output (BackendResult.hidden)

    def load(self, model_dir: str) -> None:
        """Read the converted model; raises ModelFormatError or BackendError."""
        if stdp_engine.is_stdp_model(model_dir):
            raise BackendError(f"{model_dir} is an STDP network ({stdp.PARAMS_FILE}, not a converted snn.json): "
                               f"backend {self.name!r} cannot run it ({self.why_not_stdp}); the cpu backend can")
        self.model = SNNModel.load(model_dir)
        self._prepare(model_dir)

    @abstractmethod
    def _prepare(self, model_dir: str) -> None:
        """Backend-specific set-up after self.model is loaded."""

    @abstractmethod
    def infer(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None,
              weights: str = "") -> BackendResult:
        """x: (frames, C, H, W) preprocessed input. weights: an operating point's own weights (a
        directory relative to the model's, see OperatingPoint.weights; "": the model's), for a
        backend that can switch weights (capabilities.switch_weights); others raise BackendError."""

    def load_weights(self, weights: str) -> None:
        """Make an operating point's own weights ready now rather than on the frame that first
        needs them; raises BackendError (or ModelFormatError for a bad directory)."""
        self._refuse_weights(weights)

    def _refuse_weights(self, weights: str) -> None:
        if weights:
            raise BackendError(f"backend {self.name!r} runs the model's own weights only, not {weights!r}")

    # where `features` takes the memory's hidden layer from (/diagnostics: learning memory)
    features_path = ""

    def features(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None) -> np.ndarray:
        """The last hidden layer's output of a batch, (frames, steps, n), as BackendResult.hidden
        gives a frame's: what a learning readout's old-class memory is computed with (agent_core.py).
        On a path of its own, so that it can run while the frame loop infers."""
        raise BackendError(f"backend {self.name!r} gives no hidden layer output to learn from")

    def score_layer(self) -> Layer:
        """The layer that maps BackendResult.hidden to the scores: what a learning readout starts from."""
        return self.model.layers[-1]

    def close(self) -> None:
        """Release devices and processes; a closed backend is not used again. Must not hang on a
        backend whose runtime has died (see failure)."""

    def kill(self) -> None:
        """Release what a dead or hung backend holds without waiting on it (close would)."""
        self.close()

    def failure(self) -> Optional[str]:
        """Why this backend can no longer run (a runtime process that died), or None. Cheap: the
        node's watchdog asks several times a second, while inference may be blocked on it."""
        return None

    def describe(self) -> str:
        return self.name


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
