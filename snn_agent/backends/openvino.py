"""The DNN on an OpenVINO device: the edge-accelerator path (NCS2 and its successors).

A DNN has no timesteps: `infer` ignores T, and the governor saves energy by frame decimation.
Devices: CPU, GPU, NPU (Intel's on-die successor of the Movidius stick), AUTO, and MYRIAD (the
Neural Compute Stick 2), which OpenVINO dropped in 2023.0: it needs the 2022.3 LTS toolkit.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

import numpy as np

from ..conversion.export_openvino import IR_XML, OPENVINO_DIR, export_openvino
from ..conversion.pipeline import SOURCE_ONNX
from ..energy.constants import AcceleratorPower, CpuPower
from ..energy.models import accelerator_energy, EnergyEstimate, MODELLED
from ..ir import NeuronConfig
from .base import Backend, BackendError, BackendResult, Capabilities, Stopwatch

log = logging.getLogger("snn_agent")
DEVICES = ("CPU", "GPU", "NPU", "MYRIAD", "AUTO")
MYRIAD_NOTE = ("MYRIAD (Intel NCS2) was removed in OpenVINO 2023.0; install the OpenVINO 2022.3 LTS "
               "toolkit to use the stick, or use NPU, its modern successor")


class OpenVinoBackend(Backend):
    name = "openvino"
    capabilities = Capabilities(adapt_timesteps=False, learn_online=False)

    def __init__(self, device: str = "CPU", allow_fallback: bool = False, cpu_power: CpuPower = CpuPower(),
                 accelerator_power: AcceleratorPower = AcceleratorPower()):
        super().__init__()
        self.requested_device = device.upper()
        self.device = self.requested_device
        self.allow_fallback = allow_fallback
        self.cpu_power, self.accelerator_power = cpu_power, accelerator_power
        self.fallback_reason: Optional[str] = None
        self._request = None

    def _prepare(self, model_dir: str) -> None:
        import openvino as ov

        core = ov.Core()
        self.device = self._usable_device(core.available_devices, ov.get_version())
        xml = os.path.join(model_dir, OPENVINO_DIR, IR_XML)
        if not os.path.isfile(xml):
            source = os.path.join(model_dir, SOURCE_ONNX)
            if not os.path.isfile(source):
                raise BackendError(f"no OpenVINO IR ({xml}) and no {SOURCE_ONNX} to make one in {model_dir}")
            xml = export_openvino(source, model_dir)
        # f32 on CPU: recent CPUs default to bf16, which would change the DNN's answers; one thread,
        # as a robot shares its cores (and so that energy = one core's power x latency holds)
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1} if self.device == "CPU" else {}
        try:
            compiled = core.compile_model(xml, self.device, config)
        except RuntimeError as exc:
            raise BackendError(f"OpenVINO could not compile {xml} for {self.device}: {exc}") from exc
        self._output = compiled.output(0)
        self._request = compiled.create_infer_request()

    def _usable_device(self, available: list, version: str) -> str:
        device = self.requested_device
        if device not in DEVICES:
            raise BackendError(f"unknown OpenVINO device {device!r}; choose one of {', '.join(DEVICES)}")
        present = device == "AUTO" or any(d == device or d.startswith(device + ".") for d in available)
        if present:
            return device
        problem = f"OpenVINO {version.split('-')[0]} has no device {device!r}; present: {', '.join(available) or 'none'}"
        if device == "MYRIAD":
            problem += f". {MYRIAD_NOTE}"
        if not self.allow_fallback:
            raise BackendError(problem)
        self.fallback_reason = problem + "; using OpenVINO's CPU device instead"
        log.error(self.fallback_reason)
        return "CPU"

    def infer(self, x: np.ndarray, timesteps: int = 0, neuron: Optional[NeuronConfig] = None) -> BackendResult:
        with Stopwatch() as watch:
            scores = np.concatenate([self._request.infer({0: x[i:i + 1]})[self._output] for i in range(len(x))])
        per_frame_s = watch.seconds / max(len(x), 1)
        if self.device == "CPU":
            energy = EnergyEstimate(per_frame_s * self.cpu_power.core_power_w, MODELLED,
                                    f"latency x {self.cpu_power.core_power_w} W (one CPU thread)")
        else:
            energy = accelerator_energy(per_frame_s, self.accelerator_power, measured_latency=True)
        return BackendResult(np.asarray(scores, np.float32), watch.seconds, energy, None)

    def describe(self) -> str:
        return f"openvino:{self.device}"

    def close(self) -> None:
        self._request = None
