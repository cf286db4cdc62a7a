"""A canary in a later environment (prod): started there after the checks a promotion there needs, routed through
prod's flag folder, judged and rolled back or promoted in prod alone; the ledger, the aliases and ``outcome`` say
which environment. The first environment's canary state, champion and flag file are never touched.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml

from bench.support.bundles import publish_unit
from release_assets.record.ledger import PromotionError, promote, record_published, replay
from release_assets.release.store import LocalReleaseStore
from release_assets.rollout.canary import outcome, rollout_in, start, tick
from release_assets.rollout.environment_promotion import promote_to
from release_assets.rollout.environments import parse_environments
from release_assets.serving.flags import flags_path
from release_assets_tests.rollout.test_canary import SPEC, Registry, Source, _later

R = "helpdesk"


@pytest.fixture
def world(tmp_path):
    """dev (the ledger's store), staging and prod in folders; v1 champion everywhere, v2 champion of staging."""
    envs = parse_environments(
        {
            "environments": [
                {"name": "dev"},
                {"name": "staging", "store": {"local": str(tmp_path / "staging")}},
                {
                    "name": "prod",
                    "store": {"local": str(tmp_path / "prod")},
                    "approval": True,
                    "soak": {"canary": True},
                    "flags": str(tmp_path / "prod-flags"),
                },
            ]
        }
    )
    dev = LocalReleaseStore(tmp_path / "dev")
    v1, v2 = publish_unit(dev, R, "one"), publish_unit(dev, R, "two")
    for v in (v1, v2):
        record_published(dev, R, v, "ci", "run-1")
    promote(dev, R, v1, "alice", "first champion")
    for env in ("staging", "prod"):  # prod's first champion enters directly: no champion there to judge against
        promote_to(dev, envs, R, v1, env, "alice", "first")
    promote_to(dev, envs, R, v2, "staging", "alice", "next")
    registry = Registry()
    prod = rollout_in(dev, R, SPEC, "prod", lambda: registry, envs)
    return dev, envs, prod, registry, v1, v2, tmp_path


def _routes(path) -> tuple[str, dict]:
    route = json.loads(path.read_text())["flags"][f"{R}.route"]
    return route["variants"]["champion"], route.get("targeting", {})


def test_a_prod_canary_runs_on_prods_flag_file_and_a_breach_restores_prods_champion(world):
    dev, _envs, prod, registry, v1, v2, tmp = world
    assert prod.flags_dir == tmp / "prod-flags" and prod.environment == "prod"
    source = Source()
    started = start(prod, v2, "bob", "ship to prod", source=source)
    assert (started["environment"], started["regions"], started["from_version"]) == ("prod", ["local"], v1)
    assert (tmp / "prod" / "releases" / R / v2 / "bundle.tar.gz").exists()  # copied, so prod's servers can load it
    champion, targeting = _routes(flags_path(tmp / "prod-flags", R))
    assert champion == v1 and targeting["fractional"][-1] == ["canary", 10]
    assert not flags_path(dev.root / "flags", R).exists()  # the first environment's servers are not routed
    assert replay(dev.events(R)).canary is None and replay(dev.events(R), "prod").canary.version == v2
    assert registry.aliases[R]["prod-canary"] == v2 and "canary" not in registry.aliases[R]
    assert outcome(prod, v2) == ("running", None)

    source.add(v1, requests=100)
    source.add(v2, requests=30, errors=9)
    rolled = tick(prod, source, _later(prod, 61))
    assert rolled.action == "rolled_back"
    [e] = [e for e in dev.events(R) if e["action"] == "rolled_back"]
    assert (e["environment"], e["scope"], e["from_version"], e["to_version"]) == ("prod", "canary", v2, v1)
    assert replay(dev.events(R), "prod").champion == v1 and replay(dev.events(R)).champion == v1
    assert _routes(flags_path(tmp / "prod-flags", R)) == (v1, {})  # everyone back on prod's champion
    assert "prod-canary" not in registry.aliases[R] and registry.aliases[R]["prod-champion"] == v1
    assert outcome(prod, v2)[0] == "rolled_back"


def test_a_prod_canary_that_passes_becomes_prods_champion_alone(world):
    dev, _envs, prod, registry, v1, v2, _tmp = world
    source = Source()
    start(prod, v2, "bob", "ship to prod", source=source)
    for _ in SPEC.steps[:-1]:
        source.add(v1, requests=100)
        source.add(v2, requests=100)
        assert tick(prod, source, _later(prod, 61)).action in ("advanced", "promoted")
    assert outcome(prod, v2)[0] == "promoted"
    promoted = [e for e in dev.events(R) if e["action"] == "promoted"][-1]
    assert (promoted["environment"], promoted["via"], promoted["actor"]) == ("prod", "canary_monitor", "bob")
    assert replay(dev.events(R), "prod").champion == v2 and replay(dev.events(R)).champion == v1
    assert registry.aliases[R]["prod-champion"] == v2


def test_a_prod_canary_needs_what_a_promotion_into_prod_needs(world, tmp_path):
    dev, envs, prod, _registry, v1, _v2, _tmp = world
    v3 = publish_unit(dev, R, "three")
    record_published(dev, R, v3, "ci", "run-1")
    with pytest.raises(PromotionError, match="it is not the champion of staging, the environment before"):
        start(prod, v3, "bob", "skip staging")
    with pytest.raises(PromotionError, match="already the champion of prod"):
        start(prod, v1, "bob", "again")
    assert outcome(prod, v3) == ("none", None)
    with pytest.raises(PromotionError, match="unknown environment 'qa'"):
        rollout_in(dev, R, SPEC, "qa", None, envs)
    empty = LocalReleaseStore(tmp_path / "other")
    for v in (publish_unit(empty, R, "one"),):
        record_published(empty, R, v, "ci", "run-1")
        promote(empty, R, v, "alice", "first")
    fresh = rollout_in(empty, R, SPEC, "staging", None, envs)
    with pytest.raises(PromotionError, match="no champion in staging to judge a canary against"):
        start(fresh, v, "bob", "x")


def test_the_canary_jobs_take_the_environment_and_the_cli_follows_prods_canary(project, tmp_path, monkeypatch, capsys):
    """start_canary_op and abort_canary_op with `environment: prod` in their config (what `canary start --env prod`
    runs); `canary status --env prod` and `canary wait --env prod` read prod's canary from the ledger."""
    import dagster as dg

    from release_assets.cli import main as cli
    from release_assets.core.settings import get_settings
    from release_assets.rollout.jobs import AbortCanaryConfig, StartCanaryConfig, abort_canary_op, start_canary_op
    from release_assets_tests.conftest import point_cli

    point_cli(monkeypatch, project, tmp_path / "store", tmp_path)
    monkeypatch.setenv("RELEASE_ASSETS_METRICS_URLS", "http://127.0.0.1:9/metrics")  # no server: no baseline yet
    (project / "environments.yaml").write_text(
        "environments:\n"
        "  - name: dev\n"
        f"  - {{name: staging, store: {{local: {tmp_path / 'staging'}}}}}\n"
        f"  - {{name: prod, store: {{local: {tmp_path / 'prod'}}}, soak: {{canary: true}}, flags: prod-flags}}\n"
    )
    try:
        dev = LocalReleaseStore(tmp_path / "store")
        envs = parse_environments(yaml.safe_load((project / "environments.yaml").read_text()))
        v1, v2 = publish_unit(dev, R, "one"), publish_unit(dev, R, "two")
        for v in (v1, v2):
            record_published(dev, R, v, "ci", "run-1")
        promote(dev, R, v1, "alice", "first champion")
        for env, v in (("staging", v1), ("prod", v1), ("staging", v2)):
            promote_to(dev, envs, R, v, env, "alice", "x")
        registry = Registry()
        resources = {"store": SimpleNamespace(releases=lambda: dev), "registry": SimpleNamespace(get=lambda: registry)}

        config = StartCanaryConfig(release=R, version=v2, approved_by="bob", reason="ship", environment="prod")
        start_canary_op(dg.build_op_context(resources=resources), config)
        [started] = [e for e in dev.events(R) if e["action"] == "canary_started"]
        assert started["environment"] == "prod" and started["regions"] == ["local"]
        assert _routes(flags_path(project / "prod-flags", R))[0] == v1  # `flags`, from the project root
        assert registry.aliases[R]["prod-canary"] == v2

        assert cli.main(["canary", "status", R, "--env", "prod", "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert (status["environment"], status["champion"], status["canary"]["version"]) == ("prod", v1, v2)
        assert cli.main(["canary", "status", R, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["canary"] is None  # dev has none

        abort = AbortCanaryConfig(release=R, requested_by="carol", reason="not today", environment="prod")
        abort_canary_op(dg.build_op_context(resources=resources), abort)
        assert replay(dev.events(R), "prod").canary is None and "prod-canary" not in registry.aliases[R]
        assert cli.main(["canary", "wait", R, v2, "--env", "prod", "--timeout", "5", "--interval", "0.1"]) == 1
        assert f"{R} {v2} in prod: canary aborted: not today" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


def test_the_monitor_ticks_prods_canary_on_prods_servers(world):
    from release_assets.rollout.sensors import _environments_to_tick, run_tick, tick_events

    dev, envs, _prod, registry, _v1, v2, _tmp = world
    dead = "http://127.0.0.1:9/metrics"  # prod's servers, unreachable here: the tick must say so, not judge dev's
    envs = parse_environments(
        {
            "environments": [
                e.model_dump(exclude_none=True) | ({"metrics_urls": [dead]} if e.name == "prod" else {})
                for e in envs.environments
            ]
        }
    )
    context = SimpleNamespace(
        resources=SimpleNamespace(store=SimpleNamespace(releases=lambda: dev), registry=SimpleNamespace(get=None))
    )
    assert _environments_to_tick(context, R, envs) == [None]
    start(rollout_in(dev, R, SPEC, "prod", lambda: registry, envs), v2, "bob", "ship")
    assert _environments_to_tick(context, R, envs) == [None, "prod"]
    t, circuits = run_tick(context, R, SPEC, [], "prod", envs)
    assert (t.action, t.canary.version, circuits) == ("unavailable", v2, [])
    assert "127.0.0.1:9" in t.note
    [observation] = tick_events(R, t, None, SPEC, "prod")
    assert observation.metadata["environment"].value == "prod"
