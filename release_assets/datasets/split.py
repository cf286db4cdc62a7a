"""Deterministic, group-aware, stratified train/val/test assignment.

Rows sharing a group (a paraphrase group, or identical image bytes) always land on the same side of every
boundary, so near-duplicates cannot leak from train into test. Within each stratum (label), groups are ordered
by a seeded hash of the group id, never by Python's randomised ``hash`` or by input order, so the same data and
seed give the same split on every machine and in every process.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

SPLITS = ("train", "val", "test")


def _rank(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def assign_splits(
    labels: Sequence[str],
    groups: Sequence[str],
    *,
    test: float,
    val: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Return one of ``train``/``val``/``test`` per row.

    A group's stratum is the label of its first row; groups are spread so each label keeps roughly the
    requested fractions (at least one group per label in test whenever a label has two or more groups).
    """
    if len(labels) != len(groups):
        raise ValueError(f"labels ({len(labels)}) and groups ({len(groups)}) differ in length")
    if not 0 <= test < 1 or not 0 <= val < 1 or test + val >= 1:
        raise ValueError(f"split fractions must satisfy 0 <= test, val and test + val < 1 (got {test=}, {val=})")

    group_label: dict[str, str] = {}
    group_size: dict[str, int] = defaultdict(int)
    for label, group in zip(labels, groups, strict=True):
        group_label.setdefault(group, label)
        group_size[group] += 1

    by_label: dict[str, list[str]] = defaultdict(list)
    for group, label in group_label.items():
        by_label[label].append(group)

    side: dict[str, str] = {}
    for label in sorted(by_label):
        ordered = sorted(by_label[label], key=lambda g: _rank(seed, g))
        total = sum(group_size[g] for g in ordered)
        test_target, val_target = test * total, val * total
        taken_test = taken_val = 0
        for i, group in enumerate(ordered):
            size = group_size[group]
            remaining_groups = len(ordered) - i
            if test > 0 and (taken_test == 0 or taken_test + size / 2 <= test_target) and remaining_groups > 1:
                side[group], taken_test = "test", taken_test + size
            elif val > 0 and (taken_val == 0 or taken_val + size / 2 <= val_target) and remaining_groups > 1:
                side[group], taken_val = "val", taken_val + size
            else:
                side[group] = "train"
    return [side[g] for g in groups]
