"""What the agent node does, without ROS: hold a backend, let the governor pick the operating
point, classify frames, learn from feedback (learning/online.py), keep the statistics
/diagnostics reports.

The ROS node (ros/agent_node.py) only moves messages in and out of this class.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .adaptation.governor import Decision, Governor, GovernorSettings
from .adaptation.operating_points import OperatingPoint, PointTable
from .backends import Backend, create_backend
from .energy.constants import constants_from
from .energy.models import EnergyEstimate
from .ir import SNNModel
from .learning.checkpoint import model_fingerprint
from .data.prepare import model_input
from .learning import memory as learning_memory
from .learning.online import FeedbackOutcome, LearningSettings, MemorySource, OnlineLearner, trainer_for
from .learning.readout import HOST
from .learning.stdp_online import UNSUPERVISED, StdpLearner

log = logging.getLogger("snn_agent")
MEMORY_BATCH = 250  # the learning memory's frames per backend call: bounded memory at large T


@dataclass
class BackendChoice:
    model_dir: str
    backend: str = "cpu"
    device: str = "CPU"
    allow_fallback: bool = True
    energy: dict = field(default_factory=dict)  # energy constant overrides, {"cpu.core_power_w": 2.0}


@dataclass
class FrameResult:
    class_id: int
    label: str
    scores: np.ndarray
    timesteps: int  # 0 for a DNN backend
    energy: EnergyEstimate
    latency_s: float
    decision: Decision
    correct: Optional[bool]  # None without ground truth


class FrameStats:
    """Counters and recent latencies for /diagnostics and the run summary.

    `clock` gives seconds on the node's clock (simulated time under use_sim_time), so the frame
    rates are frames per second of the robot's time; latencies are durations of computation,
    measured on the steady clock by whoever reports them."""

    RECENT_WINDOW_S = 5.0

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: int = 1000):
        self.clock = clock
        self.start_s = clock()
        self.frames = 0
        self.dropped = 0
        self.skipped = 0  # frames the DNN backend's decimation left out on purpose
        self.bad_input: Counter = Counter()
        self.correct = 0
        self.labelled = 0
        self.backend_latencies_s: deque = deque(maxlen=window)  # the backend's inference alone
        self.node_latencies_s: deque = deque(maxlen=window)  # message received to results published
        self.energy_kind = ""
        self.timesteps_sum = 0
        self.energy_sum_j = 0.0
        self._completions_s: deque = deque(maxlen=window)  # on the clock, for fps_last_5s

    def add(self, result: FrameResult) -> None:
        self.frames += 1
        self.backend_latencies_s.append(result.latency_s)
        self.timesteps_sum += result.timesteps
        self.energy_sum_j += result.energy.joules
        self.energy_kind = result.energy.kind
        self._completions_s.append(self.clock())
        if result.correct is not None:
            self.labelled += 1
            self.correct += int(result.correct)

    def fps_last_5s(self) -> float:
        """Frames per second over the last RECENT_WINDOW_S: what the governor spreads a budget over."""
        now = self.clock()
        recent = self._completions_s  # in order of completion: the stale ones leave from the left
        while recent and now - recent[0] > self.RECENT_WINDOW_S:  # per frame: no pass over the window
            recent.popleft()
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    @property
    def accuracy(self) -> Optional[float]:
        return self.correct / self.labelled if self.labelled else None

    @staticmethod
    def _p50_p99_ms(latencies_s: deque) -> tuple:
        if not latencies_s:
            return math.nan, math.nan
        p50, p99 = np.percentile(np.fromiter(latencies_s, float, len(latencies_s)), (50, 99))
        return 1e3 * float(p50), 1e3 * float(p99)

    def summary(self) -> dict:
        backend_p50, backend_p99 = self._p50_p99_ms(self.backend_latencies_s)
        node_p50, node_p99 = self._p50_p99_ms(self.node_latencies_s)
        return {
            "frames": self.frames, "dropped": self.dropped, "skipped": self.skipped,
            "bad_input": sum(self.bad_input.values()), "accuracy": self.accuracy, "labelled": self.labelled,
            "fps_mean": self.frames / max(self.clock() - self.start_s, 1e-9),
            "fps_last_5s": self.fps_last_5s(),
            "backend_latency_ms_p50": backend_p50, "backend_latency_ms_p99": backend_p99,
            "node_latency_ms_p50": node_p50, "node_latency_ms_p99": node_p99,
            "timesteps_mean": self.timesteps_sum / self.frames if self.frames else math.nan,
            "energy_j_per_inference": self.energy_sum_j / self.frames if self.frames else math.nan,
            "energy_kind": self.energy_kind,
        }


class AgentCore:
    """A backend, its operating points and the governor choosing among them.

    Thread safety: `lock` guards the governor, the settings, the statistics and the backend in
    use; inference itself runs outside it. Whoever else touches those (the ROS node's callbacks)
    takes the same lock. `clock` gives the robot's time in seconds (the node's clock)."""

    def __init__(self, choice: BackendChoice, settings: GovernorSettings,
                 backend_factory: Callable[..., Backend] = create_backend,
                 clock: Callable[[], float] = time.monotonic, lock: Optional[threading.RLock] = None,
                 stats: Optional[FrameStats] = None, learning: Optional[LearningSettings] = None):
        self.settings = settings
        self.learning = learning or LearningSettings()
        self.learner: Optional[OnlineLearner] = None
        self.learning_problem: Optional[str] = None  # why learning is asked for and does not run
        self._learning_energy_j = 0.0  # learning steps' energy, billed with the next frame
        self.backend_factory = backend_factory
        self.clock = clock
        self.lock = lock or threading.RLock()
        self.stats = stats or FrameStats(clock)
        self.backend: Optional[Backend] = None
        self.choice: Optional[BackendChoice] = None
        self.fallback_reason: Optional[str] = None  # why the backend in use is not the one asked for
        self.points_left_out: list = []  # operating points the backend cannot run, each with why
        self.governor: Optional[Governor] = None
        self._frame_counter = 0
        self._spare_cpu: Optional[Backend] = None  # the CPU engine, opened ahead while another backend runs
        self._neuron_of_point: tuple = (None, None)  # the last point and its NeuronConfig
        self._neuron_at: dict = {}  # T -> the NeuronConfig of the point that last ran at T
        self.choice = choice
        try:
            self.load(choice)
        except Exception as exc:  # noqa: BLE001 - a node without a model stays up and says so
            self.fallback_reason = f"no model loaded: {exc}"
            log.error(self.fallback_reason)

    @property
    def ready(self) -> bool:
        return self.backend is not None

    # --- backends ------------------------------------------------------------------------------
    def load(self, choice: BackendChoice) -> None:
        """Load the asked backend; on failure fall back to the CPU engine when allowed.
        Raises ModelFormatError or BackendError when nothing can run (the old backend stays)."""
        try:
            backend = self._open(choice.backend, choice)
            reason = getattr(backend, "fallback_reason", None)  # e.g. an OpenVINO device fallback
        except Exception as exc:  # noqa: BLE001 - any backend failure gets the same treatment
            if not choice.allow_fallback or choice.backend == "cpu":
                raise
            reason = f"backend {choice.backend!r} failed to load ({exc}); using the CPU engine"
            log.error(reason)
            backend = self._open("cpu", choice)
        self._install(backend, choice, reason)
        self._prepare_spare(choice)

    def _prepare_spare(self, choice: BackendChoice) -> None:
        """With allow_fallback, open the CPU engine now, beside another backend: a fallback then
        waits on nothing (opening it first in a process that has not run it takes seconds)."""
        if self._spare_cpu is not None:
            self._spare_cpu.close()
            self._spare_cpu = None
        if choice.allow_fallback and self.backend.name != "cpu":
            try:
                self._spare_cpu = self._open("cpu", choice)
            except Exception as exc:  # noqa: BLE001 - opened again when needed, and fails then with the reason
                log.warning("could not open the CPU engine ahead as fallback: %s", exc)

    def _cpu_engine(self) -> Backend:
        spare, self._spare_cpu = self._spare_cpu, None
        return spare or self._open("cpu", self.choice)

    def _open(self, name: str, choice: BackendChoice) -> Backend:
        constants = constants_from(choice.energy)
        options = {"cpu": {"cpu_power": constants["cpu"]},
                   "lava": {"device": choice.device, "loihi_constants": constants["loihi"]},
                   "openvino": {"device": choice.device, "allow_fallback": choice.allow_fallback,
                                "cpu_power": constants["cpu"], "accelerator_power": constants["accelerator"]}}[name]
        backend = self.backend_factory(name, **options)
        backend.load(choice.model_dir)
        return backend

    def _install(self, backend: Backend, choice: BackendChoice, reason: Optional[str], close_old: bool = True) -> None:
        points = self._points(choice.model_dir, backend)
        with self.lock:
            self._stop_learning()  # its last checkpoint first: the new learner restores it
        learner = self._learner_for(backend, choice)
        with self.lock:
            self.learner = learner
            old = self.backend
            self.backend, self.choice, self.fallback_reason = backend, choice, reason
            governor = Governor(points, self.settings)
            if self.governor is not None:  # a new backend keeps what the robot has said so far
                governor.inherit(self.governor)
            self.governor = governor
        if close_old and old is not None and old is not backend:
            old.close()

    def _points(self, model_dir: str, backend: Backend) -> list:
        table = PointTable.load(model_dir, backend.name)
        points = self._runnable(table.points, backend) if table else []
        if points:
            return points
        # Not profiled for this backend: one point at the configured T (or the DNN's single pass).
        timesteps = self.settings.timesteps if backend.capabilities.adapt_timesteps else 0
        return [OperatingPoint(timesteps, math.nan, 0.0, 0.0, "unknown")]

    def _runnable(self, points: list, backend: Backend) -> list:
        """The points the backend can run. A point's own weights are loaded now, not on the frame
        that first needs them; a point whose weights cannot be (missing or corrupt files, another
        network, a backend that runs one weight set) is left out, and why is logged and kept for
        /diagnostics: the other points still serve."""
        self.points_left_out = []
        runnable = []
        for point in points:
            if point.weights and self.learning.enabled:
                reason = (f"operating point T={point.timesteps} with weights {point.weights!r} left out: learning "
                          f"runs on the model's own weights")
                log.warning(reason)
                self.points_left_out.append(reason)
                continue
            try:
                backend.load_weights(point.weights)
            except Exception as exc:  # noqa: BLE001 - any failure to load leaves out this point only
                reason = f"operating point T={point.timesteps} with weights {point.weights!r} left out: {exc}"
                log.error(reason)
                self.points_left_out.append(reason)
                continue
            runnable.append(point)
        return runnable

    def close(self) -> None:
        with self.lock:
            self._stop_learning()
        for backend in (self.backend, self._spare_cpu):
            if backend is not None:
                backend.close()

    # --- learning ------------------------------------------------------------------------------
    def _learner_for(self, backend: Backend, choice: BackendChoice) -> Optional[OnlineLearner]:
        """A learner over this backend's hidden layer where learning is enabled and the backend can
        learn; else None, with the reason in learning_problem where learning was asked for."""
        backend.with_features = False
        self.learning_problem = None
        if not self.learning.enabled:
            return None
        kind = backend.capabilities.learning
        if not kind:
            self.learning_problem = f"backend {backend.describe()!r} cannot learn"
            log.error(self.learning_problem)
            return None
        constants = constants_from(choice.energy)
        try:
            if kind == UNSUPERVISED:  # an STDP network learns with its own rule (learning/stdp_online.py)
                learner = StdpLearner(backend.engine, backend.model.class_names, self.learning, constants["loihi"])
            else:
                model = SNNModel.load(choice.model_dir)
                # a readout over DNN activations (host) is another readout than one over spike counts
                fingerprint = f"{model_fingerprint(model)}-{'activations' if kind == HOST else 'spikes'}"
                memory = self._memory_source(backend, choice.model_dir, model) if self.learning.rule().rehearsal else None
                learner = OnlineLearner(backend.score_layer(), model.class_names, fingerprint, self.learning,
                                        trainer_for(kind, hardware=bool(getattr(backend, "hardware", False))),
                                        constants["cpu"], constants["loihi"], memory)
        except Exception as exc:  # noqa: BLE001 - the agent classifies on without learning, and says why
            self.learning_problem = f"learning could not start: {exc}"
            log.error(self.learning_problem)
            return None
        backend.with_features = True
        return learner

    def _memory_source(self, backend: Backend, model_dir: str, model: SNNModel) -> MemorySource:
        """The model's old-class memory (raises MemoryFileError where it is missing or unusable), its
        frames' hidden layer computed at a frame's T by the backend (Backend.features) with the
        neuron parameters of the operating point that ran that T."""
        memory = learning_memory.load(model_dir, model.class_names)
        x = model_input(memory.dataset(), model.network.preprocessing)

        def hidden(timesteps: int) -> np.ndarray:
            neuron = self._neuron_at.get(timesteps)
            return np.concatenate([backend.features(x[i:i + MEMORY_BATCH], timesteps, neuron)
                                   for i in range(0, len(x), MEMORY_BATCH)])

        return MemorySource(memory.labels, hidden, f"{len(memory.labels)} frames, {memory.source}; "
                                                   f"{backend.features_path}")

    def _stop_learning(self) -> None:
        """Call with the lock held."""
        if self.learner is not None:
            self.learner.close()
            self.learner = None

    def set_learning(self, settings: LearningSettings) -> None:
        """New learning parameters: the learner is rebuilt (from its checkpoint) with them. Points
        with their own weights come back or go with learning.enabled."""
        self.learning = settings
        if self.backend is not None:
            self._install(self.backend, self.choice, self.fallback_reason)

    def feedback(self, label: int, frame_id=None) -> FeedbackOutcome:
        """The true class of a classified frame (None: the most recent one)."""
        with self.lock:
            learner = self.learner
            pending = learner.memory_pending(frame_id) if learner is not None else None
        if pending is not None:  # the graded rule's memory at a new T: computed while frames go on
            joules = learner.prepare_memory(pending)
            with self.lock:
                self._learning_energy_j += joules
        with self.lock:
            if self.learner is None:
                return FeedbackOutcome(False, self.learning_problem or "learning is not enabled (learning.enabled)")
            outcome = self.learner.feedback(label, frame_id)
            if outcome.energy is not None:
                self._learning_energy_j += outcome.energy.joules
            return outcome

    @property
    def model(self) -> SNNModel:
        return self.backend.model

    # --- frames --------------------------------------------------------------------------------
    def classify(self, x: np.ndarray, ground_truth: Optional[int] = None, frame_id=None) -> Optional[FrameResult]:
        """x: (1, C, H, W) network input. None when the DNN backend's decimation skips the frame.
        A backend that fails mid-run is replaced by the CPU engine and the frame is retried.
        frame_id: what feedback names the frame by (learning)."""
        with self.lock:
            decision = self.governor.choose(self.clock())
            point = decision.point
            self._frame_counter += 1
            if point.decimation > 1 and self._frame_counter % point.decimation:
                self.stats.skipped += 1
                return None
            timesteps = point.timesteps or self.settings.timesteps
            backend = self.backend
        if point is not self._neuron_of_point[0]:  # built once per point, not per frame
            neuron = point.neuron(self.model.neuron.reset) if point.energy_kind != "unknown" else None
            self._neuron_of_point = (point, neuron)
            self._neuron_at[timesteps] = neuron  # the learning memory's frames run with it at this T
        neuron = self._neuron_of_point[1]
        try:
            result = backend.infer(x, timesteps, neuron, point.weights)
        except Exception as exc:  # noqa: BLE001
            if backend.name == "cpu" or not self.choice.allow_fallback:
                raise
            self.fall_back_to_cpu(f"backend {backend.name!r} failed while running ({exc})")
            return self.classify(x, ground_truth, frame_id)
        scores, names, energy = result.scores[0], self.model.class_names, result.energy
        with self.lock:
            if self.learner is not None and result.hidden is not None:
                steps = timesteps if backend.capabilities.adapt_timesteps else 1
                scores = self.learner.classify(result.hidden[0], steps, frame_id)
                names = self.learner.class_names
            if self._learning_energy_j:  # the learning since the last frame is billed with this one
                energy = EnergyEstimate(energy.joules + self._learning_energy_j, energy.kind,
                                        f"{energy.source} + learning steps")
                self._learning_energy_j = 0.0
        class_id = int(np.argmax(scores))
        frame = FrameResult(class_id, names[class_id] if class_id < len(names) else str(class_id), scores,
                            timesteps if backend.capabilities.adapt_timesteps else 0, energy,
                            result.latency_s, decision,
                            None if ground_truth is None else class_id == ground_truth)
        with self.lock:
            self.stats.add(frame)
            self.governor.add_compute_energy(frame.energy.joules)
            fps = self.stats.fps_last_5s()
            if fps > 0:  # the battery budget spreads energy over the frames actually coming
                self.settings.frame_rate_hz = fps
        return frame

    def replace_backend(self, why: str) -> None:
        """A backend that died or hangs is ended without waiting on it, and replaced by the CPU engine
        when allowed, else started afresh."""
        failed = self.backend
        if self.choice.allow_fallback and failed.name != "cpu":  # the CPU engine first: frames wait on it
            reason = f"{why}; switched to the CPU engine"
            log.error(reason)
            self._install(self._cpu_engine(), self.choice, reason, close_old=False)
            failed.kill()
            return
        failed.kill()
        log.error("%s; restarting backend %r", why, self.choice.backend)
        self.load(self.choice)
        with self.lock:
            self.fallback_reason = f"{why}; restarted"

    def fall_back_to_cpu(self, why: str) -> None:
        """Replace a failing backend by the CPU engine on the same model, saying why."""
        reason = f"{why}; switched to the CPU engine"
        log.error(reason)
        self._install(self._cpu_engine(), self.choice, reason)
