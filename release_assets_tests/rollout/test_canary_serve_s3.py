"""Two real ``release-assets serve`` processes on one S3 release store (moto on 127.0.0.1): shadow pairs from both
reach the store and the shadow report counts them together; a canary routes each user alike on both, the monitor
judges both servers' /metrics together and rolls the worse candidate back, and both then serve only the champion.

What serves is real: the loader verifies and loads hand-written ``tabular_classifier`` bundles (a JSON logistic
regression, published in milliseconds instead of a release run). The candidate carries weights for three features
where the model takes four, so every answer it gives fails (a 500): worse beyond any budget. The servers read the
project's iris manifest without its circuit breaker: a breaker opened on one server would send its canary users to
the champion there, and this test is about the monitor judging both servers, not about the breaker (test_app_breaker).

Every wait is bounded; the server processes are terminated, and killed if they do not stop, in a finally.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dagster as dg
import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.support.bundles import publish_classifier
from bench.support.s3_moto import moto_s3, store_client
from release_assets.manifest import load_manifest
from release_assets.manifest.rollout import RolloutSpec
from release_assets.record.ledger import promote, replay
from release_assets.release.s3_store import S3ReleaseStore
from release_assets.resources.artifact_store import ArtifactStore
from release_assets.rollout.canary import Rollout, start, tick
from release_assets.rollout.metrics_source import MetricsEndpointSource
from release_assets.rollout.shadow_assets import ShadowReportConfig, shadow_report_asset
from release_assets.serving.flag_source import store_flags
from release_assets.serving.flags import flag_document, publish_flags
from release_assets.serving.shadow_store import store_shadow_pairs
from release_assets_tests.conftest import REPO
from release_assets_tests.rollout.test_canary import Registry, _mirrors_agree

BUCKET, PREFIX, RELEASE = "releases", "team/release_assets", "iris"
SPEC = RolloutSpec.model_validate(
    {"steps": [50, 100], "bake_s": 0.3, "min_requests": 15, "budgets": {"error_rate": {"max_increase": 0.02}}}
)
USERS = [f"user-{i}" for i in range(40)]
FLOWER = [6.1, 2.8, 4.7, 1.2]
MODEL = {
    "classes": ["setosa", "versicolor", "virginica"],
    "mean": [5.84, 3.06, 3.76, 1.2],
    "scale": [0.83, 0.43, 1.76, 0.76],
    "coef": [[-1.0, 1.2, -1.8, -1.7], [0.5, -0.3, -0.3, -0.7], [0.5, -0.9, 2.1, 2.4]],
    "intercept": [-0.2, 1.9, -1.7],
}
# Weights for three features where the model takes four: every prediction raises.
BROKEN = {**MODEL, "coef": [row[:3] for row in MODEL["coef"]]}
START_S, STOP_S = 45.0, 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.05)


def project_without_breaker(root: Path) -> Path:
    """The project's iris manifest, its circuit breaker removed (see the module docstring)."""
    document = yaml.safe_load((REPO / "releases" / "iris.yaml").read_text())
    document["rollout"].pop("circuit_breaker")
    (root / "releases").mkdir(parents=True)
    (root / "releases" / "iris.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return root


def serve_env(endpoint: str, project: Path, local: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELEASE_ASSETS_", "OTEL_", "AWS_"))}
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "RELEASE_ASSETS_PROJECT_ROOT": str(project),
        "RELEASE_ASSETS_STORE_ROOT": str(local),  # this machine's own: serving cache, traces
        "RELEASE_ASSETS_STORE_BACKEND": "s3",
        "RELEASE_ASSETS_S3_BUCKET": BUCKET,
        "RELEASE_ASSETS_S3_PREFIX": PREFIX,
        "RELEASE_ASSETS_S3_ENDPOINT_URL": endpoint,
        "RELEASE_ASSETS_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "ci",
        "AWS_SECRET_ACCESS_KEY": "ci",
    }


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """One ``release-assets serve iris`` on a free 127.0.0.1 port; its URL once the process runs. Terminated (then
    killed) on exit."""
    port = free_port()
    cmd = [sys.executable, "-m", "release_assets.cli.main", "serve", RELEASE, "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()  # uvicorn's graceful stop (what Kubernetes sends): the server closes, uploads what is left
            try:
                proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def ready(url: str, proc: subprocess.Popen, log: Path) -> bool:
    assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def answers(url: str, users: list[str]) -> dict[str, str]:
    """user -> the version that answered, or ``status N`` for an error."""
    seen = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for user in users:
            response = client.post(f"/v1/{RELEASE}/predict", json={"features": FLOWER, "user_id": user})
            seen[user] = (
                response.json().get("version") if response.status_code == 200 else f"status {response.status_code}"
            )
    return seen


def counter(url: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples on ``url``'s /metrics that carry ``labels``."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def shadow_settled(url: str) -> bool:
    """Every request handed to the shadow pool has become a pair (every shadow of the broken model fails)."""
    submitted = counter(url, "release_assets_serving_shadow_submitted_total")
    done = counter(url, "release_assets_serving_shadow_failures_total")
    dropped = counter(url, "release_assets_serving_shadow_dropped_total")
    return submitted > 0 and done + dropped == submitted


def test_two_serve_processes_on_s3_share_shadow_pairs_and_roll_back_a_worse_canary(tmp_path):
    with moto_s3(BUCKET) as (endpoint, _), ExitStack() as servers:
        store = S3ReleaseStore(store_client(endpoint), BUCKET, PREFIX)
        v1, v2 = publish_classifier(store, RELEASE, MODEL), publish_classifier(store, RELEASE, BROKEN)
        promote(store, RELEASE, v1, "alice", "first champion")
        # Shadow the candidate before any canary: every request is answered by v1 and replayed on v2.
        publish_flags(store_flags(store), RELEASE, flag_document(RELEASE, v1, shadow=v2, shadow_percent=100))

        project = project_without_breaker(tmp_path / "project")
        logs = [tmp_path / "serve-a.log", tmp_path / "serve-b.log"]
        started = [
            servers.enter_context(serve(serve_env(endpoint, project, tmp_path / f"machine-{n}"), log))
            for n, log in zip("ab", logs, strict=True)
        ]
        for (url, proc), log in zip(started, logs, strict=True):
            wait_for(lambda: ready(url, proc, log), START_S, f"{url} ready")  # noqa: B023 (called right here)
        (url_a, proc_a), (url_b, proc_b) = started

        # Shadow phase: both servers answer with the champion and log a pair per request.
        assert set(answers(url_a, USERS[:10]).values()) == set(answers(url_b, USERS[:10]).values()) == {v1}
        wait_for(lambda: shadow_settled(url_a) and shadow_settled(url_b), 10, "shadow pairs")

        # Canary: the flag document in the store now routes half the users to v2, on both servers alike.
        registry = Registry()
        monitor = MetricsEndpointSource([f"{url_a}/metrics", f"{url_b}/metrics"])
        r = Rollout(store, RELEASE, SPEC, store_flags(store), lambda: registry)
        start(r, v2, "bob", "risky", source=monitor)
        wait_for(lambda: all("status 500" in answers(url, USERS[:12]).values() for url in (url_a, url_b)), 10, "canary")
        on_a, on_b = answers(url_a, USERS), answers(url_b, USERS)
        assert on_a == on_b  # one user, one variant, whichever server answers
        assert set(on_a.values()) == {v1, "status 500"}

        time.sleep(SPEC.bake_s + 0.05)
        t = tick(r, monitor)
        assert t.action == "rolled_back", t.note
        assert {k.name for k in t.analysis.breached} >= {"error_rate"}
        # The monitor judged both servers' traffic together: every canary answer either server gave.
        on_canary = [counter(url, "release_assets_serving_requests_total", version=v2) for url in (url_a, url_b)]
        assert t.analysis.canary_requests == sum(on_canary) > max(on_canary) > 0
        _mirrors_agree(r, registry)
        assert replay(store.events(RELEASE)).champion == v1
        wait_for(
            lambda: set(answers(url_a, USERS).values()) == set(answers(url_b, USERS).values()) == {v1}, 10, "rollback"
        )

        # Requests sent before a server saw the canary's document were shadowed too: let those finish, then count.
        wait_for(lambda: shadow_settled(url_a) and shadow_settled(url_b), 10, "shadow pairs")
        pairs_made = {url: counter(url, "release_assets_serving_shadow_failures_total") for url in (url_a, url_b)}
        servers.close()  # SIGTERM: each server stops gracefully and uploads its last segment
        # uvicorn raises the signal again once it has shut down: ended by SIGTERM, not killed.
        assert proc_a.returncode == proc_b.returncode == -signal.SIGTERM

        kept = store_shadow_pairs(store, tmp_path / "unused")
        replicas = {key.rsplit("/", 1)[1].rsplit("-", 2)[0] for key in kept.segment_keys(RELEASE, v2)}
        assert len(replicas) == 2, replicas  # a segment from each server
        pairs = kept.read(RELEASE, v2)
        assert len(pairs) == sum(pairs_made.values()) > 0
        assert {(p["primary_version"], p["shadow_version"]) for p in pairs} == {(v1, v2)}

        # The shadow report reads every replica's pairs from the store.
        resources = {
            "store": ArtifactStore(
                root=str(tmp_path / "dagster-store"),
                backend="s3",
                bucket=BUCKET,
                prefix=PREFIX,
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="ci",
                aws_secret_access_key="ci",
            )
        }
        manifest = load_manifest(project / "releases" / "iris.yaml")
        result = dg.materialize(
            [shadow_report_asset(manifest)],
            resources=resources,
            run_config=dg.RunConfig({"iris__shadow_report": ShadowReportConfig(version=v2)}),
        )
        [materialization] = result.asset_materializations_for_node("iris__shadow_report")
        assert materialization.metadata["pairs_logged"].value == len(pairs)
        assert materialization.metadata["pairs_file"].value == kept.where(RELEASE, v2)
