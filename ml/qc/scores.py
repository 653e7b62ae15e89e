"""Per-image QC scores and flags, computed from the detector outputs (numpy only).

Decision scores are log-odds (never saturate, unlike probabilities in floating point), so a
threshold calibrated at a 0 % false-positive rate still leaves room above it. The probabilities in
:class:`QcScores` are for people to read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
from scipy.special import expit, logsumexp

from ml.qc.transforms import (
    FIX_TEXT,
    FLIP_AXIS,
    INVERSE,
    MIRROR_PARTNER,
    ORIENTATIONS,
    REFLECTIONS,
    ROTATION_DEG_CW,
    ROTATIONS,
)

DETECTORS: Final[tuple[str, ...]] = ("rotation", "flip", "inversion", "ood")

_IDX: Final[dict[str, int]] = {name: i for i, name in enumerate(ORIENTATIONS)}


@dataclass(frozen=True)
class QcFlag:
    """One reason to send an image to the review queue.

    Attributes
    ----------
    detector : str
        ``"rotation"``, ``"flip"``, ``"inversion"`` or ``"ood"``.
    score, threshold : float
        The decision score (log-odds; the OOD distance for ``"ood"``) and the dataset's threshold;
        the image is flagged because ``score > threshold``.
    reason : str
        What a reviewer reads.
    fix : str or None
        Name of the transform that undoes the problem (``ml.qc.transforms.apply_transform``), or
        None when nothing can be fixed automatically (OOD: accept or reject).
    fix_text : str
        The suggested action in words.
    """

    detector: str
    score: float
    threshold: float
    reason: str
    fix: str | None
    fix_text: str


@dataclass(frozen=True)
class QcScores:
    """QC outcome of one image. ``None`` marks a detector disabled for this dataset.

    Attributes
    ----------
    p_rotated : float or None
        Probability that the image is turned by 90°, 180° or 270°.
    rotation_deg_cw : int
        The most likely clockwise rotation among 90/180/270 (reported even when not flagged;
        0 when the rotation detector is disabled).
    fix_angle_cw : int
        Clockwise angle that undoes ``rotation_deg_cw``: ``(360 - rotation_deg_cw) % 360``.
    p_flipped : float or None
        Probability that the image is mirrored (across any of the four axes).
    flip_axis : str or None
        Most likely mirror axis: ``horizontal`` (left↔right), ``vertical``, ``diagonal`` or
        ``antidiagonal``; None when the flip detector is disabled.
    p_inverted : float or None
        Probability that the intensities are inverted.
    ood_score : float
        Distance to the dataset in the network's feature space (higher = less typical).
    rotated_logit, flipped_logit, inverted_logit : float or None
        The log-odds the thresholds apply to.
    flags : tuple of QcFlag
        Empty when the image passes. A rotation and a flip flag may both fire on an ambiguous
        image, but the eight orientations are exclusive, so at most one of their fixes applies.
    """

    p_rotated: float | None
    rotation_deg_cw: int
    fix_angle_cw: int
    p_flipped: float | None
    flip_axis: str | None
    p_inverted: float | None
    ood_score: float
    rotated_logit: float | None
    flipped_logit: float | None
    inverted_logit: float | None
    flags: tuple[QcFlag, ...]

    @property
    def flagged(self) -> bool:
        """True when the image should go to the review queue."""
        return bool(self.flags)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (for a ``JSONField`` or an API response)."""
        return asdict(self)


@dataclass(frozen=True)
class DetectorConfig:
    """Which detectors are on for a dataset and their thresholds on the decision scores."""

    enabled: dict[str, bool]
    thresholds: dict[str, float]


def rotation_classes(flip_enabled: bool) -> tuple[list[int], list[list[int]]]:
    """Orientation classes counted as "rotated", and the classes behind each of 90/180/270.

    Where handedness cannot be learned (flip detector off), an orientation and its left↔right
    mirror look alike, so both count for the same rotation.

    Returns
    -------
    rotated : list of int
        Class ids whose probability mass is p_rotated.
    per_angle : list of list of int, length 3
        Class ids for 90°, 180°, 270° clockwise.
    """
    per_angle = []
    for name in ROTATIONS:
        ids = [_IDX[name]]
        if not flip_enabled:
            ids.append(_IDX[MIRROR_PARTNER[name]])
        per_angle.append(ids)
    return [i for ids in per_angle for i in ids], per_angle


