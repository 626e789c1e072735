"""The DNN on an OpenVINO device: the edge-accelerator path (NCS2 and its successors).

A DNN has no timesteps: `infer` ignores T (one inference per frame), and the governor saves
energy by frame decimation instead. Devices: CPU, GPU, NPU (Intel's on-die successor of the
Movidius stick), AUTO (OpenVINO picks), and MYRIAD (the Neural Compute Stick 2), which OpenVINO
removed in 2023.0: the stick needs the OpenVINO 2022.3 LTS toolkit.

Energy is always modelled: on the CPU from the inference's CPU time (RAPL where readable, then it
is measured), on an accelerator from its measured latency x its published active power.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

import numpy as np

from ..conversion.export_openvino import IR_XML, OPENVINO_DIR, export_openvino
from ..energy.constants import AcceleratorPower, CpuPower
from ..energy.models import CpuEnergyMeter, accelerator_energy
from ..ir import Layer, NeuronConfig
from . import device_problem
from .base import Backend, BackendError, BackendResult, Capabilities, Stopwatch

log = logging.getLogger("snn_agent")
# On the CPU: f32, as recent CPUs default to bf16, which would change the DNN's answers; one
# thread, as a robot shares its cores, and so that the calling thread's CPU time is the
# inference's (CpuEnergyMeter bills thread time).
CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}


class OpenVinoBackend(Backend):
    name = "openvino"
    capabilities = Capabilities(adapt_timesteps=False, learn_online=True, learning="host")

    def __init__(self, device: str = "CPU", allow_fallback: bool = False, cpu_power: CpuPower = CpuPower(),
                 accelerator_power: AcceleratorPower = AcceleratorPower()):
        super().__init__()
        self.requested_device = device.upper()
        self.device = self.requested_device  # the device that runs, once loaded
        self.allow_fallback = allow_fallback
        self.accelerator_power = accelerator_power
        self.meter = CpuEnergyMeter(cpu_power)
        self.fallback_reason: Optional[str] = None  # why `device` is not the one asked for
        self._request = None

    # --- loading -------------------------------------------------------------------------------
    def _prepare(self, model_dir: str) -> None:
        import openvino as ov

        core = ov.Core()
        device = self._usable_device(core.available_devices, ov.get_version())
        xml = self._ir(model_dir)
        network = core.read_model(xml)
        # the accelerator cannot learn: the IR also gives its last hidden layer, and a host readout
        # learns over it, starting from the IR's own score layer
        self._score_layer, hidden = _score_layer_of(network)
        network.add_outputs([hidden])
        try:
            compiled = self._compile(core, network, device)
        except RuntimeError as exc:  # e.g. a device listed but without its driver or compiler
            problem = f"OpenVINO could not compile {xml} for {device}: {_message(exc)}"
            if device == "CPU" or not self.allow_fallback:
                raise BackendError(problem) from exc
            self._fall_back(problem)
            compiled = self._compile(core, network, "CPU")
        executing = compiled.get_property("EXECUTION_DEVICES")
        if device == "AUTO" and executing == ["CPU"]:
            # AUTO chose the CPU: compile for it directly, as AUTO's dispatch thread triples the
            # latency of a small network and hides its CPU time from the thread-time meter
            compiled = self._compile(core, network, "CPU")
        self.device = ",".join(executing)
        self._check_input(compiled.input().get_partial_shape(), xml)
        self._output, self._hidden = compiled.output(0), compiled.output(1)
        self._request = compiled.create_infer_request()
        self._features_request = compiled.create_infer_request()  # for `features`, beside the frames'
        # One throw-away inference: the first one allocates buffers and would misreport latency
        shape = (1,) + tuple(self.model.network.preprocessing.input_shape)
        self._request.infer({0: np.zeros(shape, np.float32)})

    def _usable_device(self, available: list, version: str) -> str:
        """The requested device if OpenVINO has it; else CPU with allow_fallback, or an error."""
        device = self.requested_device
        problem = device_problem(self.name, device)  # "GPU.1" names the second GPU
        if problem:
            raise BackendError(problem)
        if device == "AUTO" or device in available or any(d.startswith(device + ".") for d in available):
            return device
        problem = f"OpenVINO {version.split('-')[0]} has no device {device!r}; present: {', '.join(available) or 'none'}"
        if device == "MYRIAD":  # never present: the API used here (convert_model) is OpenVINO 2023.1+
            problem += (". MYRIAD (Intel Neural Compute Stick 2) was removed in OpenVINO 2023.0: the "
                        "stick needs the OpenVINO 2022.3 LTS toolkit (from Intel's archive; the 2022.3 "
                        "PyPI wheels have no MYRIAD plugin), or use NPU, its modern successor")
        if not self.allow_fallback:
            raise BackendError(problem)
        self._fall_back(problem)
        return "CPU"

    def _fall_back(self, problem: str) -> None:
        self.fallback_reason = problem + "; using OpenVINO's CPU device instead"
        log.error(self.fallback_reason)

    def _ir(self, model_dir: str) -> str:
        """The IR's path, exported from the source ONNX the conversion recorded if it is missing."""
        xml = os.path.join(model_dir, OPENVINO_DIR, IR_XML)
        if os.path.isfile(xml):
            return xml
        source = self.model.info.get("source") or ""
        source_path = os.path.join(model_dir, source)  # relative to the model dir; absolute stays
        if not source or not os.path.isfile(source_path):
            raise BackendError(f"no OpenVINO IR ({xml}) and no source ONNX to make one from (the model "
                               f"records source {source!r}); re-convert the model: snn-agent convert "
                               f"MODEL.onnx -o {model_dir}")
        log.info("exporting %s to OpenVINO IR in %s", source_path, os.path.dirname(xml))
        try:
            return export_openvino(source_path, model_dir)
        except OSError as exc:  # e.g. an installed, read-only model directory
            raise BackendError(f"no OpenVINO IR ({xml}) and it cannot be written: {exc}") from exc

    @staticmethod
    def _compile(core, network, device: str):
        if device == "CPU":
            return core.compile_model(network, "CPU", CPU_CONFIG)
        if device == "AUTO":  # the CPU settings apply if AUTO picks the CPU
            return core.compile_model(network, "AUTO", {"DEVICE_PROPERTIES": {"CPU": CPU_CONFIG}})
        # accelerators run at their native precision (FP16 on GPU, NPU and MYRIAD), as deployed
        return core.compile_model(network, device)

    def _check_input(self, ir_shape, xml: str) -> None:
        """The IR must take the frames the model's preprocessing makes (a stale IR would not)."""
        frame = tuple(self.model.network.preprocessing.input_shape)
        sample = list(ir_shape)[1:]
        if len(sample) != len(frame) or any(d.is_static and d.get_length() != n for d, n in zip(sample, frame)):
            raise BackendError(f"{xml} takes input {ir_shape}, the model's frames are {frame}; delete "
                               f"{os.path.dirname(xml)} to export the IR again from the source ONNX")

    # --- inference -----------------------------------------------------------------------------
    def infer(self, x: np.ndarray, timesteps: int = 0, neuron: Optional[NeuronConfig] = None,
              weights: str = "") -> BackendResult:
        self._refuse_weights(weights)
        frames = max(len(x), 1)
        start = self.meter.read()
        with Stopwatch() as watch:
            # frame by frame, as the robot sends them (and as an IR with a fixed batch of 1 needs)
            outputs = [self._request.infer({0: x[i:i + 1]}) for i in range(len(x))]
        scores = [output[self._output] for output in outputs]
        hidden = np.concatenate([output[self._hidden] for output in outputs])[:, None] if self.with_features else None
        if self.device == "CPU":
            energy = self.meter.energy(start, self.meter.read(), frames)
        else:
            energy = accelerator_energy(watch.seconds / frames, self.accelerator_power, measured_latency=True)
        return BackendResult(np.concatenate(scores).astype(np.float32, copy=False), watch.seconds, energy, None,
                             hidden)

    features_path = "the DNN's last hidden activations through OpenVINO"

    def features(self, x: np.ndarray, timesteps: int = 0, neuron: Optional[NeuronConfig] = None) -> np.ndarray:
        return np.concatenate([self._features_request.infer({0: x[i:i + 1]})[self._hidden]
                               for i in range(len(x))])[:, None]

    def score_layer(self) -> Layer:
        return self._score_layer

    def describe(self) -> str:
        return f"openvino:{self.device}"

    def close(self) -> None:
        self._request = None


