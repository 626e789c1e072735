"""The source DNN as OpenVINO IR (model.xml + model.bin), for the accelerator backend."""
from __future__ import annotations

import os

OPENVINO_DIR = "openvino"
IR_XML = "model.xml"


def export_openvino(onnx_path: str, model_dir: str) -> str:
    """Convert the ONNX file into model_dir/openvino/model.xml; returns its path."""
    import openvino as ov

    out_dir = os.path.join(model_dir, OPENVINO_DIR)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, IR_XML)
    # FP32 weights: an FP16 IR would make the DNN differ from the SNN's source by rounding
    ov.save_model(ov.convert_model(onnx_path), path, compress_to_fp16=False)
    return path
