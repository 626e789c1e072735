"""Datasets as (images uint8 (N, H, W, C), labels int64 (N,), class names).

A DATASET argument is a known name (`fashion-mnist`, `digits`), an `.npz` with arrays `x` and `y`,
or a folder with one sub-folder of images per class. Nothing is downloaded: Fashion-MNIST comes
from Debian's `dataset-fashion-mnist` package, digits from scikit-learn.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numpy as np

FASHION_MNIST_DIR = os.environ.get("SNN_AGENT_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# the data sets load() knows by name, each with a training and a test split (a file or folder has none)
NAMED_DATASETS = ("fashion-mnist", "digits")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")


class DatasetError(ValueError):
    """A dataset name, file or folder that cannot be read, with what to do about it."""


@dataclass
class Dataset:
    images: np.ndarray  # (N, H, W, C) uint8, or float32 already preprocessed (npz files may hold either)
    labels: np.ndarray  # (N,) int64
    class_names: list
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int, offset: int = 0) -> "Dataset":
        sl = slice(offset, offset + n if n else None)
        return Dataset(self.images[sl], self.labels[sl], self.class_names, self.name)


def fashion_mnist_available() -> bool:
    return os.path.isfile(os.path.join(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz"))


def load(spec: str, split: str = "test") -> Dataset:
    """Load a dataset by name, .npz path or image folder (see module doc)."""
    if split not in ("train", "test"):
        raise DatasetError(f"split must be 'train' or 'test', got {split!r}")
    if spec == "fashion-mnist":
        return _fashion_mnist(split)
    if spec == "digits":
        return _digits(split)
    if spec.endswith(".npz"):
        return _npz(spec)
    if os.path.isdir(spec):
        return _folder(spec)
    raise DatasetError(f"unknown dataset {spec!r}: use 'fashion-mnist', 'digits', an .npz file "
                       f"with arrays x and y, or a folder with one sub-folder of images per class")


def training_set(spec: str) -> Dataset:
    """A known dataset's training split; a file or folder as it is (it has no splits)."""
    return load(spec, "train") if spec in NAMED_DATASETS else load(spec)


def default_dataset_name() -> str:
    """Fashion-MNIST where Debian's package is installed, else scikit-learn's digits."""
    return "fashion-mnist" if fashion_mnist_available() else "digits"


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fashion_mnist(split: str) -> Dataset:
    prefix = "train" if split == "train" else "t10k"
    images_path = os.path.join(FASHION_MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz")
    if not os.path.isfile(images_path):
        raise DatasetError(f"Fashion-MNIST not found at {FASHION_MNIST_DIR}: install Debian's "
                           f"package (apt-get install dataset-fashion-mnist) or use 'digits'")
    images = _read_idx(images_path)[..., None]
    labels = _read_idx(os.path.join(FASHION_MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz")).astype(np.int64)
    return Dataset(images, labels, list(FASHION_MNIST_CLASSES), "fashion-mnist")


def _digits(split: str) -> Dataset:
    """scikit-learn's 8x8 digits, scaled up to 28x28 uint8 so they fit the same models."""
    import cv2
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = (bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = np.stack([cv2.resize(im, (20, 20), interpolation=cv2.INTER_LINEAR) for im in small])
    images = np.pad(images, ((0, 0), (4, 4), (4, 4)))[..., None]
    labels = bunch.target.astype(np.int64)
    rng = np.random.default_rng(0)  # fixed split: 1/3 test
    order = rng.permutation(len(labels))
    cut = len(labels) // 3
    idx = order[:cut] if split == "test" else order[cut:]
    return Dataset(images[idx], labels[idx], [str(d) for d in range(10)], "digits")


def _npz(path: str) -> Dataset:
    if not os.path.isfile(path):
        raise DatasetError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
            names = [str(c) for c in npz["class_names"]] if "class_names" in npz else None
    except KeyError as exc:
        raise DatasetError(f"{path}: an .npz dataset needs arrays 'x' and 'y' (missing {exc})") from exc
    except (ValueError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from exc
    if len(x) != len(y):
        raise DatasetError(f"{path}: {len(x)} images but {len(y)} labels")
    if x.ndim == 3:  # (N, H, W) grey images
        x = x[..., None]
    y = y.astype(np.int64)
    return Dataset(x, y, names or [str(c) for c in range(int(y.max()) + 1)], os.path.basename(path))


def _folder(root: str) -> Dataset:
    import cv2

    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise DatasetError(f"{root}: expected one sub-folder of images per class, found none")
    images, labels = [], []
    for label, cls in enumerate(classes):
        for fname in sorted(os.listdir(os.path.join(root, cls))):
            if not fname.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = os.path.join(root, cls, fname)
            im = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if im is None:
                raise DatasetError(f"cannot read image {path}")
            if im.ndim == 2:
                im = im[..., None]
            elif im.shape[2] >= 3:
                im = cv2.cvtColor(im[..., :3], cv2.COLOR_BGR2RGB)
            images.append(im)
            labels.append(label)
    if not images:
        raise DatasetError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DatasetError(f"{root}: images differ in size {sorted(shapes)[:3]}...; resize them first")
    return Dataset(np.stack(images), np.asarray(labels, np.int64), classes, os.path.basename(root.rstrip("/")))
