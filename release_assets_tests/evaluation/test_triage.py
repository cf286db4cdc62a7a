"""Regression triage on tiny published helpdesk versions whose one change is known: a crippled intent model,
response templates that drop their required facts, a golden suite with a mislabelled case."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pytest

from bench.support.project import TINY_PARAMS, copy_project, edit_manifest, make_tiny
from release_assets.evaluation.triage import triage
from release_assets.evaluation.triage_attribution import ONE_AT_A_TIME, SHAPLEY, attribute, subsets_to_evaluate
from release_assets.evaluation.triage_mix import GOLDEN, extract_verified
from release_assets.release.store import LocalReleaseStore
from release_assets_tests.conftest import REPO, point_cli

# One epoch of a width-8 encoder: a useless intent model. Its abstain target is set low so that it still answers
# some test cases (a model that answers none cannot be reported on: its answered accuracy is undefined).
CRIPPLED = {**TINY_PARAMS["intent_model"], "hidden": 8, "heads": 1, "epochs": 1}


def _publish(project: Path, store: Path, instance) -> str:
    from release_assets_tests.test_release_end_to_end import run_release

    _, summaries = run_release(project, store, instance, only=["helpdesk"])
    assert summaries["helpdesk"].version, summaries["helpdesk"].render()
    return summaries["helpdesk"].version


def _set_intent_params(project: Path, params: dict) -> None:
    def edit(data: dict) -> None:
        data["members"]["intent_model"]["params"] = params

    edit_manifest(project, "helpdesk", edit)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """One store: the tiny baseline, a candidate with a crippled intent model (the rest reused from the build
    cache), and one whose response templates lost their knowledge-base facts (intent model reused again)."""
    root = tmp_path_factory.mktemp("triage")
    project = copy_project(root / "project")
    make_tiny(project)
    store = root / "store"
    with dg.instance_for_test() as instance:
        baseline = _publish(project, store, instance)
        _set_intent_params(project, CRIPPLED)
        crippled = _publish(project, store, instance)
        _set_intent_params(project, TINY_PARAMS["intent_model"])
        for template in (project / "prompts" / "helpdesk" / "responses").glob("*.j2"):
            template.write_text(re.sub(r"\{\{\s*kb\.[a-z_]+[^}]*\}\}", "", template.read_text()))
        factless = _publish(project, store, instance)
    assert len({baseline, crippled, factless}) == 3
    return {"store": LocalReleaseStore(store), "root": root, "baseline": baseline}, crippled, factless


def _adds_up(result) -> None:
    for m in result.metrics:
        assert abs(sum(m.shares.values()) + m.interaction - m.change) <= 1e-9, m
        if result.method == SHAPLEY:
            assert abs(m.interaction) <= 1e-9, m


GOLDEN_FILE = REPO / "data" / "golden" / "helpdesk.jsonl"


def test_a_crippled_intent_model_is_blamed_on_the_intent_model(published):
    env, crippled, _ = published
    result = triage(env["store"], "helpdesk", crippled, env["baseline"], GOLDEN_FILE)
    assert result.factors == ["intent_model"]
    assert "intent_model_report" in result.not_evaluated  # changed too, but the golden run does not read it
    intent = result.metric("intent_accuracy")
    assert intent.change < 0, result.markdown()
    assert result.blamed("intent_accuracy") == "intent_model"
    _adds_up(result)
    assert "intent_accuracy \u2212" in result.markdown()
    [mix_base, mix_cand] = sorted(result.mixes, key=lambda m: len(m["from_candidate"]))
    assert mix_cand["digests"]["intent_model"] == result.changed["intent_model"][1]  # lineage: digests combined
    assert mix_base["digests"]["intent_model"] == result.changed["intent_model"][0]


def test_templates_that_drop_required_facts_are_blamed_on_the_chain(published):
    env, _, factless = published
    result = triage(env["store"], "helpdesk", factless, env["baseline"], GOLDEN_FILE)
    assert result.factors == ["chain"]
    facts = result.metric("required_facts")
    assert facts.change < 0, result.markdown()
    assert result.blamed("required_facts") == "chain"
    assert result.metric("intent_accuracy").change == 0  # the same model decides the same intents
    broken = result.flipped["chain"]["pass->fail"]
    assert broken and all("missing" in problems for problems in broken.values())
    _adds_up(result)


def test_a_mislabelled_golden_case_is_blamed_on_the_golden_suite(published, tmp_path):
    env, _, _ = published
    files = tmp_path / "extracted"
    extract_verified(env["store"], "helpdesk", env["baseline"], files)
    outputs = {
        row["id"]: row["outputs"]
        for row in map(json.loads, (files / "files" / "chain_evaluation" / "cases.jsonl").read_text().splitlines())
    }
    lines = GOLDEN_FILE.read_text().splitlines()
    cases = [json.loads(line) for line in lines]
    # A case the baseline got right: mislabelling it must cost exactly one case of intent accuracy.
    index = next(
        i for i, c in enumerate(cases) if outputs[c["id"]]["classify_intent"]["intent"] == c["expected"]["intent"]
    )
    cases[index]["expected"]["intent"] = "refund" if cases[index]["expected"]["intent"] != "refund" else "complaint"
    mislabelled = tmp_path / "helpdesk.jsonl"
    mislabelled.write_text("".join(json.dumps(c) + "\n" for c in cases))

    result = triage(env["store"], "helpdesk", env["baseline"], env["baseline"], mislabelled, GOLDEN_FILE)
    assert result.factors == [GOLDEN]
    intent = result.metric("intent_accuracy")
    assert intent.change == pytest.approx(-1 / len(cases), abs=1e-12)
    assert result.blamed("intent_accuracy") == GOLDEN
    _adds_up(result)
    # The file given is not the one the baseline's own evaluation scored (and carries): a note says so.
    assert any("evaluation scored golden suite" in note for note in result.notes)


def test_three_changes_at_once_are_shared_exactly(published, tmp_path):
    env, crippled, factless = published
    cases = [json.loads(line) for line in GOLDEN_FILE.read_text().splitlines()]
    cases[0]["expected"]["intent"] = "refund" if cases[0]["expected"]["intent"] != "refund" else "complaint"
    mislabelled = tmp_path / "helpdesk.jsonl"
    mislabelled.write_text("".join(json.dumps(c) + "\n" for c in cases))
    result = triage(env["store"], "helpdesk", crippled, factless, mislabelled, GOLDEN_FILE)
    assert sorted(result.factors) == sorted(["intent_model", "chain", GOLDEN])
    assert result.method == SHAPLEY and len(result.mixes) == 8
    _adds_up(result)


def test_one_at_a_time_keeps_the_interaction_explicit():
    factors = ["a", "b", "c", "d", "e"]
    method, subsets = subsets_to_evaluate(factors)
    assert method == ONE_AT_A_TIME and len(subsets) == 7

    def v(s):  # a and b only hurt together: their interaction must not vanish into either share
        return -0.5 * ("a" in s and "b" in s) - 0.1 * ("c" in s)

    shares, interaction = attribute(factors, {s: v(s) for s in subsets}, method)
    assert shares == pytest.approx({"a": -0.5, "b": -0.5, "c": -0.1, "d": 0.0, "e": 0.0})
    assert interaction == pytest.approx(0.5)
    assert abs(sum(shares.values()) + interaction - (v(frozenset(factors)) - v(frozenset()))) <= 1e-12


def test_shapley_splits_a_joint_effect_evenly():
    factors = ["a", "b", "c"]
    method, subsets = subsets_to_evaluate(factors)
    assert method == SHAPLEY and len(subsets) == 8
    shares, interaction = attribute(factors, {s: -0.5 * ("a" in s and "b" in s) for s in subsets}, method)
    assert shares == pytest.approx({"a": -0.25, "b": -0.25, "c": 0.0})
    assert interaction == pytest.approx(0.0, abs=1e-12)


@pytest.fixture
def cli_env(published, monkeypatch, tmp_path):
    """Settings pointing at the module's store; the cached settings are dropped before and after."""
    from release_assets.core.settings import get_settings

    env = published[0]
    point_cli(monkeypatch, env["root"] / "project", env["store"].root, tmp_path)
    yield published
    get_settings.cache_clear()


def test_the_cli_triages_two_published_versions(cli_env, capsys):
    from release_assets.cli.main import main

    env, crippled, _ = cli_env
    code = main(
        ["triage", "helpdesk", "--candidate", crippled, "--baseline", env["baseline"], "--golden", str(GOLDEN_FILE)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "## Regression triage: helpdesk" in out and "| intent_accuracy |" in out
    # No champion promoted in this store: the default baseline is named as missing, in one line.
    assert main(["triage", "helpdesk", "--candidate", crippled]) == 2
    assert "has no champion" in capsys.readouterr().err
