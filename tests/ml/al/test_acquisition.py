import math

import numpy as np
import pytest

from ml.al import acquisition as acq

SYMMETRIC_80 = np.array([[0.8, 0.2], [0.2, 0.8]])
H_80 = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))  # entropy of a (0.8, 0.2) row


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


def test_entropy_of_one_hot_and_uniform_rows():
    close(acq.entropy(np.array([[1.0, 0.0], [0.5, 0.5]])), [0.0, math.log(2)])
    close(acq.entropy(np.full((1, 4), 0.25)), [math.log(4)])


def test_margin_is_one_minus_gap_between_top_two():
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    close(acq.margin(probs), [0.5, 1.0, 0.0])


def test_margin_rejects_a_single_class():
    with pytest.raises(ValueError, match="two classes"):
        acq.margin(np.ones((3, 1)))


def test_bald_is_high_when_passes_disagree_and_zero_when_they_agree():
    mc = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])  # (T=2, n=2, K=2)
    close(acq.bald(mc), [math.log(2), 0.0])


def test_bald_rejects_two_dimensional_input():
    with pytest.raises(ValueError, match="3-d"):
        acq.bald(np.full((2, 2), 0.5))


def test_crowd_posterior_entropy_is_the_entropy_of_the_posterior():
    close(acq.crowd_posterior_entropy(np.array([[0.8, 0.2]])), [H_80])


def test_combine_evidence_uses_the_model_likelihood_ratio():
    crowd = np.array([[0.5, 0.5], [0.8, 0.2], [0.8, 0.2]])
    model = np.array([[0.8, 0.2], [0.8, 0.2], [0.5, 0.5]])
    q = acq.combine_evidence(crowd, model, np.array([0.5, 0.5]))
    close(q, [[0.8, 0.2], [16 / 17, 1 / 17], [0.8, 0.2]])


def test_combine_evidence_with_weight_zero_is_the_crowd():
    crowd = np.array([[0.8, 0.2]])
    q = acq.combine_evidence(crowd, np.array([[0.1, 0.9]]), np.array([0.5, 0.5]), model_weight=0)
    close(q, crowd)


def test_expected_error_reduction_hand_values():
    q = np.array([[0.5, 0.5], [0.9, 0.1]])
    # (0.4 + 0.4) - 0.5 for the coin flip; one label cannot flip a 0.9 belief: 0.72 + 0.18 - 0.9.
    close(acq.expected_error_reduction(q, SYMMETRIC_80), [0.3, 0.0])


def test_expected_consensus_gain_new_image_agreeing_and_disagreeing_model():
    q = np.array([[0.5, 0.5], [1.0, 0.0], [0.8, 0.2], [0.2, 0.8]])
    crowd = np.array([[0.5, 0.5], [0.5, 0.5], [0.8, 0.2], [0.8, 0.2]])
    # new image: 0.8 - 0.5 whatever the truth; crowd and model agree: a contradicting label only
    # makes a tie (0.64 + 0.16 - 0.8 = 0); model disagrees: 0.16 + 0.5 * (0.04 + 0.64) - 0.2.
    close(acq.expected_consensus_gain(q, crowd, SYMMETRIC_80), [0.3, 0.3, 0.0, 0.3])


def test_expected_consensus_gain_is_zero_for_a_spammer():
    spammer = np.array([[0.7, 0.3], [0.7, 0.3]])
    close(acq.expected_consensus_gain(np.array([[0.3, 0.7]]), np.array([[0.6, 0.4]]), spammer), [0])


def test_expected_information_gain_hand_values():
    q = np.array([[0.5, 0.5], [1.0, 0.0]])
    close(acq.expected_information_gain(q, SYMMETRIC_80), [math.log(2) - H_80, 0.0])
    close(acq.expected_information_gain(q[:1], np.eye(2)), [math.log(2)])


def test_expected_information_gain_is_zero_for_a_spammer():
    spammer = np.array([[0.7, 0.3], [0.7, 0.3]])
    close(acq.expected_information_gain(np.array([[0.5, 0.5]]), spammer), [0.0])


def test_value_functions_reject_a_wrong_confusion_shape():
    with pytest.raises(ValueError, match="confusion must be"):
        acq.expected_information_gain(np.array([[0.5, 0.5]]), np.eye(3))


