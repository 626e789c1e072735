"""Online learning through the agent node over real DDS: a new class learned from feedback
messages, ~/save_learning and ~/reset_learning, and the learned class restored after a restart;
the graded rule: its old-class memory missing (reported) and written by `snn-agent memory`, a class
learned with the old ones kept, its labelled frames restored after a restart."""
import os

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus

from rclpy.parameter import Parameter
from std_msgs.msg import Int32
from std_srvs.srv import Trigger

from test_agent_lifecycle import Spinning, call
from test_agent_node import Probe, model_dir  # noqa: F401 - fixture
from snn_agent import cli
from snn_agent.data import datasets
from snn_agent.ir import SNNModel
from snn_agent.learning import checkpoint as checkpoints
from snn_agent.learning import memory as learning_memory
from snn_agent.learning.rules import ReadoutRule
from snn_agent.ros.agent_node import AgentNode

NEW = 10  # the new class: photographic negatives of Fashion-MNIST frames
RATE = 0.125  # above the default (2^-6, chosen to keep old classes): a class from 24 frames


def agent_with_learning(model, directory):
    return AgentNode(parameter_overrides=[
        Parameter("model", value=model), Parameter("diagnostics_period_s", value=0.2),
        Parameter("policy", value="fixed"), Parameter("timesteps", value=8),
        Parameter("learning.enabled", value=True), Parameter("learning.rate", value=RATE),
        Parameter("learning.max_classes", value=11),
        Parameter("learning.class_names", value=[""] * 10 + ["negative"]),
        Parameter("learning.checkpoint_dir", value=directory), Parameter("learning.checkpoint_every", value=100)])


def negatives(n_teach=24, n_check=20):
    images = datasets.load("fashion-mnist", "test").images[:, :, :, 0]
    return 255 - images[:n_teach], 255 - images[-n_check:]


def test_learns_a_class_from_feedback_saves_resets_and_restores(rclpy_context, model_dir, tmp_path):
    directory = str(tmp_path / "learning")
    teach, check = negatives()
    agent, probe = agent_with_learning(model_dir, directory), Probe()
    feedback = probe.create_publisher(Int32, "agent/feedback", 10)
    save = probe.create_client(Trigger, "agent/save_learning")
    reset = probe.create_client(Trigger, "agent/reset_learning")
    graph = Spinning(agent, probe)
    try:
        assert probe.wait(lambda: probe.count_subscribers("image") > 0 and probe.count_subscribers("agent/feedback") > 0)
        for image in teach:
            probe.classify(image)
            updates = agent.core.learner.updates
            feedback.publish(Int32(data=NEW))
            assert probe.wait(lambda: agent.core.learner.updates == updates + 1), "the feedback was not applied"
        learned = sum(probe.classify(image) == "negative" for image in check)
        assert learned >= 16, learned
        values = probe.diagnostics(lambda v: v.get("learning updates") == str(len(teach)))
        assert values["learning kind"] == "emulated" and values["learning classes"] == "11"
        assert values["learning checkpoint age s"] == "never"
        rejected = agent.set_parameters([Parameter("learning.rate", value=0.1)])[0]
        assert not rejected.successful and "not a power of two" in rejected.reason, rejected.reason
        assert agent.get_parameter("learning.rate").value == RATE
        answer = call(probe, save, Trigger.Request())
        assert answer.success, answer.message
        assert os.path.isfile(checkpoints.path_in(directory))
        probe.diagnostics(lambda v: v.get("learning checkpoint age s") not in (None, "never"))
    finally:
        graph.close()

    agent, probe = agent_with_learning(model_dir, directory), Probe()  # a restart: the checkpoint comes back
    reset = probe.create_client(Trigger, "agent/reset_learning")
    graph = Spinning(agent, probe)
    try:
        assert probe.wait(lambda: probe.count_subscribers("image") > 0)
        values = probe.diagnostics(lambda v: "learning updates" in v)
        assert values["learning updates"] == str(len(teach)) and values["learning classes"] == "11"
        assert sum(probe.classify(image) == "negative" for image in check) == learned
        answer = call(probe, reset, Trigger.Request())
        assert answer.success, answer.message
        assert probe.diagnostics(lambda v: v.get("learning updates") == "0")["learning classes"] == "10"
        assert not any(probe.classify(image) == "negative" for image in check)
        target_rule = [Parameter("learning.centred", value=True), Parameter("learning.max_repeats", value=4),
                       Parameter("learning.margin", value=200.0)]
        assert all(result.successful for result in agent.set_parameters(target_rule))
        assert probe.wait(lambda: agent.core.learning.rule() == ReadoutRule(RATE, 200.0, 4, True))
    finally:
        graph.close()
    fingerprint = f"{checkpoints.model_fingerprint(SNNModel.load(model_dir))}-spikes"
    assert checkpoints.load(directory, fingerprint).updates == 0  # reset wrote the model's own readout


