"""Benchmark the intake QC detectors (ml.qc) on real public images with synthetic corruptions.

Per dataset: split by patient/lesion into train (80 %) and test (20 %); ``train_qc`` sees only the
train part (and holds out its own calibration split for thresholds). On the unseen test images:

- rotation: each image turned by a random one of 90/180/270° (1 corrupted per clean image);
- flip: each image mirrored left-right or top-bottom at random (1:1);
- inversion: each image inverted (1:1);
- OOD: the dataset's clean test images against the other datasets, brain MR DICOM slices and
  generated junk (noise, blank, gradients, checkerboards).

Prints ROC AUC, and precision / recall / false-positive rate at the calibrated threshold.

    /work/main/.venv/bin/python bench/qc_detectors.py [--epochs 20 --threads 2 --target-fpr 0.01]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.qc import apply_transform, detection_stats, roc_auc  # noqa: E402
from ml.qc.datasets import (  # noqa: E402
    ImageSet,
    load_chest_xrays,
    load_ham10000,
    load_isic,
    load_mr_slices,
    load_pneumoniamnist,
)

ROTS = ("rotate_cw_90", "rotate_180", "rotate_ccw_90")
DEG = {"rotate_cw_90": 90, "rotate_180": 180, "rotate_ccw_90": 270}
FLIPS = {"flip_horizontal": "horizontal", "flip_vertical": "vertical"}
MAX_OOD = 300


def group_split(ds: ImageSet, test_fraction: float, seed: int) -> tuple[list, list, list]:
    """(train images, test images, train groups), no patient/lesion on both sides."""
    groups = np.array(ds.groups)
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    test_groups = set(rng.choice(unique, round(test_fraction * len(unique)), replace=False))
    pairs = list(zip(ds.images, groups, strict=True))
    train = [im for im, g in pairs if g not in test_groups]
    test = [im for im, g in pairs if g in test_groups]
    return train, test, [str(g) for g in groups if g not in test_groups]


def junk_images(n: int, seed: int) -> list[np.ndarray]:
    """Noise, blank frames, gradients and checkerboards of random sizes (uint8)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(64, 512, size=2))
        kind = i % 7
        if kind == 0:
            im = rng.integers(0, 256, (h, w), dtype=np.uint8)
        elif kind == 1:
            im = np.clip(rng.normal(128, 40, (h, w)), 0, 255).astype(np.uint8)
        elif kind == 2:
            im = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif kind == 3:
            im = np.full((h, w), int(rng.integers(0, 256)), dtype=np.uint8)
        elif kind == 4:
            im = np.full((h, w), 0 if rng.random() < 0.5 else 255, dtype=np.uint8)
        elif kind == 5:
            ramp = np.linspace(0, 255, w)[None, :] * np.ones((h, 1))
            im = (ramp if rng.random() < 0.5 else ramp[:, ::-1]).astype(np.uint8)
        else:
            cell = int(rng.integers(4, 32))
            yy, xx = np.indices((h, w)) // cell
            im = (((yy + xx) % 2) * 255).astype(np.uint8)
        out.append(im)
    return out


