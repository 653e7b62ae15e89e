"""Self-supervised QC detectors in PyTorch: train per dataset, score on intake, save and load.

One small CNN per dataset learns, from the dataset's own accepted images, which of the eight
orientations (four rotations, four mirrors) and which polarity (normal / inverted) an image was given
by a synthetic corruption. Its penultimate features of clean images are the dataset's reference for
the out-of-distribution score (k-nearest-neighbour cosine distance, or Mahalanobis distance).

A held-out calibration split of the same images decides which detectors are learnable for the
dataset (validation ROC AUC at least ``min_detector_auc``; e.g. mirrored dermoscopy looks as natural
as the original, so the flip detector switches itself off there) and sets each threshold at the
target false-positive rate on clean images.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import nn

from ml.qc.calibration import roc_auc, threshold_at_fpr
from ml.qc.scores import DETECTORS, DetectorConfig, QcScores, build_scores, decision_scores
from ml.qc.transforms import ORIENTATIONS, preprocess_batch

logger = logging.getLogger(__name__)

FORMAT: Final = "tessera-qc"
FORMAT_VERSION: Final = 1
OOD_METHODS: Final = ("knn", "mahalanobis")
_MAX_REFERENCE: Final = 5000


@dataclass(frozen=True)
class QcModelInfo:
    """Everything about a trained QC model except its weights (stored in the model file).

    Attributes
    ----------
    enabled : dict
        Detector name → whether it is on for this dataset.
    thresholds : dict
        Detector name → threshold on its decision score (flag when score > threshold).
    validation_auc : dict
        Detector name → ROC AUC on the held-out calibration split with synthetic corruptions
        (``"ood"`` has none: it is calibrated on clean images only).
    """

    format_version: int
    image_size: int
    width: int
    feature_dim: int
    seed: int
    epochs: int
    n_train: int
    n_calibration: int
    target_fpr: float
    min_detector_auc: float
    ood_method: str
    knn_k: int
    enabled: dict[str, bool]
    thresholds: dict[str, float]
    validation_auc: dict[str, float]
    train_seconds: float
    torch_version: str


class QcNet(nn.Module):
    """Four conv blocks (3×3 conv, batch norm, ReLU, 2×2 max-pool), a dense feature layer, two heads.

    The dense layer sees the flattened spatial map (no global pooling), so where things are in the
    picture (the heart on the left, the diaphragm at the bottom) is available to the heads.
    """

    def __init__(self, image_size: int, width: int = 16, feature_dim: int = 128) -> None:
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {image_size}")
        channels = [1, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.trunk = nn.Sequential(*layers)
        side = image_size // 16
        self.embed = nn.Linear(channels[-1] * side * side, feature_dim)
        self.dropout = nn.Dropout(0.2)
        self.orientation = nn.Linear(feature_dim, len(ORIENTATIONS))
        self.inversion = nn.Linear(feature_dim, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Map images in [0, 1] to outputs.

        Parameters
        ----------
        x : torch.Tensor, shape (N, 1, S, S), float32 in [0, 1]

        Returns
        -------
        orientation_logits : shape (N, 8)
        inversion_logits : shape (N,)
        features : shape (N, feature_dim), the penultimate layer before its ReLU
        """
        h = self.trunk(x - 0.5).flatten(1)
        features = self.embed(h)
        z = self.dropout(F.relu(features))
        return self.orientation(z), self.inversion(z).squeeze(1), features


def orient_tensor(x: torch.Tensor, name: str) -> torch.Tensor:
    """Apply one of ``ORIENTATIONS`` to a batch, matching ``ml.qc.transforms.apply_transform``.

    Parameters
    ----------
    x : torch.Tensor, shape (..., H, W)

    Returns
    -------
    torch.Tensor, shape (..., H, W) or (..., W, H)
    """
    h, w = x.dim() - 2, x.dim() - 1
    if name == "identity":
        return x
    if name == "rotate_cw_90":
        return torch.rot90(x, -1, dims=(h, w))
    if name == "rotate_180":
        return torch.rot90(x, 2, dims=(h, w))
    if name == "rotate_ccw_90":
        return torch.rot90(x, 1, dims=(h, w))
    if name == "flip_horizontal":
        return torch.flip(x, dims=(w,))
    if name == "flip_vertical":
        return torch.flip(x, dims=(h,))
    if name == "transpose":
        return x.transpose(h, w)
    if name == "antitranspose":
        return torch.flip(x, dims=(h, w)).transpose(h, w)
    raise ValueError(f"unknown orientation {name!r}")