def test_rarity_boost_hand_values():
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    # K f = (1.5, 0.5) → weights (2/3, 2).
    close(acq.rarity_boost(q, np.array([0.75, 0.25]), alpha=1.0), [2 / 3, 2.0, 4 / 3])
    close(acq.rarity_boost(q, np.array([0.98, 0.02]), alpha=0.5)[1], 5.0)
    close(acq.rarity_boost(q, np.array([0.75, 0.25]), alpha=0.0), [1.0, 1.0, 1.0])


def test_rarity_boost_rejects_zero_frequencies():
    with pytest.raises(ValueError, match="positive"):
        acq.rarity_boost(np.array([[1.0, 0.0]]), np.array([1.0, 0.0]), alpha=1.0)


def test_greedy_k_center_farthest_first():
    e = np.array([[0.0], [1.0], [10.0], [11.0], [5.0]])
    assert acq.greedy_k_center(e, 3).tolist() == [3, 0, 4]
    assert acq.greedy_k_center(e, 2, already_selected=np.array([4])).tolist() == [3, 0]
    assert acq.greedy_k_center(e, 9, candidates=np.array([1, 2])).tolist() == [1, 2]


def test_diverse_top_k_skips_a_near_duplicate():
    scores = np.array([1.0, 0.9, 0.5, -np.inf])
    emb = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.0, 1.0]])
    assert acq.diverse_top_k(scores, emb, 2, penalty=1.0).tolist() == [0, 2]
    assert acq.diverse_top_k(scores, emb, 2, penalty=0.0).tolist() == [0, 1]
    assert acq.diverse_top_k(scores, emb, 9, penalty=1.0).tolist() == [0, 2, 1]


def test_select_batch_splits_priority_and_exploration():
    priority = np.array([0.9, 0.8, 0.1, 0.2, 0.3, -np.inf, 0.05, 0.04])
    batch = acq.select_batch(priority, 4, rng=np.random.default_rng(0), exploration=0.5)
    assert batch[:2].tolist() == [0, 1]
    assert len(set(batch.tolist())) == 4
    assert set(batch[2:].tolist()) <= {2, 3, 4, 6, 7}
    again = acq.select_batch(priority, 4, rng=np.random.default_rng(0), exploration=0.5)
    assert batch.tolist() == again.tolist()


def test_select_batch_without_exploration_is_top_k():
    priority = np.array([0.1, 0.3, 0.2])
    assert acq.select_batch(priority, 2, rng=np.random.default_rng(0)).tolist() == [1, 2]


def test_combined_priority_hand_value_and_full_images():
    config = acq.PriorityConfig(value_weight=0.1, bald_weight=0.0, model_weight=1.0)
    score = acq.combined_priority(
        config,
        crowd_posteriors=np.array([[0.5, 0.5], [0.5, 0.5]]),
        class_priors=np.array([0.5, 0.5]),
        model_probs=np.array([[0.5, 0.5], [0.5, 0.5]]),
        mc_probs=None,
        n_labels=np.array([0, config.max_labels_per_image]),
        confusion=SYMMETRIC_80,
    )
    # gain 0.3 / (1 - 1/2) + 0.1 * EIG / log 2.
    close(score[0], 0.6 + 0.1 * (math.log(2) - H_80) / math.log(2))
    assert score[1] == -np.inf


def test_combined_priority_prefers_a_new_image_and_a_crowd_model_disagreement():
    config = acq.PriorityConfig(bald_weight=0.0)
    crowd = np.array([[0.5, 0.5], [0.8, 0.2], [0.8, 0.2]])  # new, labelled, labelled
    model = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])  # agrees on 1, disagrees on 2
    score = acq.combined_priority(
        config,
        crowd_posteriors=crowd,
        class_priors=np.array([0.5, 0.5]),
        model_probs=model,
        mc_probs=None,
        n_labels=np.array([0, 1, 1]),
        confusion=SYMMETRIC_80,
    )
    assert score[1] < score[2] < score[0]


def test_rare_class_preset_boosts_and_unknown_dataset_gets_default():
    assert acq.priority_config_for("isic2020").rarity_alpha == 0.5
    assert acq.priority_config_for("nope") == acq.PriorityConfig()
