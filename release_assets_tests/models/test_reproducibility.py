"""The `reproducibility` gate: a python_model trained a second time from the same inputs. A seeded function gives
the same bytes (0); an unseeded one gives models whose predictions differ, which a `max: 0` gate holds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from release_assets.datasets.table import build_raw, build_split
from release_assets.manifest import ManifestError, parse_manifest, parse_member
from release_assets.models.train import build_model

TABLE = {
    "kind": "table",
    "path": "t.csv",
    "target": "y",
    "task": "binary",
    "columns": {"a": {"dtype": "float"}, "b": {"dtype": "float"}, "y": {"dtype": "str"}},
    "split": {"test": 0.3, "seed": 1},
}


@pytest.fixture()
def split(tmp_path, monkeypatch) -> Path:
    package = tmp_path / "repro_fns"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(
        textwrap.dedent(
            """
            from sklearn.ensemble import RandomForestClassifier

            def seeded(X, y, params):
                return RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)

            def unseeded(X, y, params):
                return RandomForestClassifier(n_estimators=5, max_features=1).fit(X, y)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [f"{i % 7},{(i * 3) % 11},{'p' if (i % 7) + ((i * 3) % 11) > 8 else 'n'}" for i in range(80)]
    (tmp_path / "t.csv").write_text("a,b,y\n" + "\n".join(rows) + "\n")
    member = parse_member("t", TABLE)
    raw, out = tmp_path / "raw", tmp_path / "split"
    raw.mkdir(), out.mkdir()
    build_raw(member, tmp_path, raw)
    build_split(member, raw, out)
    return out


@pytest.mark.parametrize(("function", "reproducible"), [("seeded", True), ("unseeded", False)])
def test_training_twice_measures_how_far_apart_the_models_are(split, tmp_path, function, reproducible):
    member = parse_member("m", {"kind": "python_model", "data": "t", "train": f"repro_fns.train:{function}"})
    out = tmp_path / f"model-{function}"
    out.mkdir()
    summary = build_model(member, split, out, tmp_path, check_reproducible=True)
    difference = summary["metrics"]["reproducibility"]
    assert (difference == 0.0) is reproducible, difference
    again = tmp_path / f"plain-{function}"
    again.mkdir()
    assert "reproducibility" not in build_model(member, split, again, tmp_path).get("metrics", {})  # opt-in only


def _manifest(kind_fields: dict) -> dict:
    return {
        "name": "r",
        "members": {"t": TABLE, "m": {"data": "t", **kind_fields}},
        "gates": {"m": {"reproducibility": {"max": 0}}},
    }


def test_the_gate_is_for_models_this_package_trains():
    parse_manifest(_manifest({"kind": "python_model", "train": "repro_fns.train:seeded"}), "r.yaml")
    with pytest.raises(ManifestError, match=r"gates\.m\.reproducibility: unknown gate for an imported_model"):
        parse_manifest(_manifest({"kind": "imported_model", "path": "m.onnx"}), "r.yaml")