def _score_layer_of(network) -> tuple:
    """The IR's score layer (the MatMul and bias Add before its output) as a dense Layer, and the
    output that feeds it (the last hidden layer)."""
    node = network.output(0).get_node()
    while node.get_type_name() == "Result":
        node = node.input_value(0).get_node()
    bias = np.zeros(0)
    if node.get_type_name() == "Add":
        bias = _constant(node.input_value(1).get_node()).reshape(-1)
        node = node.input_value(0).get_node()
    if node.get_type_name() != "MatMul":
        raise BackendError(f"the IR's output comes from a {node.get_type_name()}, not a dense score layer "
                           f"(MatMul, bias Add): its readout cannot learn")
    weight = _constant(node.input_value(1).get_node())
    if not node.get_attributes().get("transpose_b", False):
        weight = weight.T
    hidden = node.input_value(0)
    bias = bias if bias.size else np.zeros(weight.shape[0])
    layer = Layer("score", "dense", weight.astype(np.float64), bias.astype(np.float64), (weight.shape[1],),
                  (weight.shape[0],), spiking=False)
    return layer, hidden


def _constant(node) -> np.ndarray:
    """A Constant, also behind the Convert that a compressed IR puts after it."""
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    if node.get_type_name() != "Constant":
        raise BackendError(f"the IR's score layer reads a {node.get_type_name()}, not constant weights")
    return np.asarray(node.get_data(), dtype=np.float64)


def _message(exc: Exception) -> str:
    """OpenVINO's message without its stack of 'Exception from src/...' source locations."""
    lines = [line.strip() for line in str(exc).splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("Exception from ")) or repr(exc)
