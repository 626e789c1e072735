"""Crash-safe checkpoints of what a learner has learned.

One file per learner in the checkpoint directory (the readout's `readout.npz`; an STDP network's
`stdp.npz`, save_arrays), replaced atomically: written to a temporary file
in the same directory, flushed and fsync'ed, renamed over the old one, then the directory fsync'ed
so that the rename itself survives a power cut. A process killed at any moment leaves the old
checkpoint or the new one, never a mix (a leftover temporary file is removed at the next start).

A checkpoint names the model it belongs to (a fingerprint of the converted network's files): one
made for another model is refused with a clear error. One that cannot be read (truncated, not a
checkpoint, a checksum of the learned state that does not match) is corrupt: it is moved aside, with a suffix,
and reported; it is never loaded. Both errors leave the learner on the model's own weights.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import SNNModel

CHECKPOINT_FILE = "readout.npz"
FORMAT_VERSION = 1  # save_arrays' files
# the readout's: 3, with the labelled frames the graded rule rehearses; 2, the checksum covers the mean
# input too; 1, the weights only
READOUT_FORMAT_VERSION = 3


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored; `set_aside` is where it was moved (None: left in place)."""

    def __init__(self, message: str, set_aside: Optional[str] = None):
        super().__init__(message)
        self.set_aside = set_aside


@dataclass
class Checkpoint:
    state: dict  # PlasticReadout.state()
    updates: int  # learning updates made when it was written
    model: str  # the fingerprint of the model it belongs to
    saved_at: float  # time.time()


def model_fingerprint(model: SNNModel) -> str:
    """What identifies a converted network: every layer's name, shapes, weights and biases."""
    digest = hashlib.sha256()
    for layer in model.layers:
        digest.update(f"{layer.name}|{layer.kind}|{tuple(layer.input_shape)}|{tuple(layer.output_shape)}".encode())
        digest.update(np.ascontiguousarray(layer.weight).tobytes())
        digest.update(np.ascontiguousarray(layer.bias).tobytes())
    return digest.hexdigest()[:32]


def path_in(directory: str) -> str:
    return os.path.join(directory, CHECKPOINT_FILE)


def save(directory: str, checkpoint: Checkpoint) -> str:
    """Write atomically (see the module doc); returns the checkpoint's path. Raises OSError."""
    state = checkpoint.state
    buffer = io.BytesIO()
    np.savez(buffer, format_version=READOUT_FORMAT_VERSION, weights=state["weights"], scale=state["scale"],
             active=state["active"], class_names=np.array(state["class_names"], dtype=str),
             input_mean=state["input_mean"], observed=state["observed"], labelled_counts=state["labelled_counts"],
             labelled_labels=state["labelled_labels"], updates=checkpoint.updates, model=checkpoint.model,
             saved_at=checkpoint.saved_at, sha256_of_state=_state_checksum(state))
    return write_atomically(directory, CHECKPOINT_FILE, buffer.getvalue())


def save_arrays(directory: str, file: str, checkpoint: Checkpoint) -> str:
    """Another learner's checkpoint (a state of named arrays) in its own file, written as save()
    writes (atomically, with the model's fingerprint and a checksum over every array)."""
    arrays = {f"state_{name}": np.asarray(value) for name, value in checkpoint.state.items()}
    buffer = io.BytesIO()
    np.savez(buffer, format_version=FORMAT_VERSION, updates=checkpoint.updates, model=checkpoint.model,
             saved_at=checkpoint.saved_at, sha256_of_state=checksum(*arrays.values()), **arrays)
    return write_atomically(directory, file, buffer.getvalue())


def write_atomically(directory: str, file: str, payload: bytes) -> str:
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, file)
    handle, temporary = tempfile.mkstemp(prefix=_temporary_prefix(file), dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)
    return target


def _temporary_prefix(file: str) -> str:
    return f".{os.path.splitext(file)[0]}-"  # readout.npz: .readout-XXXX


