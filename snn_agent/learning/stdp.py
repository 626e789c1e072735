"""An STDP network that learns without labels (Diehl & Cook 2015), compiled and event-driven.

Rate-coded (Poisson) input, excitatory LIF neurons with adaptive thresholds (homeostasis: each spike
raises a neuron's threshold by theta_plus), one inhibitory neuron per excitatory neuron inhibiting
all the others (winner-take-all), trace-based STDP on the input weights, normalized after each image
so each neuron's weights sum to weight_norm. After training, each neuron gets the class it answers
most strongly (labels serve that assignment only, never the weights); an image's class is the one
whose neurons fire most on average.

Parameters are per timestep (tau in steps, rates as spike probabilities per step); the defaults are
Diehl & Cook's as BindsNET's DiehlAndCook2015 has them (1 ms steps, 128 Hz for a white pixel).
The rule is data (StdpRule): pair STDP, or the weight-dependent (soft-bound) variant.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import stdp_kernels as kernels

RULES = {"pair": kernels.PAIR, "weight_dependent": kernels.WEIGHT_DEPENDENT}
PARAMS_FILE, WEIGHTS_FILE = "stdp_params.json", "stdp_weights.npz"
# optional in a model directory: the parameters to run its network at other T (TopSpark's operating
# points, one full StdpParams per T); format in docs/stdp.md "Per-T parameters in a model directory"
OPERATING_POINTS_FILE, OPERATING_POINTS_FORMAT = "stdp_operating_points.json", "stdp-operating-points/1"


@dataclass(frozen=True)
class StdpRule:
    """Trace STDP: a pre spike depresses by nu_pre * post trace, a post spike potentiates by
    nu_post * pre trace; `weight_dependent` scales depression by (w - w_min) and potentiation by
    (w_max - w). Traces decay with tau (steps) and are set to 1 by a spike, or have 1 added
    (`trace_additive`, as Loihi's traces)."""

    kind: str = "pair"
    nu_pre: float = 1e-4
    nu_post: float = 1e-2
    tau_pre: float = 20.0
    tau_post: float = 20.0
    w_min: float = 0.0
    w_max: float = 1.0
    trace_additive: bool = False

    def __post_init__(self):
        if self.kind not in RULES:
            raise ValueError(f"unknown STDP rule {self.kind!r}; known: {sorted(RULES)}")


@dataclass(frozen=True)
class StdpParams:
    """The network and its neurons, per timestep. Defaults: Diehl & Cook 2015 (BindsNET)."""

    n_inputs: int = 784
    n_neurons: int = 400
    timesteps: int = 250
    input_rate: float = 0.128  # spike probability per step of a white pixel (128 Hz at 1 ms)
    # each image scaled so that its mean pixel is this, then clipped to 1 (0: as it is): every image
    # draws about as many input spikes as the average one; an image with little ink (a sandal) no
    # longer goes by without an output spike at few timesteps (docs/stdp.md)
    input_mean: float = 0.0
    # excitatory neurons: potentials in mV, times in steps
    v_rest: float = -65.0
    v_reset: float = -60.0
    v_thresh: float = -52.0
    tau_mem: float = 100.0
    refractory: int = 5
    theta_plus: float = 0.05  # homeostasis: the threshold's rise per spike, and its decay
    tau_theta: float = 1e7
    # inhibitory neurons, one per excitatory neuron
    v_rest_inh: float = -60.0
    v_reset_inh: float = -45.0
    v_thresh_inh: float = -40.0
    tau_mem_inh: float = 10.0
    refractory_inh: int = 2
    w_exc_inh: float = 22.5  # an excitatory spike into its inhibitory partner
    w_inh_exc: float = 17.5  # an inhibitory spike into every other excitatory neuron
    one_spike: bool = True  # at most one excitatory spike per step (BindsNET's DiehlAndCookNodes)
    weight_norm: float = 78.4
    initial_weight: float = 0.3  # initial weights uniform in [0, initial_weight)
    # readout (not the dynamics): a neuron's vote is its spike count plus margin_weight x its potential
    # minus threshold at the end (per mV; 0: counts alone, Diehl & Cook's); see activity()
    margin_weight: float = 0.0
    rule: StdpRule = field(default_factory=StdpRule)

    def as_array(self) -> np.ndarray:
        """The layout run_images reads: values in the order of stdp_kernels' column names."""
        r = self.rule
        decay = [math.exp(-1.0 / tau) for tau in (self.tau_mem, self.tau_mem_inh, r.tau_pre, r.tau_post)]
        a = np.array([self.input_rate, self.v_rest, self.v_reset, self.v_thresh, decay[0], self.refractory,
                      self.theta_plus, math.exp(-self.timesteps / self.tau_theta), self.v_rest_inh,
                      self.v_reset_inh, self.v_thresh_inh, decay[1], self.refractory_inh, self.w_exc_inh,
                      self.w_inh_exc, self.weight_norm, RULES[r.kind], r.nu_pre, r.nu_post, decay[2], decay[3],
                      r.w_min, r.w_max, float(r.trace_additive), float(self.one_spike)], np.float64)
        assert len(a) == kernels.N_PARAMS and kernels.ONE_SPIKE == kernels.N_PARAMS - 1
        return a

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "StdpParams":
        values = dict(values)
        rule = StdpRule(**values.pop("rule", {}))
        return cls(**values, rule=rule)

    def with_timesteps(self, timesteps: int) -> "StdpParams":
        return replace(self, timesteps=int(timesteps))


@dataclass
class RunRecord:
    """What one pass over images did: spike counts (N, neurons), operation counts (N, N_COUNTS:
    stdp_kernels' columns), the wall time it took and the CPU time of the thread that ran it (both
    measured; CPU time does not count waiting for a core another process holds)."""

    spike_counts: np.ndarray
    op_counts: np.ndarray
    seconds: float
    cpu_seconds: float = 0.0
    margins: np.ndarray | None = None  # (N, neurons) potential minus threshold after the last step, mV

    def mean_ops(self) -> dict:
        means = self.op_counts.mean(axis=0)
        return {name: float(means[column]) for name, column in OP_COLUMNS.items()}


MARGIN_WEIGHTS = (0.0, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # per mV: choose_margin_weight's candidates
OP_COLUMNS = {"synaptic_ops": kernels.SYNAPTIC_OPS, "synaptic_updates": kernels.SYNAPTIC_UPDATES,
              "neuron_updates": kernels.NEURON_UPDATES, "exc_spikes": kernels.EXC_SPIKES,
              "inh_spikes": kernels.INH_SPIKES, "input_spikes": kernels.INPUT_SPIKES,
              "weight_changes": kernels.WEIGHT_CHANGES}


def as_pixels(images: np.ndarray) -> np.ndarray:
    """Images (N, ...) uint8 or float in [0, 1] -> (N, pixels) C-contiguous float32 in [0, 1]."""
    x = np.asarray(images)
    x = x.reshape(len(x), -1)
    x = x.astype(np.float32) / np.float32(255.0) if x.dtype == np.uint8 else x.astype(np.float32)
    return np.ascontiguousarray(x)


def input_pixels(images: np.ndarray, params: StdpParams) -> np.ndarray:
    """as_pixels, each image scaled to params.input_mean where that is set (a blank image stays blank)."""
    pixels = as_pixels(images)
    if params.input_mean <= 0:
        return pixels
    means = pixels.mean(axis=1, keepdims=True)
    scale = np.divide(np.float32(params.input_mean), means, out=np.zeros_like(means), where=means > 0)
    return np.ascontiguousarray(np.minimum(pixels * scale, np.float32(1.0)))


class StdpNetwork:
    """Weights (inputs, neurons) float32, adaptive thresholds theta (neurons,) and neuron labels
    (-1: none yet). The labels' evidence, where they were assigned here: per class the summed spike
    counts of its labelling images (classes, neurons) and how many there were (the robot's
    feedback adds to them, learning/stdp_online.py)."""

    def __init__(self, params: StdpParams, weights: np.ndarray, theta: np.ndarray, labels: np.ndarray,
                 label_tally: np.ndarray | None = None, label_frames: np.ndarray | None = None):
        if weights.shape != (params.n_inputs, params.n_neurons):
            raise ValueError(f"weights of shape {weights.shape}, the parameters say "
                             f"({params.n_inputs}, {params.n_neurons})")
        self.params = params
        self.weights = np.ascontiguousarray(weights, np.float32)
        self.theta = np.ascontiguousarray(theta, np.float32)
        self.labels = np.asarray(labels, np.int64)
        self.label_tally, self.label_frames = label_tally, label_frames

    @classmethod
    def create(cls, params: StdpParams, seed: int = 0) -> "StdpNetwork":
        rng = np.random.default_rng(seed)
        weights = params.initial_weight * rng.random((params.n_inputs, params.n_neurons), np.float32)
        return cls(params, weights, np.zeros(params.n_neurons, np.float32),
                   np.full(params.n_neurons, -1, np.int64))

    def run(self, images, learn: bool, seed: int, params: StdpParams | None = None) -> RunRecord:
        params = params or self.params
        pixels = input_pixels(images, params)
        if pixels.shape[1] != params.n_inputs:
            raise ValueError(f"images of {pixels.shape[1]} pixels, the network takes {params.n_inputs}")
        spikes = np.zeros((len(pixels), params.n_neurons), np.int32)
        ops = np.zeros((len(pixels), kernels.N_COUNTS), np.int64)
        margins = np.zeros((len(pixels), params.n_neurons), np.float32)
        start, cpu_start = time.perf_counter(), time.thread_time()
        kernels.run_images(pixels, self.weights, self.theta, params.as_array(), params.timesteps,
                           learn, seed, spikes, ops, margins)
        return RunRecord(spikes, ops, time.perf_counter() - start, time.thread_time() - cpu_start, margins)

    def train(self, images, seed: int = 0) -> RunRecord:
        """Unsupervised: weights and thresholds learn from the images (no labels)."""
        return self.run(images, True, seed)

    def respond(self, images, seed: int = 0) -> RunRecord:
        """Spike counts with learning off (weights and thresholds fixed)."""
        return self.run(images, False, seed)

    def assign_labels(self, spike_counts: np.ndarray, labels: np.ndarray, n_classes: int) -> None:
        """Each neuron takes the class with its highest mean response; silent neurons get none."""
        self.label_tally = np.zeros((n_classes, self.params.n_neurons))
        self.label_frames = np.zeros(n_classes)
        for c in range(n_classes):
            chosen = spike_counts[labels == c]
            self.label_tally[c], self.label_frames[c] = chosen.sum(axis=0), len(chosen)
        self.labels = labels_from_tally(self.label_tally, self.label_frames, np.full(self.params.n_neurons, -1))

    def class_scores(self, activity: np.ndarray, n_classes: int) -> np.ndarray:
        """(images, n_classes): per class the mean activity (spike count, or activity()) of the
        neurons labelled with it."""
        scores = np.zeros((len(activity), n_classes))
        for c in range(n_classes):
            members = self.labels == c
            if members.any():
                scores[:, c] = activity[:, members].mean(axis=1)
        return scores

    def classify(self, activity: np.ndarray, n_classes: int) -> np.ndarray:
        """Per image the class whose labelled neurons are most active on average ("all activity")."""
        return self.class_scores(activity, n_classes).argmax(axis=1)

    def save(self, directory: str, class_names=()) -> None:
        """class_names: what the robot publishes for each label (optional; the agent says "0", "1"...)."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, PARAMS_FILE), "w") as f:
            json.dump(self.params.to_dict(), f, indent=1)
        evidence = {} if self.label_tally is None else {"label_tally": self.label_tally, "label_frames": self.label_frames}
        np.savez(os.path.join(directory, WEIGHTS_FILE), weights=self.weights, theta=self.theta,
                 labels=self.labels, class_names=np.asarray(list(class_names), str), **evidence)

    @classmethod
    def load(cls, directory: str) -> "StdpNetwork":
        return cls.load_with_names(directory)[0]

    @classmethod
    def load_with_names(cls, directory: str) -> tuple["StdpNetwork", list]:
        """The network and the class names saved with it ([] where none were)."""
        for name in (PARAMS_FILE, WEIGHTS_FILE):
            if not os.path.isfile(os.path.join(directory, name)):
                raise FileNotFoundError(f"{directory}: no {name} (not a saved STDP network)")
        with open(os.path.join(directory, PARAMS_FILE)) as f:
            params = StdpParams.from_dict(json.load(f))
        with np.load(os.path.join(directory, WEIGHTS_FILE), allow_pickle=False) as arrays:
            names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else []
            evidence = [arrays[k] if k in arrays else None for k in ("label_tally", "label_frames")]
            return cls(params, arrays["weights"], arrays["theta"], arrays["labels"], *evidence), names


def labels_from_tally(tally: np.ndarray, frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each neuron takes the class with its highest mean response per image (tally: summed spike
    counts (classes, neurons) over `frames` images per class); neurons silent for all keep `labels`."""
    seen = frames > 0
    mean = np.zeros_like(tally, dtype=np.float64)
    mean[seen] = tally[seen] / frames[seen, None]
    return np.where(mean.max(axis=0) > 0, mean.argmax(axis=0), labels)


def activity(record: RunRecord, margin_weight: float) -> np.ndarray:
    """Per image and neuron the readout's vote: spike count plus margin_weight x how near the neuron
    ended to one more spike (potential minus threshold, mV). At few timesteps an image draws only a
    few output spikes (often none), so counts alone leave many images tied; the potential, readable
    on Loihi at no synaptic cost, breaks the ties. Margins are shifted so each image's lowest is 0:
    votes stay >= 0 (a class without neurons scores 0) and a shift common to all neurons changes no
    class's rank."""
    if margin_weight == 0.0:
        return record.spike_counts
    margins = record.margins - record.margins.min(axis=1, keepdims=True)
    return record.spike_counts + margin_weight * margins


def choose_margin_weight(network: StdpNetwork, record: RunRecord, classes, n_classes: int,
                         weights=MARGIN_WEIGHTS) -> tuple[float, float]:
    """The margin weight (of `weights`) whose readout classifies record's images best, and that
    accuracy: a choice to make on a validation split."""
    scored = [(float(np.mean(network.classify(activity(record, w), n_classes) == np.asarray(classes))), w)
              for w in weights]
    accuracy, weight = max(scored, key=lambda pair: pair[0])
    return weight, accuracy


def save_operating_points(directory: str, points: dict, notes: dict | None = None) -> None:
    """Write {T: StdpParams} (each the parameters to run the directory's network at that T) beside a
    saved network; notes per T (how each was chosen, its validation accuracy...) go along unread."""
    notes = notes or {}
    entries = [{"T": int(t), "params": p.to_dict(), **notes.get(t, {})} for t, p in sorted(points.items())]
    if any(e["params"]["timesteps"] != e["T"] for e in entries):
        raise ValueError("each operating point's params must have timesteps equal to its T")
    with open(os.path.join(directory, OPERATING_POINTS_FILE), "w") as f:
        json.dump({"format": OPERATING_POINTS_FORMAT, "points": entries}, f, indent=1)


def load_operating_points(directory: str, network: StdpNetwork | None = None) -> dict:
    """{T: StdpParams} from the directory's operating points ({} where it has none); with `network`,
    each must fit its weights (same inputs and neurons). ValueError names what is wrong."""
    path = os.path.join(directory, OPERATING_POINTS_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or data.get("format") != OPERATING_POINTS_FORMAT:
        raise ValueError(f"{path}: not {OPERATING_POINTS_FORMAT!r}")
    points = {}
    for entry in data["points"]:
        params = StdpParams.from_dict(entry["params"])
        if params.timesteps != entry["T"]:
            raise ValueError(f"{path}: the point for T={entry['T']} has timesteps {params.timesteps}")
        if network and (params.n_inputs, params.n_neurons) != (network.params.n_inputs, network.params.n_neurons):
            raise ValueError(f"{path}: the point for T={entry['T']} is for {params.n_inputs} inputs x "
                             f"{params.n_neurons} neurons, the network has {network.params.n_inputs} x "
                             f"{network.params.n_neurons}")
        points[params.timesteps] = params
    return points


def params_for(network: StdpNetwork, timesteps: int, points: dict) -> tuple[StdpParams, int]:
    """The parameters that run `network` at `timesteps`: those of the nearest operating point (the T it
    trained at counts, with its own parameters; a tie goes to the larger T), at `timesteps`. Returns
    them and the point's T."""
    table = {network.params.timesteps: network.params, **points}
    chosen = min(table, key=lambda t: (abs(t - timesteps), -t))
    return table[chosen].with_timesteps(timesteps), chosen


def train_and_label(params: StdpParams, train_images, label_images, label_classes, n_classes: int,
                    seed: int = 0) -> tuple[StdpNetwork, RunRecord]:
    """Create, train on train_images, then label the neurons from label_images' responses."""
    network = StdpNetwork.create(params, seed)
    record = network.train(train_images, seed)
    network.assign_labels(network.respond(label_images, seed + 1).spike_counts, label_classes, n_classes)
    return network, record


def accuracy(network: StdpNetwork, images, classes, n_classes: int, seed: int = 2,
             params: StdpParams | None = None) -> tuple[float, RunRecord]:
    """Fraction classified right (learning off; the readout of params, or the network's), and the
    run's record."""
    record = network.run(images, False, seed, params)
    predicted = network.classify(activity(record, (params or network.params).margin_weight), n_classes)
    return float(np.mean(predicted == np.asarray(classes))), record


def warm_up() -> None:
    """Compile run_images (or load it from numba's cache) on a tiny network."""
    params = StdpParams(n_inputs=4, n_neurons=2, timesteps=3)
    StdpNetwork.create(params).train(np.full((1, 4), 0.5, np.float32))
