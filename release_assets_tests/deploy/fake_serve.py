"""A serving app over fake releases with every kind of traffic the dashboards and rules read, and a real uvicorn.

helpdesk (a chain) answers on champion v1 and canary v2 (user ids starting "canary"), some answers fail with the
fakes' EXPLODE marker, some requests are shadowed to v3 through a real ShadowPool; iris (a classifier) answers on
its champion; one request is refused before routing. v2's circuit breaker gauge is set open.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.support.fakes import EXPLODE, FakeRelease
from bench.support.live import serving  # noqa: F401  (re-exported for the deploy tests)
from release_assets.serving.app import create_app
from release_assets.serving.metrics import ServingMetrics
from release_assets.serving.shadow import ShadowPool

CHAIN_TRAFFIC = [
    ("u1", "I want a refund"),
    ("u2", "where is my order"),
    ("u3", "hello there"),
    ("u4", f"refund {EXPLODE}"),
    ("shadow-1", "please cancel it"),
    ("shadow-2", "refund please"),
    ("canary-1", "where is it"),
    ("canary-2", "cancel my order"),
    ("canary-3", f"where {EXPLODE}"),
    ("canary-shadow-1", "refund"),
]
IRIS_TRAFFIC = [[5.1, 3.5, 1.4, 0.2], [6.3, 2.9, 5.6, 1.8], [5.0, 3.4, 1.5, 0.2]]


class SplitRouter:
    """Routes by user id prefix: "canary*" to canary v2; "*shadow*" is also shadowed to v3."""

    def route(self, release: str, key: str) -> tuple[str, str | None]:
        return ("canary", "v2") if release == "helpdesk" and key.startswith("canary") else ("champion", None)

    def shadow(self, release: str, key: str) -> str | None:
        return "v3" if "shadow" in key else None


@contextmanager
def fake_app() -> Iterator[tuple[Any, ServingMetrics, ShadowPool]]:
    """The app, its metrics and its shadow pool (closed on exit)."""
    kinds = {"helpdesk": "chain", "iris": "classifier"}

    def load(release: str, version: str) -> FakeRelease:
        return FakeRelease(release, version, kind=kinds[release])

    metrics = ServingMetrics(weights=lambda: {"helpdesk": ("v2", 25), "iris": None})
    pool = ShadowPool(lambda r, v, request: load(r, v).predict(request, variant="shadow"), metrics.observe_pair)
    app = create_app(
        {"helpdesk": load("helpdesk", "v1"), "iris": load("iris", "v1")},
        router=SplitRouter(),
        shadow=pool,
        metrics=metrics,
        loader=load,
    )
    app.state.versions.preload("helpdesk", "v2")  # as serve's version keeper does before any user reaches it
    try:
        yield app, metrics, pool
    finally:
        pool.close(timeout_s=5)


def send_traffic(client: Any, pool: ShadowPool, metrics: ServingMetrics) -> None:
    """Every request of the module docstring, through ``client`` (httpx.Client or Starlette's TestClient); returns
    once the shadow pool has reported every pair (bounded: 10 s)."""
    for user, message in CHAIN_TRAFFIC:
        status = client.post("/v1/helpdesk/predict", json={"message": message, "user_id": user}).status_code
        assert status == (500 if EXPLODE in message else 200), (user, status)
    for features in IRIS_TRAFFIC:
        assert client.post("/v1/iris/predict", json={"features": features, "user_id": "shadow-i"}).status_code == 200
    refused = client.post("/v1/helpdesk/predict", content=b"x", headers={"content-type": "text/plain"})
    assert refused.status_code == 415
    metrics.set_circuit_open("helpdesk", "v2", "canary", True)
    deadline = time.monotonic() + 10
    while pool.stats["completed"] + pool.stats["dropped"] < pool.stats["submitted"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.stats["completed"] == pool.stats["submitted"] > 0, pool.stats


def free_port() -> int:
    """A port nobody listens on now (for a child process that must bind it itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
