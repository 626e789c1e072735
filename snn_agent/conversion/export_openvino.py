"""The source DNN as OpenVINO IR, for the accelerator backend.

MODEL_DIR/openvino/model.xml, model.bin   the ONNX graph up to the class scores as IR, FP32 weights,
                                          input layout set
MODEL_DIR/openvino/input.json             what the IR expects: input name, shape, layout, type

The IR is made from the same graph the SNN is (onnx_import.scores_model): an exporter's
post-processing (skl2onnx's ZipMap, ArgMax, ...) is dropped, so the IR's one output is the scores.

input.json is for whoever deploys the IR with other tools (benchmark_app, the 2022.3 LTS toolkit
for an NCS2), which need the layout and shape without reading the XML.
"""
from __future__ import annotations

import json
import os
import tempfile

from .onnx_import import scores_model

OPENVINO_DIR = "openvino"
IR_XML = "model.xml"
IR_INPUT_JSON = "input.json"
# ONNX's convention, which our importer follows: batch first, channels before the spatial axes.
LAYOUTS = {2: "NC", 4: "NCHW"}


def export_openvino(onnx_path: str, model_dir: str) -> str:
    """Convert the ONNX file into model_dir/openvino/model.xml; returns its path."""
    import onnx
    import openvino as ov

    scores, dropped = scores_model(onnx_path)
    with tempfile.TemporaryDirectory() as tmp:  # OpenVINO reads ONNX from a file only
        pruned = os.path.join(tmp, "scores.onnx")
        onnx.save(scores, pruned)
        model = ov.convert_model(pruned)
    port = model.input()  # one image input, as the ONNX importer requires
    shape = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
    layout = LAYOUTS.get(len(shape))
    if layout:  # stored in the IR's rt_info, so OpenVINO's pre-processing can rely on it
        port.get_node().set_layout(ov.Layout(layout))

    out_dir = os.path.join(model_dir, OPENVINO_DIR)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, IR_XML)
    # FP32 weights: an FP16 IR would make the DNN differ from the SNN's source by rounding
    ov.save_model(model, path, compress_to_fp16=False)
    info = {
        "input": port.get_any_name(),
        "shape": shape,  # -1: dynamic (the batch)
        "layout": layout or "unknown",
        "element_type": port.get_element_type().get_type_name(),
        "weights": "FP32",
        "source": os.path.basename(onnx_path),
        "dropped_postprocessing": dropped,
        "openvino_version": ov.get_version(),
    }
    with open(os.path.join(out_dir, IR_INPUT_JSON), "w") as f:
        json.dump(info, f, indent=1)
    return path
