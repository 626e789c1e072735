"""A trained STDP network in the robot: the agent node loads its model directory and classifies
frames over real DDS on the cpu backend; other backends refuse it; corrupt files are clear errors;
with learning enabled it adapts without labels, feedback relabels its neurons, checkpoints come back
after a restart; at each T the governor picks it runs with the parameters enhanced for that T."""
import dataclasses
import json
import os
import shutil
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from std_msgs.msg import Float32, Int32
from std_srvs.srv import Trigger

from snn_agent.backends import BackendError, create_backend
from snn_agent.data import datasets
from snn_agent.engine import stdp_engine
from snn_agent.ir import ModelFormatError
from snn_agent.learning import stdp, stdp_online, stdp_topspark
from snn_agent.learning.online import LearningSettings
from snn_agent.ros.agent_node import AgentNode
from test_agent_lifecycle import Spinning, call
from test_agent_node import Probe, graph  # noqa: F401 - graph: the node and probe over DDS, on model_dir

TIMESTEPS = 100
FRAMES = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 100-neuron network trained without labels on 1000 images (about a second), then labelled."""
    train = datasets.load("fashion-mnist", "train")
    params = stdp.StdpParams(n_neurons=100, timesteps=TIMESTEPS)
    network, _ = stdp.train_and_label(params, train.images[:1000], train.images[1000:1500],
                                      train.labels[1000:1500], 10)
    path = tmp_path_factory.mktemp("stdp") / "model"
    network.save(str(path), train.class_names)
    return str(path)


@pytest.fixture
def model_dir(trained):
    return trained


@pytest.fixture(scope="module")
def frames():
    test = datasets.load("fashion-mnist", "test").subset(FRAMES)
    return test.images[:, :, :, 0], test.labels, test.class_names


def offline_labels(model, images):
    """What a fresh cpu backend says for the frames in this order (the same Poisson draws as the node's)."""
    backend = create_backend("cpu")
    backend.load(model)
    return [int(backend.infer(image[None, None].astype(np.float32) / 255, TIMESTEPS).labels[0]) for image in images]


def test_agent_node_classifies_frames_with_a_trained_stdp_network(graph, trained, frames):  # noqa: F811
    agent, probe = graph
    images, labels, names = frames
    # without operating points the model runs at `timesteps` as it was when the model loaded
    assert agent.set_parameters([Parameter("timesteps", value=TIMESTEPS)])[0].successful
    assert agent.set_parameters([Parameter("model", value=trained)])[0].successful
    published = [probe.classify(image) for image in images]  # the reload comes before the first frame
    assert probe.of_last_frame("timesteps") == TIMESTEPS
    expected = offline_labels(trained, images)
    assert published == [names[c] for c in expected]  # the node runs the network, frame for frame
    assert np.mean(np.array(expected) == labels) > 0.2  # chance: 0.1; measured 0.33 (0.28 with training seeds 1, 2)
    probe.diagnostics(lambda v: v.get("backend") == "cpu (STDP network)" and int(v["frames"]) >= FRAMES)


def test_other_backends_refuse_an_stdp_network_and_the_node_falls_back(graph, trained, frames):  # noqa: F811
    agent, probe = graph
    with pytest.raises(BackendError, match="STDP network.*cpu backend can"):
        create_backend("openvino").load(trained)
    with pytest.raises(BackendError, match="learning takes seconds a frame.*another network"):
        create_backend("lava").load(trained)
    assert agent.set_parameters([Parameter("backend", value="lava")])[0].successful
    probe.classify(frames[0][0], timeout=30)
    values = probe.diagnostics(lambda v: "fallback" in v)
    assert "STDP network" in values["fallback"] and values["backend"] == "cpu (STDP network)"


def test_corrupt_stdp_files_are_clear_errors(graph, trained, frames, tmp_path):  # noqa: F811
    agent, probe = graph
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / stdp.PARAMS_FILE).write_text("{ not json")
    result = agent.set_parameters([Parameter("model", value=str(broken))])[0]
    assert not result.successful and "STDP model file missing" in result.reason
    (broken / stdp.WEIGHTS_FILE).write_bytes(b"junk")
    result = agent.set_parameters([Parameter("model", value=str(broken))])[0]
    assert not result.successful and "not an STDP network's parameters" in result.reason
    (broken / stdp.PARAMS_FILE).write_text(open(f"{trained}/{stdp.PARAMS_FILE}").read())
    backend = create_backend("cpu")
    with pytest.raises(ModelFormatError, match="corrupt STDP model"):
        backend.load(str(broken))
    with np.load(f"{trained}/{stdp.WEIGHTS_FILE}") as saved:
        arrays = dict(saved)
    np.savez(broken / stdp.WEIGHTS_FILE, **dict(arrays, theta=arrays["theta"][:3]))  # a kernel would overrun it
    with pytest.raises(ModelFormatError, match="not one per neuron"):
        backend.load(str(broken))
    assert agent.set_parameters([Parameter("model", value=str(broken))])[0].successful  # known only on loading
    values = probe.diagnostics(lambda v: "model_error" in v)
    assert "not one per neuron" in values["model_error"]
    assert probe.classify(frames[0][0]) in frames[2]  # still the trained network


