"""Admission control: a bounded number of predictions in flight (503 + Retry-After past it), a token bucket per
client credential (429 + the seconds until its next token), and shed requests counted as shed, never as errors."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from starlette.testclient import TestClient

from bench.support.fakes import FakeRelease
from release_assets.rollout.counters import window
from release_assets.rollout.metrics_source import snapshot_of_text
from release_assets.serving.admission import MAX_CLIENTS, Admission, AdmissionPolicy
from release_assets.serving.app import create_app
from release_assets.serving.metrics import PREFIX, ServingMetrics
from release_assets_tests.serving import own_loop

URL = "/v1/helpdesk/predict"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_past_the_in_flight_limit_a_request_is_refused_503_until_one_leaves():
    gate = Admission(AdmissionPolicy(max_in_flight=2, retry_after_s=3))
    assert gate.enter("a") is None and gate.enter("b") is None
    refused = gate.enter("c")
    assert refused is not None and (refused.status, refused.reason) == (503, "overloaded")
    assert refused.headers == {"Retry-After": "3"} and gate.in_flight == 2
    gate.leave()
    assert gate.enter("c") is None and gate.in_flight == 2


def test_each_client_has_its_own_bucket_and_429_says_when_the_next_token_comes():
    clock = Clock()
    gate = Admission(AdmissionPolicy(max_in_flight=100, rate_per_s=0.5, burst=2), clock)
    assert gate.enter("a") is None and gate.enter("a") is None
    refused = gate.enter("a")
    assert refused is not None and (refused.status, refused.reason, refused.retry_after_s) == (429, "rate_limited", 2)
    assert gate.enter("b") is None  # another credential is not limited by a's rate
    clock.now += 1.0  # half a token: still refused, one more second to wait
    assert gate.enter("a").retry_after_s == 1  # type: ignore[union-attr]
    clock.now += 1.0
    assert gate.enter("a") is None
    assert gate.in_flight == 4  # a refusal never takes a slot


def test_the_buckets_kept_are_bounded():
    gate = Admission(AdmissionPolicy(max_in_flight=10**6, rate_per_s=1.0), Clock())
    for i in range(MAX_CLIENTS + 10):
        gate.enter(f"client-{i}")
    assert len(gate._buckets) == MAX_CLIENTS


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"retry_after_s": 0}, "retry_after_s"),
        ({"rate_per_s": 0.0}, "rate_per_s"),
        ({"rate_per_s": float("nan")}, "rate_per_s"),
        ({"burst": 5}, "burst"),
        ({"rate_per_s": 1.0, "burst": 0}, "burst"),
    ],
)
def test_a_policy_that_could_not_work_is_refused_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdmissionPolicy(**kwargs)


class Held(FakeRelease):
    """Answers only once ``release`` is set: requests stay in flight as long as the test wants."""

    def __init__(self) -> None:
        super().__init__()
        self.release_event, self.entered = threading.Event(), threading.Semaphore(0)

    def predict(self, request, **kwargs):
        self.entered.release()
        self.release_event.wait(10)
        return super().predict(request, **kwargs)


def test_the_app_sheds_past_its_limit_with_retry_after_and_counts_it_as_shed_not_as_an_error():
    held, metrics = Held(), ServingMetrics()
    app = create_app({"helpdesk": held}, metrics=metrics, admission=AdmissionPolicy(max_in_flight=2))

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as ac:
            first = [asyncio.create_task(ac.post(URL, json={"message": f"refund {i}"})) for i in range(2)]
            for _ in range(2):  # both are predicting now: the worker is full
                await asyncio.to_thread(held.entered.acquire, True, 10)
            shed = [await ac.post(URL, json={"message": "refund"}) for _ in range(3)]
            held.release_event.set()
            return [await task for task in first], shed

    admitted, shed = own_loop.run(asyncio.wait_for(main(), 20))
    assert [r.status_code for r in admitted] == [200, 200]
    assert [r.status_code for r in shed] == [503] * 3
    assert all(r.headers["retry-after"] == "1" and "overloaded" in r.json()["error"] for r in shed)
    assert len(held.calls) == 2  # a shed request never reached the model

    text = TestClient(app).get("/metrics").text
    assert f'{PREFIX}_shed_total{{reason="overloaded",release="helpdesk"}} 3.0' in text
    # What the canary monitor reads from that text: the shed requests apart, no version with an error.
    snapshot = snapshot_of_text({"srv": text}, "helpdesk")
    assert snapshot.shed == {"overloaded": 3.0}
    assert snapshot.counters("v1").requests == 2 and snapshot.counters("v1").errors == 0
    assert window(snapshot, snapshot).shed == {"overloaded": 0.0}


def test_a_client_over_its_rate_gets_429_and_the_token_is_what_is_limited():
    app = create_app({"helpdesk": FakeRelease()}, token="s3cret", admission=AdmissionPolicy(rate_per_s=0.01, burst=2))
    c = TestClient(app)
    auth = {"Authorization": "Bearer s3cret"}
    assert [c.post(URL, json={"message": "refund"}, headers=auth).status_code for _ in range(2)] == [200, 200]
    refused = c.post(URL, json={"message": "refund"}, headers=auth)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 99
    assert c.post(URL, json={"message": "refund"}).status_code == 401  # authentication first: no bucket spent
    assert 'reason="rate_limited"' in c.get("/metrics").text
