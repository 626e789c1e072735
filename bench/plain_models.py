"""Three plain Fashion-MNIST networks, trained as users train them (ReLU, BatchNorm, pooling; no
activation ceilings, no SNN-aware training), exported with torch.onnx: the conversion suite's models.

  mlp     784-256-128-10, ReLU
  vgg     conv3x3 32 (28x28), BN, ReLU, MaxPool 2; conv3x3 64, BN, ReLU, MaxPool 2; dense 128, ReLU; dense 10
  resnet  conv3x3 16, BN, ReLU, AvgPool 2; a residual block (two conv3x3 16 + BN, identity Add, ReLU);
          a Concat of a 1x1 and a 3x3 branch (16 + 16), AvgPool 2; conv3x3 32, BN, ReLU;
          global average pooling; dense 10

Training: Adam, the first 55,000 training images (the last 5,000 are the validation split, on which
the conversion's knobs are chosen; the test set is only reported). A trained model is cached under
bench/cache/ (ignored by git) by a hash of its architecture and recipe, so the bench and
the CI test train each at most once per machine.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.path.join(ROOT, "bench", "cache")
TRAIN_IMAGES = 55_000  # the rest of the 60,000 is the validation split
EPOCHS = {"mlp": 4, "vgg": 1, "resnet": 2}
ARCHITECTURES = tuple(EPOCHS)  # smallest first


def build(name: str):
    import torch.nn as nn

    def conv_bn(cin, cout, k=3):
        return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU()]

    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    if name == "vgg":
        return nn.Sequential(*conv_bn(1, 32), nn.MaxPool2d(2), *conv_bn(32, 64), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    if name == "resnet":
        return _resnet_class()()
    raise ValueError(f"unknown architecture {name!r}; one of {ARCHITECTURES}")


def _resnet_class():
    import torch
    import torch.nn as nn

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2))
            self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                       nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16))
            self.narrow = nn.Sequential(nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16), nn.ReLU())
            self.wide = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
            self.head = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

        def forward(self, x):
            h = self.stem(x)
            h = torch.relu(self.block(h) + h)
            return self.head(torch.cat([self.narrow(h), self.wide(h)], dim=1))

    return ResNet


def _hash(name: str) -> str:
    """The cache key: the architecture's name, its epochs, the training split and the code that
    builds and trains it."""
    code = "".join(inspect.getsource(f) for f in (build, _resnet_class, trained_onnx))
    return hashlib.sha256(f"{name} {EPOCHS[name]} {TRAIN_IMAGES}\n{code}".encode()).hexdigest()[:12]


def fashion_mnist_splits():
    """-> {"train": (x, y), "validation": (x, y), "test": (x, y)}: uint8 (N, 28, 28, 1) images."""
    import sys
    sys.path.insert(0, ROOT)
    from snn_agent.data import datasets

    train, test = datasets.load("fashion-mnist", "train"), datasets.load("fashion-mnist", "test")
    return {"train": (train.images[:TRAIN_IMAGES], train.labels[:TRAIN_IMAGES]),
            "validation": (train.images[TRAIN_IMAGES:], train.labels[TRAIN_IMAGES:]),
            "test": (test.images, test.labels)}


def trained_onnx(name: str, log=print) -> str:
    """The ONNX file of the trained `name`, from the cache or trained now (minutes)."""
    path = os.path.join(CACHE_DIR, f"{name}-{_hash(name)}.onnx")
    if os.path.isfile(path):
        return path
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    x, y = fashion_mnist_splits()["train"]
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)  # the ONNX metadata's default scale
    yt = torch.from_numpy(y.astype(np.int64))
    model = build(name)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    for epoch in range(EPOCHS[name]):
        model.train()
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 128):
            batch = order[i:i + 128]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            loss.backward()
            optimizer.step()
        log(f"{name}: epoch {epoch + 1}/{EPOCHS[name]}, loss {loss.item():.3f}, {time.perf_counter() - start:.0f} s")
    os.makedirs(CACHE_DIR, exist_ok=True)
    from snn_agent.conversion.torch_import import torch_to_onnx

    partial = path + ".partial"  # a run killed mid-write leaves no half file under the cached name
    torch_to_onnx(model, xt[:1], partial)
    os.replace(partial, path)
    return path


if __name__ == "__main__":
    import sys
    for arch in sys.argv[1:] or ARCHITECTURES:
        print(trained_onnx(arch))
