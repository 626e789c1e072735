"""Online learning (snn_agent/learning): the rule against a hand-computed update, our fixed-point
learning against Lava's LearningDense, a new class learned on the cpu and openvino backends with
the old ones kept, checkpoints (restore, corrupt, another model's, the graded rule's labelled
frames, older formats), the old-class memory, and kill -9 during learning."""
import hashlib
import os

import numpy as np
import pytest

from snn_agent.adaptation.governor import GovernorSettings
from snn_agent.adaptation.operating_points import PointTable
from snn_agent.agent_core import AgentCore, BackendChoice
from snn_agent.backends import create_backend
from snn_agent.data import datasets
from snn_agent.ir import Layer, SNNModel
from snn_agent.learning import checkpoint as checkpoints
from snn_agent.learning import crash_drill
from snn_agent.learning import memory as learning_memory
from snn_agent.learning.lava_readout import LavaTrainer
from snn_agent.learning.online import LearningSettings, MemorySource, OnlineLearner
from snn_agent.learning.readout import EmulatedTrainer, FloatTrainer, PlasticReadout
from snn_agent.learning.rules import ReadoutRule, teaching_schedule

from conftest import BUNDLED_SNN


def small_layer(seed=0, classes=4, inputs=30):
    rng = np.random.default_rng(seed)
    return Layer("score", "dense", rng.normal(0, 1, (classes, inputs)), rng.normal(0, 1, classes), (inputs,),
                 (classes,), spiking=False)


@pytest.mark.parametrize("trainer", [EmulatedTrainer, FloatTrainer])
def test_rule_against_a_hand_computed_update(trainer):
    """rate 1 (2^0): each pre spike moves the label's weight up one unit and the winner's down one,
    and no other weight; the bias input (on at each of the T steps) counts T."""
    readout = PlasticReadout.from_layer(small_layer(), [], ReadoutRule(rate=1.0, max_repeats=1), trainer(), 5)
    hidden = np.zeros((3, 30), bool)
    hidden[:, 0] = True  # 3 spikes
    hidden[1, 7] = True  # 1 spike
    pre = readout.inputs(hidden, 3)
    before = readout.weights.copy()
    result = readout.teach(pre, 4, 3)  # class 4 is new: its row is zero, another class wins
    assert result.added_class and result.ops.runs == 1
    winner = result.predicted
    expected = before.copy()
    change = np.zeros(31, readout.weights.dtype)
    change[0], change[7], change[30] = 3, 1, 3
    expected[4] += change
    expected[winner] -= change
    np.testing.assert_array_equal(readout.weights, expected)
    assert readout.classes == 5


@pytest.mark.parametrize("trainer", [EmulatedTrainer, FloatTrainer])
def test_label_only_rule_leaves_the_winner_alone(trainer):
    """Label-only, centred: the label's row moves by +(counts - mean counts), no other row moves."""
    readout = PlasticReadout.from_layer(small_layer(), [], ReadoutRule(rate=1.0, centred=True, label_only=True),
                                        trainer(), 5)
    readout.observe(readout.inputs(np.zeros((4, 30), bool), 4))  # mean: nothing but the bias input
    hidden = np.zeros((4, 30), bool)
    hidden[:3, 0] = True
    before = readout.weights.copy()
    result = readout.teach(readout.inputs(hidden, 4), 4, 4)
    assert result.ops.runs == 2 and result.added_class
    expected = before.copy()
    expected[4, 0] += 3
    np.testing.assert_array_equal(readout.weights, expected)


@pytest.mark.parametrize("trainer", [EmulatedTrainer, FloatTrainer])
def test_centred_rule_against_a_hand_computed_update(trainer):
    """Centred, a teaching run is followed by the mean frame's with the roles swapped: the label's
    row moves by +(counts - mean counts), the winner's by -(counts - mean counts); the bias input
    cancels (its mean count is the frame's T)."""
    readout = PlasticReadout.from_layer(small_layer(), [], ReadoutRule(rate=1.0, centred=True), trainer(), 5)
    seen = np.zeros((4, 30), bool)
    seen[:2, 0] = True  # input 0: 2 spikes in 4 steps, a mean of 0.5 per step
    readout.observe(readout.inputs(seen, 4))
    readout.observe(readout.inputs(np.zeros((4, 30), bool), 4))  # mean: input 0 at 0.25 per step, the bias at 1
    np.testing.assert_allclose(readout.input_mean[[0, 30]], [0.25, 1.0])
    hidden = np.zeros((4, 30), bool)
    hidden[:, 0] = True  # 4 spikes against a mean of 1 over 4 steps
    hidden[1, 7] = True  # 1 against 0
    before = readout.weights.copy()
    result = readout.teach(readout.inputs(hidden, 4), 4, 4)
    assert result.ops.runs == 2
    change = np.zeros(31, readout.weights.dtype)
    change[0], change[7] = 3, 1
    expected = before.copy()
    expected[4] += change
    expected[result.predicted] -= change
    np.testing.assert_array_equal(readout.weights, expected)


