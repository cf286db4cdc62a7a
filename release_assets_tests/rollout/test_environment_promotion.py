"""Promotion through environments (dev -> staging -> prod): every refusal, region waves on two S3 endpoints (moto on
127.0.0.1), the one ledger with `environment`, and what `history`, `list` and the registry show."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from bench.support.bundles import publish_unit
from release_assets.core.settings import Settings
from release_assets.record.ledger import PromotionError, event, promote, record_published, replay
from release_assets.release.store import LocalReleaseStore
from release_assets.rollout.environment_promotion import MONITOR, champion_since, champions, promote_to
from release_assets.rollout.environments import parse_environments, store_for

R = "helpdesk"


def _envs(tmp_path: Path, **prod):
    staging = {"name": "staging", "store": {"local": str(tmp_path / "staging")}}
    prod_env = {"name": "prod", "store": {"local": str(tmp_path / "prod")}, "approval": True, **prod}
    return parse_environments({"environments": [{"name": "dev"}, staging, prod_env]})


@pytest.fixture
def dev(tmp_path) -> LocalReleaseStore:
    return LocalReleaseStore(tmp_path / "dev")


def _publish(store, content: str = "a", **kwargs) -> str:
    version = publish_unit(store, R, content, **kwargs)
    record_published(store, R, version, "ci", "run-1")
    return version


def _refusal(*args, **kwargs) -> str:
    with pytest.raises(PromotionError) as caught:
        promote_to(*args, **kwargs)
    return str(caught.value)


def test_refusals_say_what_is_missing(tmp_path, dev):
    envs = _envs(tmp_path, soak={"min_minutes": 60})
    v1 = _publish(dev)
    assert (
        _refusal(dev, envs, R, v1, "qa") == "unknown environment 'qa' (environments.yaml declares: dev, staging, prod)"
    )
    assert _refusal(dev, envs, R, v1, "dev").startswith("dev is the first environment: versions enter it by")
    # Skipping staging: prod takes only staging's champion.
    message = _refusal(dev, envs, R, v1, "prod", "alice", "ship")
    assert message == (
        f"{R} {v1} cannot go to prod: it is not the champion of staging, the environment before (champion there: "
        "none); promote it with `--to staging` first"
    )
    assert _refusal(dev, envs, R, "0" * 16, "staging").startswith(f"{R} 0000000000000000 was never published")
    failing = [{"member": "m", "gate": "accuracy", "status": "failed", "severity": "block", "reason": "0.5 < 0.9"}]
    held = _publish(dev, "held", gates=failing)
    assert "did not pass all its gates: m.accuracy: failed" in _refusal(dev, envs, R, held, "staging")
    assert not (tmp_path / "staging").exists()  # no refusal copied anything

    staged = promote_to(dev, envs, R, v1, "staging")  # no approval needed there: actor defaults, reason says from
    assert [e["action"] for e in staged] == ["approved", "promoted"]
    assert staged[-1]["environment"] == "staging" and staged[-1]["regions"] == ["local"]
    assert staged[-1]["reason"] == "promoted from dev" and staged[-1]["from_version"] is None
    assert LocalReleaseStore(tmp_path / "staging").versions(R) == [v1]
    assert _refusal(dev, envs, R, v1, "staging") == f"{R} {v1} is already the champion of staging"

    assert (
        _refusal(dev, envs, R, v1, "prod") == "promotion to prod needs an approval: --approved-by and --reason missing"
    )
    assert _refusal(dev, envs, R, v1, "prod", "alice") == "promotion to prod needs an approval: --reason missing"
    soon = datetime.now(UTC) + timedelta(minutes=5)
    message = _refusal(dev, envs, R, v1, "prod", "alice", "ship", now=soon)
    assert message.startswith(f"{R} {v1} cannot go to prod: its soak needs 60 min as champion of staging, and it has")
    assert not (tmp_path / "prod").exists()

    later = datetime.now(UTC) + timedelta(minutes=61)
    shipped = promote_to(dev, envs, R, v1, "prod", "alice", "ship", now=later)
    assert shipped[-1]["actor"] == "alice" and shipped[-1]["environment"] == "prod"
    events = dev.events(R)
    assert champions(envs, events) == {"dev": None, "staging": v1, "prod": v1}
    # The first environment's state is today's: other environments' moves do not touch it.
    assert replay(events).champion is None and replay(events).candidate == held


def test_soak_by_a_completed_canary_in_the_environment_before(tmp_path, dev):
    envs = parse_environments(
        {"environments": [{"name": "dev"}, {"name": "staging", "store": {"local": "s"}, "soak": {"canary": True}}]}
    )
    v0, v1 = _publish(dev, "c"), _publish(dev)
    stores = lambda env, region: store_for(env, region, Settings(project_root=tmp_path))  # noqa: E731
    # Staging's first champion has no champion there to judge a canary against: it enters without one.
    assert promote_to(dev, envs, R, v0, "staging", stores=stores)[-1]["to_version"] == v0
    message = _refusal(dev, envs, R, v1, "staging", stores=stores)
    assert message == (
        f"{R} {v1} cannot go to staging: its soak needs a completed canary in dev (promoted by the canary monitor), "
        f"and the ledger has none; or enter staging through a canary there: `canary start {R} {v1} --env staging`"
    )
    promote(dev, R, v1, "alice", "by hand")  # a promotion by a person is not a completed canary
    assert "needs a completed canary in dev" in _refusal(dev, envs, R, v1, "staging", stores=stores)
    # What rollout/canary.py writes when the canary passed every step: approved + promoted, via the monitor.
    v2 = _publish(dev, "b")
    for action in ("approved", "promoted"):
        dev.append_event(R, event(action, R, actor="bob", reason="x", from_version=v1, to_version=v2, via=MONITOR))
    assert promote_to(dev, envs, R, v2, "staging", stores=stores)[-1]["to_version"] == v2
    assert (tmp_path / "s" / "releases" / R / v2 / "bundle.tar.gz").exists()


def test_a_soak_counts_from_when_it_last_became_champion(tmp_path, dev):
    envs = _envs(tmp_path, soak={"min_minutes": 10})
    v1, v2 = _publish(dev, "a"), _publish(dev, "b")
    promote_to(dev, envs, R, v1, "staging")
    assert champion_since(dev.events(R), "staging", v2) is None
    promote_to(dev, envs, R, v2, "staging")
    events = dev.events(R)
    assert champion_since(events, "staging", v1) is None  # no longer champion there
    assert champion_since(events, "staging", v2) == datetime.fromisoformat(events[-1]["time"])
    assert champion_since(events, None, v1) is None  # never champion of dev
    message = _refusal(dev, envs, R, v1, "prod", "alice", "ship", now=datetime.now(UTC) + timedelta(hours=1))
    assert "it is not the champion of staging" in message


def test_old_ledgers_without_environment_replay_unchanged(tmp_path, dev):
    envs = _envs(tmp_path)
    v1, v2 = _publish(dev, "a"), _publish(dev, "b")
    promote(dev, R, v1, "alice", "one")
    promote(dev, R, v2, "alice", "two")
    events = dev.events(R)
    assert all("environment" not in e for e in events)
    before = replay(events)
    assert before.champions == [v1, v2] and before.candidate == v2 and before.published == {v1, v2}
    assert champions(envs, events) == {"dev": v2, "staging": None, "prod": None}
    promote_to(dev, envs, R, v1, "staging")  # another environment's move leaves the first's state exactly as it was
    assert replay(dev.events(R)) == before
    assert replay(dev.events(R), "staging").champions == [v1]


# -- regions: two S3 endpoints ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def _bucket(endpoint: str, name: str) -> None:
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)


@pytest.fixture
def aws_keys(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)


def _s3_envs(first: str, second: str, bucket: str = "rel-prod"):
    # In-process moto servers share one backend for the whole test session: each test has its own bucket.
    regions = [{"name": "eu-west-1", "endpoint_url": first}, {"name": "us-east-1", "endpoint_url": second}]
    prod = {"name": "prod", "store": {"s3": {"bucket": bucket, "prefix": "team", "regions": regions}}}
    return parse_environments({"environments": [{"name": "dev"}, prod]})


def test_the_wave_stops_at_a_failing_region_and_a_retry_completes(tmp_path, dev, aws_keys):
    """Region one is moto in this process; region two another moto process (its own buckets), first down."""
    from moto.server import ThreadedMotoServer

    settings = Settings(project_root=tmp_path, s3_connect_timeout=2, s3_read_timeout=10, s3_max_attempts=1)

    def stores(env, region):
        return store_for(env, region, settings)

    first_port, second_port = _free_port(), _free_port()
    first, second = f"http://127.0.0.1:{first_port}", f"http://127.0.0.1:{second_port}"
    envs = _s3_envs(first, second)
    v1 = _publish(dev)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=first_port)
    server.start()
    other = None
    try:
        _bucket(first, "rel-prod")
        # Region two does not answer: region one has the bundle, the ledger nothing, and the message names the region.
        message = _refusal(dev, envs, R, v1, "prod", stores=stores)
        assert message.startswith(
            f"{R} {v1} was not promoted to prod: region us-east-1 failed: EndpointConnectionError"
        )
        assert "(regions before it hold the bundle: eu-west-1). Nothing was recorded in the ledger" in message
        assert [e for e in dev.events(R) if e.get("environment")] == []
        assert stores(envs.get("prod"), "eu-west-1").versions(R) == [v1]

        # Region two is up, but its bucket is missing: still stopped there, still nothing recorded.
        other = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(second_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(second_port)
        message = _refusal(dev, envs, R, v1, "prod", stores=stores)
        assert "region us-east-1 failed: NoSuchBucket" in message
        assert replay(dev.events(R), "prod").champion is None

        # Fixed: the retry skips region one (already verified there) and completes region two.
        _bucket(second, "rel-prod")
        moved = promote_to(dev, envs, R, v1, "prod", stores=stores)
        assert moved[-1]["regions"] == ["eu-west-1", "us-east-1"] and moved[-1]["environment"] == "prod"
        assert replay(dev.events(R), "prod").champion == v1
        from release_assets.record.verified import verified_manifest

        for region in ("eu-west-1", "us-east-1"):
            assert verified_manifest(stores(envs.get("prod"), region), R, v1)["version"] == v1
    finally:
        server.stop()
        if other is not None:
            other.terminate()
            other.wait(timeout=10)


def test_a_failing_first_region_stops_before_the_others(tmp_path, dev, aws_keys):
    from moto.server import ThreadedMotoServer

    settings = Settings(project_root=tmp_path, s3_connect_timeout=2, s3_max_attempts=1)
    port, closed = _free_port(), _free_port()
    envs = _s3_envs(f"http://127.0.0.1:{closed}", f"http://127.0.0.1:{port}", bucket="rel-first-down")
    v1 = _publish(dev)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        _bucket(f"http://127.0.0.1:{port}", "rel-first-down")
        stores = lambda env, region: store_for(env, region, settings)  # noqa: E731
        message = _refusal(dev, envs, R, v1, "prod", stores=stores)
        assert "region eu-west-1 failed: EndpointConnectionError" in message and "regions before it" not in message
        assert stores(envs.get("prod"), "us-east-1").versions(R) == []  # the second wave never started
        assert [e["action"] for e in dev.events(R)] == ["published"]
    finally:
        server.stop()


# -- the commands a person types, through the Dagster job ----------------------------------------------------------


@pytest.fixture
def env_project(cli_env):
    (cli_env / "environments.yaml").write_text(
        "environments:\n"
        "  - name: dev\n"
        "  - name: staging\n"
        "    store: {local: envs/staging}\n"
        "  - name: prod\n"
        "    store: {local: envs/prod}\n"
        "    approval: true\n"
        "    soak: {min_minutes: 0}\n"
    )
    return cli_env


def test_promote_to_history_list_and_aliases(env_project, tmp_path, capsys):
    from release_assets.cli import main as cli
    from release_assets.resources.registry import RegistryResource

    assert cli.main(["release", "iris"]) == 0
    version = capsys.readouterr().out.split("version: ")[1].split()[0]

    assert cli.main(["promote", "iris", version]) == 2
    assert "promote needs --approved-by and --reason (or --to ENV)" in capsys.readouterr().err
    assert cli.main(["promote", "iris", version, "--to", "prod", "--approved-by", "alice", "--reason", "ship"]) == 1
    assert "promotion refused: iris " + version + " cannot go to prod: it is not the champion of staging" in (
        capsys.readouterr().err
    )
    assert cli.main(["promote", "iris", version, "--to", "qa"]) == 1
    assert "unknown environment 'qa' (environments.yaml declares: dev, staging, prod)" in capsys.readouterr().err

    assert cli.main(["promote", "iris", version, "--to", "staging"]) == 0
    assert f"iris: {version} is now champion of staging (regions: local; by " in capsys.readouterr().out
    assert (env_project / "envs" / "staging" / "releases" / "iris" / version / "bundle.tar.gz").exists()
    assert cli.main(["promote", "iris", version, "--to", "prod"]) == 1
    assert "promotion to prod needs an approval: --approved-by and --reason missing" in capsys.readouterr().err
    assert cli.main(["promote", "iris", version, "--to", "prod", "--approved-by", "alice", "--reason", "ship"]) == 0
    assert f"iris: {version} is now champion of prod (regions: local; by alice)" in capsys.readouterr().out

    assert cli.main(["history", "iris"]) == 0
    history = capsys.readouterr().out.splitlines()
    assert history[0].split()[:4] == ["time", "(UTC)", "environment", "action"]
    assert [line.split()[2:4] for line in history[2:]] == [
        ["dev", "published"],
        ["staging", "approved"],
        ["staging", "promoted"],
        ["prod", "approved"],
        ["prod", "promoted"],
    ]
    assert cli.main(["list", "iris"]) == 0
    listed = capsys.readouterr().out
    assert "champion of" in listed.splitlines()[0]
    row = next(line for line in listed.splitlines() if version in line)
    assert [cell.strip() for cell in row.split("  ") if cell.strip()][-2:] == ["candidate", "staging, prod"]

    registry = RegistryResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root="unused").get()
    assert registry.aliases("iris") == {"candidate": version, "staging-champion": version, "prod-champion": version}

    # The release unit's asset page says which version each environment runs.
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        records = instance.get_event_records(
            dg.EventRecordsFilter(
                dg.DagsterEventType.ASSET_OBSERVATION, asset_key=dg.AssetKey(["iris", "release_unit"])
            ),
            ascending=True,
        )
        observed = [r.event_log_entry.dagster_event.asset_observation_data.asset_observation.metadata for r in records]
    assert [(m["environment"].value, m["champion"].value, m["regions"].value) for m in observed] == [
        ("staging", version, "local"),
        ("prod", version, "local"),
    ]
    running = observed[-1]["environments"].value
    assert "| dev | none |" in running and f"| staging | {version} |" in running and f"| prod | {version} |" in running