def decision_scores(
    orientation_logits: np.ndarray, inversion_logits: np.ndarray, *, flip_enabled: bool
) -> dict[str, np.ndarray]:
    """Log-odds of each geometric/intensity detector.

    Parameters
    ----------
    orientation_logits : np.ndarray, shape (N, 8)
        Unnormalised scores of the classes in ``ml.qc.transforms.ORIENTATIONS``.
    inversion_logits : np.ndarray, shape (N,)
    flip_enabled : bool
        Whether rotation keeps mirrored orientations apart (see :func:`rotation_classes`).

    Returns
    -------
    dict
        ``"rotation"``, ``"flip"``, ``"inversion"`` → np.ndarray of shape (N,), float64.
    """
    logits = np.asarray(orientation_logits, dtype=np.float64)
    rotated, _ = rotation_classes(flip_enabled)
    upright = [i for i in range(len(ORIENTATIONS)) if i not in rotated]
    mirrored = [_IDX[name] for name in REFLECTIONS]
    proper = [i for i in range(len(ORIENTATIONS)) if i not in mirrored]
    return {
        "rotation": logsumexp(logits[:, rotated], axis=1) - logsumexp(logits[:, upright], axis=1),
        "flip": logsumexp(logits[:, mirrored], axis=1) - logsumexp(logits[:, proper], axis=1),
        "inversion": np.asarray(inversion_logits, dtype=np.float64).reshape(-1),
    }


def build_scores(
    orientation_logits: np.ndarray,
    inversion_logits: np.ndarray,
    ood_scores: np.ndarray,
    config: DetectorConfig,
) -> list[QcScores]:
    """Turn detector outputs into one :class:`QcScores` per image.

    Parameters
    ----------
    orientation_logits : np.ndarray, shape (N, 8)
    inversion_logits : np.ndarray, shape (N,)
    ood_scores : np.ndarray, shape (N,)
    config : DetectorConfig

    Returns
    -------
    list of QcScores, length N
    """
    logits = np.asarray(orientation_logits, dtype=np.float64)
    flip_on = config.enabled["flip"]
    dec = decision_scores(logits, inversion_logits, flip_enabled=flip_on)
    _, per_angle = rotation_classes(flip_on)
    angle_mass = np.stack([logsumexp(logits[:, ids], axis=1) for ids in per_angle], axis=1)
    best_angle = np.argmax(angle_mass, axis=1)
    reflection_ids = [_IDX[name] for name in REFLECTIONS]
    best_reflection = np.argmax(logits[:, reflection_ids], axis=1)
    ood = np.asarray(ood_scores, dtype=np.float64).reshape(-1)

    out = []
    for i in range(logits.shape[0]):
        rotation = ROTATIONS[int(best_angle[i])]
        reflection = REFLECTIONS[int(best_reflection[i])]
        values = {name: float(dec[name][i]) for name in ("rotation", "flip", "inversion")}
        values["ood"] = float(ood[i])
        flags = tuple(
            _flag(name, values[name], config.thresholds[name], rotation, reflection)
            for name in DETECTORS
            if config.enabled[name] and values[name] > config.thresholds[name]
        )
        deg = ROTATION_DEG_CW[rotation] if config.enabled["rotation"] else 0
        out.append(
            QcScores(
                p_rotated=_prob(values["rotation"], config.enabled["rotation"]),
                rotation_deg_cw=deg,
                fix_angle_cw=(360 - deg) % 360,
                p_flipped=_prob(values["flip"], flip_on),
                flip_axis=FLIP_AXIS[reflection] if flip_on else None,
                p_inverted=_prob(values["inversion"], config.enabled["inversion"]),
                ood_score=values["ood"],
                rotated_logit=values["rotation"] if config.enabled["rotation"] else None,
                flipped_logit=values["flip"] if flip_on else None,
                inverted_logit=values["inversion"] if config.enabled["inversion"] else None,
                flags=flags,
            )
        )
    return out


def _prob(logit: float, enabled: bool) -> float | None:
    return float(expit(logit)) if enabled else None


def _flag(detector: str, score: float, threshold: float, rotation: str, reflection: str) -> QcFlag:
    if detector == "rotation":
        fix = INVERSE[rotation]
        deg = ROTATION_DEG_CW[rotation]
        reason = f"looks rotated {deg}° clockwise (p={expit(score):.3f})"
    elif detector == "flip":
        fix = INVERSE[reflection]
        reason = f"looks mirrored across the {FLIP_AXIS[reflection]} axis (p={expit(score):.3f})"
    elif detector == "inversion":
        fix = "invert"
        reason = f"intensities look inverted (p={expit(score):.3f})"
    else:
        ratio = score / threshold if threshold > 0 else float("inf")
        reason = (
            f"does not look like this dataset ({ratio:.1f}× the largest distance seen on its "
            f"clean images; {score:.3g} > {threshold:.3g}): wrong body part, wrong modality or junk?"
        )
        return QcFlag(
            detector, score, threshold, reason, None, "review: reject if it does not belong"
        )
    return QcFlag(detector, score, threshold, reason, fix, FIX_TEXT[fix])
