"""The `lava` backend: the loihi target as a lava-dl netx network, run by Lava.

Loihi2SimCfg(select_tag='fixed_pt') simulates Loihi's fixed point on the CPU (slow: ~10 ms per
timestep for the bundled CNN on this machine). Loihi2HwCfg runs it on a Loihi 2 chip; that needs
Intel's Lava-Loihi extension (`lava.utils.loihi.is_installed()`), which is not public.

The network is built and started once, and kept running across frames: for each frame the host
rewrites every neuron's u and v and every synapse's buffer (a fresh frame, as in our engine), then
runs T + depth steps while an Injector feeds the image as graded spikes at steps 1..T, then reads the
score layer's voltage. T may change from frame to frame. New thresholds or biases (an operating
point of the governor: threshold scales, bias calibration) rebuild the network, as Lava's LIF fixes
its threshold after its first step.

Lava counts no operations, so op counts (and the Loihi energy modelled from them) come from our
engine, which reproduces Lava's spikes exactly (test/test_loihi_exact.py); it runs on the same
frames alongside, at ~1 ms a frame.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from typing import Optional

import numpy as np

from ..conversion.export_netx import INPUT_MESSAGE_BITS, NETX_FILE, export_netx
from ..conversion.loihi import LoihiOptions, loihi_target
from ..energy.constants import LoihiEnergy
from ..energy.models import EnergyEstimate, loihi_energy
from ..engine.loihi_engine import DECAY_UNITY, LoihiEngine, score_from_voltage
from ..ir import NeuronConfig, SNNModel
from .base import Backend, BackendError, BackendResult, Capabilities, Stopwatch

log = logging.getLogger("snn_agent")


def import_lava_runtime() -> None:
    """Lava sets multiprocessing's 'fork' start method when its runtime is first imported, and
    fails if a library imported before it (OpenVINO does) has already fixed the method: clear it
    first, so that the node can switch from openvino to lava."""
    if "lava.magma.runtime.runtime" in sys.modules:
        return
    method = multiprocessing.get_start_method(allow_none=True)
    if method not in (None, "fork"):
        raise BackendError(f"Lava needs multiprocessing's 'fork' start method; this process uses {method!r}")
    multiprocessing.set_start_method(None, force=True)
    import lava.magma.runtime.runtime  # noqa: F401 - the import that sets 'fork'


def import_netx():
    """lava-dl's netx. Its import prints torch's "No CUDA runtime is found" and a warning that
    the Prophesee toolbox (for one lava-dl demo) is missing, on every start of the backend: kept
    out of the node's output, in the debug log."""
    if "lava.lib.dl.netx" in sys.modules:
        return sys.modules["lava.lib.dl.netx"]
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            from lava.lib.dl import netx
    finally:
        if said.getvalue().strip():
            log.debug("importing lava-dl printed: %s", said.getvalue().strip())
    return netx


def loihi_hardware_available() -> bool:
    """Whether Intel's Lava-Loihi extension (needed by Loihi2HwCfg) is installed."""
    from lava.utils import loihi

    return loihi.is_installed()


