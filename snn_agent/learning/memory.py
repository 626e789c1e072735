"""The old-class memory the graded rule rehearses (PlasticReadout.set_memory), stored with the model.

`learning_memory.npz` in the model directory, written by `snn-agent memory MODEL_DIR --dataset D`:
MEMORY_PER_CLASS images of each of the model's classes from its own training set, as uint8 images
with their class indices in the model's numbering, the model's class names they were matched by,
where they came from, and a checksum. Images, not readout inputs: the node's T changes with the
energy governor, so the learner computes the memory's inputs at a frame's T through the backend's
own hidden layer (agent_core.py; once per T).
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..data.datasets import Dataset
from .checkpoint import checksum, write_atomically

MEMORY_FILE = "learning_memory.npz"
# frames per class: bench/learning.py's choice for the graded rule on the easy pair's validation
# stream (50, 100 and 250 tried: docs/learning.md)
MEMORY_PER_CLASS = 100
FORMAT_VERSION = 1


class MemoryFileError(ValueError):
    """A memory that cannot be written or used, with what to do about it."""


@dataclass(frozen=True)
class OldClassMemory:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64: the model's class indices
    class_names: list  # the model's class names, by index, when the memory was written
    source: str  # the dataset and split the images came from
    indices: np.ndarray  # (N,) their positions there

    def dataset(self) -> Dataset:
        """The images as a dataset, to make the network's input of (data.prepare.model_input)."""
        return Dataset(self.images, self.labels, list(self.class_names), "learning memory")


def path_in(model_dir: str) -> str:
    return os.path.join(model_dir, MEMORY_FILE)


def from_dataset(dataset: Dataset, split: str, class_names: list, per_class: int = MEMORY_PER_CLASS) -> OldClassMemory:
    """The first per_class images of each of the model's classes in `dataset` (its training split),
    matched by class name: a model trained on some of a dataset's classes numbers them its own way."""
    if dataset.images.dtype != np.uint8:
        raise MemoryFileError(f"{dataset.name}: the memory stores images (uint8); this dataset holds "
                              f"{dataset.images.dtype} arrays, already preprocessed")
    if per_class < 1:
        raise MemoryFileError(f"per class {per_class}: at least one image of each class")
    missing = [name for name in class_names if name not in dataset.class_names]
    if missing:
        raise MemoryFileError(f"the model's classes {missing} are not classes of {dataset.name} "
                              f"({', '.join(map(str, dataset.class_names))}): the memory holds the model's own classes")
    chosen = [np.flatnonzero(dataset.labels == dataset.class_names.index(name))[:per_class] for name in class_names]
    empty = [name for name, found in zip(class_names, chosen) if not len(found)]
    if empty:
        raise MemoryFileError(f"{dataset.name} has no images of the model's classes {empty}")
    indices = np.concatenate(chosen)
    labels = np.concatenate([np.full(len(found), index, np.int64) for index, found in enumerate(chosen)])
    return OldClassMemory(dataset.images[indices], labels, list(class_names),
                          f"{dataset.name} ({split}): the first {per_class} images of each class", indices)


def save(model_dir: str, memory: OldClassMemory) -> str:
    """Write atomically (as checkpoints are written); returns the file's path."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, format_version=FORMAT_VERSION, images=memory.images, labels=memory.labels,
                        class_names=np.array(memory.class_names, dtype=str), source=memory.source,
                        indices=memory.indices, sha256=checksum(memory.images, memory.labels))
    return write_atomically(model_dir, MEMORY_FILE, buffer.getvalue())


def load(model_dir: str, class_names: list) -> OldClassMemory:
    """The model's memory; raises MemoryFileError, saying how to write it, where it is missing,
    unreadable or made for other classes."""
    path = path_in(model_dir)
    write_it = f"write it with `snn-agent memory {model_dir} --dataset DATASET` (the model's training data)"
    if not os.path.isfile(path):
        raise MemoryFileError(f"no old-class memory {path}: the graded rule rehearses frames of the model's "
                              f"training set; {write_it}")
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format_version"]) != FORMAT_VERSION:
                raise ValueError(f"format version {int(data['format_version'])}, this version reads {FORMAT_VERSION}")
            memory = OldClassMemory(data["images"], data["labels"].astype(np.int64),
                                    [str(name) for name in data["class_names"]], str(data["source"]), data["indices"])
            if str(data["sha256"]) != checksum(memory.images, memory.labels):
                raise ValueError("the images and labels do not match their checksum")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise MemoryFileError(f"corrupt old-class memory {path} ({exc}); {write_it}") from exc
    if memory.class_names != list(class_names):
        raise MemoryFileError(f"old-class memory {path} was written for the classes {memory.class_names}, the model "
                              f"has {list(class_names)}; {write_it}")
    if memory.images.dtype != np.uint8 or memory.images.ndim != 4 or len(memory.images) != len(memory.labels) \
            or not np.all((0 <= memory.labels) & (memory.labels < len(class_names))):
        raise MemoryFileError(f"corrupt old-class memory {path}: images {memory.images.dtype} {memory.images.shape} "
                              f"for {len(memory.labels)} labels of {len(class_names)} classes; {write_it}")
    return memory
