"""A small CNN image classifier trained from scratch on consensus posteriors.

* Soft targets: the loss is the cross-entropy to each image's consensus posterior, weighted by
  the consensus confidence, so a 55/45 image pulls the model less than a 99/1 one.
* Calibration: one temperature fitted on gold images (LBFGS on the NLL, Guo et al. 2017).
* Epistemic uncertainty: MC-dropout (Gal & Ghahramani 2016) — ``T`` passes with dropout on,
  batch norm frozen; their mean is the prediction, the passes feed BALD.
* Reproducible: every random draw comes from the seed; ``n_threads`` caps torch's intra-op threads.
* Versioned checkpoints (state_dict + config + temperature + metadata) so training can resume.

This module imports torch; import it only in workers, never in a web process.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from numpy.typing import NDArray
from torch import nn

from ml.al.augment import AugmentConfig, augment_batch

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "tessera-al-cnn"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and training settings.

    Attributes
    ----------
    in_channels, n_classes : input channels (1 grey, 3 RGB) and classes.
    width : channels of the first block; blocks have ``width, 2 width, 4 width``.
    stem_stride : stride of the first convolution (2 halves the cost on 64 px and larger images).
    dropout : dropout probability before both dense layers (also the MC-dropout rate).
    epochs, batch_size, lr, weight_decay : AdamW with a cosine schedule.
    seed : seeds initialisation, shuffling, augmentation and dropout.
    n_threads : ``torch.set_num_threads`` during training and prediction (restored afterwards).
    augment : AugmentConfig, or None for no augmentation.
    """

    in_channels: int
    n_classes: int
    width: int = 16
    stem_stride: int = 1
    dropout: float = 0.3
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    n_threads: int = 2
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)


