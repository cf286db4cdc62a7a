"""Flag files and the OpenFeature router: the document format, sticky splits, pinned buckets, live reload, and
broken files never raising (nor routing: see test_flag_validation.py for what an invalid file keeps)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from bench.support.fakes import list_as_published
from release_assets.release.store import StoreError
from release_assets.serving.flags import (
    FlagError,
    FlagRouter,
    canary_version,
    flag_document,
    flags_path,
    write_flags,
)

V1, V2, V3 = "1111111111111111", "2222222222222222", "3333333333333333"
KEYS = [f"key-{i}" for i in range(10_000)]
POLL_S = 0.001  # flagd's watcher sleeps whole milliseconds: 1 ms is the smallest interval it takes


def write(flags_dir: Path, release: str = "iris", **kwargs) -> Path:
    path = flags_path(flags_dir, release)
    write_flags(path, flag_document(release, V1, **kwargs))
    return path


def wait_for(condition, timeout_s: float = 10.0) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, "condition not met in time"
        time.sleep(0.001)
    return time.monotonic() - start


@pytest.fixture
def router(tmp_path: Path):
    r = FlagRouter(tmp_path, poll_interval_s=POLL_S)
    yield r
    r.close()


def test_document_format_is_pinned():
    bucket = {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}
    assert flag_document("iris", V1, V2, 10, V3, 5) == {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "metadata": {"release": "iris"},
        "flags": {
            "iris.route": {
                "state": "ENABLED",
                "variants": {"champion": V1, "canary": V2},
                "defaultVariant": "champion",
                "targeting": {"fractional": [bucket, ["champion", 90], ["canary", 10]]},
            },
            "iris.shadow": {
                "state": "ENABLED",
                "variants": {"off": "", "on": V3},
                "defaultVariant": "off",
                "targeting": {"fractional": [bucket, ["off", 95], ["on", 5]]},
            },
        },
    }
    plain = flag_document("iris", V1)["flags"]
    assert plain["iris.route"] == {"state": "ENABLED", "variants": {"champion": V1}, "defaultVariant": "champion"}
    assert plain["iris.shadow"] == {"state": "ENABLED", "variants": {"off": ""}, "defaultVariant": "off"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"release": "Iris"}, "release"),
        ({"champion": "abc"}, "champion"),
        ({"champion": V1.upper().replace("1", "A")}, "champion"),
        ({"canary": "x" * 16, "canary_percent": 5}, "canary"),
        ({"canary": V2, "canary_percent": 101}, "canary_percent"),
        ({"canary": V2, "canary_percent": -1}, "canary_percent"),
        ({"canary": V2, "canary_percent": 5.5}, "canary_percent"),
        ({"canary": V2, "canary_percent": True}, "canary_percent"),
        ({"canary": V2, "canary_percent": "5"}, "canary_percent"),
        ({"canary_percent": 5}, "canary_percent"),
        ({"shadow": V3, "shadow_percent": 200}, "shadow_percent"),
        ({"shadow_percent": 1}, "shadow_percent"),
        ({"shadow": 123, "shadow_percent": 1}, "shadow"),
    ],
)
def test_document_refuses_bad_fields_naming_them(kwargs, field):
    args = {"release": "iris", "champion": V1, **kwargs}
    with pytest.raises(FlagError, match=rf"^{field}: "):
        flag_document(**args)


def test_write_is_whole_checked_by_flagd_and_steps_the_mtime(tmp_path: Path):
    path = write(tmp_path, canary=V2, canary_percent=5)
    assert json.loads(path.read_text()) == flag_document("iris", V1, V2, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["iris.flagd.json"]  # no temporary file left behind
    with pytest.raises(FlagError, match=r"not iris\.route/iris\.shadow"):
        write_flags(path, flag_document("wine", V1))
    broken = {"flags": {"iris.route": {"state": "ON", "variants": {"champion": V1}}}}
    with pytest.raises(FlagError, match="not a flagd document"):
        write_flags(path, broken)
    # On a coarse clock the next write could carry the same (or an older) mtime, and the watcher would skip it.
    future = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(future, future))
    write(tmp_path, canary=V2, canary_percent=50)
    assert path.stat().st_mtime_ns > future


@pytest.mark.parametrize("percent", [5, 25, 50])
def test_split_is_sticky_and_within_two_points(tmp_path: Path, percent: int):
    write(tmp_path, canary=V2, canary_percent=percent)
    first, again = FlagRouter(tmp_path, POLL_S), FlagRouter(tmp_path, POLL_S)  # two replicas, or a restart
    try:
        routed = [first.route("iris", k) for k in KEYS]
        assert [again.route("iris", k) for k in KEYS] == routed
        assert [first.route("iris", k) for k in KEYS[:1000]] == routed[:1000]
    finally:
        first.close()
        again.close()
    assert set(routed) == {("champion", None), ("canary", V2)}
    share = sum(variant == "canary" for variant, _ in routed) / len(KEYS) * 100
    assert abs(share - percent) <= 2, share


def test_raising_the_canary_share_only_moves_keys_to_the_canary(tmp_path: Path):
    canaries = []
    for percent in (5, 25, 50):
        write(tmp_path, canary=V2, canary_percent=percent)
        r = FlagRouter(tmp_path, POLL_S)
        canaries.append({k for k in KEYS[:2000] if r.route("iris", k)[0] == "canary"})
        r.close()
    assert canaries[0] < canaries[1] < canaries[2]


# murmur3 over "iris.route" + key, bucket = hash * 100 >> 32, champion below 50. Computed with
# openfeature-provider-flagd 0.5.0 / openfeature-flagd-core 1.0.0: if this fails after an upgrade, users switch
# variants on deploy; decide that on purpose.
GOLDEN = [
    "canary",
    "canary",
    "champion",
    "champion",
    "champion",
    "champion",
    "canary",
    "champion",
    "champion",
    "canary",
]


def test_golden_bucket_assignments(tmp_path: Path, router: FlagRouter):
    write(tmp_path, canary=V2, canary_percent=50)
    assert [router.route("iris", f"user-{i}")[0] for i in range(10)] == GOLDEN


def test_golden_buckets_are_murmur3_of_flag_key_and_targeting_key():
    mmh3 = pytest.importorskip("mmh3")
    buckets = [(mmh3.hash(f"iris.routeuser-{i}", signed=False) * 100) >> 32 for i in range(10)]
    assert ["champion" if b < 50 else "canary" for b in buckets] == GOLDEN


def test_shadow_samples_its_share_independently_of_the_route(tmp_path: Path, router: FlagRouter):
    write(tmp_path, canary=V2, canary_percent=50, shadow=V3, shadow_percent=10)
    shadowed = [router.shadow("iris", k) for k in KEYS]
    assert set(shadowed) == {None, V3}
    assert abs(shadowed.count(V3) / len(KEYS) * 100 - 10) <= 2
    canary = {k for k in KEYS if router.route("iris", k)[0] == "canary"}
    in_canary = sum(s is not None for k, s in zip(KEYS, shadowed, strict=True) if k in canary) / len(canary)
    assert abs(in_canary * 100 - 10) <= 3  # shadow sampling does not follow the canary split


def test_a_flag_change_applies_without_restart(tmp_path: Path, router: FlagRouter):
    write(tmp_path, canary=V2, canary_percent=0)
    assert router.route("iris", "user-2") == ("champion", None)
    write(tmp_path, canary=V2, canary_percent=100)
    waited = wait_for(lambda: router.route("iris", "user-2") == ("canary", V2))
    # ~1 ms here; flagd 0.5 polls every deadline_ms. If an upgrade starts honouring offline_poll_interval_ms
    # instead (default 5 s), this fails rather than quietly slowing every rollback.
    assert waited < 2, waited
    write(tmp_path, canary=V2, canary_percent=0)  # and back: the rollback path
    wait_for(lambda: router.route("iris", "user-2") == ("champion", None))


def test_missing_file_answers_champion_then_the_file_is_picked_up(tmp_path: Path, router: FlagRouter):
    assert router.route("iris", "user-2") == ("champion", None)
    assert router.shadow("iris", "user-2") is None
    assert router.counts["no_file"] == 2
    write(tmp_path, canary=V2, canary_percent=100)
    wait_for(lambda: router.route("iris", "user-2") == ("canary", V2))


def test_malformed_file_answers_champion_and_recovers(tmp_path: Path, router: FlagRouter, caplog):
    path = flags_path(tmp_path, "iris")
    path.write_text('{"flags": {"iris.route": ')
    with caplog.at_level(logging.WARNING):
        assert router.route("iris", "user-2") == ("champion", None)
        assert router.shadow("iris", "user-2") is None
        for _ in range(100):  # ~100 looks at the broken file
            router.route("iris", "user-2")
            time.sleep(POLL_S)
    assert router.counts["rejected"] >= 2  # no good flags before it: the champion, no shadow
    assert router.errors == {("iris", "malformed"): 1}
    assert len([r for r in caplog.records if str(path) in r.getMessage()]) == 1  # once, not once per look
    write(tmp_path, canary=V2, canary_percent=100)
    wait_for(lambda: router.route("iris", "user-2") == ("canary", V2))


def test_a_broken_edit_keeps_the_last_good_flags_and_a_deleted_file_stops_the_canary(
    tmp_path: Path, router: FlagRouter
):
    path = write(tmp_path, canary=V2, canary_percent=100)
    assert router.route("iris", "user-2") == ("canary", V2)
    path.write_text("not json")  # a hand edit gone wrong: refused, the flags applied before it keep routing
    wait_for(lambda: router.route("iris", "user-2") and router.errors == {("iris", "malformed"): 1})
    assert router.route("iris", "user-2") == ("canary", V2)
    write(tmp_path, canary=V2, canary_percent=0)
    wait_for(lambda: router.route("iris", "user-2") == ("champion", None))
    write(tmp_path, canary=V2, canary_percent=100)
    wait_for(lambda: router.route("iris", "user-2") == ("canary", V2))
    path.unlink()  # no file is no flags, on purpose: the champion
    wait_for(lambda: router.route("iris", "user-2") == ("champion", None))


def _hand_edited(route: dict | None) -> dict:
    document = flag_document("iris", V1)
    if route is None:
        document["flags"] = {"other.route": {"state": "ENABLED", "variants": {"a": "b"}, "defaultVariant": "a"}}
    else:
        document["flags"]["iris.route"] = route
    return document


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (None, "structure"),
        ({"state": "ENABLED", "variants": {"champion": "not a version"}, "defaultVariant": "champion"}, "version"),
        ({"state": "ENABLED", "variants": {"blue": V2}, "defaultVariant": "blue"}, "variants"),
        ({"state": "ENABLED", "variants": {"champion": 7}, "defaultVariant": "champion"}, "version"),
    ],
)
def test_hand_edited_flags_are_refused_and_answer_champion(tmp_path: Path, router: FlagRouter, route, reason):
    flags_path(tmp_path, "iris").write_text(json.dumps(_hand_edited(route)))
    assert router.route("iris", "user-2") == ("champion", None)
    assert router.counts["rejected"] == 1
    assert router.errors == {("iris", reason): 1}


def test_a_disabled_route_flag_is_valid_and_answers_champion(tmp_path: Path, router: FlagRouter):
    route = {"state": "DISABLED", "variants": {"champion": V1, "canary": V2}, "defaultVariant": "canary"}
    flags_path(tmp_path, "iris").write_text(json.dumps(_hand_edited(route)))
    assert router.route("iris", "user-2") == ("champion", None)  # switched off on purpose
    assert router.counts["disabled"] == 1 and router.errors == {}
    assert router.canary_weight("iris") is None


def test_empty_key_and_bad_release_name_answer_champion(tmp_path: Path, router: FlagRouter):
    write(tmp_path, canary=V2, canary_percent=100)
    assert router.route("iris", "") == ("champion", None)
    assert router.route("../iris", "user-2") == ("champion", None)
    assert router.counts["no_key"] == 1


def test_routers_and_releases_are_independent_in_one_process(tmp_path: Path):
    write(tmp_path, "iris", canary=V2, canary_percent=100)
    write(tmp_path, "wine", canary=V3, canary_percent=100)
    first, second = FlagRouter(tmp_path, POLL_S), FlagRouter(tmp_path, POLL_S)
    assert first.route("iris", "k") == ("canary", V2)
    assert first.route("wine", "k") == ("canary", V3)
    assert second.route("iris", "k") == ("canary", V2)
    first.close()
    assert first.route("iris", "k") == ("champion", None)  # closed: no provider, no exception
    assert second.route("iris", "k") == ("canary", V2)
    second.close()


def test_canary_version_reads_the_release_flag_file(tmp_path: Path):
    store = list_as_published(tmp_path, "iris", V1, V2)  # a flag file may name only published versions
    assert canary_version(store, "iris") is None
    flags_dir = tmp_path / "flags"
    write(flags_dir, canary=V2, canary_percent=0)
    assert canary_version(store, "iris") == V2
    write(flags_dir)
    assert canary_version(store, "iris") is None
    flags_path(flags_dir, "iris").write_text("{")
    with pytest.raises(StoreError, match="not a readable flag file"):
        canary_version(store, "iris")


def test_poll_interval_below_a_millisecond_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="poll_interval_s"):
        FlagRouter(tmp_path, poll_interval_s=0.0001)


def test_a_stale_champion_in_the_flag_file_never_overrides_the_ledger(tmp_path: Path, router: FlagRouter):
    # Written before a rollback: the file still names the old champion V1; the server's own champion must answer.
    write(tmp_path, canary=V2, canary_percent=0)
    assert {router.route("iris", k) for k in KEYS[:200]} == {("champion", None)}


def test_a_key_is_evaluated_once_per_document_and_afresh_when_the_document_changes(
    tmp_path: Path, router: FlagRouter, monkeypatch
):
    write(tmp_path, canary=V2, canary_percent=50)
    first = [router.route("iris", f"user-{i}") for i in range(20)]
    assert {variant for variant, _ in first} == {"champion", "canary"}
    client, calls = router._releases["iris"].client, []
    evaluate = client.get_string_details
    monkeypatch.setattr(client, "get_string_details", lambda *a, **kw: calls.append(a[0]) or evaluate(*a, **kw))
    assert [router.route("iris", f"user-{i}") for i in range(20)] == first and calls == []  # remembered
    assert router.counts["evaluations"] == 40  # still counted per request
    write(tmp_path, canary=V2, canary_percent=100)
    wait_for(lambda: router.route("iris", "user-0") == ("canary", V2))  # user-0's old answer was not kept
    assert all(router.route("iris", f"user-{i}") == ("canary", V2) for i in range(20)) and len(calls) == 20
