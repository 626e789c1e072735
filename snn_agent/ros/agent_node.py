"""The `agent` node: camera frames in, class, scores, timesteps, energy and /diagnostics out.

Thin over snn_agent.agent_core: this file only moves messages and parameters. A managed (lifecycle)
node: `configure` validates the parameters and loads the model and backend, `activate` starts
classifying, `deactivate` stops without unloading, `cleanup` frees the backend; with `autostart`
it configures and activates itself.

Threads: the executor runs the callbacks; one worker thread decodes and classifies. A callback only
keeps the newest raw message (cheap checks first: size limits); the worker decodes that one alone,
so a frame dropped because inference fell behind costs nothing. A frame that finds the worker idle
while the CPU engine runs fast frames is classified in the callback itself: waking the worker costs
more than such a frame (the executor thread holds the GIL while it rebuilds its wait set), and the
executor is held for no longer than INLINE_MAX_S. A backend in another process or on a device
(Lava, OpenVINO), or a slow frame, keeps the worker, so that the watchdog and the services stay
responsive while it runs. One lock (`self._lock`, shared with the core) guards everything the
threads share.
"""
from __future__ import annotations

import functools
import gc
import logging
import math
import threading
import time
from typing import Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import BatteryState, CompressedImage, Image
from std_msgs.msg import Float32, Float32MultiArray, Int32, MultiArrayDimension, MultiArrayLayout, String, UInt16
from std_srvs.srv import Trigger

from ..adaptation.battery_input import read_battery, scale_evidence
from ..adaptation.governor import GovernorSettings
from ..agent_core import AgentCore, BackendChoice, FrameStats
from ..backends import create_backend
from ..learning.online import LearningSettings
from ..sensing.images import (ImageDecodeError, check_compressed, check_raw, compressed_pixels, decode_compressed,
                              decode_raw, to_network_input)
from .agent_parameters import (BACKEND_PARAMS, GOVERNOR_PARAMS, LEARNING_PARAMS, PARAMETERS, backend_choice,
                               governor_settings, learning_settings, parameter_problem)
from .label_pairing import LabelPairing
from .spin import spin_node
from .vision import VISION_MSGS_MISSING, classification

LOG_THROTTLE_S = 5.0
WATCHDOG_PERIOD_S = 0.25  # how often the backend's health is checked (steady clock)
INLINE_MAX_S = 0.005  # a CPU-engine frame that took less (in the core) is followed by frames classified in the callback
# The agent's publishers go without rclpy's default QoS-event handlers: a mismatch on these topics is
# reported by the subscriber's side, and each handler is a waitable the executor re-adds in Python
# on every iteration (two per publisher, ~7 us each: on every frame's path)
QUIET_PUBLISHER = {"event_callbacks": PublisherEventCallbacks(use_default_callbacks=False)}


def newest_frame_qos() -> QoSProfile:
    """Camera frames: rclpy's sensor data QoS keeping only the newest frame, so that a frame
    classified in the callback is never followed by older ones queued meanwhile (the worker also
    takes only the newest). A new profile for each subscription: a QoS override (qos_overrides.*)
    changes the profile object it is given, which must not reach another topic or node."""
    return QoSProfile(depth=1, reliability=QoSReliabilityPolicy.BEST_EFFORT)


class RosLogHandler(logging.Handler):
    """Sends the library's log records (logger "snn_agent": backend fallbacks, device problems) to
    the node's ROS logger, so they reach the console and /rosout like the node's own, at the level
    the node's logger has now (rcutils and logging share the severity numbers)."""

    def __init__(self, ros_logger):
        super().__init__()
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < int(self.ros_logger.get_effective_level()):
            return
        text = self.format(record)
        if record.levelno >= logging.ERROR:  # one call site per severity, as rclpy requires
            self.ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(text)
        else:
            self.ros_logger.info(text)


def never_raises(callback):
    """An exception out of a callback would end the executor's spin and with it the node: count it
    (bad_input_internal), log it, carry on."""
    @functools.wraps(callback)
    def guarded(self, *args):
        try:
            return callback(self, *args)
        except Exception as exc:  # noqa: BLE001 - the node must outlive any one message
            if self.context.ok():  # at shutdown, ROS going away under a publish is nobody's fault
                self._bad_input("internal", f"{callback.__name__} failed: {exc!r}", error=True)
            return None
    return guarded