def agent_learning(model, directory):
    return AgentNode(parameter_overrides=[
        Parameter("model", value=model), Parameter("diagnostics_period_s", value=0.2),
        Parameter("policy", value="fixed"), Parameter("timesteps", value=TIMESTEPS),
        Parameter("learning.enabled", value=True), Parameter("learning.checkpoint_dir", value=directory),
        Parameter("learning.checkpoint_every", value=1000),
        Parameter("learning.stdp_rate", value=0.25)])  # the default (0) keeps the weights; this learns them too


def test_adapts_without_labels_relabels_from_feedback_and_restores_after_restart(rclpy_context, trained, frames,
                                                                                  tmp_path):
    images, labels, names = frames
    directory, relabelled = str(tmp_path / "learning"), str(tmp_path / "model")
    model = stdp.StdpNetwork.load(trained)
    # saved without its labelling evidence (label_tally), as older models are: the tally starts
    # from the feedback alone, so one contradicting frame moves the neurons that fired in it (with
    # the evidence of 50 images per class that takes tens of frames; docs/stdp.md)
    model.label_tally = model.label_frames = None
    model.save(relabelled, names)
    agent, probe = agent_learning(relabelled, directory), Probe()
    feedback = probe.create_publisher(Int32, "agent/feedback", 10)
    save = probe.create_client(Trigger, "agent/save_learning")
    spinning = Spinning(agent, probe)
    try:
        assert probe.wait(lambda: probe.count_subscribers("image") > 0 and probe.count_subscribers("agent/feedback") > 0)
        network = agent.core.backend.engine.network
        published = [probe.classify(image) for image in images]  # no labels: STDP and homeostasis only
        assert np.abs(network.weights - model.weights).max() > 1e-3  # the weights learned from the stream
        assert (network.theta > model.theta).sum() > 5  # homeostasis: thresholds of neurons that fired rose
        assert np.mean([names.index(p) == c for p, c in zip(published, labels)]) > 0.2  # chance 0.1; keeps classifying
        values = probe.diagnostics(lambda v: v.get("learning updates") == str(FRAMES))
        assert values["learning kind"] == stdp_online.UNSUPERVISED
        assert float(values["learning synaptic updates"]) > 0 and float(values["learning energy J (Loihi, modelled)"]) > 0

        said = names.index(probe.classify(images[0]))
        wrong = (said + 1) % len(names)  # feedback that contradicts the network
        before, weights = network.labels.copy(), network.weights.copy()
        feedback.publish(Int32(data=wrong))
        assert probe.wait(lambda: agent.core.learner.feedback_frames == 1), "the feedback was not applied"
        assert np.any((before == said) & (network.labels == wrong))  # a neuron that said `said` now says `wrong`
        assert np.array_equal(network.weights, weights)  # labels never touch the weights
        values = probe.diagnostics(lambda v: v.get("learning feedback frames") == "1")
        assert values["learning feedback accuracy"] == "0.0000"
        assert call(probe, save, Trigger.Request()).success
        saved = network.weights.copy(), network.theta.copy(), network.labels.copy()
    finally:
        spinning.close()
    assert os.path.isfile(os.path.join(directory, stdp_online.CHECKPOINT_FILE))

    agent, probe = agent_learning(relabelled, directory), Probe()  # a restart: what it learned comes back
    reset = probe.create_client(Trigger, "agent/reset_learning")
    spinning = Spinning(agent, probe)
    try:
        network = agent.core.backend.engine.network
        for restored, kept in zip((network.weights, network.theta, network.labels), saved):
            assert np.array_equal(restored, kept)
        assert probe.diagnostics(lambda v: "learning updates" in v)["learning updates"] == str(FRAMES + 1)
        assert call(probe, reset, Trigger.Request()).success
        assert np.array_equal(network.weights, model.weights) and np.array_equal(network.labels, model.labels)
    finally:
        spinning.close()


