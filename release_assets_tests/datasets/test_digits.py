"""The digits loader reads scikit-learn's shipped CSV without importing scikit-learn, and returns exactly what
``sklearn.datasets.load_digits()`` returns."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from release_assets.datasets import digits


def test_same_arrays_as_scikit_learn():
    from sklearn.datasets import load_digits

    images, labels = digits.load_digits_arrays()
    bunch = load_digits()
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, bunch.images.astype(np.uint8))
    np.testing.assert_array_equal(labels, bunch.target)


def test_does_not_import_scikit_learn():
    code = (
        "import sys; from release_assets.datasets.digits import load_digits_arrays; load_digits_arrays(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_falls_back_to_scikit_learn_when_the_csv_is_elsewhere(monkeypatch):
    monkeypatch.setattr(digits, "_shipped_digits_csv", lambda: None)
    images, labels = digits.load_digits_arrays()
    assert images.shape == (1797, 8, 8) and labels[:10].tolist() == list(range(10))
