"""CNN training speed and quality on real images: seconds, test accuracy, ECE, NLL before/after
temperature scaling. Usage::

    python bench/al_train_speed.py [--threads 2] [--epochs 15]

PneumoniaMNIST (28 px): 1,000 train images, 60 gold (val) for temperature scaling, the 468 test
images. Kermany chest X-rays (64 px, first stride 2): a patient-grouped 70/30 split, 60 gold images
taken from the training part.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.al.data import group_split, load_image_dataset  # noqa: E402
from ml.al.metrics import (  # noqa: E402
    accuracy,
    expected_calibration_error,
    negative_log_likelihood,
)
from ml.al.model import ModelConfig, calibrate, predict, train_classifier  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--datasets", default="pneumoniamnist,chest_xray_kermany_subset")
    args = parser.parse_args()
    print(
        "dataset,n_train,image,epochs,threads,train_s,cpu_s,test_acc,ece_T1,ece_cal,nll_T1,nll_cal,T"
    )
    for name in args.datasets.split(","):
        data = load_image_dataset(name)
        rng = np.random.default_rng(0)
        if name == "pneumoniamnist":
            train = rng.choice(np.flatnonzero(data.splits == "train"), 1000, replace=False)
            gold = rng.choice(np.flatnonzero(data.splits == "val"), 60, replace=False)
            test = np.flatnonzero(data.splits == "test")
        else:
            test, rest = group_split(data.groups, (0.3, 1.0), rng)
            rest = rng.permutation(rest)  # labels.csv is sorted by class
            gold, train = np.sort(rest[:60]), np.sort(rest[60:])
        config = ModelConfig(
            in_channels=data.images.shape[1],
            n_classes=data.n_classes,
            stem_stride=2 if data.images.shape[-1] >= 64 else 1,
            epochs=args.epochs,
            n_threads=args.threads,
        )
        wall, cpu = time.perf_counter(), time.process_time()
        model = train_classifier(
            data.images[train], np.eye(data.n_classes)[data.labels[train]], None, config
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        raw = predict(model, data.images[test]).probs
        calibrate(model, data.images[gold], data.labels[gold])
        cal = predict(model, data.images[test]).probs
        y = data.labels[test]
        print(
            f"{name},{len(train)},{data.images.shape[-1]}px,{args.epochs},{args.threads},"
            f"{wall:.1f},{cpu:.1f},{accuracy(cal, y):.3f},"
            f"{expected_calibration_error(raw, y):.3f},{expected_calibration_error(cal, y):.3f},"
            f"{negative_log_likelihood(raw, y):.3f},{negative_log_likelihood(cal, y):.3f},"
            f"{model.temperature:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
