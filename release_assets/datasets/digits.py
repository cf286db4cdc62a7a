"""scikit-learn's digits as plain arrays, and the grouping that keeps identical images on one side of a split."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np


def image_group(image: np.ndarray) -> str:
    """Identical pixels give the same group, so a duplicate image can never sit in both train and test."""
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()[:16]


def _shipped_digits_csv() -> Path | None:
    """The CSV scikit-learn ships its digits in, found without importing scikit-learn (about a second of imports
    that a chain evaluation or a server would pay only to read 1,797 rows)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 (n, 8, 8) with values 0..16, labels as int64 (n,): the rows of ``load_digits()``."""
    csv = _shipped_digits_csv()
    if csv is None:  # a scikit-learn that stores them elsewhere: its own loader knows where
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)
    rows = np.loadtxt(csv, delimiter=",")  # as load_digits does: 64 pixels then the label
    return rows[:, :-1].reshape(-1, 8, 8).astype(np.uint8), rows[:, -1].astype(np.int64)


def pixels_group(pixels: list[int]) -> str:
    """The same group as :func:`image_group`, from the flat pixel list a dataset row stores."""
    return image_group(np.asarray(pixels, dtype=np.uint8).reshape(8, 8))
