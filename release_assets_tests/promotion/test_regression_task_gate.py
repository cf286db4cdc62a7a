"""The `regression` gate of a regression model (#25): the candidate's MAE against the champion's on the same test
rows, as a relative change decided by a paired bootstrap over per-row absolute errors; classifiers keep theirs."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from release_assets.artifacts import ArtifactRef
from release_assets.manifest import ManifestError, parse_manifest
from release_assets.manifest.overrides import apply_overrides
from release_assets.models.trainers import MODEL_KINDS
from release_assets.promotion.gates import MemberInputs, member_verdicts
from release_assets.promotion.stats import error_regression_verdict, paired_relative_mae_ci

N = 80
TARGETS = {f"f{i:02d}": 1000.0 + 10 * i for i in range(N)}
# The champion misses each row by 40 to 60, on either side.
_RNG = np.random.default_rng(7)
CHAMPION = {k: v + float(_RNG.choice([-1, 1]) * _RNG.uniform(40, 60)) for k, v in TARGETS.items()}


def _scaled(errors_by: float, noise: float = 0.0, seed: int = 1) -> dict[str, float]:
    """The champion's values with each error scaled by ``errors_by`` (plus a little noise)."""
    rng = np.random.default_rng(seed)
    return {k: TARGETS[k] + (CHAMPION[k] - TARGETS[k]) * errors_by + rng.normal(0, noise) for k in TARGETS}


def _verdict(candidate, champion=CHAMPION, tolerance=0.02, **kw):
    return error_regression_verdict("rent_model", candidate, champion, TARGETS, tolerance, "cand", "champ", **kw)


# -- the statistics --------------------------------------------------------------------------------------------------


def test_relative_mae_ci_brackets_the_change_and_is_seeded():
    champion = np.abs(np.array(list(CHAMPION.values())) - np.array(list(TARGETS.values())))
    candidate = champion * 1.1
    change, low, high = paired_relative_mae_ci(candidate, champion, seed=3)
    assert change == pytest.approx(-0.1)
    # Every row's error grew by the same 10%: every resample sees exactly that change.
    assert low == pytest.approx(-0.1) and high == pytest.approx(-0.1)
    noisy = candidate + np.random.default_rng(0).normal(0, 5, len(candidate))
    change, low, high = paired_relative_mae_ci(np.abs(noisy), champion, seed=3)
    assert low < change < high
    assert paired_relative_mae_ci(np.abs(noisy), champion, seed=3) == (change, low, high)
    assert paired_relative_mae_ci(np.abs(noisy), champion, seed=4) != (change, low, high)
    with pytest.raises(ValueError, match="MAE is 0"):
        paired_relative_mae_ci([1.0], [0.0])


def test_equal_errors_pass():
    v = _verdict(dict(CHAMPION))
    assert v.status == "passed" and v.observed == 0.0
    assert "not surely worse than the tolerated -2.0%" in v.reason
    assert v.threshold == {"min": -0.02, "max": None} and v.examples == []


def test_surely_worse_fails_with_what_was_compared():
    v = _verdict(_scaled(1.3, noise=2.0))
    assert v.status == "failed"
    assert v.observed == pytest.approx(-0.3, abs=0.03)
    assert v.reason.startswith("MAE ") and " vs champion " in v.reason and f"on {N} shared test rows" in v.reason
    assert "paired bootstrap CI" in v.reason and v.reason.endswith("surely worse than the tolerated -2.0%")
    assert "not surely" not in v.reason
    # The rows it got most wrong compared with the champion come first.
    increases = [e["candidate_error"] - e["champion_error"] for e in v.examples]
    assert increases and increases == sorted(increases, reverse=True) and min(increases) > 0


def test_slightly_worse_within_the_tolerance_passes_and_better_passes():
    assert _verdict(_scaled(1.01, noise=3.0)).status == "passed"
    better = _verdict(_scaled(0.7))
    assert better.status == "passed" and better.observed == pytest.approx(0.3)
    # A bigger tolerance lets the 30% worse candidate through.
    assert _verdict(_scaled(1.3), tolerance=0.5).status == "passed"


def test_no_champion_and_too_few_rows_are_inconclusive():
    none = error_regression_verdict("rent_model", CHAMPION, None, TARGETS, 0.02, "cand", None)
    assert none.status == "inconclusive" and "no champion" in none.reason
    few = _verdict(dict(CHAMPION), champion={k: CHAMPION[k] for k in list(CHAMPION)[:10]})
    assert few.status == "inconclusive" and "share only 10" in few.reason
    with pytest.raises(ValueError, match="same model"):
        error_regression_verdict("rent_model", CHAMPION, CHAMPION, TARGETS, 0.02, "m", "m")


def test_an_exact_champion_passes_only_an_exact_candidate():
    assert _verdict(dict(TARGETS), champion=dict(TARGETS)).status == "passed"
    v = _verdict(dict(CHAMPION), champion=dict(TARGETS))
    assert v.status == "failed" and "champion is exact on every row" in v.reason and v.observed is None


# -- the gate, through member_verdicts -------------------------------------------------------------------------------