@pytest.mark.parametrize("trainer", [EmulatedTrainer, FloatTrainer])
def test_graded_rule_against_a_hand_computed_update(trainer):
    """Graded (4 levels, rate 1): an added class's row moves by round(4 x its error) x counts, its
    error being teacher minus the softmax of the scores (converted model's units); the model's rows
    never move. A frame of an old class then lowers the added row by round(4 x its output)."""
    readout = PlasticReadout.from_layer(small_layer(), [], ReadoutRule(rate=1.0, graded=4), trainer(), 6)

    def levels(counts, label):
        scores = np.where(readout.active, readout.weights @ counts / 3 * readout.scale, -np.inf)
        output = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        return np.rint(4 * ((np.arange(6) == label) - output)).astype(int)

    hidden = np.zeros((3, 30), bool)
    hidden[:, 0] = True
    hidden[1, 7] = True
    pre = readout.inputs(hidden, 3)
    readout.active[4] = True  # as teach adds it: the error is computed with the class active
    expected_levels = levels(pre.counts, 4)
    readout.active[4] = False
    before = readout.weights.copy()
    result = readout.teach(pre, 4, 3)
    assert result.added_class and expected_levels[4] > 0 and result.ops.runs == expected_levels[4]
    expected = before.copy()
    expected[4] += expected_levels[4] * pre.counts.astype(expected.dtype)
    np.testing.assert_array_equal(readout.weights, expected)
    hidden_old = np.zeros((3, 30), bool)
    hidden_old[:, 0] = True  # input 0 alone: the added row (input 0 at 9 units) scores high on it
    old = readout.inputs(hidden_old, 3)
    expected_levels = levels(old.counts, 0)
    assert expected_levels[4] < 0
    expected[4] += expected_levels[4] * old.counts.astype(expected.dtype)
    readout.teach(old, 0, 3)
    np.testing.assert_array_equal(readout.weights, expected)


@pytest.mark.parametrize("rehearsal", [0, 3])
def test_rehearsal_teaches_the_added_row_what_it_is_not(rehearsal):
    """A memory frame of an old class that shares five of its six inputs with a new class's labelled frame:
    taught without rehearsal, the new class's row takes it; with rehearsal it goes back to its
    class, the labelled frame stays the new class's, and the model's rows are as converted."""
    readout = PlasticReadout.from_layer(small_layer(), [], ReadoutRule(rate=1.0, graded=4, rehearsal=rehearsal),
                                        EmulatedTrainer(), 5)
    hidden = np.zeros((4, 30), bool)
    hidden[:, :6] = True
    frame = readout.inputs(hidden, 4)
    lookalike = frame.counts.copy()
    lookalike[5], lookalike[6] = 0, 4
    old_class = int(np.argmax(readout.weights[:4] @ lookalike))
    readout.set_memory(lookalike[None, :], np.array([old_class]))
    model_rows = readout.weights[:4].copy()
    for _ in range(4):  # four labels of the frame
        readout.teach(frame, 4, 4)
    assert np.argmax(readout.scores(frame, 4)) == 4
    taken = np.argmax(np.where(readout.active, readout.weights @ lookalike, -np.inf)) == 4
    assert taken == (rehearsal == 0)
    np.testing.assert_array_equal(readout.weights[:4], model_rows)


def test_lava_parses_the_rule_into_our_products():
    for rate in (1.0, 0.25, 2.0 ** -7):
        rule = ReadoutRule(rate=rate)
        parsed = [(p.s_mantissa, p.s_exp, [f.state_var for f in p.factors], p.dependency)
                  for p in rule.lava_rule().dw.products]
        assert [(m, e) for m, e, _, _ in parsed] == list(rule.products)
        assert [(f, d) for _, _, f, d in parsed] == [(["y1"], "x0"), (["y0"], "x0")]


