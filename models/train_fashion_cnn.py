#!/usr/bin/env python3
"""Train the bundled Loihi-friendly CNN on Fashion-MNIST and export it as ONNX with metadata.

    .venv/bin/python models/train_fashion_cnn.py --validation 0 [--epochs 20] [--out models/fashion_cnn.onnx]

The same network trained for one T (TopSpark trains at the reduced T too), here T = 1: fine-tuned
from the bundled model, distilled from it, every batch quantized to one level (~6 min on two cores):

    .venv/bin/python models/train_fashion_cnn.py --validation 0 --levels 1 --for-levels-only \
        --rate-penalty 0.1 --finetune models/fashion_cnn.onnx --epochs 20 --out models/fashion_cnn_t1.onnx

Choices (which variant, which penalty: bench/t1_variants.py) are made on a validation split: by
default the last 5,000 training images are held out, the run reports their accuracy and never looks
at the test set. `--validation 0` trains on all 60,000 (how the bundled models were made, once the
choice was made) and evaluates the test set once, at the end.

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


VALIDATION_IMAGES = 5000  # the last ones of the training set (Fashion-MNIST's order is shuffled)
MIN_ACCURACY = 0.90  # the bundled model, with Clip activations
MIN_ACCURACY_FOR_LEVELS = 0.88  # a network for T = 1 (binary activations), quantized
FINETUNE_MAX_LR = 2e-3
# Distillation (Hinton et al. 2015): the student also matches the teacher's softened scores.
DISTILL_WEIGHT, DISTILL_TEMPERATURE = 0.7, 4.0


def augmented(x):
    """Each image shifted by up to 3 pixels, maybe mirrored, its contrast scaled by 0.6-1.0: a
    view for the contrastive loss (per image, unlike the batch's shared shift)."""
    n = len(x)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = (torch.rand(n, 2) * 2 - 1) * 3 / 14  # grid units: 14 pixels each way
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    view = nn.functional.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    return view * (0.6 + 0.4 * torch.rand(n, 1, 1, 1))


def contrastive_loss(a, b, temperature: float = 0.2):
    """NT-Xent (SimCLR, Chen et al. 2020): each image's two views' projections are each other's match
    among the batch's 2n."""
    z = nn.functional.normalize(torch.cat([a, b]), dim=1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))
    n = len(a)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return nn.functional.cross_entropy(similarity, target)


