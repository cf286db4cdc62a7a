"""The contract gate: expectations against interfaces, the manifest's defaults and `expects:`, and the decision."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from release_assets.artifacts import ArtifactRef
from release_assets.manifest import ManifestError, parse_manifest
from release_assets.manifest.contracts import Expectation, Interface, offered_interface, violations
from release_assets.promotion.gates import MemberInputs, member_roles, member_verdicts

REPO = Path(__file__).resolve().parents[2]


def _helpdesk() -> dict:
    return yaml.safe_load((REPO / "releases" / "helpdesk.yaml").read_text())


REFUND = Expectation(
    "chain step classify_intent", "intent_model", "label", "refund", because="generate_response answers it"
)


def test_a_dropped_label_names_the_step_the_label_and_the_model():
    now = {"intent_model": Interface("intent_model", "text_classifier", ("complaint", "other"))}
    before = {"intent_model": Interface("intent_model", "text_classifier", ("complaint", "other", "refund"))}
    [line] = violations([REFUND], now, before)
    assert line == (
        "chain step classify_intent expects label 'refund' (generate_response answers it); "
        "intent_model no longer emits it (it emits: complaint, other)"
    )
    [first_release] = violations([REFUND], now)
    assert "intent_model does not emit it" in first_release
    assert violations([REFUND], before) == []


def test_fields_types_classifiers_and_missing_interfaces():
    table = Interface("loans", "table", ("no", "yes"), {"income": "float", "age": "int", "region": "str"})
    expects = [
        Expectation("model m", "loans", "field", "income", "number"),
        Expectation("model m", "loans", "field", "age", "float"),  # an int column is a number
        Expectation("model m", "loans", "field", "region", "float"),
        Expectation("model m", "loans", "field", "score"),
        Expectation("chain step s", "price_model", "classifier"),
        Expectation("chain step s", "gone", "label", "x"),
    ]
    regression = Interface("price_model", "python_model", None)
    lines = violations(expects, {"loans": table, "price_model": regression})
    assert lines == [
        "model m expects field 'region' as float; loans offers str",
        "model m expects field 'score'; loans has no such field (age, income, region)",
        "chain step s reads price_model as a classifier; price_model emits no labels",
        "chain step s expects gone, which reported no interface",
    ]


def test_interfaces_come_from_build_summaries():
    assert offered_interface("m", "k", {"labels": ["a", "b"]}).labels == ("a", "b")
    assert offered_interface("m", "k", {"labels": []}).labels is None  # regression
    data = offered_interface("d", "table", {"labels": {"no": 3, "yes": 2}, "columns": {"x": "float"}})
    assert data.labels == ("no", "yes") and data.fields == {"x": "float"}
    declared = offered_interface(
        "p", "plugin", {"labels": ["z"], "interface": {"labels": ["a"], "fields": {"f": "str"}}}
    )
    assert declared.labels == ("a",) and declared.fields == {"f": "str"}


def test_every_chain_that_uses_models_gets_the_gate_and_a_manifest_may_soften_it():
    manifest = parse_manifest(_helpdesk(), "releases/helpdesk.yaml")
    assert manifest.gates["chain"]["contract"].max == 0
    assert manifest.gates["chain"]["contract"].severity == "block"
    assert "contract" not in manifest.gates["intent_model"]  # states no expectation, derives none
    data = _helpdesk()
    data["gates"]["chain"]["contract"] = {"max": 0, "severity": "warn"}
    assert parse_manifest(data, "x").gates["chain"]["contract"].severity == "warn"


def test_expects_names_a_member_it_is_built_from():
    data = _helpdesk()
    data["members"]["intent_model"]["expects"] = {"messages": {"fields": {"text": "str"}}}
    manifest = parse_manifest(data, "releases/helpdesk.yaml")
    assert manifest.gates["intent_model"]["contract"].max == 0  # stating expectations turns the gate on
    data["members"]["intent_model"]["expects"] = {"digits": {"labels": ["1"]}}
    with pytest.raises(ManifestError, match=r"members.intent_model.expects.digits: 'digits' is not a member "):
        parse_manifest(data, "releases/helpdesk.yaml")
    data["members"]["intent_model"]["expects"] = {"messages": {"columns": ["text"]}}
    with pytest.raises(ManifestError, match=r"members.intent_model.expects.messages.columns"):
        parse_manifest(data, "releases/helpdesk.yaml")
    data["members"]["intent_model"]["expects"] = {"messages": {"fields": {"text": "string"}}}
    with pytest.raises(ManifestError, match=r"members.intent_model.expects.messages.fields.text: .*'number'"):
        parse_manifest(data, "releases/helpdesk.yaml")


def test_an_empty_expects_leaves_the_member_dump_unchanged():
    manifest = parse_manifest(_helpdesk(), "releases/helpdesk.yaml")
    assert "expects" not in manifest.members["intent_model"].model_dump(mode="json", by_alias=True)


def _ref(member: str, kind: str, summary: dict) -> ArtifactRef:
    return ArtifactRef(
        release="helpdesk", member=member, kind=kind, fingerprint="f", location=member, files={}, summary=summary
    )


class _Champion:
    def __init__(self, interfaces: dict[str, dict]) -> None:
        self.interfaces = interfaces

    def member(self, name: str) -> dict | None:
        return {"interface": self.interfaces[name]} if name in self.interfaces else None


def test_the_gate_holds_a_chain_whose_model_lost_a_label(tmp_path):
    manifest = parse_manifest(_helpdesk(), "releases/helpdesk.yaml")
    only = manifest.model_copy(update={"gates": {"chain": {"contract": manifest.gates["chain"]["contract"]}}})
    assert set(member_roles(manifest, "chain")) >= {"chain", "producer__intent_model", "producer__vision_model"}
    chain = _ref("chain", "prompt_chain", {"expects": [REFUND.as_json()]})
    labels = ["complaint", "other"]
    refs = {
        "chain": chain,
        "producer__intent_model": _ref("intent_model", "text_classifier", {"labels": labels}),
        "producer__vision_model": _ref("vision_model", "image_classifier", {"labels": ["0", "1"]}),
    }
    champion = _Champion({"intent_model": {"kind": "text_classifier", "labels": [*labels, "refund"]}})
    [verdict] = member_verdicts(only, "chain", MemberInputs(refs=refs, store_root=tmp_path, champion=champion))
    assert verdict.status == "failed" and verdict.holds_release and verdict.observed == 1
    assert "chain step classify_intent expects label 'refund'" in verdict.reason
    assert "intent_model no longer emits it" in verdict.reason
    assert verdict.examples and "refund" in verdict.examples[0]["unmet expectation"]

    refs["producer__intent_model"] = _ref("intent_model", "text_classifier", {"labels": [*labels, "refund"]})
    [verdict] = member_verdicts(only, "chain", MemberInputs(refs=refs, store_root=tmp_path, champion=None))
    assert verdict.status == "passed", verdict.reason
    assert verdict.reason == "1 expectation(s) of intent_model met"


def test_stated_expectations_are_checked_against_the_dataset_columns(tmp_path):
    data = _helpdesk()
    data["members"]["intent_model"]["expects"] = {"messages": {"fields": {"text": "str", "channel": "str"}}}
    manifest = parse_manifest(data, "releases/helpdesk.yaml")
    only = manifest.model_copy(update={"gates": {"intent_model": manifest.gates["intent_model"]}})
    only = only.model_copy(update={"gates": {"intent_model": {"contract": manifest.gates["intent_model"]["contract"]}}})
    refs = {
        "model": _ref("intent_model", "text_classifier", {"labels": ["a"]}),
        "producer__messages": _ref("messages", "jsonl_dataset", {"labels": {"a": 1}, "columns": {"text": "str"}}),
    }
    [verdict] = member_verdicts(only, "intent_model", MemberInputs(refs=refs, store_root=tmp_path))
    assert verdict.status == "failed"
    assert "member intent_model expects field 'channel' (members.intent_model.expects); messages has no such" in (
        verdict.reason
    )