def _augment(
    x: torch.Tensor, gen: torch.Generator, max_shift: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Corrupt a batch at random: orientation (uniform over 8), inversion (p = 1/2), plus jitter.

    The jitter (shift, gamma, contrast, brightness, noise) keeps the detectors from keying on the
    exact pixels of the training images; it never reverses polarity.

    Parameters
    ----------
    x : torch.Tensor, shape (B, 1, S, S), in [0, 1]

    Returns
    -------
    corrupted : shape (B, 1, S, S)
    orientation : shape (B,), int64 class ids
    inverted : shape (B,), float32 0/1
    """
    b, _, s, _ = x.shape
    if max_shift:
        padded = F.pad(x, (max_shift,) * 4, mode="replicate")
        offsets = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=gen)
        x = torch.stack(
            [padded[i, :, oy : oy + s, ox : ox + s] for i, (oy, ox) in enumerate(offsets.tolist())]
        )
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.8)
    contrast = 0.8 + 0.4 * torch.rand(b, 1, 1, 1, generator=gen)
    brightness = (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.2
    noise = torch.randn(x.shape, generator=gen) * 0.02 * torch.rand(b, 1, 1, 1, generator=gen)
    x = x.clamp(0.0, 1.0) ** gamma
    x = ((x - 0.5) * contrast + 0.5 + brightness + noise).clamp(0.0, 1.0)
    inverted = (torch.rand(b, generator=gen) < 0.5).float()
    x = torch.where(inverted.view(b, 1, 1, 1) > 0, 1.0 - x, x)
    orientation = torch.randint(0, len(ORIENTATIONS), (b,), generator=gen)
    out = torch.empty_like(x)
    for cls, name in enumerate(ORIENTATIONS):
        sel = orientation == cls
        if sel.any():
            out[sel] = orient_tensor(x[sel], name)
    return out, orientation, inverted


def _train_net(
    net: QcNet,
    x: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    gen: torch.Generator,
    max_shift: int,
) -> None:
    n = x.shape[0]
    steps = math.ceil(n / batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    net.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for step in range(steps):
            idx = perm[step * batch_size : (step + 1) * batch_size]
            if idx.numel() < 2:  # batch norm needs two samples
                continue
            xb, y_orient, y_inv = _augment(x[idx], gen, max_shift)
            orient_logits, inv_logits, _ = net(xb)
            loss = F.cross_entropy(orient_logits, y_orient) + F.binary_cross_entropy_with_logits(
                inv_logits, y_inv
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.numel()
        logger.debug("qc epoch %s/%s loss %.4f", epoch + 1, epochs, total / n)
    net.eval()


@torch.no_grad()
def _forward(net: QcNet, x: torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, ...]:
    net.eval()
    outs: list[tuple[np.ndarray, ...]] = []
    for start in range(0, x.shape[0], batch_size):
        o, i, f = net(x[start : start + batch_size])
        outs.append((o.double().numpy(), i.double().numpy(), f.double().numpy()))
    if not outs:
        return np.zeros((0, len(ORIENTATIONS))), np.zeros(0), np.zeros((0, net.embed.out_features))
    return tuple(np.concatenate([o[k] for o in outs]) for k in range(3))


def _ood_reference(features: np.ndarray, method: str) -> dict[str, torch.Tensor]:
    if method == "knn":
        norm = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        return {"features": torch.from_numpy(norm.astype(np.float32))}
    if method == "mahalanobis":
        mean = features.mean(axis=0)
        cov = np.cov(features, rowvar=False)
        d = cov.shape[0]
        # Shrink towards a scaled identity: the feature count is not small next to n.
        shrunk = 0.9 * cov + 0.1 * (np.trace(cov) / d) * np.eye(d)
        return {
            "mean": torch.from_numpy(mean),
            "precision": torch.from_numpy(np.linalg.inv(shrunk)),
        }
    raise ValueError(f"ood_method must be one of {OOD_METHODS}, got {method!r}")


def _ood_scores(
    features: np.ndarray, reference: dict[str, torch.Tensor], method: str, k: int
) -> np.ndarray:
    if method == "knn":
        ref = reference["features"].double().numpy()
        norm = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        dist = 1.0 - norm @ ref.T
        k = min(k, ref.shape[0])
        nearest = np.partition(dist, k - 1, axis=1)[:, :k]
        return np.asarray(nearest.mean(axis=1))
    mean = reference["mean"].numpy()
    precision = reference["precision"].numpy()
    diff = features - mean
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", diff, precision, diff), 0.0))


_VALIDATION_VARIANTS: Final = (
    ("clean", "identity"),
    ("rotation", "rotate_cw_90"),
    ("rotation", "rotate_180"),
    ("rotation", "rotate_ccw_90"),
    ("flip", "flip_horizontal"),
    ("flip", "flip_vertical"),
    ("inversion", "invert"),
)


def _validation_outputs(net: QcNet, x_cal: torch.Tensor) -> dict[str, tuple[np.ndarray, ...]]:
    """Network outputs on the calibration split, clean and with each synthetic corruption.

    Returns
    -------
    dict
        ``"clean"``, ``"rotation"`` (90/180/270 stacked), ``"flip"`` (horizontal, vertical),
        ``"inversion"`` → (orientation logits (M, 8), inversion logits (M,)).
    """
    variants = [
        1.0 - x_cal if name == "invert" else orient_tensor(x_cal, name).contiguous()
        for _, name in _VALIDATION_VARIANTS
    ]
    o, i, _ = _forward(net, torch.cat(variants))
    n = x_cal.shape[0]
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for k, (kind, _) in enumerate(_VALIDATION_VARIANTS):
        out.setdefault(kind, []).append((o[k * n : (k + 1) * n], i[k * n : (k + 1) * n]))
    return {
        kind: (np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]))
        for kind, parts in out.items()
    }


def _validation_scores(
    outputs: dict[str, tuple[np.ndarray, ...]], flip_enabled: bool
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(clean scores, corrupted scores) per geometric/intensity detector on the calibration split."""
    dec = {
        kind: decision_scores(o, i, flip_enabled=flip_enabled) for kind, (o, i) in outputs.items()
    }
    return {
        name: (dec["clean"][name], dec[name][name]) for name in ("rotation", "flip", "inversion")
    }


class QcModel:
    """A trained per-dataset QC model: score images, save, recalibrate.

    Build with :func:`train_qc` or :func:`load_qc`, not directly.
    """

    def __init__(
        self,
        net: QcNet,
        info: QcModelInfo,
        ood_reference: dict[str, torch.Tensor],
        calibration_scores: dict[str, np.ndarray],
    ) -> None:
        self._net = net.eval()
        self.info = info
        self._ood_reference = ood_reference
        self._calibration_scores = calibration_scores

    @property
    def config(self) -> DetectorConfig:
        """Enabled detectors and thresholds."""
        return DetectorConfig(
            enabled=dict(self.info.enabled), thresholds=dict(self.info.thresholds)
        )

    @property
    def calibration_scores(self) -> dict[str, np.ndarray]:
        """Decision scores of the clean calibration images per detector, shape (n_calibration,)."""
        return {k: v.copy() for k, v in self._calibration_scores.items()}

    def score(self, images: list[np.ndarray], *, batch_size: int = 256) -> list[QcScores]:
        """Score images of any size.

        Parameters
        ----------
        images : list of np.ndarray, each (H, W) or (H, W, 3) uint8
        batch_size : int
            Images per forward pass (memory bound only).

        Returns
        -------
        list of QcScores, one per image, in order
        """
        x = self._tensor(images)
        o, i, f = _forward(self._net, x, batch_size)
        ood = _ood_scores(f, self._ood_reference, self.info.ood_method, self.info.knn_k)
        return build_scores(o, i, ood, self.config)

    def decision_scores(self, images: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Raw decision scores of every detector, also the disabled ones (for diagnostics).

        Returns
        -------
        dict
            ``"rotation"``, ``"flip"``, ``"inversion"`` (log-odds) and ``"ood"`` → shape (N,).
        """
        o, i, f = _forward(self._net, self._tensor(images))
        out = decision_scores(o, i, flip_enabled=self.info.enabled["flip"])
        out["ood"] = _ood_scores(f, self._ood_reference, self.info.ood_method, self.info.knn_k)
        return out

    def features(self, images: list[np.ndarray]) -> np.ndarray:
        """Penultimate features, shape (N, feature_dim), float64 (for plots and diagnostics)."""
        return _forward(self._net, self._tensor(images))[2]

    def recalibrated(self, target_fpr: float) -> QcModel:
        """The same model with thresholds at another false-positive rate (no retraining)."""
        thresholds = {
            name: threshold_at_fpr(scores, target_fpr)
            for name, scores in self._calibration_scores.items()
        }
        info = replace(self.info, target_fpr=target_fpr, thresholds=thresholds)
        return QcModel(self._net, info, self._ood_reference, self._calibration_scores)

    def save(self, path: str | Path) -> None:
        """Write weights, metadata, thresholds and the OOD reference to one file."""
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "info": asdict(self.info),
            "state_dict": self._net.state_dict(),
            "ood_reference": self._ood_reference,
            "calibration_scores": {
                k: torch.from_numpy(v) for k, v in self._calibration_scores.items()
            },
        }
        torch.save(payload, Path(path))

    def _tensor(self, images: list[np.ndarray]) -> torch.Tensor:
        arr = preprocess_batch(list(images), self.info.image_size)
        return torch.from_numpy(arr).unsqueeze(1)


def load_qc(path: str | Path) -> QcModel:
    """Load a model written by :meth:`QcModel.save` (tensors and plain types only: no pickle code).

    Raises
    ------
    ValueError
        When the file is not a Tessera QC model or its format version is unknown.
    """
    payload: Any = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a Tessera QC model file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has QC model format {payload.get('format_version')}, expected {FORMAT_VERSION}"
        )
    info = QcModelInfo(**payload["info"])
    net = QcNet(info.image_size, info.width, info.feature_dim)
    net.load_state_dict(payload["state_dict"])
    calibration = {k: v.numpy() for k, v in payload["calibration_scores"].items()}
    return QcModel(net, info, payload["ood_reference"], calibration)


def _calibration_split(
    n: int, groups: list[str] | None, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (calibration, fit), both sorted; whole groups go to one side."""
    want = max(5, round(fraction * n))
    if groups is None:
        order = rng.permutation(n)
        return np.sort(order[:want]), np.sort(order[want:])
    if len(groups) != n:
        raise ValueError(f"got {len(groups)} groups for {n} images")
    keys = np.asarray([str(g) for g in groups])
    unique = np.unique(keys)
    taken: set[str] = set()
    count = 0
    for g in unique[rng.permutation(len(unique))]:
        if count >= want:
            break
        taken.add(str(g))
        count += int(np.sum(keys == g))
    is_cal = np.isin(keys, list(taken))
    if is_cal.all():
        raise ValueError("calibration split would take every group; need more groups")
    return np.flatnonzero(is_cal), np.flatnonzero(~is_cal)


def train_qc(
    images: list[np.ndarray],
    *,
    groups: list[str] | None = None,
    seed: int = 0,
    epochs: int = 30,
    image_size: int = 64,
    width: int = 16,
    feature_dim: int = 128,
    batch_size: int = 64,
    lr: float = 3e-3,
    max_shift: int = 4,
    calibration_fraction: float = 0.2,
    target_fpr: float = 0.01,
    min_detector_auc: float = 0.75,
    ood_method: str = "knn",
    knn_k: int = 5,
) -> QcModel:
    """Train the QC detectors on a dataset's accepted images.

    Uses the threads ``torch.get_num_threads()`` allows; deterministic for a given seed and
    thread count. Global random state is left untouched.

    Parameters
    ----------
    images : list of np.ndarray, each (H, W) or (H, W, 3) uint8, sizes may differ
        Accepted (correctly oriented, normal polarity) images of one dataset; at least 10.
    groups : list of str, optional
        Patient/donor of each image: the calibration split then holds whole groups, so the
        thresholds are set on people the network has not seen.
    seed : int
    epochs : int
        Passes over the training split, each image with a fresh random corruption.
    image_size : int
        Side of the network input (multiple of 16).
    width, feature_dim : int
        Channels of the first conv block; size of the feature layer.
    batch_size, lr, max_shift : int, float, int
        Optimiser batch, one-cycle peak learning rate, random shift in pixels.
    calibration_fraction : float
        Share of images held out to decide enabled detectors and calibrate thresholds.
    target_fpr : float
        False-positive rate of each detector's threshold on clean calibration images.
    min_detector_auc : float
        A detector whose validation AUC falls below this is disabled ("near chance": the
        corruption is not visible in this dataset, e.g. mirrored skin lesions).
    ood_method : {"knn", "mahalanobis"}
    knn_k : int
        Neighbours averaged by the kNN OOD score.

    Returns
    -------
    QcModel
    """
    if ood_method not in OOD_METHODS:
        raise ValueError(f"ood_method must be one of {OOD_METHODS}, got {ood_method!r}")
    if len(images) < 10:
        raise ValueError(f"need at least 10 images to train QC detectors, got {len(images)}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    cal_idx, train_idx = _calibration_split(len(images), groups, calibration_fraction, rng)
    n_cal = len(cal_idx)
    x_all = torch.from_numpy(preprocess_batch(list(images), image_size)).unsqueeze(1)
    x_train, x_cal = x_all[torch.from_numpy(train_idx)], x_all[torch.from_numpy(cal_idx)]

    # Initialisation and dropout draw from the global generator: seed it, then restore it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = QcNet(image_size, width, feature_dim)
        gen = torch.Generator().manual_seed(seed)
        _train_net(
            net, x_train, epochs=epochs, batch_size=batch_size, lr=lr, gen=gen, max_shift=max_shift
        )

    outputs = _validation_outputs(net, x_cal)
    flip_auc = roc_auc(*_validation_scores(outputs, flip_enabled=True)["flip"])
    flip_on = flip_auc >= min_detector_auc
    val = _validation_scores(outputs, flip_enabled=flip_on)
    auc = {name: roc_auc(*val[name]) for name in ("rotation", "inversion")}
    auc["flip"] = flip_auc
    enabled = {name: auc[name] >= min_detector_auc for name in ("rotation", "flip", "inversion")}
    enabled["ood"] = True

    x_ref = x_train
    if len(train_idx) > _MAX_REFERENCE:
        keep = np.sort(rng.choice(len(train_idx), _MAX_REFERENCE, replace=False))
        x_ref = x_train[torch.from_numpy(keep)]
    reference = _ood_reference(_forward(net, x_ref)[2], ood_method)
    cal_features = _forward(net, x_cal)[2]
    calibration = {name: val[name][0] for name in ("rotation", "flip", "inversion")}
    calibration["ood"] = _ood_scores(cal_features, reference, ood_method, knn_k)
    thresholds = {name: threshold_at_fpr(calibration[name], target_fpr) for name in DETECTORS}
    if n_cal * target_fpr < 1:
        # The threshold is then the largest clean calibration score; on new clean images
        # expect a false-positive rate near 1 / (n_cal + 1), not the target.
        logger.warning(
            "qc: %s calibration images cannot resolve a %.3g false-positive rate (need >= %d)",
            n_cal,
            target_fpr,
            math.ceil(1 / target_fpr),
        )

    info = QcModelInfo(
        format_version=FORMAT_VERSION,
        image_size=image_size,
        width=width,
        feature_dim=feature_dim,
        seed=seed,
        epochs=epochs,
        n_train=len(train_idx),
        n_calibration=n_cal,
        target_fpr=target_fpr,
        min_detector_auc=min_detector_auc,
        ood_method=ood_method,
        knn_k=knn_k,
        enabled=enabled,
        thresholds=thresholds,
        validation_auc=auc,
        train_seconds=time.perf_counter() - started,
        torch_version=str(torch.__version__),
    )
    for name in ("rotation", "flip", "inversion"):
        if not enabled[name]:
            logger.info(
                "qc detector %s disabled: validation AUC %.3f < %.2f",
                name,
                auc[name],
                min_detector_auc,
            )
    return QcModel(net, info, reference, calibration)
