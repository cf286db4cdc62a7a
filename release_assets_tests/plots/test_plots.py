"""Plots as evidence (issue #34): each drawn from small fixtures, small, byte-identical when drawn again (here and
in fresh processes), inline in the failed drift and slice checks' metadata and in the canary's and triage's, never
part of a release version, and skipped with one line when matplotlib (the `plots` extra) is missing."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from release_assets.artifacts import ArtifactRef
from release_assets.evaluation.model_eval import evaluate
from release_assets.evaluation.triage_assets import waterfall_metadata
from release_assets.plots import chain, gates, model, render
from release_assets.promotion.checks import check_result, verdict_plots
from release_assets.promotion.drift import drift_verdict
from release_assets.promotion.gates import MemberInputs
from release_assets.release.bundle import member_digest, release_version
from release_assets.rollout.canary import start, tick
from release_assets.rollout.canary_plot import canary_points, limit
from release_assets.rollout.sensors import tick_events
from release_assets.verdict import Verdict
from release_assets_tests.conftest import REPO
from release_assets_tests.evaluation.test_model_eval import ROWS, TableIntents
from release_assets_tests.plots import fixtures
from release_assets_tests.rollout.test_canary import SPEC, Source, _later, setup  # noqa: F401  (a fixture)

PNG = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 40_000


def _png_of(markdown: str) -> bytes:
    prefix = "](data:image/png;base64,"
    assert markdown.startswith("![") and prefix in markdown and markdown.endswith(")")
    return base64.b64decode(markdown.split(prefix, 1)[1][:-1])


def test_every_plot_is_a_small_png_without_software_or_time_chunks():
    plots = fixtures.every_plot()
    assert {p.name for p in plots} == {
        *("confusion_matrix", "per_class_recall", "reliability", "roc", "pr", "residuals", "predicted_vs_actual"),
        *("drift", "slice_gap", "shadow_gates", "intent_accuracy", "abstain_split", "canary_kpis"),
        *("waterfall_intent_accuracy", "waterfall_reply_similarity"),
    }
    for p in plots:
        assert p.png.startswith(PNG), p.name
        assert len(p.png) < MAX_BYTES, (p.name, len(p.png))
        assert b"tIME" not in p.png and b"Software" not in p.png, p.name
        assert _png_of(p.markdown()) == p.png


def test_the_same_inputs_draw_the_same_bytes_here_and_in_fresh_processes():
    first = {p.name: hashlib.sha256(p.png).hexdigest() for p in fixtures.every_plot()}
    assert {p.name: hashlib.sha256(p.png).hexdigest() for p in fixtures.every_plot()} == first
    code = (
        "import hashlib, json; from release_assets_tests.plots.fixtures import every_plot; "
        "print(json.dumps({p.name: hashlib.sha256(p.png).hexdigest() for p in every_plot()}))"
    )
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
        assert json.loads(out.stdout.strip().splitlines()[-1]) == first


def test_a_model_report_draws_its_plots_from_the_rows_it_evaluated():
    rows: dict = {}
    summary = evaluate(TableIntents(), ROWS, rows_out=rows)
    assert rows["expected"] == [r["label"] for r in ROWS] and len(rows["confidence"]) == len(ROWS)
    assert rows["confidence"][2] == pytest.approx(0.6)  # the top class's probability of the row
    plots = model.report_plots(summary, rows)
    assert [p.name for p in plots] == ["confusion_matrix", "per_class_recall", "reliability"]
    binary = model.report_plots(*fixtures.classifier_rows(binary=True))
    assert [p.name for p in binary] == ["confusion_matrix", "per_class_recall", "reliability", "roc", "pr"]
    regression = model.report_plots(*fixtures.regression_rows())
    assert [p.name for p in regression] == ["residuals", "predicted_vs_actual"]


def test_roc_and_pr_points_are_the_curves_of_the_scores():
    positive, scores = [True, False, True, False], [0.9, 0.8, 0.7, 0.1]
    assert model.roc_points(positive, scores) == ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    recall, precision = model.pr_points(positive, scores)
    assert recall == [0.0, 0.5, 0.5, 1.0, 1.0] and precision[1:] == [1.0, 0.5, 2 / 3, 0.5]
    # Tied scores move together: one point for both rows.
    assert model.roc_points([True, False], [0.5, 0.5]) == ([0.0, 1.0], [0.0, 1.0])


def _split_ref(folder: Path, profile: dict) -> ArtifactRef:
    folder.mkdir(parents=True)
    (folder / "profile.json").write_text(json.dumps(profile))
    return ArtifactRef(
        release="helpdesk", member="messages_split", kind="split", fingerprint="f", location=folder.name, files={}
    )


class Champion:
    """The champion's split, as ``record/champion.ChampionView`` hands it to a gate."""

    def __init__(self, folder: Path) -> None:
        self.version, self.folder = "v1", folder

    def member_dir(self, name: str, data: bool = False) -> Path | None:
        return self.folder if name == "messages_split" else None


