"""The STDP network (snn_agent/learning/stdp*.py): the rule against hand-computed changes, homeostasis,
learning without labels on Fashion-MNIST, and agreement with Lava's LearningDense + STDPLoihi."""
import math
from dataclasses import replace

import numpy as np
import pytest

from snn_agent.data import datasets
from snn_agent.learning import stdp, stdp_kernels, stdp_lava, stdp_topspark
from snn_agent.learning.stdp import StdpNetwork, StdpParams, StdpRule


def rule_on_rasters(weights, pre, post, rule):
    params = StdpParams(n_inputs=weights.shape[0], n_neurons=weights.shape[1], rule=rule)
    updates = stdp_kernels.learn_from_rasters(weights, np.asarray(pre, bool), np.asarray(post, bool),
                                              params.as_array())
    return weights, updates


@pytest.mark.parametrize("kind", ["pair", "weight_dependent"])
def test_stdp_update_matches_a_hand_computed_case(kind):
    # input 0 fires at step 0, the neuron at step 2, input 1 at step 3, the neuron at step 4
    rule = StdpRule(kind=kind, nu_pre=0.01, nu_post=0.1, tau_pre=4.0, tau_post=5.0)
    pre = np.zeros((5, 2), bool)
    pre[0, 0] = pre[3, 1] = True
    post = np.zeros((5, 1), bool)
    post[2, 0] = post[4, 0] = True
    weights, updates = rule_on_rasters(np.array([[0.5], [0.5]], np.float32), pre, post, rule)

    soft = kind == "weight_dependent"
    w0 = 0.5 + 0.1 * math.exp(-2 / 4) * ((1 - 0.5) if soft else 1)  # post at 2, pre trace of input 0
    w0 += 0.1 * math.exp(-4 / 4) * ((1 - w0) if soft else 1)  # post at 4
    w1 = 0.5 - 0.01 * math.exp(-1 / 5) * (0.5 if soft else 1)  # pre at 3, post trace set at 2
    w1 += 0.1 * math.exp(-1 / 4) * ((1 - w1) if soft else 1)  # post at 4, input 1's trace from 3
    assert weights[:, 0] == pytest.approx([w0, w1], abs=1e-6)
    # input 0 at step 0 found no post trace: nothing to depress; then 1 (step 2) + 1 (3) + 2 (4)
    assert updates == 4


def test_homeostasis_raises_the_thresholds_of_neurons_that_fire_often():
    # every neuron that crosses spikes (with one_spike, crossings that lose the draw raise theta too)
    params = StdpParams(n_neurons=20, timesteps=100, one_spike=False)
    network = StdpNetwork.create(params, seed=0)
    images = datasets.load("fashion-mnist", "train").images[:50]
    record = network.train(images)
    fired = record.spike_counts.sum(axis=0)
    assert fired.max() > 0 and (fired == 0).any() or fired.min() < fired.max()
    # each spike raised its neuron's threshold by theta_plus (decay over 50 images: < 1e-3)
    assert network.theta == pytest.approx(params.theta_plus * fired, rel=2e-3, abs=1e-6)
    often, rarely = np.argmax(fired), np.argmin(fired)
    assert network.theta[often] > network.theta[rarely]
    # and the raised thresholds damp the network: fewer spikes on the same images than at the start
    fresh = StdpNetwork.create(params, seed=0)
    assert network.respond(images).spike_counts.sum() < fresh.respond(images).spike_counts.sum()


def test_one_spike_lets_one_neuron_spike_per_step():
    images = datasets.load("fashion-mnist", "train").images[:20]
    params = StdpParams(n_neurons=50, timesteps=60)
    spikes = StdpNetwork.create(params).train(images).spike_counts.sum(axis=1)
    volleys = StdpNetwork.create(replace(params, one_spike=False)).train(images).spike_counts.sum(axis=1)
    assert spikes.max() <= params.timesteps and spikes.min() > 0
    assert volleys.max() > params.timesteps  # without it many neurons cross in the same step


def test_short_unsupervised_training_lifts_accuracy_well_above_chance():
    train = datasets.load("fashion-mnist", "train")
    test = datasets.load("fashion-mnist", "test")
    params = StdpParams(n_neurons=100)
    network, record = stdp.train_and_label(params, train.images[:1500], train.images[50000:51000],
                                           train.labels[50000:51000], 10)
    assert (network.labels >= 0).sum() > 50  # most neurons answer some class
    accuracy, _ = stdp.accuracy(network, test.images[:1000], test.labels[:1000], 10)
    untrained = StdpNetwork.create(params)
    untrained.assign_labels(untrained.respond(train.images[50000:51000]).spike_counts, train.labels[50000:51000], 10)
    untrained_accuracy, _ = stdp.accuracy(untrained, test.images[:1000], test.labels[:1000], 10)
    assert accuracy > 0.25, accuracy  # chance: 0.1; measured 0.32
    assert accuracy > untrained_accuracy + 0.1, (accuracy, untrained_accuracy)


