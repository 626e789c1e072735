"""Dataset images -> the network's input tensor."""
from __future__ import annotations

import numpy as np

from ..ir import Preprocessing
from .datasets import Dataset, DatasetError


def model_input(dataset: Dataset, pre: Preprocessing) -> np.ndarray:
    """(N, C, H, W) float32 for the network: uint8 images are resized and preprocessed; float
    arrays are taken as already preprocessed, in the model's layout."""
    shape = tuple(pre.input_shape)
    x = dataset.images
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
        if x.shape[1:] != shape and x.reshape(len(x), -1).shape[1] == int(np.prod(shape)):
            return x.reshape((len(x),) + shape)
        if x.shape[1:] != shape:
            raise DatasetError(f"{dataset.name}: preprocessed images of shape {x.shape[1:]}, the model "
                               f"takes {shape}")
        return x
    if len(shape) == 1:  # a flat-vector model (e.g. scikit-learn): flatten the image
        flat = x.reshape(len(x), -1).astype(np.float32) * np.float32(pre.scale)
        if flat.shape[1] != shape[0]:
            raise DatasetError(f"{dataset.name}: {flat.shape[1]} pixels, the model takes {shape[0]} features")
        return (flat - np.float32(pre.mean[0])) / np.float32(pre.std[0])
    channels, height, width = shape
    if x.shape[1:3] != (height, width):
        import cv2
        x = np.stack([cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in x])
        if x.ndim == 3:
            x = x[..., None]
    if x.shape[3] != channels:
        if channels == 1:
            x = x.mean(axis=3, keepdims=True).astype(np.uint8)
        elif x.shape[3] == 1:
            x = np.repeat(x, channels, axis=3)
        else:
            raise DatasetError(f"{dataset.name}: {x.shape[3]} channels, the model takes {channels}")
    return pre.apply(x)


# a camera's auto-exposure over-correcting: contrast halved, brightness raised (the drift the
# learning benches stream: bench/learning.py, bench/stdp_robot.py)
EXPOSURE_DRIFT = (0.5, 0.4)  # x * contrast + brightness


def exposure_drift(x: np.ndarray, drift: tuple = EXPOSURE_DRIFT) -> np.ndarray:
    """Images in [0, 1] as the drifted camera sees them: x * contrast + brightness, clipped to [0, 1]."""
    contrast, brightness = drift
    return np.clip(x * contrast + brightness, 0, 1).astype(np.float32)


def drift_text(drift: tuple = EXPOSURE_DRIFT) -> str:
    return f"x * {drift[0]} + {drift[1]}, clipped to [0, 1]"
