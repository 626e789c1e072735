"""The whole conversion of a user's model: ONNX in, a model directory out.

OUT/snn.json, OUT/weights.npz   the `ideal` target (our model artifact: plain arrays and JSON)
OUT/report.json                 per-layer normalization scale, sparsity, op counts
OUT/source.onnx                 the DNN as given (re-conversion uses it)
OUT/openvino/model.xml, .bin    the DNN as OpenVINO IR, for the accelerator backend
OUT/model.nir                   the ideal SNN as a NIR graph (nir.read), for other neuromorphic tools
OUT/loihi/snn.json, weights.npz the `loihi` target (fixed point, what Lava and Loihi run)
OUT/loihi/loihi.net             the loihi target as a lava-dl netx HDF5 network
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Callable, Optional

from ..data import datasets
from ..data.prepare import model_input
from ..progress import PhasedProgress
from .calibrate import CALIBRATION_IMAGES, CALIBRATION_T, CONVERGED_CALIBRATION_T
from .convert import ConversionOptions, convert
from .export_netx import NETX_FILE, export_netx
from .export_nir import export_nir
from .export_openvino import IR_XML, OPENVINO_DIR, export_openvino
from .loihi import LOIHI_DIR, LoihiOptions, to_loihi
from .onnx_import import load_onnx

SOURCE_ONNX = "source.onnx"
REPORT_JSON = "report.json"
NIR_FILE = "model.nir"


def convert_model(onnx_path: str, calib: str, out_dir: str, options: ConversionOptions = ConversionOptions(),
                  preprocessing: Optional[dict] = None,
                  progress: Optional[Callable[[int, int], None]] = None,
                  loihi: Optional[LoihiOptions] = LoihiOptions()):
    """Convert and write every artifact; returns the ideal SNNModel. Fails before writing anything
    when the model has an unsupported operator or the dataset cannot be read. loihi=None skips
    the loihi target (the Lava backend then makes it on first use). progress(done, total): the
    whole conversion, in units of its expected work (ConversionPhases)."""
    network = load_onnx(onnx_path, preprocessing)
    calib_set = datasets.training_set(calib)
    calib_x = model_input(calib_set.subset(options.calibration_images), network.preprocessing)
    phases = ConversionPhases(progress, network, len(calib_x), options, loihi if network.is_chain else None)
    snn = convert(network, calib_x, options, phases.part("activation scales"), SOURCE_ONNX,
                  phases.part("initial potentials"), phases.part("large-T weights"))
    snn.info["calibration_data"] = calib
    os.makedirs(out_dir, exist_ok=True)
    if os.path.abspath(onnx_path) != os.path.abspath(os.path.join(out_dir, SOURCE_ONNX)):
        shutil.copyfile(onnx_path, os.path.join(out_dir, SOURCE_ONNX))
    snn.save(out_dir)
    exports = {"openvino": _optional_export(lambda: export_openvino(onnx_path, out_dir), f"{OPENVINO_DIR}/{IR_XML}"),
               "nir": _optional_export(lambda: export_nir(snn, os.path.join(out_dir, NIR_FILE)), NIR_FILE)}
    phases.mark("save and exports")
    if loihi is not None and not snn.network.is_chain:
        exports["loihi"] = "skipped: the loihi target (and its netx file) takes a chain of layers; " \
                           "this network has residual Add or Concat branches"
    elif loihi is not None:
        target = to_loihi(snn, calib_x, loihi, phases.part("loihi: threshold search"),
                          phases.part("loihi: initial potentials"))
        target_dir = os.path.join(out_dir, LOIHI_DIR)
        target.save(target_dir)
        exports["netx"] = _optional_export(lambda: export_netx(target, os.path.join(target_dir, NETX_FILE)), NETX_FILE)
        snn.info["loihi"] = target.info["loihi"]
        phases.mark("loihi: save and netx export")
    snn.info["exports"] = exports
    snn.info["conversion_seconds"] = phases.seconds()
    with open(os.path.join(out_dir, REPORT_JSON), "w") as f:
        json.dump(snn.info, f, indent=1)
    return snn


# CPU time per neuron and timestep of each phase, relative: measured on the suite's VGG-style CNN
# (activation scales 25 ns, the ideal target's calibration 24, the loihi threshold search 29 with
# its candidates, the loihi target's calibration 11.5)
PHASE_COST = {"activation scales": 2.0, "initial potentials": 2.0, "large-T weights": 2.0,
              "loihi: threshold search": 2.5, "loihi: initial potentials": 1.0}
PROGRESS_UNITS = PhasedProgress.UNITS  # the whole conversion, in thousandths


class ConversionPhases(PhasedProgress):
    """One progress over the whole conversion, and each phase's wall and CPU seconds
    (PhasedProgress): a phase's expected work is images x timesteps x PHASE_COST (the DNN's
    forward pass counts one step)."""

    def __init__(self, progress: Optional[Callable[[int, int], None]], network, images: int,
                 options: ConversionOptions, loihi: Optional[LoihiOptions]):
        # layers scaled by a Clip ceiling are not calibrated (calibrate.py): a network of only such has nothing to do
        calibrates = options.calibrate and any(layer.spiking and (layer.activation_max is None or not options.use_clip_ceiling)
                                               for layer in network.layers)
        calibrated = min(images, CALIBRATION_IMAGES) if calibrates else 0
        # large-T weights: only where the weight refit is kept (convert.convert); else the bar ends early
        frames_and_steps = {"activation scales": images, "initial potentials": calibrated * CALIBRATION_T,
                            "large-T weights": calibrated * CONVERGED_CALIBRATION_T}
        if loihi is not None:
            steps = loihi.search_timesteps + len(network.layers)  # a frame of the loihi target
            frames_and_steps["loihi: threshold search"] = min(images, loihi.search_images) * steps
            frames_and_steps["loihi: initial potentials"] = calibrated * steps
        # the spiking layers' neurons are a factor of every phase's work: left out
        super().__init__(progress, {name: n * PHASE_COST[name] for name, n in frames_and_steps.items()})


def _optional_export(write: Callable[[], object], name: str) -> str:
    """An export is optional: whatever stops it (a format that cannot hold this model, e.g. Lava's
    symmetric-only padding; a converter's own failure) is reported, not fatal, since the SNN and
    the other artifacts still serve. -> `name` (the file written), or `skipped: <why>`."""
    try:
        write()
    except ValueError as exc:  # our exporters' word: the format cannot hold this model
        return f"skipped: {exc}"
    except Exception as exc:  # noqa: BLE001 - a tool's own failure: its first line, not its traceback
        lines = str(exc).strip().splitlines()
        return f"skipped: {type(exc).__name__}" + (f": {lines[0]}" if lines else "")
    return name
