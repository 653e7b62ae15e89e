import dataclasses

import numpy as np
import pytest
import torch

from ml.al.augment import AugmentConfig, augment_batch
from ml.al.data import load_image_dataset
from ml.al.metrics import accuracy, negative_log_likelihood
from ml.al.model import (
    ModelConfig,
    build_model,
    calibrate,
    fit_temperature,
    load_model,
    predict,
    save_model,
    train_classifier,
)

NO_AUGMENT = AugmentConfig(
    hflip=0.0,
    max_rotation_deg=0.0,
    max_zoom=0.0,
    max_translate=0.0,
    brightness=0.0,
    contrast=0.0,
    gamma=0.0,
)


@pytest.fixture(scope="module")
def pneumonia():
    """A few dozen real PneumoniaMNIST images (fails loudly when the data is missing)."""
    data = load_image_dataset("pneumoniamnist")
    rng = np.random.default_rng(0)
    train = rng.choice(np.flatnonzero(data.splits == "train"), 64, replace=False)
    val = rng.choice(np.flatnonzero(data.splits == "val"), 40, replace=False)
    test = rng.choice(np.flatnonzero(data.splits == "test"), 100, replace=False)
    return data, train, val, test


def small_config(**overrides):
    values = {
        "in_channels": 1,
        "n_classes": 2,
        "width": 8,
        "epochs": 25,
        "batch_size": 16,
        "n_threads": 1,
    }
    return ModelConfig(**{**values, **overrides})


def test_end_to_end_on_real_images_learns_calibrates_and_round_trips(pneumonia, tmp_path):
    data, train, val, test = pneumonia
    onehot = np.eye(2)[data.labels[train]]
    # Soft targets: half of the images get a hesitant posterior and a low weight.
    soft = np.where(np.arange(64)[:, None] % 2 == 0, onehot, 0.3 + 0.4 * onehot)
    model = train_classifier(data.images[train], soft, soft.max(axis=1), small_config())
    calibrate(model, data.images[val], data.labels[val])
    pred = predict(model, data.images[test], mc_passes=5, seed=3)

    assert accuracy(pred.probs, data.labels[test]) >= 0.7  # chance is 0.5 (balanced split)
    assert pred.probs.shape == (100, 2) and pred.mc_probs.shape == (5, 100, 2)
    assert pred.embeddings.shape == (100, 32)
    np.testing.assert_allclose(pred.probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(pred.probs, pred.mc_probs.mean(axis=0), atol=1e-12)
    assert pred.mc_probs.std(axis=0).max() > 0  # dropout is on in the MC passes
    assert 0.05 <= model.temperature <= 20.0

    path = tmp_path / "model.pt"
    save_model(model, path, accuracy=0.9, classes=["normal", "pneumonia"])
    loaded = load_model(path)
    again = predict(loaded, data.images[test], mc_passes=5, seed=3)
    np.testing.assert_array_equal(again.mc_probs, pred.mc_probs)
    assert loaded.temperature == model.temperature
    assert loaded.config == model.config
    assert loaded.metadata["classes"] == ["normal", "pneumonia"]
    assert loaded.metadata["runs"] == 1


def test_training_is_deterministic_with_a_seed(pneumonia):
    data, train, _, test = pneumonia
    targets = np.eye(2)[data.labels[train]]
    config = small_config(epochs=2)
    runs = [train_classifier(data.images[train], targets, None, config) for _ in range(2)]
    other = train_classifier(data.images[train], targets, None, dataclasses.replace(config, seed=1))
    states = [r.network.state_dict() for r in (*runs, other)]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_training_restores_the_thread_count(pneumonia):
    data, train, _, _ = pneumonia
    before = torch.get_num_threads()
    config = small_config(epochs=1, n_threads=1)
    train_classifier(data.images[train[:8]], np.eye(2)[data.labels[train[:8]]], None, config)
    assert torch.get_num_threads() == before


def test_resume_continues_from_the_given_model(pneumonia):
    data, train, _, _ = pneumonia
    targets = np.eye(2)[data.labels[train]]
    config = small_config(epochs=1)
    first = train_classifier(data.images[train], targets, None, config)
    weights_before = first.network.features[0].weight.detach().clone()
    second = train_classifier(data.images[train], targets, None, config, init=first, epochs=1)
    assert second.metadata["runs"] == 2
    assert second.network is first.network
    assert not torch.equal(weights_before, second.network.features[0].weight)


def test_load_rejects_foreign_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, path)
    with pytest.raises(ValueError, match="not a tessera-al-cnn checkpoint"):
        load_model(path)


def test_temperature_scaling_reduces_nll_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(2000, 3)) * 1.5
    p = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=row) for row in p])
    overconfident = 4.0 * true_logits
    temperature = fit_temperature(overconfident, labels)

    def nll(logits):
        z = logits - logits.max(axis=1, keepdims=True)
        return negative_log_likelihood(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), labels)

    assert 3.4 < temperature < 4.6
    assert nll(overconfident / temperature) < nll(overconfident) - 0.5
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0


def test_calibration_needs_two_gold_classes(pneumonia):
    data, _, val, _ = pneumonia
    model = build_model(small_config())
    normal = val[data.labels[val] == 0]
    assert calibrate(model, data.images[normal], data.labels[normal]).temperature == 1.0


def test_augmentation_identity_flip_range_and_determinism():
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    same = augment_batch(x, NO_AUGMENT, torch.Generator().manual_seed(1))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    flipped = augment_batch(
        x, dataclasses.replace(NO_AUGMENT, hflip=1.0), torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-5, rtol=0)
    config = AugmentConfig(vflip=0.5, rot90=True)
    a = augment_batch(x, config, torch.Generator().manual_seed(5))
    b = augment_batch(x, config, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert a.shape == x.shape and float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert not torch.allclose(a, x)
