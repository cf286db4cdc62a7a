"""``golden add --from-trace``: a request served with tracing on becomes a golden case the suite loads, once; a
missing or redacted trace is refused with a reason."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from bench.support.fakes import FakeRelease
from release_assets.cli import main as cli
from release_assets.evaluation.golden_from_trace import TraceNotUsable, find_request, golden_case
from release_assets.evaluation.golden_inputs import load_cases
from release_assets.serving.app import create_app
from release_assets.serving.trace_export import Redactor
from release_assets.serving.traces import Tracing

EXISTING = {"id": "g0001", "message": "hello", "attachment": None, "expected": {"intent": "other", "entities": {}}}


@pytest.fixture
def served(tmp_path):
    """Spans of three served requests, and their request ids: a plain one, one whose message holds an order number
    (redacted in the span file), and one whose given id has five digits the redactor rewrites in the file."""
    spans = tmp_path / "serve.jsonl"
    tracing = Tracing(jsonl_path=spans, otlp_endpoint=None)
    try:
        c = TestClient(create_app({"helpdesk": FakeRelease()}, tracing=tracing))
        plain = c.post("/v1/helpdesk/predict", json={"message": "where is my parcel?"}).json()["request_id"]
        redacted = c.post("/v1/helpdesk/predict", json={"message": "where is order 12345?"}).json()["request_id"]
        given = "req-54321-a"
        headers = {"x-request-id": given}
        assert c.post("/v1/helpdesk/predict", json={"message": "cancel it"}, headers=headers).status_code == 200
        assert tracing.force_flush(5000)
    finally:
        tracing.shutdown()
    return spans, plain, redacted, given


def test_a_traced_request_round_trips_into_the_golden_suite_once(served, tmp_path, capsys):
    spans, plain, _, _ = served
    golden = tmp_path / "golden.jsonl"
    golden.write_text(json.dumps(EXISTING) + "\n")
    argv = ["golden", "add", "--from-trace", plain, "--golden", str(golden), "--traces", str(spans)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"appended to {golden}:2 from helpdesk v1 (champion)" in out
    cases = load_cases(golden)
    assert [c["id"] for c in cases] == ["g0001", f"live-{plain}"]
    case = cases[1]
    assert case["message"] == "where is my parcel?"
    assert case["expected"] == {"intent": "order_status", "entities": {}}  # the fake's answer, to be reviewed
    assert case["reference_reply"] == "We are on it." and case["attachment"] is None
    assert json.loads(out[: out.index("\nappended")]) == case  # what was printed is what was written
    assert cli.main(argv) == 2  # the same case again: refused, the suite unchanged
    assert "already holds case" in capsys.readouterr().err
    assert len(load_cases(golden)) == 2


def test_missing_and_redacted_traces_are_refused_with_the_reason(served, tmp_path):
    spans, plain, redacted, given = served
    with pytest.raises(TraceNotUsable, match="no request span with this id"):
        find_request(spans, "never-served")
    with pytest.raises(TraceNotUsable, match="no span file"):
        find_request(tmp_path / "nothing.jsonl", plain)
    with pytest.raises(TraceNotUsable, match="message was redacted"):
        golden_case(find_request(spans, redacted, Redactor().text), redacted)  # a uuid may hold 5 digits too
    # The file holds "req-[REDACTED]-a": found through the same redaction, not lost.
    with pytest.raises(TraceNotUsable, match="no request span"):
        find_request(spans, given)
    assert golden_case(find_request(spans, given, Redactor().text), given)["message"] == "cancel it"