def fmt(x: float) -> str:
    return f"{x:.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-fpr", type=float, default=0.01)
    parser.add_argument("--ood-method", choices=("knn", "mahalanobis"), default="knn")
    parser.add_argument(
        "--datasets",
        default="chest,ham10000,isic,pneumoniamnist",
        help="comma-separated subset of chest,ham10000,isic,pneumoniamnist",
    )
    parser.add_argument("--save-dir", default="", help="write each trained model file here")
    args = parser.parse_args()

    import torch

    from ml.qc.model import train_qc

    torch.set_num_threads(args.threads)
    model_name = subprocess.run(
        ["lscpu"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in model_name if "Model name" in ln), "?")
    print(
        f"# machine: {os.cpu_count()} cores, {cpu}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); python {platform.python_version()}; "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    print(f"# command: {' '.join(sys.argv)}")

    t0 = time.perf_counter()
    sets: dict[str, tuple[list, list, list, int]] = {}
    wanted = args.datasets.split(",")
    if "chest" in wanted:
        sets["chest"] = (*group_split(load_chest_xrays(), 0.2, args.seed), 64)
    if "ham10000" in wanted:
        sets["ham10000"] = (*group_split(load_ham10000(), 0.2, args.seed), 64)
    if "isic" in wanted:
        sets["isic"] = (*group_split(load_isic(), 0.2, args.seed), 64)
    if "pneumoniamnist" in wanted:
        pm_train, pm_test = load_pneumoniamnist("train"), load_pneumoniamnist("test")
        sets["pneumoniamnist"] = (pm_train.images, pm_test.images, pm_train.groups, 32)
    mr = load_mr_slices().images
    junk = junk_images(140, args.seed)
    print(f"# data loaded in {time.perf_counter() - t0:.1f} s")

    rng = np.random.default_rng(args.seed)
    summary, detector_rows, ood_rows = [], [], []
    for name, (train, test, train_groups, size) in sets.items():
        t = time.perf_counter()
        model = train_qc(
            train,
            groups=train_groups,
            seed=args.seed,
            epochs=args.epochs,
            image_size=size,
            target_fpr=args.target_fpr,
            ood_method=args.ood_method,
        )
        train_s = time.perf_counter() - t
        if args.save_dir:
            Path(args.save_dir).mkdir(parents=True, exist_ok=True)
            model.save(Path(args.save_dir) / f"qc_{name}.pt")
        info = model.info
        thr = info.thresholds

        t = time.perf_counter()
        clean = model.decision_scores(test)
        score_rate = len(test) / (time.perf_counter() - t)

        rot_names = [ROTS[i] for i in rng.integers(0, 3, len(test))]
        rotated_imgs = [apply_transform(x, r) for x, r in zip(test, rot_names, strict=True)]
        rotated = model.decision_scores(rotated_imgs)
        rot_scores = model.score(rotated_imgs)
        fix_ok = np.mean(
            [s.rotation_deg_cw == DEG[r] for s, r in zip(rot_scores, rot_names, strict=True)]
        )
        per_angle = "/".join(
            f"{roc_auc(clean['rotation'], model.decision_scores([apply_transform(x, r) for x in test])['rotation']):.3f}"
            for r in ROTS
        )
        flip_names = [list(FLIPS)[i] for i in rng.integers(0, 2, len(test))]
        flipped_imgs = [apply_transform(x, f) for x, f in zip(test, flip_names, strict=True)]
        flipped = model.decision_scores(flipped_imgs)
        axis_ok = np.mean(
            [
                s.flip_axis == FLIPS[f]
                for s, f in zip(model.score(flipped_imgs), flip_names, strict=True)
            ]
        )
        inverted = model.decision_scores([apply_transform(x, "invert") for x in test])

        summary.append(
            f"| {name} | {len(train)} ({info.n_train} fit + {info.n_calibration} calibration) "
            f"| {len(test)} | {size} | {train_s:.0f} | {score_rate:.0f} | "
            + " | ".join(
                f"{info.validation_auc[d]:.3f} {'on' if info.enabled[d] else '**off**'}"
                for d in ("rotation", "flip", "inversion")
            )
            + " |"
        )
        for det, pos, extra in (
            (
                "rotation",
                rotated["rotation"],
                f"angle right {fix_ok:.3f}; AUC 90/180/270° {per_angle}",
            ),
            ("flip", flipped["flip"], f"axis right {axis_ok:.3f}" if info.enabled["flip"] else ""),
            ("inversion", inverted["inversion"], ""),
        ):
            st = detection_stats(clean[det], pos, thr[det])
            state = "on" if info.enabled[det] else "off (AUC below min)"
            detector_rows.append(
                f"| {name} | {det} | {state} | {fmt(st.auc)} | {st.precision:.3f} | "
                f"{st.recall:.3f} | {st.fpr:.3f} | {extra} |"
            )

        others: dict[str, list[np.ndarray]] = {
            f"{o} test": sets[o][1][:MAX_OOD] for o in sets if o != name
        }
        others["brain MR (DICOM)"] = mr
        others["junk (noise/blank/gradient/checker)"] = junk
        for label, imgs in others.items():
            st = detection_stats(clean["ood"], model.decision_scores(imgs)["ood"], thr["ood"])
            ood_rows.append(
                f"| {name} | {label} | {len(imgs)} | {fmt(st.auc)} | {st.precision:.3f} | "
                f"{st.recall:.3f} | {st.fpr:.3f} |"
            )
        print(f"# {name}: trained in {train_s:.0f} s", flush=True)

    print("\n## Datasets, training, detectors kept (validation AUC on the calibration split)\n")
    print(
        "| dataset | train images | test images | input px | train s | score img/s | "
        "rotation val AUC | flip val AUC | inversion val AUC |"
    )
    print("|---|---|---:|---:|---:|---:|---|---|---|")
    print("\n".join(summary))
    print(
        f"\n## Held-out test images, synthetic corruptions 1:1 with clean, threshold at "
        f"{args.target_fpr:.0%} FPR on calibration\n"
    )
    print("| dataset | detector | state | ROC AUC | precision | recall | FPR clean test | fix |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    print("\n".join(detector_rows))
    print(
        f"\n## Out-of-distribution score ({args.ood_method}) vs the dataset's clean test images\n"
    )
    print("| model | OOD images | n | ROC AUC | precision | recall | FPR clean test |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(ood_rows))
    print(
        f"\n# total {time.perf_counter() - t0:.0f} s; load average at end {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