MANIFEST = {
    "name": "rents",
    "members": {
        "flats": {
            "kind": "table",
            "path": "data/flats.csv",
            "id": "flat_id",
            "target": "rent",
            "task": "regression",
            "columns": {"flat_id": {"dtype": "str"}, "area_m2": {"dtype": "float"}, "rent": {"dtype": "float"}},
            "split": {"test": 0.25},
        },
        "rent_model": {"kind": "python_model", "data": "flats", "train": "your_models.train:fit_rent"},
    },
    "gates": {"rent_model": {"regression": {"min": -0.02, "params": {"seed": 1}}}},
}


class Values:
    """A regression model answering a stored value per row id."""

    task = "regression"
    labels: ClassVar[list[str]] = []

    def __init__(self, values):
        self.values = values

    def predict_values(self, rows):
        return np.asarray([self.values[r["id"]] for r in rows], dtype=float)


class Runtime:
    def load(self, model_dir, runtime=None):
        return Values(json.loads((model_dir / "values.json").read_text()))


class Champion:
    version = "v1"

    def __init__(self, folder, digest):
        self.folder, self.digest = folder, digest

    def member(self, name):
        return {"digest": self.digest}

    def member_dir(self, name):
        return self.folder


def _inputs(tmp_path, candidate: dict[str, float], champion: dict[str, float] | None, same_digest=False):
    for name in ("split", "report", "model", "champion"):
        (tmp_path / name).mkdir(parents=True)
    rows = [{"id": k, "label": v, "group": k, "features": {"area_m2": 50.0}} for k, v in TARGETS.items()]
    (tmp_path / "split" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "report" / "report.json").write_text(json.dumps({"predictions": candidate}))

    def ref(role, summary=None):
        return ArtifactRef(
            release="rents", member=role, kind="python_model", fingerprint="f", location=role, files={},
            summary=summary or {},
        )  # fmt: skip

    refs = {r: ref(r) for r in ("split", "model")}
    refs["report"] = ref("report", {"task": "regression", "metrics": {"mae": 1.0}})
    view = None
    if champion is not None:
        (tmp_path / "champion" / "values.json").write_text(json.dumps(champion))
        view = Champion(tmp_path / "champion", refs["model"].digest if same_digest else "champion-digest")
    return MemberInputs(refs=refs, store_root=tmp_path, champion=view)


@pytest.fixture
def manifest(monkeypatch):
    monkeypatch.setitem(MODEL_KINDS, "python_model", Runtime())
    return parse_manifest(MANIFEST, "releases/rents.yaml")  # the gate is one of a regression model's


def _gate(manifest, inputs):
    [verdict] = member_verdicts(manifest, "rent_model", inputs)
    assert verdict.gate == "regression"
    return verdict


def test_the_gate_passes_a_candidate_as_good_as_the_champion(manifest, tmp_path):
    v = _gate(manifest, _inputs(tmp_path, dict(CHAMPION), CHAMPION))
    assert v.status == "passed" and v.observed == 0.0, v.reason
    assert "MAE" in v.reason and not v.holds_release


def test_the_gate_fails_a_candidate_surely_worse_than_the_champion(manifest, tmp_path):
    v = _gate(manifest, _inputs(tmp_path, _scaled(1.3, noise=2.0), CHAMPION))
    assert v.status == "failed" and v.holds_release
    assert "surely worse than the tolerated -2.0%" in v.reason and "not surely" not in v.reason


def test_the_gate_is_inconclusive_without_a_champion(manifest, tmp_path):
    v = _gate(manifest, _inputs(tmp_path, dict(CHAMPION), None))
    assert v.status == "inconclusive" and "no champion" in v.reason and v.holds_release
    warned = apply_overrides(manifest, ["gates.rent_model.regression.on_inconclusive=warn"])
    assert not _gate(warned, _inputs(tmp_path / "again", dict(CHAMPION), None)).holds_release


def test_the_same_model_as_the_champion_passes_as_identical(manifest, tmp_path):
    v = _gate(manifest, _inputs(tmp_path, _scaled(1.3), CHAMPION, same_digest=True))
    assert v.status == "passed" and "identical to champion v1" in v.reason


def test_a_champion_of_another_task_is_inconclusive(manifest, tmp_path, monkeypatch):
    class Classifier(Values):
        task = "binary"

    monkeypatch.setitem(MODEL_KINDS, "python_model", type("R", (), {"load": lambda self, d, r=None: Classifier({})})())
    v = _gate(manifest, _inputs(tmp_path, dict(CHAMPION), CHAMPION))
    assert v.status == "inconclusive" and "is a binary model" in v.reason


def test_the_gate_is_declared_for_every_task_with_the_same_range():
    bad = json.loads(json.dumps(MANIFEST))
    bad["gates"]["rent_model"]["regression"] = {"min": 0.05}
    with pytest.raises(ManifestError, match=r"regression\.min: 0\.05 is outside regression's range \[-1, 0\]"):
        parse_manifest(bad, "releases/rents.yaml")
    bad["gates"]["rent_model"]["regression"] = {"max": 0}
    with pytest.raises(ManifestError, match=r"regression: needs `min`"):
        parse_manifest(bad, "releases/rents.yaml")
