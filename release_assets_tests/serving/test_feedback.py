"""POST /v1/{release}/feedback: outcomes counted once against the version and variant that answered, unknown and
expired ids refused, several workers sharing the journal of answers."""

from __future__ import annotations

import logging
import time

import pytest
from starlette.testclient import TestClient

from bench.support.fakes import FakeRelease
from release_assets.rollout.metrics_source import snapshot_of_text
from release_assets.serving.app import create_app
from release_assets.serving.feedback import DuplicateFeedback, FeedbackBook, UnknownRequest
from release_assets.serving.metrics import PREFIX, ServingMetrics
from release_assets_tests.serving.test_app import sample

PREDICT, FEEDBACK = "/v1/helpdesk/predict", "/v1/helpdesk/feedback"


class SplitRouter:
    """alice goes to the canary v2, everyone else to the champion."""

    def route(self, release: str, key: str) -> tuple[str, str | None]:
        return ("canary", "v2") if key == "alice" else ("champion", None)

    def shadow(self, release: str, key: str) -> str | None:
        return None


def _client(**kwargs) -> TestClient:
    app = create_app(
        {"helpdesk": FakeRelease(), "iris": FakeRelease("iris", kind="classifier")},
        router=SplitRouter(),
        loader=lambda release, version: FakeRelease(release, version),
        **kwargs,
    )
    c = TestClient(app)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the canary loads off the request path; the champion answers meanwhile
        if c.post(PREDICT, json={"message": "warm", "user_id": "alice"}).json()["variant"] == "canary":
            return c
        time.sleep(0.01)
    raise AssertionError("the canary never loaded")


def _answer(c: TestClient, user: str) -> str:
    r = c.post(PREDICT, json={"message": "refund please", "user_id": user})
    assert r.status_code == 200
    return r.json()["request_id"]


def test_feedback_is_counted_per_version_and_variant_and_read_by_the_canary_monitor(caplog):
    metrics = ServingMetrics()
    c = _client(metrics=metrics)
    canary_ids = [_answer(c, "alice") for _ in range(3)]
    champion_ids = [_answer(c, "bob") for _ in range(2)]
    for rid in canary_ids:
        r = c.post(FEEDBACK, json={"request_id": rid, "resolved": False, "thumbs": "down"})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "request_id": rid,
            "release": "helpdesk",
            "version": "v2",
            "variant": "canary",
            "counted": ["unresolved", "thumbs_down"],
        }
    with caplog.at_level(logging.INFO, logger="release_assets.serving.app"):
        given = {"request_id": champion_ids[0], "resolved": True, "escalation": "not_needed"}
        assert c.post(FEEDBACK, json={**given, "text": "fine, mail me at ann@example.com"}).status_code == 200
    assert "ann@example.com" not in caplog.text and "fine, mail me at" in caplog.text  # redacted like traces
    # Free text alone is taken (and logged) but counts no outcome.
    assert c.post(FEEDBACK, json={"request_id": champion_ids[1], "text": "meh"}).json()["counted"] == []

    text = c.get("/metrics").text
    name = f"{PREFIX}_feedback_total"
    assert sample(text, name, version="v2", variant="canary", outcome="unresolved") == 3
    assert sample(text, name, version="v2", variant="canary", outcome="thumbs_down") == 3
    assert sample(text, name, version="v1", variant="champion", outcome="resolved") == 1
    assert sample(text, name, version="v1", variant="champion", outcome="escalation_not_needed") == 1
    assert sample(text, name, version="v1", variant="champion", outcome="unresolved") is None
    snapshot = snapshot_of_text({"127.0.0.1:1": text}, "helpdesk")
    canary, champion = snapshot.counters("v2"), snapshot.counters("v1")
    assert (canary.unresolved, canary.thumbs_down, canary.resolved) == (3, 3, 0)
    assert (champion.resolved, champion.escalation_not_needed, champion.unresolved) == (1, 1, 0)


def test_unknown_duplicate_and_other_release_ids_are_refused_naming_the_id():
    c = _client()
    rid = _answer(c, "bob")
    r = c.post(FEEDBACK, json={"request_id": "never-given", "resolved": True})
    assert r.status_code == 404 and "never-given" in r.json()["error"] and r.json()["field"] == "request_id"
    # An answer of helpdesk is not an answer of iris.
    assert c.post("/v1/iris/feedback", json={"request_id": rid, "thumbs": "up"}).status_code == 404
    assert c.post(FEEDBACK, json={"request_id": rid, "thumbs": "up"}).status_code == 200
    again = c.post(FEEDBACK, json={"request_id": rid, "thumbs": "down"})
    assert again.status_code == 409 and rid in again.json()["error"]
    text = c.get("/metrics").text
    assert sample(text, f"{PREFIX}_feedback_total", outcome="thumbs_up") == 1
    assert sample(text, f"{PREFIX}_feedback_total", outcome="thumbs_down") is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"request_id": "x"}, "<body>"),  # says nothing
        ({"request_id": "x", "thumbs": "sideways"}, "thumbs"),
        ({"request_id": "x", "resolved": "yes"}, "resolved"),
        ({"request_id": "x", "text": "y" * 2001}, "text"),
        ({"request_id": "not a token!", "resolved": True}, "request_id"),
        ({"request_id": "x", "resolved": True, "stars": 5}, "stars"),
    ],
)
def test_bad_feedback_is_422_naming_the_field(body, field):
    r = _client().post(FEEDBACK, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_feedback_takes_the_same_token_as_predict():
    c = TestClient(create_app({"helpdesk": FakeRelease()}, token="s3cret"))
    auth = {"Authorization": "Bearer s3cret"}
    rid = c.post(PREDICT, json={"message": "refund"}, headers=auth).json()["request_id"]
    assert c.post(FEEDBACK, json={"request_id": rid, "resolved": True}).status_code == 401
    assert c.post(FEEDBACK, json={"request_id": rid, "resolved": True}, headers=auth).status_code == 200


def test_an_expired_answer_is_unknown_and_the_map_stays_bounded():
    book = FeedbackBook(capacity=2)
    for rid in ("a", "b", "c"):
        book.answered(rid, "helpdesk", "v1", "champion")
    with pytest.raises(UnknownRequest):
        book.take("a", "helpdesk")  # the oldest, forgotten
    assert book.take("c", "helpdesk").version == "v1"


def test_workers_sharing_a_journal_take_feedback_for_each_others_answers_once(tmp_path):
    answering, other = FeedbackBook(10, tmp_path / "fb"), FeedbackBook(10, tmp_path / "fb")
    answering.answered("r1", "helpdesk", "v2", "canary")
    assert other.take("r1", "helpdesk").variant == "canary"
    with pytest.raises(DuplicateFeedback):
        answering.take("r1", "helpdesk")  # taken by the other worker: the journal says so
    for i in range(200):  # well past the rotation size: the journal is cut, never unbounded
        answering.answered(f"n{i}", "helpdesk", "v1", "champion")
    assert sum(p.stat().st_size for p in (tmp_path / "fb").iterdir()) <= 2 * 10 * 160 + 160
    with pytest.raises(UnknownRequest):
        other.take("n0", "helpdesk")
    assert other.take("n199", "helpdesk").version == "v1"
