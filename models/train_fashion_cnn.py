#!/usr/bin/env python3
"""Train the bundled Loihi-friendly CNN on Fashion-MNIST and export it as ONNX with metadata.

    .venv/bin/python models/train_fashion_cnn.py [--epochs 20] [--out models/fashion_cnn.onnx]

Architecture: conv 16 5x5 stride 2, conv 32 3x3 stride 2, dense 128, dense 10. No pooling (netx
cannot load it), no max (rate-coded spikes cannot compute it), inputs in [0, 1].

Activations are trained as QCFS (quantization-clip-floor-shift, Bu et al., ICLR 2022): a ReLU
clipped at a learned ceiling and quantized to `levels` steps. A converted SNN with threshold =
ceiling and initial potential = half a threshold reproduces this activation exactly at T = levels,
which is what keeps accuracy at few timesteps. The ONNX file holds a plain Clip(0, ceiling):
any converter can read it, and our converter takes the ceiling as the layer's threshold.

torch is a tool dependency here only (lava-dl brings it); the runtime never imports it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from snn_agent.data import datasets  # noqa: E402


class QCFS(nn.Module):
    """clip(floor(x * L / ceiling + 1/2) / L * ceiling, 0, ceiling), straight-through gradient."""

    def __init__(self, levels: int, ceiling: float = 4.0):
        super().__init__()
        self.levels = levels
        self.ceiling = nn.Parameter(torch.tensor(float(ceiling)))
        self.export_as_clip = False
        self.quantize = True

    def forward(self, x):
        if self.export_as_clip or not self.quantize:
            return torch.clamp(x, min=0.0, max=float(self.ceiling))
        y = torch.clamp(x / self.ceiling, 0, 1)
        q = torch.floor(y * self.levels + 0.5) / self.levels
        return (y + (q - y).detach()) * self.ceiling


def build(levels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2, padding=2), QCFS(levels),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), QCFS(levels),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128), QCFS(levels),
        nn.Linear(128, 10),
    )


def evaluate(model, x, y, quantize: bool) -> float:
    for m in model.modules():
        if isinstance(m, QCFS):
            m.quantize = quantize
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((pred == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--levels", type=int, default=8, help="QCFS quantization levels (the T it is tuned for)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_cnn.onnx"))
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    train, test = datasets.load("fashion-mnist", "train"), datasets.load("fashion-mnist", "test")
    to_tensor = lambda d: torch.from_numpy(d.images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)  # noqa: E731
    xtr, ytr = to_tensor(train), torch.from_numpy(train.labels)
    xte, yte = to_tensor(test), torch.from_numpy(test.labels)

    model = build(args.levels)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * ((len(xtr) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.0)
    for epoch in range(args.epochs):
        model.train()
        t0 = time.time()
        order = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            idx = order[i:i + 128]
            xb = xtr[idx]
            # random shifts of up to 2 pixels: cheap augmentation that helps a net this small
            dx, dy = np.random.randint(-2, 3, size=2)
            xb = torch.roll(xb, shifts=(int(dy), int(dx)), dims=(2, 3))
            # Half the batches see the quantized activation (what the SNN computes at T = levels),
            # half the plain clip (the exported DNN, and the SNN's limit as T grows): the weights
            # then serve every T.
            quantize = bool(np.random.rand() < 0.5)
            for m in model.modules():
                if isinstance(m, QCFS):
                    m.quantize = quantize
            opt.zero_grad()
            loss = loss_fn(model(xb), ytr[idx])
            loss.backward()
            opt.step()
            sched.step()
        acc_q, acc = evaluate(model, xte, yte, True), evaluate(model, xte, yte, False)
        print(f"epoch {epoch + 1}/{args.epochs}  loss {loss.item():.3f}  test acc: clip {acc:.4f} "
              f"quantized {acc_q:.4f}  "
              f"{time.time() - t0:.0f}s", flush=True)

    for m in model.modules():
        if isinstance(m, QCFS):
            m.export_as_clip = True
    clip_acc = evaluate(model, xte, yte, False)
    print(f"test accuracy with Clip activations (the exported DNN): {clip_acc:.4f}")
    if clip_acc < 0.90:
        sys.exit(f"accuracy {clip_acc:.4f} is below the 0.90 the bundled model must reach")

    model.eval()
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), args.out, input_names=["image"],
                      output_names=["scores"], opset_version=13,
                      dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}})
    import onnx
    proto = onnx.load(args.out)
    metadata = {
        "snn_agent.input_shape": json.dumps([1, 28, 28]),
        "snn_agent.scale": json.dumps(1.0 / 255.0),
        "snn_agent.mean": json.dumps([0.0]),
        "snn_agent.std": json.dumps([1.0]),
        "snn_agent.channel_order": "gray",
        "snn_agent.class_names": json.dumps(datasets.FASHION_MNIST_CLASSES),
        "snn_agent.test_accuracy": f"{clip_acc:.4f}",
        "snn_agent.trained_with": f"QCFS levels={args.levels}, epochs={args.epochs}, seed={args.seed}",
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
