"""STAPLE on 10 raters x 512x512 masks: ours against SimpleITK's STAPLEImageFilter, in one run.

The masks are a smooth ellipse seen by 10 raters, each with a random shift of up to 5 px and random
pixel flips at a rater-specific sensitivity (0.7-0.99) and specificity (0.9-0.999), seed 1.
Both sides use their defaults: ITK's prior = mean of all masks, its stopping rule (squared change of
every p and q <= 1e-14) equals our tol=1e-7.

Run from the repository root with the bench venv (see bench/requirements-bench.txt):
    /tmp/bench-ml/bin/python bench/staple_speed.py [--repeats 5]
Prints best-of-N times (ours includes nothing but staple(); SimpleITK's excludes building the
images), their ratio, and the largest differences in probability, sensitivity and specificity.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml.staple import staple  # noqa: E402


def make_masks(rng: np.random.Generator, raters: int, size: int) -> np.ndarray:
    """Shifted, noisy copies of an ellipse, shape (raters, size, size) bool."""
    yy, xx = np.mgrid[:size, :size]
    truth = ((yy - size / 2) / (0.3 * size)) ** 2 + ((xx - size / 2) / (0.2 * size)) ** 2 < 1
    masks = []
    for _ in range(raters):
        sensitivity, specificity = rng.uniform(0.7, 0.99), rng.uniform(0.9, 0.999)
        shifted = np.roll(truth, tuple(rng.integers(-5, 6, 2)), (0, 1))
        draws = rng.random(truth.shape)
        masks.append(np.where(shifted, draws < sensitivity, draws > specificity))
    return np.array(masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--raters", type=int, default=10)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    import SimpleITK as sitk  # lazy: bench-only dependency

    masks = make_masks(np.random.default_rng(1), args.raters, args.size)
    images = [sitk.GetImageFromArray(mask.astype(np.uint8)) for mask in masks]
    itk_times, our_times = [], []
    for _ in range(args.repeats):
        f = sitk.STAPLEImageFilter()
        f.SetForegroundValue(1.0)
        start = time.perf_counter()
        itk_probability = sitk.GetArrayFromImage(f.Execute(images))
        itk_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours = staple(masks)
        our_times.append(time.perf_counter() - start)
    print(
        f"SimpleITK {sitk.Version.VersionString()}, {args.raters} raters x {args.size}x{args.size}"
    )
    print(f"SimpleITK STAPLE: best {min(itk_times):.4f} s, {f.GetElapsedIterations()} iterations")
    print(f"ours STAPLE: best {min(our_times):.4f} s, {ours.n_iter} iterations")
    print(f"ratio SimpleITK / ours: {min(itk_times) / min(our_times):.1f}x")
    print(f"max |probability diff|: {np.abs(itk_probability - ours.probability).max():.2e}")
    print(
        f"max |sensitivity diff|: {np.abs(np.array(f.GetSensitivity()) - ours.sensitivity).max():.2e}, "
        f"max |specificity diff|: {np.abs(np.array(f.GetSpecificity()) - ours.specificity).max():.2e}"
    )


if __name__ == "__main__":
    main()