def test_a_failed_drift_check_shows_the_drifted_features_champion_against_candidate(tmp_path):
    reference, current = fixtures.drift_profiles()
    champion_dir = tmp_path / "champion"
    champion_dir.mkdir()
    (champion_dir / "profile.json").write_text(json.dumps(reference))
    inputs = MemberInputs(
        refs={"split": _split_ref(tmp_path / "current", current)}, store_root=tmp_path, champion=Champion(champion_dir)
    )
    verdict = drift_verdict("messages", reference, current)
    assert verdict.status == "failed"
    result = check_result(verdict, dg.AssetKey(["helpdesk", "messages_split"]), None, verdict_plots(verdict, inputs))
    png = _png_of(result.metadata["plot_drift"].value)
    assert png.startswith(PNG) and len(png) < MAX_BYTES
    assert "worst_examples" in result.metadata  # the table stays
    # The same data against itself passes, and a passing gate draws nothing.
    same = drift_verdict("messages", reference, reference)
    assert same.status == "passed" and verdict_plots(same, inputs) == []


def test_drift_series_reads_each_kind_of_feature_from_the_profiles():
    reference, current = fixtures.drift_profiles()
    assert set(gates.drift_series(reference, current, "channel")["shares"][1]) == {"chat", "email"}
    champion, candidate = gates.drift_series(reference, current, "text.length")["numeric"]
    assert len(champion) == 300 and min(candidate) > max(champion) - 10
    assert gates.drift_series(reference, current, "text.oov_rate")["shares"][1]["new words"] > 0.1
    assert gates.drift_series(reference, current, "no_such_feature") is None


def test_a_failed_slice_gap_check_shows_the_worst_slices():
    verdict = fixtures.failing_slice_gap()
    assert verdict.status == "failed"
    result = check_result(verdict, dg.AssetKey(["helpdesk", "intent_model_report"]), None, verdict_plots(verdict))
    assert _png_of(result.metadata["plot_slice_gap"].value).startswith(PNG)
    passing = check_result(fixtures.slice_gap_verdict_passing(), dg.AssetKey(["x"]), None, [])
    assert not any(k.startswith("plot_") for k in passing.metadata)


def _report_ref(folder: Path, plots: list) -> ArtifactRef:
    render.write(plots, folder)
    return ArtifactRef(
        release="iris", member="classifier_report", kind="report", fingerprint="f", location=folder.name, files={}
    )


def test_a_failed_metric_check_shows_the_report_plots_that_explain_it(tmp_path):
    """A failed accuracy gate shows the report's confusion matrix; recall per class for min_class_recall: the very
    bytes the report drew, nothing drawn again. A passing gate, or a report drawn without plots, shows none."""
    drawn = model.report_plots(*fixtures.classifier_rows())
    inputs = MemberInputs(refs={"report": _report_ref(tmp_path / "report", drawn)}, store_root=tmp_path)
    by_name = {p.name: p.png for p in drawn}

    def failed(gate: str) -> Verdict:
        return Verdict("classifier", gate, "failed", f"{gate} = 0.3 violates the gate >= 0.9", 0.3, {"min": 0.9})

    result = check_result(
        failed("accuracy"), dg.AssetKey(["iris", "classifier_report"]), None, verdict_plots(failed("accuracy"), inputs)
    )
    assert [k for k in result.metadata if k.startswith("plot_")] == ["plot_confusion_matrix"]
    assert _png_of(result.metadata["plot_confusion_matrix"].value) == by_name["confusion_matrix"]
    assert [p.name for p in verdict_plots(failed("min_class_recall"), inputs)] == ["per_class_recall"]
    assert [p.name for p in verdict_plots(failed("macro_f1"), inputs)] == ["per_class_recall", "confusion_matrix"]
    assert verdict_plots(failed("roc_auc"), inputs) == []  # a multiclass report draws no ROC curve
    assert verdict_plots(replace(failed("accuracy"), status="passed"), inputs) == []
    bare = MemberInputs(refs={"report": _report_ref(tmp_path / "bare", [])}, store_root=tmp_path)
    assert verdict_plots(failed("accuracy"), bare) == []
    assert verdict_plots(failed("accuracy")) == []  # no inputs: nothing to read