def test_a_rate_that_is_not_a_power_of_two_is_refused_with_the_nearest():
    with pytest.raises(ValueError, match="not a power of two.*nearest is 0.125"):
        ReadoutRule(rate=0.1)
    assert ReadoutRule(rate=2.0 ** -7).rate_exponent == 7


def test_teaching_schedule():
    pre = np.eye(3, dtype=bool)
    pre_run, post_run = teaching_schedule(pre, 4, up=[2], down=[0])
    np.testing.assert_array_equal(pre_run[0::2], pre)
    assert not pre_run[1::2].any()
    assert post_run[0::2, 2].all() and post_run[1::2, 0].all() and post_run.sum() == 6
    _, post_run = teaching_schedule(pre, 4, up=[], down=[0])  # no label: only the winner's teacher spikes
    assert post_run[1::2, 0].all() and post_run.sum() == 3
    _, post_run = teaching_schedule(pre, 4, up=[1, 3], down=[0, 2])  # the graded rule: several rows each way
    assert post_run[0::2][:, [1, 3]].all() and post_run[1::2][:, [0, 2]].all() and post_run.sum() == 12


@pytest.mark.parametrize("rule", [ReadoutRule(rate=0.25, max_repeats=3, centred=True),
                                  ReadoutRule(rate=0.25, max_repeats=3, centred=True, label_only=True),
                                  ReadoutRule(rate=0.25, graded=4, rehearsal=1)], ids=["centred", "label-only", "graded"])
def test_fixed_point_learning_equals_lavas_learning_dense(rule):
    """The same frames and labels through Lava's LearningDense (Loihi2SimCfg fixed_pt) and through
    our emulation: the same weights, bit for bit, with stochastic rounding (rate 2^-2), weights
    at both ends of their range, a class grown on the way, and the centred rule's mean-frame runs
    (label-only: runs where only the label's score neuron gets teacher spikes; graded: runs where
    several rows' teachers fire each way, and rehearsal's replays of stored frames)."""
    layer = small_layer(seed=3, classes=4, inputs=24)
    layer.weight[0, :4] = [40.0, -40.0, 39.0, -39.0]  # |weights| at the top of the range: saturation
    memory = np.random.default_rng(2).integers(0, 8, (2, 25)).astype(float)
    memory[:, -1] = 8  # the bias input: on at each of the 8 steps
    learned = []
    for trainer in (EmulatedTrainer(), LavaTrainer()):
        readout = PlasticReadout.from_layer(layer, [], rule, trainer, max_classes=6)
        readout.set_memory(memory, np.array([0, 1]))
        rng = np.random.default_rng(1)
        runs = 0
        for _ in range(6):
            hidden = rng.random((8, 24)) < 0.35
            pre = readout.inputs(hidden, 8)
            readout.observe(pre)
            runs += readout.teach(pre, int(rng.integers(6)), 8).ops.runs
        trainer.close()
        learned.append(readout.weights.copy())
    assert runs >= 6  # the stream did make it learn
    assert learned[0].min() == -256 or learned[0].max() == 255 or np.abs(learned[0]).max() >= 250
    np.testing.assert_array_equal(learned[0], learned[1])


HIDDEN = (5, 8)  # Sandal and Bag: the model's readout is made not to know them, and learns them back


def held_out_pair_task(k=20, n_test=300):
    """Test frames to evaluate on, and k training frames of each hidden class to teach."""
    test, train = datasets.load("fashion-mnist", "test"), datasets.load("fashion-mnist", "train")
    to_input = lambda images: images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # noqa: E731
    teach = np.concatenate([np.where(train.labels == c)[0][:k] for c in HIDDEN])
    np.random.default_rng(0).shuffle(teach)
    return to_input(test.images[:n_test]), test.labels[:n_test], to_input(train.images[teach]), train.labels[teach]