class LavaNetwork:
    """A netx network started once and run frame by frame.

    Frames are given in our (C, H, W)-flat order; Lava's neurons are (x, y, f) = (W, H, C).
    record_spikes adds an Extractor on every layer and returns each layer's spike trains.
    """

    def __init__(self, model: SNNModel, netx_path: str, hardware: bool = False, record_spikes: bool = False):
        import_lava_runtime()
        if not os.path.isfile(netx_path):
            raise BackendError(f"netx network not found: {netx_path} "
                               f"(snn_agent.conversion.export_netx.export_netx writes it)")
        if hardware and not loihi_hardware_available():
            raise BackendError("Loihi2HwCfg needs Intel's Lava-Loihi extension (lava-loihi, for INRC members), "
                               "which is not installed; run on Lava's simulator (hardware=False) or on "
                               "the cpu backend")
        netx = import_netx()
        from lava.magma.core.process.process import ProcessServer
        from lava.magma.core.process.variable import VarServer
        from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
        from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
        from lava.proc.io.injector import Injector, PyLoihiInjectorModel

        self.model = model
        first_process, first_var = ProcessServer().num_processes, VarServer().num_vars
        graded = model.layers[0].fixed_point.input_scale > 0
        self.net = netx.hdf5.Network(net_config=netx_path, input_message_bits=INPUT_MESSAGE_BITS if graded else 0)
        if len(self.net.layers) != len(model.layers):
            raise BackendError(f"{netx_path} has {len(self.net.layers)} layers, the model {len(model.layers)}")
        self.injector = Injector(shape=self.net.inp.shape)
        self.injector.out_port.connect(self.net.inp)
        self.extractors = []
        for block in self.net.layers if record_spikes else []:
            extractor = Extractor(shape=block.out.shape)
            block.out.connect(extractor.in_port)
            self.extractors.append(extractor)
        # the host I/O processes have no fixed_pt tag: name their models
        io_models = {Injector: PyLoihiInjectorModel, Extractor: PyLoihiExtractorModel}
        self.run_cfg = Loihi2HwCfg(exception_proc_model_map=io_models) if hardware else \
            Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=io_models)
        self.net.create_runtime(run_cfg=self.run_cfg)
        # Lava's registries keep every process and Var ever made (only for their ids): this network's
        # leave them at close, else every network built (each configure, each reload) stays in memory
        # (~1.9 MB a network for the bundled model, seen as RSS growth over lifecycle cycles)
        self._registered = (ProcessServer().processes[first_process:], VarServer().vars[first_var:])
        self.running = True
        # Vars can be written only once the runtime has started: one step with no input starts it
        # (every frame then rewrites all state, so it leaves no trace).
        self._steps(np.zeros((1, int(np.prod(self.net.inp.shape)))), 1, 1)

    @property
    def depth(self) -> int:
        return len(self.net.layers)

    def run(self, inputs: np.ndarray, timesteps: int, voltages: list):
        """inputs: (1 or T, n) what the host sends at steps 1..T (1: the same at each step);
        voltages: each layer's v at the start (LoihiEngine.initial_voltages).
        Runs T + depth steps -> (the last layer's v, [spike trains (steps, n) per layer] or [])."""
        # Each Var.set is a round trip to Lava's runtime (~50 ms): skip the state a frame leaves
        # at zero or never reads: u where the current decays fully (u is then each step's input
        # alone) and the first synapse's buffer (the host sends zeros for the last depth steps).
        for index, (block, layer, v0) in enumerate(zip(self.net.layers, self.model.layers, voltages)):
            if layer.fixed_point.du + 1 != DECAY_UNITY:
                block.neuron.u.set(np.zeros(block.neuron.u.shape))
            block.neuron.v.set(_to_lava(v0.astype(np.float64), block.neuron.v.shape))
            if index > 0:
                synapse = block.synapse
                buffer = synapse.a_buf if hasattr(synapse, "a_buf") else synapse.a_buff  # Conv, Dense
                buffer.set(np.zeros(buffer.shape))
        trains = self._steps(inputs, timesteps, timesteps + self.depth)
        last = self.net.layers[-1].neuron.v
        return _from_lava(last.get()[None], last.shape)[0], trains

    def _steps(self, inputs: np.ndarray, input_steps: int, steps: int) -> list:
        from lava.magma.core.run_conditions import RunSteps

        self.net.run(condition=RunSteps(num_steps=steps, blocking=False), run_cfg=self.run_cfg)
        zeros = np.zeros(self.net.inp.shape)
        trains = [np.empty((steps, int(np.prod(e.in_port.shape)))) for e in self.extractors]
        for t in range(steps):  # step by step: the host keeps pace with the network
            self.injector.send(_to_lava(inputs[min(t, len(inputs) - 1)], self.net.inp.shape) if t < input_steps
                               else zeros)
            for train, extractor in zip(trains, self.extractors):
                train[t] = _from_lava(extractor.receive()[None], extractor.in_port.shape)[0]
        self.net.wait()
        return trains

    def _actors(self) -> list:
        """Lava's runtime processes (one per process model and runtime service) that are still
        open: a failed stop may have joined and closed some of them already (seen in CI: a closed
        one's exitcode raises ValueError), and those have ended."""
        runtime = getattr(self.net, "runtime", None)
        infrastructure = getattr(runtime, "_messaging_infrastructure", None)
        return [actor for actor in getattr(infrastructure, "actors", []) if not _closed(actor)]

    def dead_process(self) -> Optional[str]:
        for actor in self._actors():
            if actor.exitcode is not None:
                return f"Lava runtime process {actor.pid} ended (exit code {actor.exitcode})"
        return None

    def close(self) -> None:
        if self.dead_process() is not None:
            self.kill()
        elif self.running:
            try:
                self.net.stop()
                self.running = False
            except ValueError:  # Lava's join closes a runtime process that has not exited yet (seen in CI)
                self.kill()
        self._join_host_port()
        self._unregister()

    def _unregister(self) -> None:
        """This network's processes and Vars out of Lava's registries (see __init__)."""
        from lava.magma.core.process.process import ProcessServer
        from lava.magma.core.process.variable import VarServer

        processes, variables = self._registered
        self._registered = ([], [])
        mine = {id(p) for p in processes} | {id(v) for v in variables}
        ProcessServer().processes = [p for p in ProcessServer().processes if id(p) not in mine]
        VarServer().vars = [v for v in VarServer().vars if id(v) not in mine]

    def _join_host_port(self) -> None:
        """The Injector's host-side port has a thread waiting for acknowledgements that Lava's stop
        leaves running: one leaked thread per network started (seen in bench/reliability.py's Lava
        lifecycle cycles)."""
        port = getattr(self.injector.in_port, "external_pipe_csp_send_port", None)
        if port is not None:
            port.join()

    def kill(self) -> None:
        """Lava's stop is a handshake with every runtime process and waits forever on a dead or
        hung one: end them all instead, and the shared memory they used."""
        if not self.running:
            return
        self.running = False
        for actor in self._actors():
            if actor.exitcode is None:
                actor.kill()
            multiprocessing.Process.join(actor, timeout=2)  # Lava's own join takes no timeout
        self._join_host_port()
        manager = getattr(self.net.runtime._messaging_infrastructure, "smm", None)
        if manager is not None:
            manager.shutdown()
        self._unregister()


