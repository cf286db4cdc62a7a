"""A failing invalid_rows or format_valid gate says what failed, in the reason the CLI prints and in the check."""

import dagster as dg
import pytest

from release_assets.artifacts import ArtifactRef
from release_assets.chains.runner import CaseResult
from release_assets.datasets.build import build_raw
from release_assets.evaluation.golden import score
from release_assets.manifest import parse_manifest
from release_assets.promotion.checks import check_result
from release_assets.promotion.gates import MemberInputs, member_verdicts

SLICES = '"channel": "chat", "register": "formal", "length": "short"'
GOOD = (
    '{"id": "m%d", "text": "Where is my order?", "intent": "order_status", "paraphrase_group": "g%d", ' + SLICES + "}"
)


def _ref(kind: str, summary: dict) -> ArtifactRef:
    return ArtifactRef(release="r", member="m", kind=kind, fingerprint="f", location="x", files={}, summary=summary)


def _verdict(manifest, member: str, role: str, summary: dict, tmp_path):
    (verdict,) = member_verdicts(manifest, member, MemberInputs(refs={role: _ref(role, summary)}, store_root=tmp_path))
    return verdict


def _meta(verdict) -> dict:
    result = check_result(verdict, dg.AssetKey(["r", "m"]))
    assert result.description == verdict.reason
    return {k: getattr(v, "value", v) for k, v in result.metadata.items()}


@pytest.fixture
def messages_project(tmp_path):
    data = tmp_path / "project" / "data" / "support"
    data.mkdir(parents=True)
    lines = [GOOD % (i, i) for i in range(1, 13)]
    lines[3] = GOOD.replace('"order_status"', '"refnud"') % (4, 4)
    lines[8] = GOOD.replace('"text": "Where is my order?", ', "") % (9, 9)
    lines[10] = "{not json"
    lines[11] = GOOD.replace('"paraphrase_group": "g%d", ', "") % 12
    (data / "messages.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path / "project"


def test_failing_invalid_rows_names_file_line_and_field(messages_project, tmp_path):
    manifest = parse_manifest(
        {
            "name": "r",
            "members": {
                "messages": {
                    "kind": "jsonl_dataset",
                    "path": "data/support/messages.jsonl",
                    "schema": "support_message",
                    "split": {"test": 0.3},
                }
            },
            "gates": {"messages": {"invalid_rows": {"max": 0}}},
        },
        "r.yaml",
    )
    out = tmp_path / "raw"
    out.mkdir()
    summary = build_raw(manifest.members["messages"], messages_project, out)
    assert summary["source"] == str(messages_project / "data/support/messages.jsonl")  # absolute in the summary

    verdict = _verdict(manifest, "messages", "raw", summary, tmp_path)
    assert verdict.status == "failed"
    assert verdict.reason == (
        "invalid_rows = 4 violates the gate <= 0: data/support/messages.jsonl "
        "line 4, field intent: Input should be 'refund', 'order_status', 'cancel_order', ...; "
        "line 9, field text: Field required; line 11: not valid JSON: Expecting property name enclosed in "
        "double ...; and 1 more"
    )
    assert "\n" not in verdict.reason
    table = _meta(verdict)["worst_examples"].splitlines()
    assert table[0] == "| file | line | field | error |"
    assert table[2].startswith("| data/support/messages.jsonl | 4 | intent | Input should be 'refund'")
    assert table[-1] == "| data/support/messages.jsonl | 12 | paraphrase_group | Field required |"
    assert len(table) == 2 + 4


def test_passing_invalid_rows_is_left_alone(tmp_path):
    manifest = parse_manifest(
        {
            "name": "r",
            "members": {"d": {"kind": "sklearn_dataset", "name": "iris", "split": {"test": 0.3}}},
            "gates": {"d": {"invalid_rows": {"max": 0}}},
        },
        "r.yaml",
    )
    summary = {"source": "sklearn.datasets.load_iris", "metrics": {"invalid_rows": 0, "rows": 150}, "examples": []}
    verdict = _verdict(manifest, "d", "raw", summary, tmp_path)
    assert verdict.reason == "invalid_rows = 0 meets the gate <= 0" and not verdict.examples
    assert "worst_examples" not in _meta(verdict)


CHAIN = parse_manifest(
    {
        "name": "r",
        "members": {"c": {"kind": "prompt_chain", "path": "p", "uses": [], "golden": "g.jsonl"}},
        "gates": {"c": {"format_valid": {"min": 0.99}}},
    },
    "r.yaml",
)
SECURITY = "SecurityError in responses/refund.j2: access to attribute '__class__' of 'str' object is unsafe. (line 2)"


def _golden_summary(errors: list[dict]) -> dict:
    cases = [{"id": str(i), "message": "m", "expected": {"intent": "other"}} for i in range(len(errors))]
    return score(cases, [CaseResult(str(i), errors=e) for i, e in enumerate(errors)])


def test_failing_format_valid_names_the_most_common_errors(tmp_path):
    long = "amount: " + "Input should be a valid integer, unable to parse string as an integer " * 4
    errors = [{"generate_response": SECURITY}] * 9 + [{"extract_entities": long}] * 3 + [{"x": "rare"}] + [{}] * 47
    verdict = _verdict(CHAIN, "c", "evaluation", _golden_summary(errors), tmp_path)
    assert verdict.reason == (
        "format_valid = 0.7833 violates the gate >= 0.99 (most common: "
        f"generate_response: {SECURITY} ×9; "
        "extract_entities: amount: Input should be a valid integer, unable to parse string as an integer "
        "Input should be a valid integer, unable to parse string as an integer Input ... ×3; ...)"
    )
    meta = _meta(verdict)
    assert meta["format_errors"].splitlines()[:3] == [
        "| step | message | count |",
        "|---|---|---|",
        f"| generate_response | {SECURITY} | 9 |",
    ]
    assert len(meta["format_errors"].splitlines()) == 2 + 3
    assert meta["worst_examples"].splitlines()[0] == "| id | message | expected | got | problems |"


def test_format_valid_summary_from_before_format_errors_keeps_its_reason(tmp_path):
    summary = _golden_summary([{"generate_response": SECURITY}] * 2 + [{}] * 8)
    del summary["format_errors"]
    verdict = _verdict(CHAIN, "c", "evaluation", summary, tmp_path)
    assert verdict.reason == "format_valid = 0.8 violates the gate >= 0.99"
    assert set(_meta(verdict)) >= {"worst_examples"} and "format_errors" not in _meta(verdict)
