"""Live drift: a window of served inputs against a version's reference rows, judged by the drift gate's own tests
and rules (Evidently draws the report)."""

import json
from pathlib import Path

import numpy as np
import pytest

from release_assets.datasets.profile import build_profile
from release_assets.promotion.drift import drift_verdict
from release_assets.release.store import StoreError
from release_assets.rollout.live_drift import drift_report, live_inputs, read_live_drift, write_live_drift

# Importing Evidently imports its UI server's dependencies (litestar), which warn about their own deprecations.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VERSION = "0123456789abcdef"


def _iris(seed: int, n: int, shift: float = 0.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    x = rng.normal([5.8, 3.0, 3.7, 1.2], [0.8, 0.4, 1.7, 0.7], size=(n, 4)) + shift * np.array([0.8, 0.4, 1.7, 0.7])
    return [{"id": f"r{i}", "features": x[i].round(2).tolist(), "label": "setosa"} for i in range(n)]


def _messages(seed: int, n: int, words: list[str]) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"text": " ".join(rng.choice(words, size=rng.integers(4, 12)))} for _ in range(n)]


WORDS = [f"w{i}" for i in range(40)]


def test_a_shifted_window_drifts_and_a_clean_one_does_not(tmp_path):
    reference = _iris(1, 200)
    clean = drift_report(reference, _iris(2, 60), tmp_path / "clean")
    assert clean["verdict"] == "clean", clean["reason"]
    assert [f["feature"] for f in clean["features"]] == [f"features[{i}]" for i in range(4)]
    assert (tmp_path / "clean" / "report.html").stat().st_size > 1000

    drifted = drift_report(reference, _iris(3, 60, shift=1.5), tmp_path / "drifted")
    assert drifted["verdict"] == "drifted" and drifted["drifted_share"] == 1.0
    row = drifted["features"][0]
    assert row["test"] == "ks" and row["score_is_p_value"] and row["score"] < 0.01 and row["drifted"]
    assert "4 of 4 features drifted from the reference data" in drifted["reason"]
    assert "<html" in Path(drifted["report"]).read_text()[:500]  # Evidently's self-contained HTML


def test_too_few_live_rows_is_inconclusive(tmp_path):
    result = drift_report(_iris(1, 200), _iris(2, 10, shift=3.0), tmp_path, min_rows=30)
    assert result["verdict"] == "inconclusive" and result["drifted_share"] is None
    assert all(f["drifted"] is None and "10 live values" in f["test"] for f in result["features"])
    assert (tmp_path / "report.html").exists()


def test_new_words_drift_and_repeated_reference_messages_do_not(tmp_path):
    reference = _messages(1, 200, WORDS)
    new_words = drift_report(reference, _messages(2, 60, [f"z{i}" for i in range(40)]), tmp_path / "a")
    oov = next(f for f in new_words["features"] if f["feature"] == "text.oov_rate")
    assert oov["drifted"] and oov["test"] == "oov_rate_increase"
    # Live traffic replaying the reference's own messages knows every word: fewer unknown words is not drift.
    repeated = drift_report(reference, reference[:60], tmp_path / "b")
    assert repeated["verdict"] == "clean", repeated["reason"]


def _unlabelled(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "label"} for r in rows]


@pytest.mark.parametrize(
    "reference, live",
    [
        (_iris(1, 200), _iris(2, 80)),
        (_iris(1, 200), _iris(3, 80, shift=1.5)),
        (_iris(1, 200), _iris(4, 80, shift=0.6)),  # near the floors: where two methods would part
        (_messages(1, 200, WORDS), _messages(2, 80, WORDS)),
        (_messages(1, 200, WORDS), _messages(3, 80, [*WORDS[:30], *(f"z{i}" for i in range(10))])),
        (_messages(1, 200, WORDS), _messages(4, 80, [f"z{i}" for i in range(40)])),
    ],
    ids=["iris-same", "iris-shifted", "iris-near", "text-same", "text-some-new", "text-new"],
)
def test_the_canary_and_the_gate_judge_the_same_data_alike(tmp_path, reference, live):
    """One method and one set of rules: what the offline drift gate says of two samples, live drift says too."""
    gate = drift_verdict("d", build_profile(_unlabelled(reference)), build_profile(_unlabelled(live)))
    canary = drift_report(reference, live, tmp_path)
    assert (gate.status == "failed") == (canary["verdict"] == "drifted"), (gate.reason, canary["reason"])
    judged = {r["feature"]: r["drifted"] for r in canary["features"]}
    assert judged == {r["feature"]: r["drifted"] for r in gate.examples}