def _closed(process: multiprocessing.Process) -> bool:
    """Whether a process object has been closed (its process ended and reaped)."""
    try:
        process.exitcode
    except ValueError:
        return True
    return False


def _readout_input(spikes: list) -> np.ndarray:
    """The last hidden layer's spikes of an exact run, (frames, steps, n): the spikes that reach the
    score layer, all but the last step's."""
    return spikes[-2][:-1].transpose(1, 0, 2)


def _to_lava(flat: np.ndarray, shape: tuple) -> np.ndarray:
    """(C, H, W)-flat -> Lava's (x, y, f) = (W, H, C)."""
    return flat.reshape(shape[::-1]).transpose() if len(shape) == 3 else flat.reshape(shape)


def _from_lava(batch: np.ndarray, shape: tuple) -> np.ndarray:
    """(N, W, H, C) or (N, n) -> (N, C*H*W) in our order."""
    return (batch.transpose(0, 3, 2, 1) if len(shape) == 3 else batch).reshape(len(batch), -1)


# the node's `device` parameter for this backend -> run on the chip (None: where Lava-Loihi is installed)
LAVA_DEVICES = {"CPU": False, "LOIHI2": True, "AUTO": None}


class LavaBackend(Backend):
    name = "lava"
    capabilities = Capabilities(adapt_timesteps=True, learn_online=True, learning="on-chip")
    # measured by bench/stdp_lava_fit.py (docs/stdp.md "In the robot")
    why_not_stdp = ("its STDP learning takes seconds a frame in Lava's CPU simulation (3.6 s at 100 neurons, "
                    "T=100); inference alone about 90 ms, but Lava's neurons have neither the network's "
                    "refractory period nor its one-spike-per-step rule, so they would run another network than "
                    "the one trained")

    def __init__(self, device: str = "CPU", loihi_options: LoihiOptions = LoihiOptions(),
                 loihi_constants: LoihiEnergy = LoihiEnergy()):
        """device: CPU runs on Lava's simulator (Loihi2SimCfg, fixed point), LOIHI2 on the chip
        (Loihi2HwCfg; BackendError without Intel's Lava-Loihi extension), AUTO on the chip where
        that extension is installed, else the simulator.
        loihi_options: for a model directory that has no loihi target yet (see loihi_target)."""
        super().__init__()
        if device.upper() not in LAVA_DEVICES:
            raise BackendError(f"lava device {device!r}: choose CPU (Lava's simulator), LOIHI2 (Loihi2HwCfg) or AUTO")
        self.hardware = LAVA_DEVICES[device.upper()]
        self.loihi_options = loihi_options
        self.loihi_constants = loihi_constants
        self.engine: Optional[LoihiEngine] = None
        self._features_engine: Optional[LoihiEngine] = None  # for `features`
        self._network: Optional[LavaNetwork] = None
        self._netx_path = ""
        self._built_for: Optional[tuple] = None  # (thresholds, biases, voltage decays) of the running network
        self._scratch: Optional[str] = None  # netx files of other operating points

    def _prepare(self, model_dir: str) -> None:
        # a learning readout starts from the converted (ideal) score layer: its float weights, over
        # the hidden layer's spike counts, which the loihi target keeps
        self._score_layer = self.model.layers[-1]
        try:
            self.model, target_dir = loihi_target(model_dir, self.loihi_options)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot make the loihi target of {model_dir}: {exc}") from exc
        self.engine = LoihiEngine(self.model)
        self._netx_path = os.path.join(target_dir, NETX_FILE)
        if not os.path.isfile(self._netx_path):
            export_netx(self.model, self._netx_path)
            log.info("wrote %s", self._netx_path)
        if self.hardware is None:
            self.hardware = loihi_hardware_available()
        self._start(self._parameters(self.model.neuron))

    def _parameters(self, neuron: NeuronConfig) -> tuple:
        """What the network is built with at an operating point: threshold and bias mantissas, and
        the voltage decay (leak) of each layer."""
        return (tuple(self.engine.thresholds(neuron)),
                tuple(tuple(int(b) for b in bias) for bias in self.engine.bias_mantissas(neuron)),
                tuple(self.engine.voltage_decays(neuron)))

    def _start(self, parameters: tuple) -> None:
        """(Re)build the network for these (thresholds, biases, voltage decays)."""
        self._stop()
        path = self._netx_path
        if parameters != self._parameters(NeuronConfig()):
            # one file per operating point: a point seen before needs no export, and Lava may still
            # hold the file of the network it just stopped
            self._scratch = self._scratch or tempfile.mkdtemp(prefix="snn_agent_lava_")
            digest = hashlib.sha1(repr(parameters).encode()).hexdigest()[:16]
            path = os.path.join(self._scratch, f"point_{digest}_{NETX_FILE}")
            if not os.path.isfile(path):
                layers = [replace(layer, bias=np.asarray(bias, np.int32),
                                  fixed_point=replace(layer.fixed_point, vth=vth, dv=dv))
                          for layer, vth, bias, dv in zip(self.model.layers, *parameters)]
                export_netx(SNNModel(replace(self.model.network, layers=layers), self.model.thresholds,
                                     self.model.neuron, "loihi"), path)
        self._network = LavaNetwork(self.model, path, hardware=self.hardware)
        self._built_for = parameters

    def describe(self) -> str:
        return f"lava ({'Loihi 2' if self.hardware else 'Loihi2SimCfg fixed_pt'})"

    def infer(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None,
              weights: str = "") -> BackendResult:
        self._refuse_weights(weights)  # another weight set would be another network on the chip
        neuron = neuron or self.model.neuron
        parameters = self._parameters(neuron)
        if parameters != self._built_for:
            log.info("lava: rebuilding the network for the thresholds, biases and leak of the operating point "
                     "(threshold scale %s, layer scales %s, bias calibration %s, leak dv %s)", neuron.threshold_scale,
                     list(neuron.layer_threshold_scales), "on" if neuron.bias_shifts else "off",
                     "as converted" if neuron.v_decay is None else neuron.v_decay)
            self._start(parameters)
        payloads = self.engine.encode(x)
        voltages = self.engine.initial_voltages(neuron)
        with Stopwatch() as watch:
            v = np.stack([self._network.run(payload[None], timesteps, voltages)[0] for payload in payloads])
        # the same spikes, counted (and the hidden layer's, for a learning readout: the spikes that
        # reach the score layer, all but the last step's)
        counted = self.engine.run(x, timesteps, neuron, return_spikes=self.with_features)
        hidden = None
        if self.with_features:
            counted, spikes = counted
            hidden = _readout_input(spikes)
        chip_steps = timesteps + self.engine.depth
        energy = loihi_energy(counted.ops.per_frame(), chip_steps, self.loihi_constants)
        energy = EnergyEstimate(energy.joules, energy.kind, energy.source + " (ops counted by our exact emulation)")
        return BackendResult(score_from_voltage(self.model, v, timesteps), watch.seconds, energy, counted.ops, hidden)

    features_path = ("hidden spikes from the exact emulation of the Lava network (LoihiEngine), the path of the "
                     "frames' own features")

    def features(self, x: np.ndarray, timesteps: int, neuron: Optional[NeuronConfig] = None) -> np.ndarray:
        """From the exact emulation, as each frame's features are (infer): the same spikes as Lava's,
        without running the memory's frames through Lava's runtime (~0.3 s a frame in its simulator)."""
        if self._features_engine is None:  # an engine of its own: it runs beside the frames' inference
            self._features_engine = LoihiEngine(self.model)
        _, spikes = self._features_engine.run(x, timesteps, neuron or self.model.neuron, return_spikes=True)
        return _readout_input(spikes)

    def score_layer(self):
        return self._score_layer

    def failure(self) -> Optional[str]:
        network = self._network
        return network.dead_process() if network is not None and network.running else None

    def kill(self) -> None:
        if self._network is not None:
            self._network.kill()
        self.close()

    def _stop(self) -> None:
        if self._network is not None:
            self._network.close()
            self._network = None
        self._built_for = None

    def close(self) -> None:
        self._stop()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
