"""The digits test split that attachment photos are drawn from, so an attachment never shows an image a digits
model trained on (computed with the project's own ``assign_splits``)."""

from __future__ import annotations

import random
import sys

from generators.common import DIGITS_SPLIT_SEED, ROOT


def digits_test_split() -> tuple[list[int], list[int]]:
    sys.path.insert(0, str(ROOT))
    from release_assets.datasets.digits import image_group, load_digits_arrays
    from release_assets.datasets.split import assign_splits

    images, labels = load_digits_arrays()
    sides = assign_splits(
        [str(label) for label in labels],
        [image_group(im) for im in images],
        test=0.25,
        val=0.0,
        seed=DIGITS_SPLIT_SEED,
    )
    test_indices = [i for i, s in enumerate(sides) if s == "test"]
    return test_indices, [int(x) for x in labels]


class Attacher:
    def __init__(self, rng: random.Random, test_indices: list[int], labels: list[int]):
        self.rng = rng
        self.by_label: dict[int, list[int]] = {d: [] for d in range(10)}
        for i in test_indices:
            self.by_label[labels[i]].append(i)
        self.available = [d for d in range(10) if self.by_label[d]]

    def make(self) -> tuple[str, list[int]]:
        first = [d for d in self.available if d != 0]
        digits = [self.rng.choice(first)] + [self.rng.choice(self.available) for _ in range(4)]
        return "".join(map(str, digits)), [self.rng.choice(self.by_label[d]) for d in digits]