def test_runs_with_the_parameters_enhanced_for_the_t_the_governor_picks(graph, trained, frames, tmp_path):  # noqa: F811
    agent, probe = graph
    images = frames[0][:4]
    enhanced = str(tmp_path / "enhanced")
    shutil.copytree(trained, enhanced)
    params = stdp.StdpParams.from_dict(json.load(open(os.path.join(trained, stdp.PARAMS_FILE))))
    stdp.save_operating_points(enhanced, {32: stdp_topspark.enhance(params, 32, stdp_topspark.Enhancement(
        input_rate_gain=2.0, time_compression=2.0, threshold_shift=-4.0))})
    points = [{"timesteps": t, "accuracy": a, "latency_ms": 1.0, "energy_j": e, "energy_kind": "modelled"}
              for t, a, e in ((32, 0.5, 1e-3), (TIMESTEPS, 0.6, 4e-3))]
    with open(os.path.join(enhanced, "operating_points.json"), "w") as f:
        json.dump({"cpu": {"target": "stdp", "points": points}}, f)
    assert agent.set_parameters([Parameter("model", value=enhanced)])[0].successful
    node_scores, node_t = [], []
    for budget in (1.0, 2e-3):  # the governor's T: the baseline's, then the reduced one
        probe.budget.publish(Float32(data=budget))
        time.sleep(0.2)
        for image in images:
            probe.classify(image)
            node_t.append(probe.of_last_frame("timesteps"))
            node_scores.append(np.array(probe.of_last_frame("scores")))
    assert node_t == [TIMESTEPS] * len(images) + [32] * len(images)

    def offline(directory):
        """The same frames at the same T, in the same order (the same Poisson draws), on a fresh engine."""
        _, engine = stdp_engine.load(directory)
        return [engine.run(image[None, None].astype(np.float32) / 255, t).scores[0].astype(np.float32)
                for image, t in zip(list(images) * 2, node_t)]
    assert all(np.allclose(n, o) for n, o in zip(node_scores, offline(enhanced)))  # the enhanced parameters ran
    plain = offline(trained)
    assert all(np.allclose(n, o) for n, o in zip(node_scores[:len(images)], plain[:len(images)]))  # T=100: none
    assert not any(np.allclose(n, o) for n, o in zip(node_scores[len(images):], plain[len(images):]))


def test_a_corrupt_or_foreign_stdp_checkpoint_is_set_aside_and_the_model_runs(trained, frames, tmp_path):
    directory = str(tmp_path / "learning")
    settings = LearningSettings(enabled=True, checkpoint_dir=directory)
    model, engine = stdp_engine.load(trained)
    learner = stdp_online.StdpLearner(engine, model.class_names, settings)
    image = frames[0][0][None, None].astype(np.float32) / 255
    learner.classify(engine.hidden_spikes(engine.run(image, TIMESTEPS))[0], TIMESTEPS)
    assert learner.save()
    path = os.path.join(directory, stdp_online.CHECKPOINT_FILE)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the arrays
    open(path, "wb").write(bytes(data))
    model, engine = stdp_engine.load(trained)
    learner = stdp_online.StdpLearner(engine, model.class_names, settings)
    assert "corrupt learning checkpoint" in learner.checkpoint_errors[-1] and not os.path.exists(path)
    assert any(".corrupt-" in name for name in os.listdir(directory))
    assert learner.updates == 0 and np.array_equal(engine.network.weights, stdp.StdpNetwork.load(trained).weights)
    assert learner.save()
    engine.fingerprint = "another model"
    learner = stdp_online.StdpLearner(engine, model.class_names, settings)
    assert "belongs to another model" in learner.checkpoint_errors[-1]