def test_chain_plots_split_right_and_wrong_by_acted_and_asked():
    cases = [
        {"expected": "refund", "got": "refund", "abstained": False},
        {"expected": "refund", "got": "cancel", "abstained": False},  # confident wrong
        {"expected": "cancel", "got": "refund", "abstained": True},
    ]
    assert [chain.outcome(c) for c in cases] == ["right, acted", "wrong, acted", "wrong, asked"]
    assert [p.name for p in chain.chain_plots(cases, abstains=True)] == ["intent_accuracy", "abstain_split"]
    assert [p.name for p in chain.chain_plots(cases, abstains=False)] == ["intent_accuracy"]
    assert chain.chain_plots([], abstains=True) == []


def test_canary_points_follow_the_ledger_with_each_budget_as_a_limit():
    points = canary_points(fixtures.canary_events(), fixtures.SPEC)
    assert [p["decision"] for p in points] == ["started", "advance", "breach", "rolled_back"]
    assert [p["label"] for p in points] == ["start", "\u219250%", "breach", "rollback"]
    assert points[1]["when"] == "+11m\n10%"
    assert points[1]["kpis"]["error_rate"]["limit"] == pytest.approx(0.03)  # champion 0.01 + 0.02
    assert points[1]["kpis"]["p99_ms"]["limit"] == pytest.approx(180.0)  # the larger of 145 and 120 x 1.5
    assert points[1]["kpis"]["abstain_rate"]["limit"] is None  # no budget
    assert limit(None, 1.0) is None


def test_a_tick_that_records_a_move_puts_the_kpi_series_on_the_rollout_asset_and_its_check(setup):  # noqa: F811
    r, _registry, v1, v2 = setup
    source = Source()
    start(r, v2, "bob", "risky", source=source)
    source.add(v1, requests=100)
    source.add(v2, requests=30, errors=9)
    waiting = tick(r, source, _later(r, 30))
    assert waiting.action == "bake" and not waiting.events
    [observation] = tick_events("helpdesk", waiting, r.store.events("helpdesk"), SPEC)
    assert not any(k.startswith("plot_") for k in observation.metadata)  # nothing recorded: nothing new to draw
    rolled = tick(r, source, _later(r, 61))
    assert rolled.action == "rolled_back"
    observation, *checks = tick_events("helpdesk", rolled, r.store.events("helpdesk"), SPEC)
    assert _png_of(observation.metadata["plot_canary_kpis"].value).startswith(PNG)
    assert checks and all("plot_canary_kpis" in c.metadata for c in checks)


def test_triage_draws_a_waterfall_per_moved_metric():
    meta = waterfall_metadata(fixtures.TRIAGE)
    assert sorted(meta) == ["plot_waterfall_intent_accuracy", "plot_waterfall_reply_similarity"]
    assert all(_png_of(v.value).startswith(PNG) for v in meta.values())


def test_the_version_ignores_evidence_so_plots_never_change_it():
    """A report with plots and the same report without them: different member digests, the same version."""

    def members(report_files: dict[str, str]) -> dict:
        return {
            "classifier": {"role": "artifact", "digest": member_digest({"model.json": "a" * 64})},
            "classifier_report": {"role": "evidence", "digest": member_digest(report_files)},
        }

    plain = {"report.json": "b" * 64}
    drawn = {**plain, "plots/confusion_matrix.png": "c" * 64}
    assert member_digest(plain) != member_digest(drawn)
    assert release_version(members(plain)) == release_version(members(drawn))


def test_without_matplotlib_nothing_is_drawn_one_line_says_why_and_the_rest_works(monkeypatch, caplog, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails, find_spec finds nothing
    monkeypatch.setattr(render, "_said", [])
    caplog.set_level(logging.WARNING, logger=render.__name__)
    assert render.missing() == (
        "plots in reports and failed checks needs the 'plots' extra (matplotlib is not installed): "
        "pip install 'release_assets[plots]'"
    )
    summary, rows = fixtures.classifier_rows()
    assert model.report_plots(summary, rows) == []
    assert chain.chain_plots(fixtures.chain_cases(), abstains=True) == []
    verdict = fixtures.failing_slice_gap()
    assert verdict_plots(verdict) == []
    result = check_result(verdict, dg.AssetKey(["x"]), None, verdict_plots(verdict))
    assert not result.passed and "worst_examples" in result.metadata
    assert not any(k.startswith("plot_") for k in result.metadata)
    assert render.write([], tmp_path) == [] and not (tmp_path / "plots").exists()
    assert waterfall_metadata(fixtures.TRIAGE) == {}
    lines = [r.getMessage() for r in caplog.records if r.name == render.__name__]
    assert lines == ["plots skipped: " + render.missing()]
