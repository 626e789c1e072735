"""PyTorch module -> Network / SNNModel, through ONNX.

The module is exported by torch.onnx (in eval mode: BatchNorm with its running statistics, Dropout
off) to a temporary file, then takes the ONNX path: the same operator checks and errors, the same
IR. torch stays an optional tool dependency: it is imported only when one of these is called.
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional

import numpy as np

from ..ir import Network, SNNModel
from .convert import ConversionOptions, convert
from .onnx_import import load_onnx

DEFAULT_OPSET = 13


def torch_to_onnx(module, example_input, path: str, opset: int = DEFAULT_OPSET) -> str:
    """Export `module` for one input like `example_input` ((1, C, H, W) or (1, features); a numpy
    array or a tensor) to the ONNX file `path`. The module's training mode is restored after."""
    import torch

    example = torch.as_tensor(np.asarray(example_input, np.float32)) if not isinstance(example_input, torch.Tensor) \
        else example_input.detach().float()
    if example.ndim in (1, 3):  # one sample without its batch axis
        example = example.unsqueeze(0)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(module, (example[:1],), path, opset_version=opset, input_names=["input"],
                              output_names=["scores"], do_constant_folding=True)
    finally:
        module.train(was_training)
    return path


def load_torch(module, example_input, preprocessing: Optional[dict] = None, opset: int = DEFAULT_OPSET,
               onnx_path: Optional[str] = None) -> Network:
    """The module as the IR's DNN. `preprocessing` as for load_onnx (input_shape comes from the
    example); onnx_path keeps the exported file there instead of in a temporary directory."""
    if onnx_path is not None:
        return load_onnx(torch_to_onnx(module, example_input, onnx_path, opset), preprocessing)
    with tempfile.TemporaryDirectory(prefix="snn_agent_torch_") as tmp:
        return load_onnx(torch_to_onnx(module, example_input, os.path.join(tmp, "model.onnx"), opset), preprocessing)


def convert_torch(module, example_input, calib_x: np.ndarray, options: ConversionOptions = ConversionOptions(),
                  preprocessing: Optional[dict] = None, opset: int = DEFAULT_OPSET,
                  onnx_path: Optional[str] = None) -> SNNModel:
    """Convert a PyTorch module to the `ideal` SNN; calib_x: preprocessed calibration inputs
    (N, C, H, W), as the module takes them."""
    network = load_torch(module, example_input, preprocessing, opset, onnx_path)
    return convert(network, np.asarray(calib_x, np.float32), options, source=f"torch:{type(module).__name__}")