def test_lava_weight_change_agrees_with_ours_on_a_tiny_case():
    # powers of two (Lava's learning rates), traces that add per spike (Loihi's), no weight at a bound
    rule = StdpRule(nu_pre=2 ** -6, nu_post=2 ** -4, tau_pre=5.0, tau_post=8.0, w_max=4.0, trace_additive=True)
    rng = np.random.default_rng(1)
    pre = rng.random((12, 5)) < 0.3
    post = rng.random((12, 3)) < 0.25
    before = (0.3 + 0.4 * rng.random((5, 3))).astype(np.float32)
    ours, _ = rule_on_rasters(before.copy(), pre, post, rule)
    lava = stdp_lava.lava_weight_change(before, pre, post, rule)
    assert np.abs(ours - before).max() > 0.1  # the case does change the weights
    # Lava computes in float64, ours stores float32: the bound is float32 rounding
    assert np.abs(ours - lava).max() < 1e-6


def test_lava_refuses_a_rule_it_would_run_differently():
    with pytest.raises(ValueError, match="powers of two"):
        stdp_lava.check_loihi_rule(StdpRule(nu_pre=1e-4, trace_additive=True))
    with pytest.raises(ValueError, match="trace_additive"):
        stdp_lava.check_loihi_rule(StdpRule(nu_pre=2 ** -13, nu_post=2 ** -7))


def test_a_saved_network_loads_with_its_parameters_and_labels(tmp_path):
    params = StdpParams(n_neurons=10, timesteps=30, margin_weight=3e-3, rule=StdpRule(kind="weight_dependent"))
    network = StdpNetwork.create(params, seed=3)
    network.labels[:] = np.arange(10)
    network.save(str(tmp_path))
    loaded = StdpNetwork.load(str(tmp_path))
    assert loaded.params == params
    assert np.array_equal(loaded.weights, network.weights) and np.array_equal(loaded.labels, network.labels)
    with pytest.raises(FileNotFoundError, match="not a saved STDP network"):
        StdpNetwork.load(str(tmp_path / "missing"))


def test_unknown_rule_and_wrong_image_size_are_clear_errors():
    with pytest.raises(ValueError, match="unknown STDP rule"):
        StdpRule(kind="triplet")
    network = StdpNetwork.create(StdpParams(n_neurons=5))
    with pytest.raises(ValueError, match="784"):
        network.train(np.zeros((2, 10, 10), np.uint8))


def test_enhancement_changes_the_parameters_it_names():
    base = StdpParams()
    e = stdp_topspark.Enhancement(input_rate_gain=2.0, threshold_shift=3.0, theta_plus_gain=4.0,
                                  time_compression=2.5, inhibition_gain=0.5, learning_rate_gain=2.0)
    p = stdp_topspark.enhance(base, 100, e)
    assert p.timesteps == 100 and p.input_rate == pytest.approx(0.256) and p.v_thresh == -49.0
    assert p.theta_plus == pytest.approx(0.2) and p.tau_mem == 40.0 and p.tau_mem_inh == 4.0
    assert p.refractory == 2 and p.refractory_inh == 1 and p.w_inh_exc == 8.75
    assert (p.rule.nu_pre, p.rule.nu_post, p.rule.tau_pre) == pytest.approx((2e-4, 2e-2, 8.0))
    assert stdp_topspark.enhance(base, 250, stdp_topspark.NONE) == base


def test_homeostasis_decay_is_set_in_images_so_every_t_decays_alike_per_image():
    base = StdpParams()
    assert stdp_topspark.enhance(base, 64, stdp_topspark.NONE).tau_theta == base.tau_theta
    for t in (250, 64):
        p = stdp_topspark.enhance(base, t, stdp_topspark.Enhancement(tau_theta_images=2000.0))
        assert math.exp(-p.timesteps / p.tau_theta) == pytest.approx(math.exp(-1 / 2000))


def test_random_search_draws_every_field_within_its_range_the_same_at_every_t():
    for t in (250, 100, 64):
        space = stdp_topspark.search_space(250, t)
        draws = stdp_topspark.draw(space, 50, seed=t)
        assert draws == stdp_topspark.draw(space, 50, seed=t)  # reproducible
        for name, r in space.items():
            values = [getattr(e, name) for e in draws]
            assert r.low <= min(values) and max(values) <= r.high
            assert r.low == r.high or len(set(values)) == 50  # every trial varies every field
        assert space["inhibition_gain"] == stdp_topspark.search_space(250, 250)["inhibition_gain"]
    # the input rate (which drives the energy) never rises; at the baseline T it is the encoding's
    assert {e.input_rate_gain for e in stdp_topspark.draw(stdp_topspark.search_space(250, 250), 5, 0)} == {1.0}
    assert stdp_topspark.search_space(250, 64)["input_rate_gain"].high == 1.0
    trials = [(stdp_topspark.Enhancement(inhibition_gain=g), a) for g, a in ((2.0, 0.5), (4.0, 0.7), (8.0, 0.6))]
    assert [a for _, a in stdp_topspark.finalists(trials, 2)] == [0.7, 0.6]