def quarter_turned(x):
    """Each image turned by a random number of quarter turns, and that number: the self-supervised
    task of the rotation loss (Gidaris et al. 2018), which keeps shape and orientation in the hidden
    layer beyond what the trained classes need."""
    turns = torch.randint(0, 4, (len(x),))
    turned = torch.empty_like(x)
    for k in range(4):
        turned[turns == k] = torch.rot90(x[turns == k], k, dims=(2, 3))
    return turned, turns


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
    ap.add_argument("--reconstruction", type=float, default=0.0, metavar="WEIGHT",
                    help="weight of an auxiliary loss while training only: a linear decoder rebuilds the image from "
                         "the last hidden layer (mean squared error per pixel), so that the hidden layer keeps what "
                         "the image shows beyond the trained classes (features a readout can learn new classes "
                         "from: bench/learning.py). The decoder is not exported: the network keeps its form")
    ap.add_argument("--dropout", type=float, default=0.0, metavar="P",
                    help="dropout on the last hidden layer while training only (the score layer and the "
                         "reconstruction decoder see it; the exported network has none): spreads what the classes "
                         "need over more hidden neurons (bench/learning.py)")
    ap.add_argument("--label-smoothing", type=float, default=0.0, metavar="EPS",
                    help="label smoothing of the cross-entropy loss")
    ap.add_argument("--contrastive", type=float, default=0.0, metavar="WEIGHT",
                    help="weight of an auxiliary contrastive loss while training only (SimCLR's NT-Xent over a "
                         "projection of the last hidden layer, two augmented views of each image; not exported): "
                         "features that tell images apart, not only the trained classes (bench/learning.py)")
    ap.add_argument("--rotation", type=float, default=0.0, metavar="WEIGHT",
                    help="weight of a self-supervised loss: the hidden layer also predicts by how many quarter "
                         "turns each image was rotated (Gidaris et al. 2018/2019)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch threads (default: every core; 1 on a shared machine wastes less time in contention)")
    ap.add_argument("--validation", type=int, default=VALIDATION_IMAGES, metavar="N",
                    help="the last N training images held out as the validation split, the accuracy to choose "
                         "by; the test set is then not evaluated. 0: train on every image and evaluate the "
                         "test set once, at the end (the bundled models)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_cnn.onnx"))
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    train, test = datasets.load("fashion-mnist", "train"), datasets.load("fashion-mnist", "test")
    if args.classes:
        train, test = only_classes(train, args.classes), only_classes(test, args.classes)
    to_tensor = lambda d: torch.from_numpy(d.images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)  # noqa: E731
    if not 0 <= args.validation < len(train):
        sys.exit(f"--validation {args.validation}: between 0 and {len(train) - 1} training images")
    xall, yall = to_tensor(train), torch.from_numpy(train.labels)
    kept = len(train) - args.validation
    xtr, ytr = xall[:kept], yall[:kept]
    # measured while training: the validation split, or (no split: nothing is chosen by it) the test set
    xva, yva, measured_on = ((xall[kept:], yall[kept:], "validation") if args.validation
                             else (to_tensor(test), torch.from_numpy(test.labels), "test"))
    print(f"{kept} training images, " + (f"the last {args.validation} held out for validation; the test set is not "
                                         f"evaluated" if args.validation else "no validation split: the test set "
                                                                              "is evaluated once, at the end"))

    model = build(args.levels, len(train.class_names))
    teacher = None
    if args.finetune:
        load_onnx_weights(model, args.finetune)
        teacher = load_onnx_weights(build(args.levels), args.finetune)
        if args.validation:
            print(f"fine-tuning {args.finetune} (validation accuracy with Clip: {evaluate(teacher, xva, yva, False):.4f}, "
                  f"quantized to {args.levels} levels: {evaluate(model, xva, yva, True):.4f})", flush=True)
        for m in teacher.modules():
            if isinstance(m, QCFS):
                m.quantize = False
    decoder = nn.Linear(model[-1].in_features, 28 * 28) if args.reconstruction else None
    projection = nn.Sequential(nn.Linear(model[-1].in_features, 128), nn.ReLU(), nn.Linear(128, 64)) \
        if args.contrastive else None
    rotation_head = nn.Linear(model[-1].in_features, 4) if args.rotation else None
    auxiliary_heads = [head for head in (decoder, projection, rotation_head) if head is not None]
    trained = list(model.parameters()) + [p for head in auxiliary_heads for p in head.parameters()]
    opt = torch.optim.AdamW(trained, lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * ((len(xtr) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=FINETUNE_MAX_LR if teacher else 3e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
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
            hidden = nn.functional.dropout(model[:-1](xb), args.dropout) if args.dropout else model[:-1](xb)
            scores = model[-1](hidden)
            loss = loss_fn(scores, ytr[idx])
            if rotation_head is not None:
                turned, turns = quarter_turned(xb)
                loss = loss + args.rotation * nn.functional.cross_entropy(rotation_head(model[:-1](turned)), turns)
            if decoder is not None:
                loss = loss + args.reconstruction * nn.functional.mse_loss(decoder(hidden), xb.flatten(1))
            if projection is not None:
                views = model[:-1](torch.cat([augmented(xb), augmented(xb)]))
                loss = loss + args.contrastive * contrastive_loss(*projection(views).chunk(2))
            if teacher is not None:
                with torch.no_grad():
                    taught = teacher(xb)
                loss = (1 - DISTILL_WEIGHT) * loss + DISTILL_WEIGHT * distillation_loss(scores, taught)
            if args.rate_penalty and quantize:
                loss = loss + args.rate_penalty * sum(m.mean_rate for m in model.modules() if isinstance(m, QCFS))
            loss.backward()
            opt.step()
            sched.step()
        rates = "/".join(f"{float(m.mean_rate):.3f}" for m in model.modules() if isinstance(m, QCFS))
        progress = (f"  validation acc: clip {evaluate(model, xva, yva, False):.4f} quantized "
                    f"{evaluate(model, xva, yva, True):.4f}" if args.validation else "")
        print(f"epoch {epoch + 1}/{args.epochs}  loss {loss.item():.3f}{progress}  (firing rates per layer and "
              f"step {rates})  {time.time() - t0:.0f}s", flush=True)

    # what the network is for: every T (the Clip DNN is their limit), or only T = levels
    meant_quantized = args.for_levels_only
    accuracy = evaluate(model, xva, yva, meant_quantized)
    floor = MIN_ACCURACY_FOR_LEVELS if args.for_levels_only else MIN_ACCURACY
    print(f"{measured_on} accuracy of {'the SNN at T = %d (quantized)' % args.levels if meant_quantized else 'the exported DNN (Clip)'}: "
          f"{accuracy:.4f}" + (" (choose by this)" if args.validation else " (report this once)"))
    # the floors are the bundled 10-class networks'; candidates of a choice are judged by their comparison
    if accuracy < floor and not args.classes and not args.validation:
        sys.exit(f"{measured_on} accuracy {accuracy:.4f} is below the {floor} this network must reach")
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
        f"snn_agent.{measured_on}_accuracy": f"{accuracy:.4f}" + (
            f" (the last {args.validation} training images, held out)" if args.validation else ""),
        "snn_agent.trained_with": f"QCFS levels={args.levels}, epochs={args.epochs}, seed={args.seed}"
                                  + (f", every batch quantized (for T={args.levels} only)" if args.for_levels_only else "")
                                  + (f", fine-tuned from and distilled from {os.path.basename(args.finetune)}"
                                     if args.finetune else "")
                                  + (f", firing-rate penalty {args.rate_penalty:g}" if args.rate_penalty else "")
                                  + (f", reconstruction loss {args.reconstruction:g}" if args.reconstruction else "")
                                  + (f", contrastive loss {args.contrastive:g}" if args.contrastive else "")
                                  + (f", dropout {args.dropout:g}" if args.dropout else "")
                                  + (f", rotation loss {args.rotation:g}" if args.rotation else "")
                                  + (f", label smoothing {args.label_smoothing:g}" if args.label_smoothing else ""),
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
