"""scikit-learn's digits as plain arrays, and the grouping that keeps identical images on one side of a split."""

from __future__ import annotations

import hashlib

import numpy as np


def image_group(image: np.ndarray) -> str:
    """Identical pixels give the same group, so a duplicate image can never sit in both train and test."""
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()[:16]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Images as uint8 (n, 8, 8) with values 0..16, labels as int64 (n,)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)


def pixels_group(pixels: list[int]) -> str:
    """The same group as :func:`image_group`, from the flat pixel list a dataset row stores."""
    return image_group(np.asarray(pixels, dtype=np.uint8).reshape(8, 8))