def test_feedback_adds_to_the_labelling_evidence_a_model_saved(trained, frames):
    model, engine = stdp_engine.load(trained)
    learner = stdp_online.StdpLearner(engine, model.class_names, LearningSettings(enabled=True))
    evidence = engine.network.label_frames.copy()
    assert evidence.sum() == 500  # the fixture's labelling images
    image = frames[0][0][None, None].astype(np.float32) / 255
    learner.classify(engine.hidden_spikes(engine.run(image, TIMESTEPS))[0], TIMESTEPS)
    assert learner.feedback(3).applied and learner.tally_frames[3] == evidence[3] + 1
    assert not learner.feedback(3).applied  # that frame was taught already
    assert not learner.feedback(10).applied and learner.dropped_feedback == 2  # no class is added


def test_a_garbage_operating_points_file_is_named_before_loading(trained, tmp_path):
    model = tmp_path / "garbage_points"
    shutil.copytree(trained, model)
    (model / stdp.OPERATING_POINTS_FILE).write_text("{not json")
    problem = stdp_engine.files_problem(str(model))
    assert problem and stdp.OPERATING_POINTS_FILE in problem


def test_learning_reads_frames_with_the_models_margin_readout_as_the_frozen_engine(trained, frames, tmp_path):
    """Turning learning on must not change how a frame is read: the learner's scores are the
    engine's (spike counts plus margin_weight x the end potential's margin), not counts alone."""
    with_margin = str(tmp_path / "with_margin")
    network = stdp.StdpNetwork.load(trained)
    network.params = dataclasses.replace(network.params, margin_weight=0.03)
    network.save(with_margin, frames[2])
    model, engine = stdp_engine.load(with_margin)
    learner = stdp_online.StdpLearner(engine, model.class_names, LearningSettings(enabled=True))
    differ = 0
    for image, label in zip(frames[0][:10], frames[1]):
        result = engine.run(image[None, None].astype(np.float32) / 255, TIMESTEPS)
        scores = learner.classify(engine.hidden_spikes(result)[0], TIMESTEPS)
        assert np.allclose(scores, result.scores[0])
        counts_alone = engine.network.class_scores(result.hidden, len(model.class_names))[0]
        differ += not np.allclose(scores, counts_alone)
    assert differ > 0  # the margin counts in these frames: counts alone would have read them otherwise
    assert learner.feedback(int(label)).teach.predicted == int(np.argmax(scores))  # feedback's prediction: the same readout


def test_a_silenced_network_fires_again_only_where_its_thresholds_decay(trained, frames):
    """Thresholds that only rise with spikes keep a network that a changed input silenced silent;
    thresholds that also decay (learning.stdp_threshold_decay) let it fire, and adapt, again."""
    spikes = {}
    for decay in (0.0, 5.0):
        model, engine = stdp_engine.load(trained)
        engine.network.theta += 1000.0  # mV above what any frame drives: silent
        stdp_online.StdpLearner(engine, model.class_names,
                                LearningSettings(enabled=True, stdp_rate=0.0, stdp_threshold_decay=decay))
        spikes[decay] = [int(engine.run(image[None, None].astype(np.float32) / 255, TIMESTEPS).hidden.sum())
                         for image in frames[0]]
    assert sum(spikes[0.0]) == 0
    assert spikes[5.0][0] == 0 and sum(spikes[5.0][-10:]) > 0


def test_loihi_learning_energy_is_counted_only_where_the_weights_learn(trained, frames):
    """At stdp_rate 0 the weights stay (only the thresholds adapt): a chip's learning engine would
    not run, so no synaptic update is counted or priced; at a rate above 0 they are."""
    counted = {}
    for rate in (0.0, 0.25):
        model, engine = stdp_engine.load(trained)
        learner = stdp_online.StdpLearner(engine, model.class_names, LearningSettings(enabled=True, stdp_rate=rate))
        for image in frames[0][:5]:
            result = engine.run(image[None, None].astype(np.float32) / 255, TIMESTEPS)
            learner.classify(engine.hidden_spikes(result)[0], TIMESTEPS)
        counted[rate] = (learner.synaptic_updates, learner.energy_j)
    assert counted[0.0] == (0.0, 0.0)
    assert counted[0.25][0] > 0 and counted[0.25][1] > 0