class SmallCNN(nn.Module):
    """Three conv blocks, global average pooling, two dense layers with dropout.

    Input ``(B, C, H, W)`` in [0, 1] of any size >= 8 px; output logits ``(B, K)``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        w = config.width

        def block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *block(config.in_channels, w, config.stem_stride),
            *block(w, w),
            nn.MaxPool2d(2),
            *block(w, 2 * w),
            nn.MaxPool2d(2),
            *block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.embed = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(4 * w, 4 * w), nn.ReLU(inplace=True)
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(4 * w, config.n_classes))

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, 4 width)`` (used for batch diversity)."""
        return self.embed(self.features(x - 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(x))


@dataclass
class TrainedModel:
    """A network with its config, calibration temperature and free-form metadata."""

    network: SmallCNN
    config: ModelConfig
    temperature: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """Model outputs for ``n`` images.

    Attributes
    ----------
    probs : (n, K) calibrated probabilities (mean over MC passes when ``T > 0``).
    mc_probs : (T, n, K) calibrated probabilities of each MC-dropout pass (``T = 0``: empty).
    logits : (n, K) deterministic (dropout off) logits before temperature scaling.
    embeddings : (n, d) deterministic penultimate features.
    """

    probs: NDArray[np.float64]
    mc_probs: NDArray[np.float64]
    logits: NDArray[np.float64]
    embeddings: NDArray[np.float64]


@contextlib.contextmanager
def _torch_threads(n_threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_tensor(images: NDArray[np.floating]) -> torch.Tensor:
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4:
        raise ValueError(f"images must be (n, C, H, W), got {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def build_model(config: ModelConfig) -> TrainedModel:
    """A freshly initialised (seeded) model."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = SmallCNN(config)
    return TrainedModel(network=network, config=config)


def train_classifier(
    images: NDArray[np.floating],
    soft_targets: NDArray[np.floating],
    weights: NDArray[np.floating] | None,
    config: ModelConfig,
    *,
    init: TrainedModel | None = None,
    epochs: int | None = None,
) -> TrainedModel:
    """Train on soft targets, weighted per image.

    Parameters
    ----------
    images : (n, C, H, W) float array in [0, 1]
    soft_targets : (n, K) array
        Consensus posteriors (rows sum to one); one-hot rows give ordinary cross-entropy.
    weights : (n,) array or None
        Per-image loss weights, e.g. consensus confidence; None = all ones.
    config : ModelConfig
    init : TrainedModel, optional
        Continue from this model (warm start / resume) instead of a fresh one.
    epochs : int, optional
        Overrides ``config.epochs`` (e.g. a few epochs when resuming).

    Returns
    -------
    TrainedModel with temperature 1 (fit it with :func:`fit_temperature` on gold).
    """
    x_all = _as_tensor(images)
    t_all = torch.as_tensor(np.asarray(soft_targets, dtype=np.float32))
    n = len(x_all)
    w_np = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    w_all = torch.as_tensor(w_np, dtype=torch.float32)
    if t_all.shape != (n, config.n_classes) or w_all.shape != (n,):
        raise ValueError("images (n, C, H, W), soft_targets (n, K) and weights (n,) must agree")
    n_epochs = config.epochs if epochs is None else epochs
    model = (
        TrainedModel(network=init.network, config=config, metadata=dict(init.metadata))
        if init is not None
        else build_model(config)
    )
    net = model.network
    if n == 0 or n_epochs == 0:
        return model
    generator = torch.Generator().manual_seed(config.seed + 7919 * model.metadata.get("runs", 0))
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(n / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=max(2, n_epochs * steps_per_epoch), pct_start=0.2
    )
    with _torch_threads(config.n_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1 + model.metadata.get("runs", 0))
        net.train()
        for epoch in range(n_epochs):
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, config.batch_size):
                idx = order[start : start + config.batch_size]
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                x = x_all[idx]
                if config.augment is not None:
                    x = augment_batch(x, config.augment, generator)
                log_p = F.log_softmax(net(x), dim=1)
                w = w_all[idx]
                loss = -(w * (t_all[idx] * log_p).sum(dim=1)).sum() / w.sum().clamp_min(1e-8)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.item() * len(idx)
            logger.debug("epoch %s/%s loss %.4f", epoch + 1, n_epochs, total / n)
    net.eval()
    model.metadata["runs"] = model.metadata.get("runs", 0) + 1
    model.metadata["n_train"] = n
    return model


def predict(
    model: TrainedModel,
    images: NDArray[np.floating],
    *,
    mc_passes: int = 0,
    batch_size: int = 256,
    seed: int = 0,
) -> Prediction:
    """Calibrated probabilities, MC-dropout passes and embeddings.

    Parameters
    ----------
    model : TrainedModel
    images : (n, C, H, W) float array in [0, 1]
    mc_passes : int
        ``T``; 0 = deterministic probabilities only.
    batch_size : int
    seed : int
        Seeds the dropout masks of the MC passes (the global torch RNG is left untouched).

    Returns
    -------
    Prediction (``probs`` is the mean of the MC passes when ``T > 0``).
    """
    net = model.network
    x_all = _as_tensor(images)
    temperature = model.temperature
    logits, embeddings, passes = [], [], []
    with (
        _torch_threads(model.config.n_threads),
        torch.no_grad(),
        torch.random.fork_rng(devices=[]),
    ):
        torch.manual_seed(seed)
        net.eval()
        for start in range(0, len(x_all), batch_size):
            x = x_all[start : start + batch_size]
            feats = net.features(x - 0.5)
            emb = net.embed(feats)
            embeddings.append(emb)
            logits.append(net.head(emb))
            if mc_passes:
                # Dropout on, batch norm in eval mode: reuse the conv features, redraw the masks.
                for module in (net.embed, net.head):
                    module.train()
                passes.append(
                    torch.stack(
                        [
                            F.softmax(net.head(net.embed(feats)) / temperature, dim=1)
                            for _ in range(mc_passes)
                        ]
                    )
                )
                net.eval()
    n_classes = model.config.n_classes
    logits_t = torch.cat(logits) if logits else torch.zeros(0, n_classes)
    emb_t = torch.cat(embeddings) if embeddings else torch.zeros(0, 4 * model.config.width)
    if mc_passes:
        mc = torch.cat(passes, dim=1).double().numpy()
        probs = mc.mean(axis=0)
    else:
        mc = np.zeros((0, len(x_all), n_classes))
        probs = F.softmax(logits_t / temperature, dim=1).double().numpy()
    return Prediction(
        probs=probs,
        mc_probs=mc,
        logits=logits_t.double().numpy(),
        embeddings=emb_t.double().numpy(),
    )


def fit_temperature(
    logits: NDArray[np.floating], labels: NDArray[np.integer], *, max_iter: int = 100
) -> float:
    """Temperature ``T`` minimising the NLL of ``softmax(logits / T)`` on gold labels.

    Optimises ``log T`` with LBFGS (so ``T > 0``), starting at ``T = 1``; the result is clipped to
    ``[0.05, 20]``. With no gold the temperature stays 1.

    Parameters
    ----------
    logits : (n, K) array
        Uncalibrated logits of the gold images.
    labels : (n,) int array
        Their gold classes.

    Returns
    -------
    float
    """
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if len(y) == 0:
        return 1.0
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(z / torch.exp(log_t), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(np.clip(math.exp(float(log_t.detach())), 0.05, 20.0))


def calibrate(
    model: TrainedModel, gold_images: NDArray[np.floating], gold_labels: NDArray[np.integer]
) -> TrainedModel:
    """Set ``model.temperature`` from gold images (in place) and return the model.

    With fewer than two gold classes the NLL is minimised by an arbitrarily sharp (or flat)
    temperature, so the temperature stays 1 and a warning is logged.
    """
    model.temperature = 1.0
    if len(np.unique(np.asarray(gold_labels))) < 2:
        logger.warning("gold has fewer than two classes: temperature left at 1")
        return model
    logits = predict(model, gold_images).logits
    with _torch_threads(model.config.n_threads):
        model.temperature = fit_temperature(logits, gold_labels)
    return model


def save_model(model: TrainedModel, path: str | Path, **metadata: Any) -> None:
    """Write a versioned checkpoint (state_dict, config, temperature, metadata).

    Extra keyword arguments (metrics, dataset version, class names...) are merged into the
    metadata; they must be plain Python values (numbers, strings, lists, dicts).
    """
    config = asdict(model.config)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config,
        "temperature": float(model.temperature),
        "metadata": {**model.metadata, **metadata},
        "state_dict": model.network.state_dict(),
    }
    torch.save(payload, Path(path))


def _config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    values = dict(data)
    augment = values.pop("augment", None)
    config = ModelConfig(**values)
    return replace(config, augment=None if augment is None else AugmentConfig(**augment))


def load_model(path: str | Path) -> TrainedModel:
    """Read a checkpoint written by :func:`save_model` (safe: ``weights_only=True``).

    Raises
    ------
    ValueError
        When the file is not a Tessera checkpoint or has an unknown version.
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"unsupported checkpoint version {payload.get('version')!r}")
    config = _config_from_dict(payload["config"])
    network = SmallCNN(config)
    network.load_state_dict(payload["state_dict"])
    network.eval()
    return TrainedModel(
        network=network,
        config=config,
        temperature=float(payload["temperature"]),
        metadata=dict(payload["metadata"]),
    )
