#!/usr/bin/env python3
"""Train the bundled Loihi-friendly CNN on Fashion-MNIST and export it as ONNX with metadata.

    .venv/bin/python models/train_fashion_cnn.py [--epochs 20] [--out models/fashion_cnn.onnx]

The same network trained for one T (TopSpark trains at the reduced T too), here T = 1: fine-tuned
from the bundled model, distilled from it, every batch quantized to one level (~6 min on two cores):

    .venv/bin/python models/train_fashion_cnn.py --levels 1 --for-levels-only --rate-penalty 0.1 \
        --finetune models/fashion_cnn.onnx --epochs 20 --out models/fashion_cnn_t1.onnx

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


VALIDATION_IMAGES = 5000  # carved from the training set; the test set is evaluated once, at the end
VALIDATION_SEED = 12345  # fixed apart from --seed, so every run holds out the same images
MIN_ACCURACY = 0.90  # the bundled model, with Clip activations
MIN_ACCURACY_FOR_LEVELS = 0.88  # a network for T = 1 (binary activations), quantized
FINETUNE_MAX_LR = 2e-3
# Distillation (Hinton et al. 2015): the student also matches the teacher's softened scores.
DISTILL_WEIGHT, DISTILL_TEMPERATURE = 0.7, 4.0


def distillation_loss(scores, teacher_scores):
    t = DISTILL_TEMPERATURE
    return t * t * nn.functional.kl_div(nn.functional.log_softmax(scores / t, 1),
                                        nn.functional.softmax(teacher_scores / t, 1), reduction="batchmean")


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
        rate = y + (q - y).detach()  # the SNN's spikes per neuron and step at T = levels
        self.mean_rate = rate.mean()
        return rate * self.ceiling


def build(levels: int, classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2, padding=2), QCFS(levels),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), QCFS(levels),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128), QCFS(levels),
        nn.Linear(128, classes),
    )


def only_classes(data: datasets.Dataset, classes: list) -> datasets.Dataset:
    """The images of these classes, labelled by their position in `classes`."""
    keep = np.isin(data.labels, classes)
    position = {c: i for i, c in enumerate(classes)}
    return datasets.Dataset(data.images[keep], np.array([position[c] for c in data.labels[keep]], np.int64),
                            [data.class_names[c] for c in classes], data.name)


def load_onnx_weights(model: nn.Sequential, path: str) -> nn.Sequential:
    """Weights and ceilings of a model this script exported (its initializers carry the torch
    names; each Clip's maximum is a QCFS ceiling, in order)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(path)
    initializers = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    constants = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in proto.graph.node
                 if n.op_type == "Constant"}
    ceilings = [float(constants[n.input[2]]) for n in proto.graph.node if n.op_type == "Clip"]
    activations = [m for m in model.modules() if isinstance(m, QCFS)]
    if len(ceilings) != len(activations) or not set(initializers) <= set(model.state_dict()):
        sys.exit(f"{path}: not a network of this script's architecture")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in initializers:
                parameter.copy_(torch.from_numpy(initializers[name].copy()))
        for activation, ceiling in zip(activations, ceilings):
            activation.ceiling.fill_(ceiling)
    return model


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
    ap.add_argument("--for-levels-only", action="store_true",
                    help="every batch quantized (the SNN at T = levels only), instead of half of them (every T)")
    ap.add_argument("--finetune", metavar="ONNX",
                    help="start from this model's weights (one this script exported) and distil from it")
    ap.add_argument("--rate-penalty", type=float, default=0.0,
                    help="weight of the spiking layers' mean firing rates in the loss (quantized batches): "
                         "fewer spikes, less work per frame (the dense layer adds one weight row per input spike)")
    ap.add_argument("--classes", type=int, nargs="+", metavar="INDEX",
                    help="train on these Fashion-MNIST classes only (indices; the outputs follow this order): "
                         "bench/learning.py holds two classes out to learn them online")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch threads (default: every core; 1 on a shared machine wastes less time in contention)")
    ap.add_argument("--val", type=int, default=VALIDATION_IMAGES,
                    help="training images held out as the validation split (the accuracy to choose by)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_cnn.onnx"))
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    train, test = datasets.load("fashion-mnist", "train"), datasets.load("fashion-mnist", "test")
    if args.classes:
        train, test = only_classes(train, args.classes), only_classes(test, args.classes)
    to_tensor = lambda d: torch.from_numpy(d.images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)  # noqa: E731
    held_out = np.random.RandomState(VALIDATION_SEED).permutation(len(train))
    val_idx, train_idx = torch.from_numpy(held_out[:args.val]), torch.from_numpy(held_out[args.val:])
    xall, yall = to_tensor(train), torch.from_numpy(train.labels)
    xtr, ytr, xva, yva = xall[train_idx], yall[train_idx], xall[val_idx], yall[val_idx]
    xte, yte = to_tensor(test), torch.from_numpy(test.labels)
    print(f"{len(xtr)} training images, {len(xva)} held out for validation; the test set is evaluated once, at the end")

    model = build(args.levels, len(train.class_names))
    teacher = None
    if args.finetune:
        load_onnx_weights(model, args.finetune)
        teacher = load_onnx_weights(build(args.levels), args.finetune)
        print(f"fine-tuning {args.finetune} (validation accuracy with Clip: {evaluate(teacher, xva, yva, False):.4f}, "
              f"quantized to {args.levels} levels: {evaluate(model, xva, yva, True):.4f})", flush=True)
        for m in teacher.modules():
            if isinstance(m, QCFS):
                m.quantize = False
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * ((len(xtr) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=FINETUNE_MAX_LR if teacher else 3e-3, total_steps=steps)
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
            quantize = args.for_levels_only or bool(np.random.rand() < 0.5)
            for m in model.modules():
                if isinstance(m, QCFS):
                    m.quantize = quantize
            opt.zero_grad()
            scores = model(xb)
            loss = loss_fn(scores, ytr[idx])
            if teacher is not None:
                with torch.no_grad():
                    taught = teacher(xb)
                loss = (1 - DISTILL_WEIGHT) * loss + DISTILL_WEIGHT * distillation_loss(scores, taught)
            if args.rate_penalty and quantize:
                loss = loss + args.rate_penalty * sum(m.mean_rate for m in model.modules() if isinstance(m, QCFS))
            loss.backward()
            opt.step()
            sched.step()
        acc_q = evaluate(model, xva, yva, True)
        rates = "/".join(f"{float(m.mean_rate):.3f}" for m in model.modules() if isinstance(m, QCFS))
        acc = evaluate(model, xva, yva, False)
        print(f"epoch {epoch + 1}/{args.epochs}  loss {loss.item():.3f}  validation acc: clip {acc:.4f} "
              f"quantized {acc_q:.4f} (firing rates per layer and step {rates})  "
              f"{time.time() - t0:.0f}s", flush=True)

    # what the network is for: every T (the Clip DNN is their limit), or only T = levels
    meant_quantized = args.for_levels_only
    val_acc = evaluate(model, xva, yva, meant_quantized)
    test_acc = evaluate(model, xte, yte, meant_quantized)
    floor = MIN_ACCURACY_FOR_LEVELS if args.for_levels_only else MIN_ACCURACY
    print(f"accuracy of {'the SNN at T = %d (quantized)' % args.levels if meant_quantized else 'the exported DNN (Clip)'}: "
          f"validation {val_acc:.4f} (choose by this), test {test_acc:.4f} (report this once)")
    if val_acc < floor and not args.classes:  # the floors are the bundled 10-class network's
        sys.exit(f"validation accuracy {val_acc:.4f} is below the {floor} this network must reach")
    for m in model.modules():
        if isinstance(m, QCFS):
            m.export_as_clip = True

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
        "snn_agent.class_names": json.dumps(train.class_names),
        "snn_agent.test_accuracy": f"{test_acc:.4f}",
        "snn_agent.validation_accuracy": f"{val_acc:.4f} ({args.val} training images held out)",
        "snn_agent.trained_with": f"QCFS levels={args.levels}, epochs={args.epochs}, seed={args.seed}"
                                  + (f", every batch quantized (for T={args.levels} only)" if args.for_levels_only else "")
                                  + (f", fine-tuned from and distilled from {os.path.basename(args.finetune)}"
                                     if args.finetune else "")
                                  + (f", firing-rate penalty {args.rate_penalty:g}" if args.rate_penalty else ""),
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