def learn_held_out_pair(backend: str, tmp_path, rate: float):
    """The readout forgets two classes (rows zeroed, inactive), then learns them back from labelled
    frames through the agent core: accuracy on the old classes before and after, on the new after."""
    x, y, teach, labels = held_out_pair_task()
    settings = LearningSettings(enabled=True, rate=rate, class_names=["old"] * 10,
                                checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=10)
    core = AgentCore(BackendChoice(BUNDLED_SNN, backend, allow_fallback=False),
                     GovernorSettings(policy="fixed", timesteps=8), learning=settings)
    assert core.learner is not None, core.learning_problem
    readout = core.learner.readout
    readout.weights[list(HIDDEN)] = 0
    readout.active[list(HIDDEN)] = False
    readout.trainer.load(readout.weights)
    old = ~np.isin(y, HIDDEN)

    def classify(frame):  # a DNN backend's decimation may skip a frame: offer it again
        return next(result for result in iter(lambda: core.classify(frame[None]), 0) if result is not None)

    def accuracy():
        correct = np.array([classify(frame).class_id == label for frame, label in zip(x, y)])
        return correct[old].mean(), correct[~old].mean()

    old_before, _ = accuracy()
    energy = []
    for frame, label in zip(teach, labels):
        classify(frame)
        assert core.feedback(int(label)).applied
        energy.append(classify(x[0]).energy.joules)  # the learning step is billed with the next frame
    old_after, new_after = accuracy()
    diagnostics = core.learner.diagnostics()
    core.close()
    return old_before, old_after, new_after, diagnostics, energy


def test_cpu_learns_new_classes_and_keeps_the_old(tmp_path):
    old_before, old_after, new_after, diagnostics, _ = learn_held_out_pair("cpu", tmp_path, rate=0.125)
    assert new_after >= 0.85, new_after
    assert old_after >= old_before - 0.03, (old_before, old_after)
    assert diagnostics["learning kind"] == "emulated" and diagnostics["learning classes"] == "10"
    assert os.path.isfile(checkpoints.path_in(str(tmp_path / "ckpt")))


def test_openvino_host_readout_learns_the_same_task(tmp_path):
    old_before, old_after, new_after, diagnostics, energy = learn_held_out_pair("openvino", tmp_path, rate=0.25)  # rates: x T (8) of a count
    assert diagnostics["learning kind"] == "host"
    assert new_after >= 0.85, new_after
    assert old_after >= old_before - 0.03, (old_before, old_after)
    assert max(energy) > min(energy)  # frames after a learning step carry its CPU energy


def learner(tmp_path, layer=None, fingerprint="model-a", every=3):
    settings = LearningSettings(enabled=True, max_classes=6, checkpoint_dir=str(tmp_path), checkpoint_every=every)
    return OnlineLearner(layer or small_layer(), [], fingerprint, settings, EmulatedTrainer())


def teach_some(learner_, frames=7, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        learner_.classify(rng.random((8, 30)) < 0.3, 8)
        assert learner_.feedback(int(rng.integers(6))).applied


def test_checkpoint_restored_after_restart(tmp_path):
    first = learner(tmp_path)
    teach_some(first)
    first.close()  # the shutdown checkpoint
    second = learner(tmp_path)
    assert second.updates == 7 and not second.checkpoint_errors
    np.testing.assert_array_equal(second.readout.weights, first.readout.weights)
    np.testing.assert_array_equal(second.readout.active, first.readout.active)


def test_feedback_for_a_frame_no_longer_held_is_dropped(tmp_path):
    one = learner(tmp_path)
    one.classify(np.ones((4, 30), bool), 4, frame_id=1)
    assert not one.feedback(2, frame_id=99).applied  # never held
    assert one.feedback(2, frame_id=1).applied
    assert not one.feedback(2, frame_id=1).applied  # taught already
    assert not one.feedback(2).applied  # nothing held
    assert not one.feedback(6).applied  # beyond max_classes
    assert one.dropped_feedback == 4 and one.updates == 1


def test_corrupt_checkpoint_is_set_aside(tmp_path):
    with open(checkpoints.path_in(str(tmp_path)), "wb") as out:
        out.write(b"PK\x03\x04 not a checkpoint")
    fresh = learner(tmp_path)
    assert fresh.updates == 0 and len(fresh.checkpoint_errors) == 1
    assert "corrupt" in fresh.checkpoint_errors[0]
    assert not os.path.exists(checkpoints.path_in(str(tmp_path)))
    assert any(name.startswith("readout.npz.corrupt-") for name in os.listdir(tmp_path))


def test_a_corrupted_mean_input_is_detected(tmp_path):
    """The checksum covers the mean input (the centred rule replays frames against it), not only
    the weights: a checkpoint whose mean changed on disk is set aside, not loaded."""
    first = learner(tmp_path)
    teach_some(first)
    first.close()
    path = checkpoints.path_in(str(tmp_path))
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["input_mean"] = arrays["input_mean"] + 0.5
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    fresh = learner(tmp_path)
    assert fresh.updates == 0 and "corrupt" in fresh.checkpoint_errors[0]
    assert any(name.startswith("readout.npz.corrupt-") for name in os.listdir(tmp_path))


def test_a_format_1_checkpoint_loads_its_checked_weights_without_its_mean(tmp_path):
    """Format 1 (before the checksum covered the mean input): its weights are checked and restored,
    its mean input, which nothing vouches for, is not."""
    first = learner(tmp_path)
    teach_some(first)
    first.close()
    path = checkpoints.path_in(str(tmp_path))
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files if name != "sha256_of_state"}
    arrays.update(format_version=1, weights_sha256=hashlib.sha256(arrays["weights"].tobytes()).hexdigest())
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    second = learner(tmp_path)
    assert second.updates == 7 and not second.checkpoint_errors
    np.testing.assert_array_equal(second.readout.weights, first.readout.weights)
    assert second.readout.observed == 0 and not second.readout.input_mean.any()