def _span(release: str, version: str, payload, *, name=None, variant="champion", rid="r", parent=None) -> dict:
    meta = {"release": release, "version": version, "variant": variant, "request_id": rid, "kind": "prompt_chain"}
    attrs = {"metadata": json.dumps(meta), "openinference.span.kind": "CHAIN"}
    if payload is not None:
        attrs["input.value"] = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True)
    return {
        "name": name or f"{release} request",
        "parent_id": parent,
        "start_time": f"2025-01-01T00:00:{rid[-2:]}Z",
        "attributes": attrs,
        "status": {"code": "OK", "description": None},
    }


def test_live_inputs_reads_request_spans_newest_first_across_rotation(tmp_path):
    digit = [0] * 32 + [16] * 32
    old = [_span("helpdesk", "v1", {"message": "oldest one"}, rid="r01")]
    photo = {"message": "where is [REDACTED]", "attachment": {"digits": [digit, digit]}}
    lines = [
        _span("helpdesk", "v1", photo, rid="r02"),
        _span("helpdesk", "v1", {"message": "a step"}, name="classify_intent", parent="ab", rid="r03"),
        _span("helpdesk", "v1", {"message": "shadow"}, name="helpdesk shadow", rid="r04"),
        _span("helpdesk", "v1", {"message": "golden"}, variant="golden", rid="r05"),
        _span("iris", "v9", {"features": [5.1, 3.5, 1.4, 0.2]}, name="iris request", rid="r06"),
        _span("helpdesk", "v1", '{"attachment": {"image_b64": "iVBOR...[truncated]', rid="r07"),
        _span("helpdesk", "v2", {"message": "canary answered"}, variant="canary", rid="r08"),
    ]
    trace = tmp_path / "serve.jsonl"
    trace.with_name("serve.jsonl.1").write_text("".join(json.dumps(s) + "\n" for s in old))
    trace.write_text("".join(json.dumps(s) + "\n" for s in lines) + '{"name": "helpdesk req')  # cut mid-write

    rows = live_inputs(trace, "helpdesk")
    assert [r.get("text") for r in rows] == ["oldest one", "where is [REDACTED]", None, None, "canary answered"]
    assert rows[2]["pixels"] == digit and rows[2]["request_id"] == "r02" and rows[2]["version"] == "v1"
    assert [r["text"] for r in live_inputs(trace, "helpdesk", limit=1)] == ["canary answered"]
    assert [r["request_id"] for r in live_inputs(trace, "helpdesk", version="v1")] == ["r01", "r02", "r02", "r02"]
    assert live_inputs(trace, "iris") == [
        {"features": [5.1, 3.5, 1.4, 0.2], "request_id": "r06", "version": "v9", "time": "2025-01-01T00:00:06Z"}
    ]
    assert live_inputs(tmp_path / "missing.jsonl", "helpdesk") == []


def test_live_inputs_reads_what_serve_tracing_writes(tmp_path):
    from release_assets.serving.traces import Tracing

    tracing = Tracing(jsonl_path=tmp_path / "serve.jsonl", otlp_endpoint=None)
    try:
        with tracing.request_span("helpdesk", "v1", "champion", "req-1", input_value={"message": "order 12345 late"}):
            pass
        tracing.force_flush()
    finally:
        tracing.shutdown()
    [row] = live_inputs(tmp_path / "serve.jsonl", "helpdesk")
    assert row["text"] == "order [REDACTED] late" and row["request_id"] == "req-1"  # redacted on export


def test_verdict_file_round_trip(tmp_path):
    assert read_live_drift(tmp_path, "iris", VERSION) is None
    path = write_live_drift(tmp_path, "iris", VERSION, {"verdict": "drifted", "reason": "x"})
    assert path == tmp_path / "live_drift" / "iris" / f"{VERSION}.json"
    assert read_live_drift(tmp_path, "iris", VERSION) == {"verdict": "drifted", "reason": "x"}
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"{VERSION}.json: not valid JSON"):
        read_live_drift(tmp_path, "iris", VERSION)
    with pytest.raises(StoreError):
        read_live_drift(tmp_path, "../etc", VERSION)


def test_reference_text_is_redacted_like_the_spans():
    from release_assets.rollout.live_text import redact_rows

    [row] = redact_rows([{"text": "order 12345, mail k.patel@example.com", "label": "refund"}])
    assert row == {"text": "order [REDACTED], mail [REDACTED]", "label": "refund"}
