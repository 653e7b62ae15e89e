"""Intake quality control: learned detectors for rotated, flipped, inverted and out-of-place images.

``import ml.qc`` is cheap (numpy only); the PyTorch parts (:func:`train_qc`, :func:`load_qc`,
:class:`QcModel`) are imported on first use, so a web process that only reads stored scores never
loads torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml.qc.calibration import detection_stats, roc_auc, threshold_at_fpr
from ml.qc.scores import QcFlag, QcScores
from ml.qc.transforms import FIX_TEXT, ORIENTATIONS, apply_transform, invert, preprocess

if TYPE_CHECKING:
    from ml.qc.model import QcModel, load_qc, train_qc

__all__ = [
    "FIX_TEXT",
    "ORIENTATIONS",
    "QcFlag",
    "QcModel",
    "QcScores",
    "apply_transform",
    "detection_stats",
    "invert",
    "load_qc",
    "preprocess",
    "roc_auc",
    "threshold_at_fpr",
    "train_qc",
]

_LAZY = {"QcModel", "load_qc", "train_qc"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ml.qc import model

        return getattr(model, name)
    raise AttributeError(f"module 'ml.qc' has no attribute {name!r}")