def graded_learner(tmp_path, memory_frames=np.zeros((0, 8, 30), bool), memory_labels=np.zeros(0, int)):
    """A learner with the graded rule (rate 1, 4 levels, one rehearsal pass) and a memory of these frames."""
    settings = LearningSettings(enabled=True, rule_name="graded", graded_rate=1.0, max_classes=6,
                                checkpoint_dir=str(tmp_path), checkpoint_every=100)
    memory = MemorySource(memory_labels, lambda timesteps: memory_frames[:, :timesteps], "test frames")
    return OnlineLearner(small_layer(), [], "model-a", settings, EmulatedTrainer(), memory=memory)


def test_checkpoint_keeps_the_labelled_frames_the_graded_rule_rehearses(tmp_path):
    """Format 3: the labelled frames come back after a restart, under the checksum."""
    rng = np.random.default_rng(1)
    first = graded_learner(tmp_path, rng.random((5, 8, 30)) < 0.3, np.arange(5) % 4)
    teach_some(first)
    assert len(first.readout.labelled) == 7 and first.readout.memory[0].shape == (5, 31)
    first.close()
    second = graded_learner(tmp_path)
    assert second.updates == 7 and not second.checkpoint_errors
    assert [label for _, label in second.readout.labelled] == [label for _, label in first.readout.labelled]
    np.testing.assert_array_equal([c for c, _ in second.readout.labelled], [c for c, _ in first.readout.labelled])
    np.testing.assert_array_equal(second.readout.weights, first.readout.weights)
    path = checkpoints.path_in(str(tmp_path))
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["labelled_labels"] = (arrays["labelled_labels"] + 1) % 6
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    tampered = graded_learner(tmp_path)
    assert tampered.updates == 0 and "corrupt" in tampered.checkpoint_errors[0]


def test_a_format_2_checkpoint_loads_with_no_labelled_frames(tmp_path):
    """Format 2 (before the labelled frames were kept): weights and mean input restored and checked,
    the graded rule starts its labelled frames afresh."""
    first = graded_learner(tmp_path)
    teach_some(first)
    first.close()
    path = checkpoints.path_in(str(tmp_path))
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files if not name.startswith("labelled_")}
    arrays.update(format_version=2, sha256_of_state=checkpoints.checksum(
        arrays["weights"], arrays["input_mean"], np.int64(arrays["observed"])))
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    second = graded_learner(tmp_path)
    assert second.updates == 7 and not second.checkpoint_errors
    np.testing.assert_array_equal(second.readout.weights, first.readout.weights)
    np.testing.assert_array_equal(second.readout.input_mean, first.readout.input_mean)
    assert second.readout.labelled == []
    second.classify(np.ones((8, 30), bool), 8)
    assert second.feedback(1).applied and len(second.readout.labelled) == 1


def test_the_graded_rule_without_a_memory_is_refused():
    settings = LearningSettings(enabled=True, rule_name="graded", max_classes=6)
    with pytest.raises(ValueError, match="old-class memory"):
        OnlineLearner(small_layer(), [], "model-a", settings, EmulatedTrainer())