def test_modelled_energy_prices_each_operation_with_loihis_figures():
    ops = {"synaptic_ops": 1000, "synaptic_updates": 100, "neuron_updates": 50, "exc_spikes": 3, "inh_spikes": 2}
    inference = 1000 * 23.6e-12 + 45 * 52e-12 + 5 * 81e-12
    assert stdp_topspark.modelled_energy_j(ops, learning=False) == pytest.approx(inference)
    assert stdp_topspark.modelled_energy_j(ops, learning=True) == pytest.approx(inference + 100 * 120e-12)


def test_operating_points_round_trip_beside_a_saved_network_and_must_fit_it(tmp_path):
    network = StdpNetwork.create(StdpParams(n_neurons=5))
    network.save(str(tmp_path))
    assert stdp.load_operating_points(str(tmp_path), network) == {}  # none saved: the network's own T only
    points = {t: stdp_topspark.enhance(network.params, t, stdp_topspark.Enhancement(threshold_shift=-2.0))
              for t in (64, 100)}
    stdp.save_operating_points(str(tmp_path), points, {64: {"validation_accuracy": 0.6}})
    assert stdp.load_operating_points(str(tmp_path), network) == points
    other = StdpNetwork.create(StdpParams(n_neurons=6))
    with pytest.raises(ValueError, match="5 neurons, the network has 784 x 6"):
        stdp.load_operating_points(str(tmp_path), other)
    with pytest.raises(ValueError, match="timesteps equal to its T"):
        stdp.save_operating_points(str(tmp_path), {50: network.params})


def test_margin_readout_ranks_classes_when_no_neuron_spikes():
    # two neurons, thresholds out of reach: no spike, so counts tie every class; neuron 1 takes the
    # bright pixels' weight, so it ends nearer its threshold, and the margin readout picks its class
    params = StdpParams(n_inputs=4, n_neurons=2, timesteps=30, v_thresh=100.0)
    weights = np.array([[0.1, 3.0], [0.1, 3.0], [3.0, 0.1], [3.0, 0.1]], np.float32)
    network = StdpNetwork(params, weights, np.zeros(2, np.float32), np.array([0, 1]))
    record = network.respond(np.array([[1.0, 1.0, 0.0, 0.0]], np.float32))
    assert record.spike_counts.sum() == 0 and record.margins[0, 1] > record.margins[0, 0] + 1.0
    assert network.classify(stdp.activity(record, 0.0), 2)[0] == 0  # a tie: argmax takes the first
    assert network.classify(stdp.activity(record, 1e-3), 2)[0] == 1
    assert stdp.activity(record, 1e-3).min() == 0.0  # shifted: votes stay >= 0
    # the weight is chosen by the accuracy on given classes
    weight, accuracy = stdp.choose_margin_weight(network, record, [1], 2)
    assert weight > 0 and accuracy == 1.0


def test_input_mean_gives_a_faint_image_as_many_input_spikes_as_a_bright_one():
    # a faint image (mean pixel 0.05) and a bright one (0.4), scaled to a mean of 0.2: about the same
    # input spikes per image; unscaled, the faint one draws 8x fewer; a blank image stays blank
    faint, bright = np.full((1, 16), 0.05, np.float32), np.full((1, 16), 0.4, np.float32)
    images = np.concatenate([faint, bright, np.zeros((1, 16), np.float32)])
    params = StdpParams(n_inputs=16, n_neurons=2, timesteps=200, input_rate=0.5, v_thresh=1e3)
    network = StdpNetwork.create(params)
    raw = network.respond(images).op_counts[:, stdp_kernels.INPUT_SPIKES]
    scaled = network.run(images, False, 0, replace(params, input_mean=0.2)).op_counts[
        :, stdp_kernels.INPUT_SPIKES]
    assert raw[1] > 5 * raw[0] and raw[2] == 0
    assert abs(scaled[0] - scaled[1]) < 0.2 * scaled[1] and scaled[2] == 0
    np.testing.assert_allclose(stdp.input_pixels(images, replace(params, input_mean=0.2))[:2], 0.2, rtol=1e-6)
    np.testing.assert_array_equal(stdp.input_pixels(images, params), images)  # 0: as they are
