"""``python -m ml.qc``: train a QC model on a folder of accepted images, score images with it.

python -m ml.qc train DIR [DIR...] --output qc.pt [--seed 0 --epochs 30 --target-fpr 0.01]
python -m ml.qc score --model qc.pt FILE [FILE...]     # one JSON object per line
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L" if im.mode in ("L", "I;16", "I", "1") else "RGB"))


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += (
            sorted(f for f in p.rglob("*") if f.suffix.lower() in _SUFFIXES) if p.is_dir() else [p]
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.qc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train detectors on accepted images")
    train.add_argument("inputs", nargs="+", help="image files or folders")
    train.add_argument("--output", required=True)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--image-size", type=int, default=64)
    train.add_argument("--target-fpr", type=float, default=0.01)
    train.add_argument("--ood-method", choices=("knn", "mahalanobis"), default="knn")
    score = sub.add_parser("score", help="score images with a trained model")
    score.add_argument("inputs", nargs="+", help="image files or folders")
    score.add_argument("--model", required=True)
    args = parser.parse_args(argv)

    from ml.qc.model import load_qc, train_qc  # torch only when a command runs

    files = _files(args.inputs)
    if args.command == "train":
        model = train_qc(
            [_read(f) for f in files],
            seed=args.seed,
            epochs=args.epochs,
            image_size=args.image_size,
            target_fpr=args.target_fpr,
            ood_method=args.ood_method,
        )
        model.save(args.output)
        sys.stdout.write(json.dumps(asdict(model.info), indent=2) + "\n")
        return 0
    model = load_qc(args.model)
    for f, s in zip(files, model.score([_read(f) for f in files]), strict=True):
        sys.stdout.write(json.dumps({"file": str(f), **s.to_dict()}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
