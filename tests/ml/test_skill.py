"""Player skill figures derived from confusion matrices."""

from __future__ import annotations

import numpy as np
import pytest

from ml.dawid_skene import fit_dawid_skene
from ml.skill import (
    accuracy,
    adversarial_probability,
    balanced_accuracy,
    mutual_information,
    player_skill,
    sensitivity_specificity,
    spammer_score,
)
from ml.synthetic_crowd import make_crowd

PERFECT = np.eye(3)
SPAMMER = np.tile([0.5, 0.3, 0.2], (3, 1))  # answers independent of the truth (rank one)
INVERTED = np.roll(np.eye(3), 1, axis=1)  # always a wrong class


def test_spammer_score_extremes_and_binary_formula() -> None:
    scores = spammer_score(np.stack([PERFECT, SPAMMER, INVERTED]))
    assert scores.tolist() == pytest.approx([1.0, 0.0, 1.0], abs=1e-15)
    sens, spec = 0.8, 0.7
    binary = np.array([[[spec, 1 - spec], [1 - sens, sens]]])
    assert spammer_score(binary)[0] == pytest.approx((sens + spec - 1) ** 2, abs=1e-15)


def test_accuracy_balanced_accuracy_and_information() -> None:
    priors = np.array([0.5, 0.25, 0.25])
    stack = np.stack([PERFECT, SPAMMER, INVERTED])
    assert accuracy(stack, priors).tolist() == pytest.approx([1.0, 0.375, 0.0])
    assert balanced_accuracy(stack).tolist() == pytest.approx([1.0, 1 / 3, 0.0])
    entropy = -(priors * np.log2(priors)).sum()  # 1.5 bits
    assert mutual_information(stack, priors).tolist() == pytest.approx([entropy, 0.0, entropy])


def test_sensitivity_specificity_one_vs_rest() -> None:
    confusion = np.array([[[0.9, 0.1], [0.2, 0.8]]])  # [true][given]
    sensitivity, specificity = sensitivity_specificity(confusion, np.array([0.6, 0.4]))
    assert sensitivity[0].tolist() == pytest.approx([0.9, 0.8])
    # class 1 vs rest: specificity = P(answer 0 | true 0) = 0.9; class 0: P(answer 1 | true 1)
    assert specificity[0].tolist() == pytest.approx([0.8, 0.9])


def test_adversarial_needs_evidence() -> None:
    # Expected counts [w, c, l]: 2 players always answer the wrong class; one with 300 answers,
    # one with 3; a third is honest.
    strong = np.array([[0.0, 100.0], [100.0, 0.0]]) * 1.5
    weak = np.array([[0.0, 2.0], [1.0, 0.0]])
    honest = np.array([[140.0, 10.0], [15.0, 135.0]])
    probability = adversarial_probability(np.stack([strong, weak, honest]))
    assert probability[0] > 0.999
    assert probability[1] < 0.95
    assert probability[2] < 1e-6


def test_skill_flags_spammers_and_adversaries_in_a_fitted_crowd() -> None:
    rng = np.random.default_rng(8)
    honest = np.tile(np.eye(3) * 0.75 + 0.25 / 3, (16, 1, 1))
    spammers = np.tile(SPAMMER, (2, 1, 1))
    adversaries = np.tile(INVERTED * 0.9 + 0.1 / 3, (2, 1, 1))
    crowd = make_crowd(
        rng,
        n_tasks=2000,
        n_workers=20,
        n_classes=3,
        labels_per_item=6,
        confusion=np.concatenate([honest, spammers, adversaries]),
    )
    result = fit_dawid_skene(
        crowd.tasks, crowd.workers, crowd.labels, n_tasks=2000, n_workers=20, n_classes=3
    )
    skill = player_skill(result)
    assert np.flatnonzero(skill.adversarial).tolist() == [18, 19]
    assert skill.spammer_score[16:18].max() < 0.01
    assert skill.spammer_score[:16].min() > 0.3
    assert skill.information_bits[16:18].max() < 0.01
    assert skill.n_answers.sum() == pytest.approx(crowd.tasks.size)