def graded_agent(model, directory):
    return AgentNode(parameter_overrides=[
        Parameter("model", value=model), Parameter("diagnostics_period_s", value=0.2),
        Parameter("policy", value="fixed"), Parameter("timesteps", value=16),  # the bench's choice for the rule
        Parameter("learning.enabled", value=True), Parameter("learning.rule", value="graded"),
        Parameter("learning.max_classes", value=11), Parameter("learning.class_names", value=[""] * 10 + ["negative"]),
        Parameter("learning.checkpoint_dir", value=directory), Parameter("learning.checkpoint_every", value=100)])


def test_graded_rule_needs_the_memory_learns_a_class_keeps_the_old_and_restores_its_labelled_frames(
        rclpy_context, model_dir, tmp_path):
    """learning.rule graded: without the model's old-class memory the node says so and classifies on;
    with the memory `snn-agent memory` writes, a class learned from ~/feedback, the old classes kept,
    each learning step's energy on ~/energy; after a restart the labelled frames it rehearses are back."""
    os.remove(learning_memory.path_in(model_dir))
    directory = str(tmp_path / "learning")
    teach, check = negatives()
    test = datasets.load("fashion-mnist", "test")
    old_images, old_labels = test.images[1000:1060, :, :, 0], test.labels[1000:1060]
    names = datasets.FASHION_MNIST_CLASSES
    agent, probe = graded_agent(model_dir, directory), Probe()
    feedback = probe.create_publisher(Int32, "agent/feedback", 10)
    save = probe.create_client(Trigger, "agent/save_learning")
    graph = Spinning(agent, probe)
    try:
        assert probe.wait(lambda: probe.count_subscribers("image") > 0 and probe.count_subscribers("agent/feedback") > 0)
        values = probe.diagnostics(lambda v: "learning_problem" in v)
        assert learning_memory.MEMORY_FILE in values["learning_problem"], values["learning_problem"]
        assert "snn-agent memory" in values["learning_problem"] and values["_level"] == DiagnosticStatus.WARN
        assert probe.classify(old_images[0]) in names  # alive, classifying without learning
        for bad in (Parameter("learning.rule", value="hebbian"), Parameter("learning.graded_rate", value=0.1)):
            assert not agent.set_parameters([bad])[0].successful

        assert cli.main(["memory", model_dir, "--dataset", "fashion-mnist"]) == 0
        assert agent.set_parameters([Parameter("learning.rule", value="graded")])[0].successful  # rebuilds the learner
        values = probe.diagnostics(lambda v: "learning memory" in v)
        assert "learning_problem" not in values and values["learning rule"].startswith("graded 2^-3, 8 levels")
        assert values["learning memory"].startswith("1000 frames, fashion-mnist (train)")

        old_before = sum(probe.classify(image) == names[label] for image, label in zip(old_images, old_labels))
        energy_after_feedback, learning_energy = [], []
        for image in teach:
            probe.classify(image)
            updates, spent = agent.core.learner.updates, agent.core.learner.energy_j
            feedback.publish(Int32(data=NEW))
            assert probe.wait(lambda: agent.core.learner.updates == updates + 1), "the feedback was not applied"
            learning_energy.append(agent.core.learner.energy_j - spent)
            probe.classify(image)
            energy_after_feedback.append(probe.of_last_frame("energy"))  # billed with the next frame
        learned = sum(probe.classify(image) == "negative" for image in check)
        assert learned >= 16, learned
        old_after = sum(probe.classify(image) == names[label] for image, label in zip(old_images, old_labels))
        assert old_after >= old_before - 3, (old_before, old_after)  # 60 frames: at most 5 % lost
        # each learning step's energy (measured CPU time, as a frame's) is in the next frame's, beside its own
        assert all(spent > 0 for spent in learning_energy), learning_energy
        assert all(billed > spent for billed, spent in zip(energy_after_feedback, learning_energy)), \
            (energy_after_feedback, learning_energy)
        values = probe.diagnostics(lambda v: v.get("learning updates") == str(len(teach)))
        assert values["learning labelled frames kept"] == str(len(teach)) and float(values["learning energy J"]) > 0
        kept = [(counts.copy(), label) for counts, label in agent.core.learner.readout.labelled]
        assert call(probe, save, Trigger.Request()).success
    finally:
        graph.close()

    agent, probe = graded_agent(model_dir, directory), Probe()  # a restart: the labelled frames come back
    feedback = probe.create_publisher(Int32, "agent/feedback", 10)
    graph = Spinning(agent, probe)
    try:
        assert probe.wait(lambda: probe.count_subscribers("image") > 0 and probe.count_subscribers("agent/feedback") > 0)
        values = probe.diagnostics(lambda v: "learning labelled frames kept" in v)
        assert values["learning labelled frames kept"] == str(len(teach))
        restored = agent.core.learner.readout.labelled
        assert [label for _, label in restored] == [label for _, label in kept]
        np.testing.assert_array_equal(np.array([c for c, _ in restored]), np.array([c for c, _ in kept]))
        assert sum(probe.classify(image) == "negative" for image in check) == learned
        probe.classify(teach[0])
        feedback.publish(Int32(data=NEW))  # rehearsal goes on over them and the new one
        assert probe.wait(lambda: len(agent.core.learner.readout.labelled) == len(teach) + 1)
    finally:
        graph.close()