class AgentNode(LifecycleNode):
    def __init__(self, backend_factory=create_backend, **kwargs):
        """backend_factory: how a backend is made from its name (snn_agent.backends.create_backend),
        for a backend of one's own."""
        super().__init__("agent", **kwargs)
        self._backend_factory = backend_factory
        self._lock = threading.RLock()  # the one lock: frame hand-over, pairing, statistics, governor
        self._wake = threading.Condition(self._lock)
        self._worker: Optional[threading.Thread] = None
        self._running = False  # the worker's life: configure to cleanup
        self._active = False  # classifying: activate to deactivate
        # Liveness, on the steady clock (a hung backend is a matter of real time, simulated or not).
        # A worker stuck in a backend cannot be stopped: it is abandoned (its generation is no longer
        # the current one) and a new worker carries on with a replaced backend.
        self._generation = 0
        self._busy_since: Optional[float] = None  # when the worker's current frame went to the backend
        self._worker_busy = False  # the worker has taken a frame, a reload or a replacement
        self._inline = False  # the last frame was the CPU engine's and fast: the next is classified in the callback
        self._last_classified: Optional[float] = None
        self._last_received: Optional[float] = None
        self._active_since: Optional[float] = None
        self._pending_replacement: Optional[str] = None  # why the backend must be replaced
        self._replacing = False  # from the watchdog's finding until the worker has replaced it
        self.abandoned_workers = 0
        self._log_handler = RosLogHandler(self.get_logger())
        self._complaints: dict = {}  # bad-input kind -> when it was last logged
        for name, (default, description, extra) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, **extra))
        self.stats = FrameStats(self.now_s)  # the node's lifetime, across configure/cleanup
        self.core: Optional[AgentCore] = None  # from configure to cleanup
        self.configure_error: Optional[str] = None  # why the last configure failed
        self.model_error: Optional[str] = None  # why the last model or backend set live did not load
        self.inference_error: Optional[str] = None  # why the last frame failed in the backend, until one succeeds
        self.last_decision = None  # the governor's latest choice, for /diagnostics and `snn-agent run`
        self._battery_scales: dict = {}  # publisher gid -> "fraction" | "percent", decided once (auto)
        self.pairing = LabelPairing()
        self._newest = None  # (frame id, header, decoder, receipt time) of the newest frame not yet classified
        self._pending_reload: Optional[BackendChoice] = None
        self._result_pubs: dict = {}  # lifecycle publishers, from configure to cleanup
        self._attach_library_log()

        # Subscriptions live as long as the node, so that discovery is done before activation;
        # frames that arrive while not active are counted, not classified.
        self.frames_not_active = 0
        # QoS: the defaults below, overridable per topic at start (qos_overrides.<topic>.subscription.*)
        overridable = QoSOverridingOptions.with_default_policies()
        self.create_subscription(Image, "image", self._on_image, newest_frame_qos(), qos_overriding_options=overridable)
        self.create_subscription(CompressedImage, "image/compressed", self._on_compressed, newest_frame_qos(),
                                 qos_overriding_options=overridable)
        self.create_subscription(Int32, "ground_truth", self._on_ground_truth, 10, qos_overriding_options=overridable)
        # best effort takes messages from reliable and best-effort publishers alike (battery drivers differ)
        self.create_subscription(BatteryState, "battery_state", self._on_battery,
                                 QoSProfile(depth=10, reliability=QoSReliabilityPolicy.BEST_EFFORT),
                                 qos_overriding_options=overridable)
        self.create_subscription(Float32, "~/energy_budget", self._on_budget, 10, qos_overriding_options=overridable)
        self.create_subscription(Int32, "~/feedback", self._on_feedback, 10, qos_overriding_options=overridable)
        self.create_service(Trigger, "~/save_learning", self._on_save_learning)
        self.create_service(Trigger, "~/reset_learning", self._on_reset_learning)
        # /diagnostics in every state: a node that failed to configure says why there too
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10, **QUIET_PUBLISHER)
        self.add_on_set_parameters_callback(self._validate_parameters)
        if hasattr(self, "add_post_set_parameters_callback"):  # rclpy >= Iron: validate, then apply
            self.add_post_set_parameters_callback(self._apply_parameters)
        self.create_timer(self.get_parameter("diagnostics_period_s").value, self._publish_diagnostics)
        self.create_timer(WATCHDOG_PERIOD_S, self._watch_backend, clock=Clock(clock_type=ClockType.STEADY_TIME))
        if self.get_parameter("autostart").value:
            self._autostart()

    def _attach_library_log(self) -> None:
        """The library's log ("snn_agent": backend loads, fallbacks) goes to the ROS log at the node's
        level, and only there: Lava puts a console handler on the root logger for every Lava process
        it creates, which would print each line again once per process."""
        library = logging.getLogger("snn_agent")
        library.addHandler(self._log_handler)
        library.setLevel(logging.DEBUG)  # the handler filters, at the node's level of the moment
        library.propagate = False

    def now_s(self) -> float:
        """The node's clock in seconds: simulated time under use_sim_time (0 before the first /clock)."""
        return self.get_clock().now().nanoseconds * 1e-9

    @property
    def state(self) -> str:
        """The lifecycle state's label: unconfigured, inactive, active, finalized."""
        return self._state_machine.current_state[1]

    def _autostart(self) -> None:
        if self.state == "unconfigured" and self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return  # on_configure has logged why; setting the parameter at fault tries again
        if self.state == "inactive":
            self.trigger_activate()

    # --- lifecycle -----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Validate the parameters, load the model and backend. FAILURE, with the reason logged and on
        /diagnostics, leaves the node unconfigured and unchanged."""
        # Said before loading (Lava's takes seconds); also the process's first ROS log line, which
        # costs a scan of every module loaded (rclpy finds each line's call site with inspect):
        # here it comes before the backend's imports (numba's registries, scipy), not after them
        self.get_logger().info(f"configuring: backend {self.get_parameter('backend').value} on "
                               f"{self.get_parameter('model').value}")
        try:
            problem = next((f"parameter {name}: {reason}" for name in PARAMETERS
                            if (reason := self._problem(self.get_parameter(name)))), None)
            if problem is None:
                core = AgentCore(self._backend_choice(), self._governor_settings(), self._backend_factory, clock=self.now_s,
                                 lock=self._lock, stats=self.stats,
                                 learning=self._learning_settings())
                if not core.ready:  # the library has logged the details
                    problem = core.fallback_reason
        except Exception as exc:  # noqa: BLE001 - a transition reports failure, it does not raise
            problem = f"unexpected error: {exc!r}"
        if problem:
            self.configure_error = problem
            self.get_logger().error(f"configure failed: {problem}")
            return TransitionCallbackReturn.FAILURE
        self.configure_error = None
        self.core = core
        self._result_pubs = {
            "classification": self._classification_publisher(),
            "label": self.create_lifecycle_publisher(String, "~/label", 10, **QUIET_PUBLISHER),
            "class_id": self.create_lifecycle_publisher(Int32, "~/class_id", 10, **QUIET_PUBLISHER),
            "scores": self.create_lifecycle_publisher(Float32MultiArray, "~/scores", 10, **QUIET_PUBLISHER),
            "timesteps": self.create_lifecycle_publisher(UInt16, "~/timesteps", 10, **QUIET_PUBLISHER),
            "energy": self.create_lifecycle_publisher(Float32, "~/energy", 10, **QUIET_PUBLISHER),
        }
        self._running = True
        self._start_worker()
        self.get_logger().info(f"configured: backend {core.backend.describe()} on {core.choice.model_dir}; "
                               f"policy {core.settings.policy}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        now = self.now_s()
        with self._lock:
            if now > 0 and not self.core.governor.mission_started:  # else the first battery reading starts it
                self.core.governor.start(now)
            self._active = True
            self._active_since = time.monotonic()
        self.get_logger().info("active: classifying")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._lock:
            self._active = False
            self._newest = None
        self.get_logger().info("inactive: frames are not classified")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unload()
        # A Lava network's processes, ports and Vars refer to each other: without a full collection
        # their memory (~1.8 MB a network) waits for Python's generation-2 pass, which a process holding
        # torch's, numba's and Lava's ~0.5 M long-lived objects runs about once per 80 networks.
        # Cleanup is when the backend's memory is given back (0.3-2 s here; not at shutdown: the
        # process is ending).
        gc.collect()
        self.get_logger().info("cleaned up: backend closed")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unload()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unload()  # back to unconfigured, with nothing held
        return TransitionCallbackReturn.SUCCESS

    def _classification_publisher(self):
        if VISION_MSGS_MISSING:
            self.get_logger().info(f"{VISION_MSGS_MISSING}: ~/classification is not published, the std_msgs "
                                   f"topics are", once=True)
            return None
        from vision_msgs.msg import Classification

        return self.create_lifecycle_publisher(Classification, "~/classification", 10, **QUIET_PUBLISHER)

    def _start_worker(self) -> None:
        """A new worker thread; call with self._lock held, or before anything else can run."""
        self._generation += 1
        self._busy_since = None
        self._worker_busy, self._inline = False, False
        self._worker = threading.Thread(target=self._work, args=(self._generation,), name="snn_agent_inference",
                                        daemon=True)
        self._worker.start()

    def _unload(self) -> None:
        """Stop the worker, close the backend (Lava processes stopped), drop the result publishers."""
        with self._wake:
            self._active = False
            self._running = False
            self._newest = None
            self._pending_reload = None
            self._pending_replacement, self._replacing = None, False
            self._wake.notify_all()
            stuck = self._busy_since is not None and self.core is not None and self.core.backend.failure()
        if self._worker is not None:
            self._worker.join(timeout=0 if stuck else 10)
            self._worker = None
        if self.core is not None:
            self.core.close()
            self.core = None
        for pub in self._result_pubs.values():
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self._result_pubs = {}

    # --- parameters ----------------------------------------------------------------------------
    def _values(self, names, overrides: Optional[dict] = None) -> dict:
        """The parameters' current values, with the ones being set (overrides) in their place."""
        values = {name: self.get_parameter(name).value for name in names}
        values.update({name: value for name, value in (overrides or {}).items() if name in values})
        return values

    def _backend_choice(self, overrides: Optional[dict] = None) -> BackendChoice:
        return backend_choice(self._values(BACKEND_PARAMS, overrides))

    def _governor_settings(self, overrides: Optional[dict] = None) -> GovernorSettings:
        return governor_settings(self._values(GOVERNOR_PARAMS, overrides))

    def _learning_settings(self, overrides: Optional[dict] = None) -> LearningSettings:
        return learning_settings(self._values(LEARNING_PARAMS, overrides))

    def _problem(self, p: Parameter, pending: Optional[dict] = None) -> Optional[str]:
        """Why a value cannot be used, or None. pending: the other values being set with it."""
        together = self._values(("backend", "device"), pending)
        return parameter_problem(p.name, p.value, together["backend"], together["device"])

    def _validate_parameters(self, params) -> SetParametersResult:
        try:
            pending = {p.name: p.value for p in params}
            for p in params:
                reason = self._problem(p, pending)
                if reason:
                    self._bad_input("model" if p.name == "model" else "parameter", f"parameter rejected: {reason}")
                    return SetParametersResult(successful=False, reason=reason)
            if not hasattr(self, "add_post_set_parameters_callback"):  # Humble: apply here, after validating all
                self._apply_parameters(params)
            return SetParametersResult(successful=True)
        except Exception as exc:  # noqa: BLE001 - a parameter service call must not end the node
            return SetParametersResult(successful=False, reason=f"internal error: {exc!r}")

    @never_raises
    def _apply_parameters(self, params) -> None:
        names = {p.name for p in params}
        values = {p.name: p.value for p in params}
        if self.core is None:  # unconfigured: configure reads the parameters
            if names & set(BACKEND_PARAMS) and self.configure_error and self.get_parameter("autostart").value:
                self._autostart()  # the parameter at fault may have been fixed
            return
        if names & set(BACKEND_PARAMS):
            with self._wake:  # the worker reloads between frames, never under a running inference
                self._pending_reload = self._backend_choice(values)
                self._wake.notify()
        if names & set(GOVERNOR_PARAMS):
            with self._lock:
                settings = self._governor_settings(values)
                settings.frame_rate_hz = self.core.settings.frame_rate_hz  # measured by the core, not a parameter
                vars(self.core.settings).update(vars(settings))  # in place: the governor holds this object
            self.get_logger().info(f"governor settings now {settings}")
        if names & set(LEARNING_PARAMS):
            self.core.set_learning(self._learning_settings(values))
            self.get_logger().info(f"learning settings now {self.core.learning}")

    def _bad_input(self, kind: str, text: str, error: bool = False) -> None:
        """Count it for /diagnostics and log it, at most once per LOG_THROTTLE_S for each kind, so
        that one broken publisher neither floods the log nor hides a different problem."""
        now = time.monotonic()  # log throttling is about the console, in real time
        with self._lock:
            self.stats.bad_input[kind] += 1
            count = self.stats.bad_input[kind]
            if now - self._complaints.get(kind, -math.inf) < LOG_THROTTLE_S:
                return
            self._complaints[kind] = now
        text = f"{text} [{kind}: {count} so far]"
        if error:  # two call sites: rclpy fixes each call site's severity
            self.get_logger().error(text)
        else:
            self.get_logger().warning(text)

    # --- inputs --------------------------------------------------------------------------------
    @never_raises
    def _on_image(self, msg: Image) -> None:
        self._accept(msg, msg.width * msg.height,
                     lambda: check_raw(msg.encoding, msg.width, msg.height, msg.step, len(msg.data)),
                     lambda: decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.data, bool(msg.is_bigendian)))

    @never_raises
    def _on_compressed(self, msg: CompressedImage) -> None:
        self._accept(msg, compressed_pixels(msg.data) or 0, lambda: check_compressed(msg.format, msg.data),
                     lambda: decode_compressed(msg.format, msg.data))

    def _accept(self, msg, pixels: int, check, decode) -> None:
        """Keep the newest frame for the worker; decoding waits until the worker takes it. `check`:
        the cheap checks (sizes, encoding, magic bytes), so that a malformed message never displaces
        the valid frame held for the worker."""
        received_s = time.perf_counter()
        stamp = msg.header.stamp
        with self._wake:  # every frame, even a bad one, so that its label cannot go to another
            frame_id = self.pairing.image(stamp.sec * 10**9 + stamp.nanosec)
            if not self._active:
                self.frames_not_active += 1
                return
        limit = self.get_parameter("max_image_pixels").value
        if pixels > limit:
            self._bad_input("too_large", f"image of {pixels} pixels refused: max_image_pixels is {limit}")
            return
        try:
            check()
        except ImageDecodeError as exc:
            self._bad_input(exc.kind, f"bad image: {exc}")
            return
        frame = (frame_id, msg.header, decode, received_s)
        with self._wake:
            self._last_received = time.monotonic()
            inline = self._inline and not self._worker_busy and self._newest is None \
                and self._pending_reload is None and self._pending_replacement is None
            if not inline:
                if self._newest is not None:
                    self.stats.dropped += 1
                self._newest = frame
                self._wake.notify()
                return
            generation = self._generation
        self._handle(generation, lambda: self._classify(generation, *frame))

    @never_raises
    def _on_ground_truth(self, msg: Int32) -> None:
        arrival_ns = self.get_clock().now().nanoseconds
        with self._lock:
            self._count(self.pairing.label(arrival_ns, int(msg.data)))

    def _count(self, pair: Optional[tuple]) -> None:
        """Running accuracy; call with self._lock held."""
        if pair is not None:
            predicted, label = pair
            self.stats.labelled += 1
            self.stats.correct += int(predicted == label)

    # --- learning ------------------------------------------------------------------------------
    @never_raises
    def _on_feedback(self, msg: Int32) -> None:
        """The true class of the most recently classified frame."""
        with self._lock:
            core = self.core
        if core is None:
            self._bad_input("feedback", "feedback while not configured: dropped")
            return
        outcome = core.feedback(int(msg.data))
        if not outcome.applied:
            self._bad_input("feedback", f"feedback {msg.data} dropped: {outcome.reason}")
        elif outcome.teach.added_class:
            self.get_logger().info(f"learning: class {msg.data} ({core.learner.readout.class_names[msg.data]}) added")

    def _on_save_learning(self, request, response):
        return self._trigger(response, lambda learner: learner.save(), "learning checkpoint written")

    def _on_reset_learning(self, request, response):
        return self._trigger(response, lambda learner: learner.reset() or True, "learning reset to the model's readout")

    def _trigger(self, response, action, done: str):
        """A learning service: the learner's action under the lock; the answer says what happened."""
        try:
            with self._lock:
                learner = self.core.learner if self.core is not None else None
                if learner is None:
                    response.success, response.message = False, (self.core.learning_problem if self.core else None) \
                        or "learning is not running (learning.enabled, a configured node)"
                    return response
                response.success = bool(action(learner))
                response.message = done if response.success else (learner.checkpoint_errors or ["failed"])[-1]
        except Exception as exc:  # noqa: BLE001 - a service call must not end the node
            response.success, response.message = False, f"internal error: {exc!r}"
        return response

    @never_raises
    def _on_budget(self, msg: Float32) -> None:
        with self._lock:
            if self.core is None:
                return
            problem = self.core.governor.set_budget(float(msg.data))
        if problem:
            self._bad_input("budget", problem + "; keeping the previous budget")
        else:
            self.get_logger().info(f"energy budget {msg.data:.4g} J per inference")

    @never_raises
    def _on_battery(self, msg: BatteryState, info: dict) -> None:
        fallback_j = self.get_parameter("battery_capacity_wh").value * 3600.0
        reading = read_battery(msg.percentage, msg.voltage, msg.charge, msg.capacity, msg.design_capacity, fallback_j,
                               self._percentage_scale(msg, info))
        if reading.problem:
            self._bad_input("battery", f"battery state unusable: {reading.problem}")
            return
        with self._lock:
            if self.core is not None:
                self.core.governor.update_battery(self.now_s(), reading.fraction, reading.capacity_j)

    def _percentage_scale(self, msg: BatteryState, info: dict) -> str:
        """The configured scale, or the one decided (and logged) once for this publisher; a publisher
        that has not yet shown its scale is read as ROS defines it (0..1)."""
        configured = self.get_parameter("battery_percentage_scale").value
        if configured != "auto":
            return configured
        gid = bytes((info.get("publisher_gid") or {}).get("data", b""))
        scale = self._battery_scales.get(gid)
        if scale is None:
            scale = scale_evidence(msg.percentage, msg.charge, msg.capacity)
            if scale is None:
                return "fraction"
            self._battery_scales[gid] = scale
            self.get_logger().info(f"battery_state publisher {gid.hex()[:16]}: percentage read as {scale} "
                                   f"({'0..1' if scale == 'fraction' else '0..100'}) from now on")
        return scale

    # --- inference (the worker thread) ---------------------------------------------------------
    def _work(self, generation: int) -> None:
        while True:
            with self._wake:
                if generation == self._generation:
                    self._worker_busy = False
                while self._running and generation == self._generation and self._newest is None \
                        and self._pending_reload is None and self._pending_replacement is None:
                    self._wake.wait(0.5)
                if not self._running or generation != self._generation:
                    return
                replacement, self._pending_replacement = self._pending_replacement, None
                frame, self._newest = (None, self._newest) if replacement else (self._newest, None)
                reload, self._pending_reload = self._pending_reload, None
                self._worker_busy = True
                if replacement is not None or reload is not None:
                    self._inline = False  # the new backend's first frame shows whether it is fast
            if not self._handle(generation, lambda: self._work_on(generation, replacement, reload, frame)):
                return

    def _work_on(self, generation: int, replacement: Optional[str], reload: Optional[BackendChoice],
                 frame: Optional[tuple]) -> None:
        if replacement is not None:
            self._replace_backend(replacement)
        if reload is not None:
            self._reload(reload)
        if frame is not None:
            self._classify(generation, *frame)

    def _handle(self, generation: int, work) -> bool:
        """Run the worker's or an inline frame's work; False when ROS is gone (the worker ends)."""
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - the inference thread must outlive any one frame
            if not self.context.ok():  # Ctrl-C shut ROS down under a publish: not the frame's fault
                return False
            self._bad_input("internal", f"frame handling failed: {exc!r}", error=True)
        return True

    def _reload(self, choice: BackendChoice) -> None:
        try:
            self.core.load(choice)
        except Exception as exc:  # noqa: BLE001 - the node keeps running on the previous backend
            with self._lock:
                self.model_error = f"could not load {choice.backend!r} from {choice.model_dir}: {exc}"
            self._bad_input("model", f"{self.model_error}; still running {self.core.backend.describe()} on "
                                     f"{self.core.choice.model_dir}", error=True)
            return
        with self._lock:
            self.model_error = None
        self.get_logger().info(f"backend now {self.core.backend.describe()} on {choice.model_dir}")

    def _replace_backend(self, reason: str) -> None:
        try:
            self.core.replace_backend(reason)
        finally:
            with self._lock:
                self._replacing = False
        self.get_logger().info(f"backend now {self.core.backend.describe()}")

    @never_raises
    def _watch_backend(self) -> None:
        """Replace a backend whose runtime died or that has not finished a frame in stall_timeout_s."""
        with self._wake:
            core, busy_since = self.core, self._busy_since
            if core is None or not self._running or self._replacing:
                return
            failure = core.backend.failure()
            timeout = self.get_parameter("stall_timeout_s").value
            if failure is None and (busy_since is None or time.monotonic() - busy_since <= timeout):
                return
            reason = failure or f"backend {core.backend.name!r} has not finished a frame in " \
                                f"{time.monotonic() - busy_since:.1f} s (stall_timeout_s {timeout:g})"
            if busy_since is not None:  # stuck in the backend: leave it, a new worker takes over
                self.abandoned_workers += 1
                self._start_worker()
            self._pending_replacement, self._replacing = reason, True
            self._wake.notify_all()
        self._bad_input("stall", f"{reason}: replacing the backend", error=True)

    def _classify(self, generation: int, frame_id: int, header, decode, received_s: float) -> None:
        try:
            image, order = decode()
            limit = self.get_parameter("max_image_pixels").value
            if image.shape[0] * image.shape[1] > limit:  # a compressed header that did not say
                raise ImageDecodeError("too_large", f"image of {image.shape[1]}x{image.shape[0]} pixels refused: "
                                                    f"max_image_pixels is {limit}")
            x = to_network_input(image, order, self.core.model.network.preprocessing)
        except ImageDecodeError as exc:
            self._bad_input(exc.kind, f"bad image: {exc}")
            return
        with self._lock:
            self._busy_since = started = time.monotonic()
        try:
            result = self.core.classify(x, frame_id=frame_id)
            fast = self.core.backend.name == "cpu" and time.monotonic() - started < INLINE_MAX_S
        except Exception as exc:  # noqa: BLE001 - a failing frame must not end the node
            self.inference_error = f"inference failed: {exc}"
            self._bad_input("inference", self.inference_error, error=True)
            return
        finally:
            with self._lock:
                if generation == self._generation:
                    self._busy_since = None
        if result is None or generation != self._generation:  # skipped, or abandoned as stalled
            return
        self.inference_error = None
        decision = result.decision
        if self.last_decision is None or decision.point is not self.last_decision.point:
            self._log_decision(decision)
        self.last_decision = decision
        pubs = self._result_pubs
        pubs["label"].publish(String(data=result.label))  # first: what a consumer waits on
        if pubs["classification"] is not None:
            pubs["classification"].publish(classification(header, self.core.model.class_names, result.scores))
        pubs["class_id"].publish(Int32(data=result.class_id))
        n = len(result.scores)
        pubs["scores"].publish(Float32MultiArray(
            layout=MultiArrayLayout(dim=[MultiArrayDimension(label="class", size=n, stride=n)]),
            data=[float(s) for s in result.scores]))
        pubs["timesteps"].publish(UInt16(data=int(result.timesteps)))
        pubs["energy"].publish(Float32(data=float(result.energy.joules)))
        with self._lock:
            self._last_classified = time.monotonic()
            if generation == self._generation:
                self._inline = fast
            self.stats.node_latencies_s.append(time.perf_counter() - received_s)
            self._count(self.pairing.prediction(frame_id, result.class_id))

    def _log_decision(self, decision) -> None:
        point = decision.point
        what = f"T={point.timesteps} ({point.enhancement})" if point.timesteps else \
            f"DNN on 1 frame in {point.decimation}"
        profile = "not profiled" if math.isnan(point.accuracy) else \
            f"expected accuracy {point.accuracy:.3f}, {point.energy_j:.3g} J"
        text = f"operating point {what} ({profile}): {decision.reason}"
        if decision.over_budget:  # two call sites: rclpy fixes a call site's severity
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    # --- diagnostics ---------------------------------------------------------------------------
    @never_raises
    def _publish_diagnostics(self) -> None:
        with self._lock:  # one consistent snapshot; formatting and publishing happen outside
            level, message, values = self._diagnostics_values()
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: snn_agent", hardware_id=values["backend"],
                                  message=message, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)

    def _diagnostics_values(self) -> tuple:
        """(level, message, key -> value); call with self._lock held."""
        s = self.stats.summary()
        core, decision = self.core, self.last_decision
        values = {
            "state": self.state,
            "frames": s["frames"], "dropped": s["dropped"], "skipped_by_decimation": s["skipped"],
            "frames_not_active": self.frames_not_active,
            "fps_last_5s": f"{s['fps_last_5s']:.2f}",
            "backend_latency_ms_p50": f"{s['backend_latency_ms_p50']:.3f}",
            "backend_latency_ms_p99": f"{s['backend_latency_ms_p99']:.3f}",
            "node_latency_ms_p50": f"{s['node_latency_ms_p50']:.3f}",
            "node_latency_ms_p99": f"{s['node_latency_ms_p99']:.3f}",
            "backend": core.backend.describe() if core else "none",
            "model": core.choice.model_dir if core else self.get_parameter("model").value,
            "timesteps": decision.point.timesteps if decision else "",
            "neuron_parameters": decision.point.enhancement if decision and decision.point.timesteps else "",
            "energy_j_per_inference": f"{s['energy_j_per_inference']:.4g}", "energy_kind": s["energy_kind"],
            "accuracy": "" if s["accuracy"] is None else f"{s['accuracy']:.4f}",
            "policy": self.get_parameter("policy").value,
            "budget_j": "" if decision is None or decision.budget_j is None else f"{decision.budget_j:.4g}",
            "decision": decision.reason if decision else "",
            "expected_accuracy": f"{decision.point.accuracy:.4f}" if decision else "",
            "bad_input": s["bad_input"], "labels_unpaired": self.pairing.unpaired,
        }
        now = time.monotonic()
        since = self._last_classified or self._active_since
        values["last_frame_age_s"] = "" if since is None else f"{now - since:.3f}"
        values["abandoned_workers"] = self.abandoned_workers
        timeout = self.get_parameter("stall_timeout_s").value
        stalled = self._active and since is not None and now - since > timeout and \
            self._last_received is not None and now - self._last_received < timeout
        other_w = core.governor.other_power_w() if core else None
        values["battery_other_power_w"] = "" if other_w is None else f"{other_w:.4g}"
        charge = core.governor.charge_fraction() if core else None
        values["battery_fraction"] = "" if charge is None else f"{charge:.4f}"
        values.update({f"bad_input_{kind}": n for kind, n in self.stats.bad_input.items()})
        if core and core.fallback_reason:
            values["fallback"] = core.fallback_reason
        if core and core.points_left_out:
            values["points_left_out"] = "; ".join(core.points_left_out)
        if core and core.learner is not None:
            values.update(core.learner.diagnostics())
        if core and core.learning_problem:
            values["learning_problem"] = core.learning_problem
        if self.configure_error:
            values["configure_error"] = self.configure_error
        if self.model_error:
            values["model_error"] = self.model_error
        if core is None and self.configure_error:
            return DiagnosticStatus.ERROR, f"not configured: {self.configure_error}", values
        if core is None:
            return DiagnosticStatus.OK, f"{self.state}: not configured", values
        if stalled:
            return DiagnosticStatus.ERROR, f"stalled: frames arrive, none classified for {now - since:.1f} s", values
        if core.fallback_reason:
            return DiagnosticStatus.ERROR, core.fallback_reason, values
        if self.model_error:
            return DiagnosticStatus.ERROR, self.model_error, values
        if self.inference_error:
            return DiagnosticStatus.ERROR, self.inference_error, values
        if decision is not None and decision.over_budget:
            return DiagnosticStatus.WARN, decision.reason, values
        if core.points_left_out:
            return DiagnosticStatus.WARN, core.points_left_out[0], values
        if core.learning_problem:
            return DiagnosticStatus.WARN, core.learning_problem, values
        if core.learner is not None and core.learner.checkpoint_errors:
            return DiagnosticStatus.WARN, core.learner.checkpoint_errors[-1], values
        if s["bad_input"]:
            return DiagnosticStatus.WARN, f"{s['bad_input']} bad inputs so far", values
        return DiagnosticStatus.OK, "classifying" if self._active else f"{self.state}: not classifying", values

    def destroy_node(self):
        library = logging.getLogger("snn_agent")
        library.removeHandler(self._log_handler)
        if not library.handlers:
            library.propagate = True
        self._unload()
        return super().destroy_node()


def main(args=None) -> None:
    spin_node(AgentNode, args)
