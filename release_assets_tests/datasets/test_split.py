from collections import Counter

import pytest

from release_assets.datasets.split import assign_splits


def _data(n_groups=40, per_group=3, labels=4):
    labs, groups = [], []
    for g in range(n_groups):
        for _ in range(per_group):
            labs.append(f"l{g % labels}")
            groups.append(f"g{g}")
    return labs, groups


def test_same_inputs_same_split_and_seed_changes_it():
    labels, groups = _data()
    a = assign_splits(labels, groups, test=0.2, val=0.1, seed=7)
    assert a == assign_splits(labels, groups, test=0.2, val=0.1, seed=7)
    assert a != assign_splits(labels, groups, test=0.2, val=0.1, seed=8)


def test_groups_never_straddle_a_boundary():
    labels, groups = _data()
    sides = assign_splits(labels, groups, test=0.25, val=0.1, seed=1)
    by_group = {}
    for g, s in zip(groups, sides, strict=True):
        by_group.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in by_group.values())


def test_every_label_reaches_every_side_in_roughly_the_asked_fractions():
    labels, groups = _data(n_groups=80)
    sides = assign_splits(labels, groups, test=0.2, val=0.1, seed=3)
    for label in set(labels):
        mine = Counter(s for lab, s in zip(labels, sides, strict=True) if lab == label)
        total = sum(mine.values())
        assert mine["test"] / total == pytest.approx(0.2, abs=0.06)
        assert mine["val"] / total == pytest.approx(0.1, abs=0.06)


def test_row_order_does_not_change_assignment():
    labels, groups = _data()
    forward = dict(zip(groups, assign_splits(labels, groups, test=0.2, seed=5), strict=True))
    backward = dict(zip(groups[::-1], assign_splits(labels[::-1], groups[::-1], test=0.2, seed=5), strict=True))
    assert forward == backward


@pytest.mark.parametrize("test,val", [(-0.1, 0.0), (1.0, 0.0), (0.6, 0.5)])
def test_impossible_fractions_are_refused(test, val):
    with pytest.raises(ValueError, match="fractions"):
        assign_splits(["a"], ["g"], test=test, val=val)