def test_memory_maps_the_models_classes_by_name_and_reports_a_missing_or_corrupt_file(tmp_path):
    """A model trained on some of the dataset's classes, in its own order: each memory image is of
    the dataset class that bears the model's class name. Missing, corrupt or another model's classes:
    a MemoryFileError that says how to write it."""
    train = datasets.load("fashion-mnist", "train")
    names = ["Bag", "T-shirt/top", "Sneaker"]  # dataset classes 8, 0, 7
    memory = learning_memory.from_dataset(train, "train", names, per_class=5)
    np.testing.assert_array_equal(memory.labels, np.repeat([0, 1, 2], 5))
    np.testing.assert_array_equal(train.labels[memory.indices], np.repeat([8, 0, 7], 5))
    np.testing.assert_array_equal(memory.images, train.images[memory.indices])
    with pytest.raises(learning_memory.MemoryFileError, match="Sandwich"):
        learning_memory.from_dataset(train, "train", ["Bag", "Sandwich"])
    directory = str(tmp_path)
    with pytest.raises(learning_memory.MemoryFileError, match="snn-agent memory"):
        learning_memory.load(directory, names)
    learning_memory.save(directory, memory)
    loaded = learning_memory.load(directory, names)
    np.testing.assert_array_equal(loaded.images, memory.images)
    assert loaded.source == memory.source
    with pytest.raises(learning_memory.MemoryFileError, match="written for the classes"):
        learning_memory.load(directory, ["Bag", "Sneaker", "T-shirt/top"])
    bundled = SNNModel.load(BUNDLED_SNN).class_names  # the committed memory is what `snn-agent memory` writes
    np.testing.assert_array_equal(learning_memory.load(BUNDLED_SNN, bundled).images,
                                  learning_memory.from_dataset(train, "train", bundled).images)
    with open(learning_memory.path_in(directory), "r+b") as out:
        out.seek(100)
        out.write(b"\0" * 64)
    with pytest.raises(learning_memory.MemoryFileError, match="corrupt"):
        learning_memory.load(directory, names)


@pytest.mark.parametrize("name", ["cpu", "openvino"])
def test_backend_features_are_the_frames_own(name):
    """The graded rule's memory is computed by Backend.features, on a path of its own beside the
    frame loop: the same hidden layer output as each frame's, at a calibrated operating point
    (lava: test_loihi_exact.py)."""
    x, _, _, _ = held_out_pair_task(n_test=6)
    point = next(p for p in PointTable.load(BUNDLED_SNN, "cpu").points if p.bias_shifts)
    neuron = point.neuron(SNNModel.load(BUNDLED_SNN).neuron.reset)
    backend = create_backend(name)
    backend.load(BUNDLED_SNN)
    backend.with_features = True
    try:
        frames = np.concatenate([backend.infer(frame[None], point.timesteps, neuron).hidden for frame in x])
        np.testing.assert_array_equal(backend.features(x, point.timesteps, neuron), frames)
        assert frames.any()
    finally:
        backend.close()


def test_checkpoint_of_another_model_is_refused(tmp_path):
    first = learner(tmp_path)
    teach_some(first)
    first.close()
    other = learner(tmp_path, fingerprint="model-b")
    assert other.updates == 0 and "another model" in other.checkpoint_errors[0]
    assert any(name.startswith("readout.npz.other-model-") for name in os.listdir(tmp_path))


def test_kill_9_during_learning_loses_at_most_checkpoint_every(tmp_path):
    """A real learner process killed with SIGKILL 20 times at random moments: every checkpoint left
    on disk loads, and no more than checkpoint_every updates are lost."""
    stream = str(tmp_path / "stream.npz")
    rng = np.random.default_rng(0)
    crash_drill.record_stream(stream, small_layer(classes=5), rng.random((50, 8, 30)) < 0.3,
                              rng.integers(0, 6, 50), 8)
    every = 5
    report = crash_drill.drill(stream, str(tmp_path / "ckpt"), rounds=20, every=every)
    assert report.rounds == 20 and not report.load_failures
    assert report.max_lost <= every, report.lost_updates
    assert max(checkpoints.load(str(tmp_path / "ckpt"), crash_drill.FINGERPRINT).updates, 0) > every