def load(directory: str, model: str) -> Optional[Checkpoint]:
    """The checkpoint in `directory` if there is one (None otherwise). Removes temporary files a
    killed writer left. Raises CheckpointError for a corrupt one (moved aside) or one of another
    model (moved aside too, so that this model's checkpoints do not overwrite it)."""
    return _load(directory, CHECKPOINT_FILE, model, _read)


def load_arrays(directory: str, file: str, model: str) -> Optional[Checkpoint]:
    """What save_arrays wrote (state: the named arrays), as load() reads and checks it."""
    return _load(directory, file, model, _read_arrays)


def _load(directory: str, file: str, model: str, read) -> Optional[Checkpoint]:
    _remove_leftovers(directory, file)
    path = os.path.join(directory, file)
    if not os.path.isfile(path):
        return None
    try:
        checkpoint = read(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        aside = _set_aside(path, "corrupt")
        raise CheckpointError(f"corrupt learning checkpoint {path} ({exc}); moved to {aside}, not loaded", aside) from exc
    if checkpoint.model != model:
        aside = _set_aside(path, "other-model")
        raise CheckpointError(f"learning checkpoint {path} belongs to another model (fingerprint {checkpoint.model}, "
                              f"this model's {model}); moved to {aside}, not loaded", aside)
    return checkpoint


def _read(path: str) -> Checkpoint:
    with np.load(path, allow_pickle=False) as data:
        version = int(data["format_version"])
        if version not in (1, 2, READOUT_FORMAT_VERSION):
            raise ValueError(f"format version {version}, this version reads 1 to {READOUT_FORMAT_VERSION}")
        weights = data["weights"]
        state = {"weights": weights, "scale": float(data["scale"]), "active": data["active"].astype(bool),
                 "class_names": [str(name) for name in data["class_names"]]}
        if version == 1:  # its checksum covers the weights alone: a mean input it holds is not trusted
            if str(data["weights_sha256"]) != checksum(weights):
                raise ValueError("the weights do not match their checksum")
        else:
            state.update(input_mean=data["input_mean"], observed=int(data["observed"]))
            if version == 2:  # before the labelled frames were kept: the graded rule starts their list afresh
                state.update(labelled_counts=np.zeros((0, weights.shape[1])), labelled_labels=np.zeros(0, np.int64))
            else:
                state.update(labelled_counts=data["labelled_counts"], labelled_labels=data["labelled_labels"])
            if str(data["sha256_of_state"]) != _state_checksum(state, version):
                raise ValueError("the learned state (weights, mean input, labelled frames) does not match its checksum")
        return Checkpoint(state, int(data["updates"]), str(data["model"]), float(data["saved_at"]))


def _read_arrays(path: str) -> Checkpoint:
    with np.load(path, allow_pickle=False) as data:
        if int(data["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"format version {int(data['format_version'])}, this version reads {FORMAT_VERSION}")
        arrays = {name: data[name] for name in data.files if name.startswith("state_")}
        if str(data["sha256_of_state"]) != checksum(*arrays.values()):
            raise ValueError("the learned state does not match its checksum")
        state = {name[len("state_"):]: value for name, value in arrays.items()}
        return Checkpoint(state, int(data["updates"]), str(data["model"]), float(data["saved_at"]))


def _state_checksum(state: dict, version: int = READOUT_FORMAT_VERSION) -> str:
    """The readout's learned state: its weights, mean input and (format 3) the labelled frames it keeps."""
    arrays = [state["weights"], state["input_mean"], np.int64(state["observed"])]
    if version >= 3:
        arrays += [np.asarray(state["labelled_counts"], np.float64), np.asarray(state["labelled_labels"], np.int64)]
    return checksum(*arrays)


def checksum(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _set_aside(path: str, why: str) -> str:
    aside = f"{path}.{why}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    os.replace(path, aside)
    _fsync_directory(os.path.dirname(path) or ".")
    return aside


def _remove_leftovers(directory: str, file: str) -> None:
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if name.startswith(_temporary_prefix(file)):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass  # another process's file, or gone already: not ours to insist on


def _fsync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
