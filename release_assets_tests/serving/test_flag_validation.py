"""Issue #31 item 3: a flag file is validated before it routes anything. An invalid one (negative or non-100
weights, unknown variants, a version not published, malformed or truncated JSON) keeps the last good flags, is
logged once and counted (``flag_errors_total``, ``flag_file_rejected``), the ``canary_weight`` gauge only shows
applied weights, and the readers outside the server refuse it naming the file and the field."""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.support.fakes import FakeRelease, list_as_published
from bench.support.live import serving
from release_assets.release.store import StoreError
from release_assets.serving.flag_reads import canary_routing, shadow_version
from release_assets.serving.flags import (
    FlagError,
    FlagRouter,
    FlagRouting,
    canary_version,
    flag_document,
    flags_path,
    validate_flag_document,
    write_flags,
)
from release_assets.serving.metrics import PREFIX, ServingMetrics

V1, V2, V3, V4 = "1111111111111111", "2222222222222222", "3333333333333333", "4444444444444444"
PUBLISHED = {V1, V2, V3}  # V4 was never published
KEYS = [f"user-{i}" for i in range(200)]
POLL_S = 0.001
LOOKS = 50  # polls of a rejected file, each one poll interval apart: bounded, and far more than one


def good(**kwargs) -> dict:
    return flag_document("iris", V1, **kwargs)


def with_weights(champion, canary) -> dict:
    document = good(canary=V2, canary_percent=50)
    fractional = document["flags"]["iris.route"]["targeting"]["fractional"]
    fractional[1:] = [["champion", champion], ["canary", canary]]
    return document


def edited(change) -> dict:
    document = copy.deepcopy(good(canary=V2, canary_percent=50, shadow=V3, shadow_percent=10))
    change(document)
    return document


def route(document: dict) -> dict:
    return document["flags"]["iris.route"]


BY_EMAIL = {"cat": [{"var": "email"}]}  # another bucket key: who gets the canary would change


def swap(fractional: list) -> None:
    fractional[1], fractional[2] = fractional[2], fractional[1]  # canary first: the order decides who moves


# (name, file text, reason, the field the message names)
INVALID = [
    ("negative_weight", json.dumps(with_weights(-95, 195)), "weights", "iris.route.targeting.fractional"),
    ("weights_140", json.dumps(with_weights(70, 70)), "weights", "iris.route.targeting.fractional"),
    (
        "unknown_variant",
        json.dumps(edited(lambda d: route(d)["variants"].update({"blue": V3}))),
        "variants",
        "iris.route.variants",
    ),
    (
        "unpublished_version",
        json.dumps(edited(lambda d: route(d)["variants"].update({"canary": V4}))),
        "version",
        "iris.route.variants.canary",
    ),
    ("malformed_json", '{"flags": {"iris.route": {"state": "ENABLED",, }}}', "malformed", "line 1 column"),
    ("truncated", json.dumps(good(canary=V2, canary_percent=100), indent=2)[:150], "malformed", "line "),
]
IDS = [case[0] for case in INVALID]


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


@pytest.fixture
def metrics() -> ServingMetrics:
    return ServingMetrics()


@pytest.fixture
def router(tmp_path: Path, metrics: ServingMetrics):
    r = FlagRouter(tmp_path, POLL_S, known_versions=lambda release: PUBLISHED, on_file=metrics.observe_flag_file)
    yield r
    r.close()


# -- the pure check ------------------------------------------------------------------------------------------------


def test_what_flag_document_writes_validates():
    assert validate_flag_document(good(), "iris", PUBLISHED) == FlagRouting("iris", V1)
    both = validate_flag_document(good(canary=V2, canary_percent=5, shadow=V3, shadow_percent=10), "iris", PUBLISHED)
    assert both == FlagRouting("iris", V1, V2, 5, V3, 10)
    assert both.canary_weight == (V2, 5)
    zero = validate_flag_document(good(canary=V2, canary_percent=0), "iris", PUBLISHED)
    assert zero.canary_weight == (V2, 0)
    disabled = good(canary=V2, canary_percent=50)
    route(disabled)["state"] = "DISABLED"  # switched off on purpose: valid, routes nobody to the canary
    assert validate_flag_document(disabled, "iris", PUBLISHED).canary_weight is None
    # The publication check is skipped only when no list is given (writers check servability themselves).
    assert validate_flag_document(good(canary=V4, canary_percent=5), "iris").canary == V4


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda d: route(d)["targeting"]["fractional"][1].__setitem__(1, -95), "fractional", "weights"),
        (lambda d: route(d)["targeting"]["fractional"][2].__setitem__(1, 60.0), "fractional", "weights"),
        (lambda d: route(d)["targeting"]["fractional"][2].__setitem__(1, True), "fractional", "weights"),
        (lambda d: route(d)["targeting"]["fractional"].pop(), "fractional", "variants"),
        (lambda d: route(d)["targeting"]["fractional"].reverse(), "fractional", "structure"),
        (lambda d: swap(route(d)["targeting"]["fractional"]), "fractional", "variants"),
        (lambda d: route(d)["targeting"]["fractional"][2].__setitem__(0, "blue"), "fractional", "variants"),
        (lambda d: route(d)["targeting"]["fractional"][0].update(BY_EMAIL), "fractional[0]", "structure"),
        (lambda d: route(d).update({"targeting": {"if": [True, "canary", "champion"]}}), "targeting", "structure"),
        (lambda d: route(d)["variants"].pop("champion"), "variants", "variants"),
        (lambda d: route(d)["variants"].update({"canary": V4}), "variants.canary", "version"),
        (lambda d: route(d)["variants"].update({"champion": "not a version"}), "variants.champion", "version"),
        (lambda d: d["flags"]["iris.shadow"]["variants"].update({"on": V4}), "variants.on", "version"),
        (lambda d: d["flags"]["iris.shadow"]["variants"].update({"off": V2}), "variants.off", "variants"),
        (lambda d: route(d).update({"defaultVariant": "blue"}), "defaultVariant", "variants"),
        (lambda d: route(d).update({"state": "ON"}), "state", "structure"),
        (lambda d: route(d).update({"comment": "x"}), "iris.route", "structure"),
        (lambda d: d["flags"].pop("iris.shadow"), "flags", "structure"),
        (lambda d: d["flags"].update({"wine.route": {}}), "flags", "structure"),
        (lambda d: d.update({"$evaluators": {}}), "document", "structure"),
        (lambda d: d["metadata"].update({"release": "wine"}), "metadata.release", "structure"),
    ],
)
def test_an_invalid_document_is_refused_naming_the_field(change, field, reason):
    document = edited(change)
    with pytest.raises(FlagError) as raised:
        validate_flag_document(document, "iris", PUBLISHED)
    assert field in str(raised.value) and raised.value.reason == reason, (str(raised.value), raised.value.reason)


def test_the_issue_example_names_the_weight():
    with pytest.raises(FlagError, match=r"iris\.route\.targeting\.fractional: weight of 'champion' is -95"):
        validate_flag_document(with_weights(-95, 195), "iris", PUBLISHED)
    with pytest.raises(FlagError, match=r"weights 70 \+ 70 sum to 140, not 100"):
        validate_flag_document(with_weights(70, 70), "iris", PUBLISHED)


def test_write_flags_refuses_an_invalid_document(tmp_path: Path):
    path = flags_path(tmp_path, "iris")
    with pytest.raises(FlagError, match=r"iris\.flagd\.json: iris\.route\.targeting\.fractional: weights 70 \+ 70"):
        write_flags(path, with_weights(70, 70))
    assert not path.exists()


# -- the router ----------------------------------------------------------------------------------------------------


def routed(router: FlagRouter) -> list[tuple[str, str | None]]:
    return [router.route("iris", k) for k in KEYS]


def warnings_about(caplog, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and str(path) in r.getMessage()]


@pytest.mark.parametrize(("name", "text", "reason", "field"), INVALID, ids=IDS)
def test_an_invalid_edit_keeps_the_last_good_flags_logged_once_and_counted(
    tmp_path, router, metrics, caplog, name, text, reason, field
):
    path = flags_path(tmp_path, "iris")
    write_flags(path, good(canary=V2, canary_percent=50, shadow=V3, shadow_percent=10))
    before, shadows = routed(router), [router.shadow("iris", k) for k in KEYS]
    assert {v for v, _ in before} == {"champion", "canary"}  # a real split to keep
    assert router.canary_weight("iris") == (V2, 50)
    with caplog.at_level(logging.INFO, logger="release_assets.serving.flags"):
        path.write_text(text)
        for _ in range(LOOKS):  # every look sees the same bad file: each answer is still the last good flags
            time.sleep(POLL_S)
            assert router.route("iris", KEYS[0]) == before[0]
            assert router.canary_weight("iris") == (V2, 50)
        assert routed(router) == before
        assert [router.shadow("iris", k) for k in KEYS] == shadows
    logged = warnings_about(caplog, path)
    assert len(logged) == 1, logged
    assert field in logged[0] and "keeping the last good flags" in logged[0], logged[0]
    assert router.errors == {("iris", reason): 1}
    text_metrics = metrics.render().decode()
    assert sample(text_metrics, f"{PREFIX}_flag_errors_total", release="iris", reason=reason) == 1
    assert sample(text_metrics, f"{PREFIX}_flag_file_rejected", release="iris") == 1
    # Fixed: the new flags apply at the next look, and the file is no longer flagged as rejected.
    write_flags(path, good(canary=V2, canary_percent=100))
    deadline = time.monotonic() + 5
    while router.canary_weight("iris") != (V2, 100):
        assert time.monotonic() < deadline, "the fixed file was not applied"
        time.sleep(POLL_S)
    assert set(routed(router)) == {("canary", V2)}
    assert sample(metrics.render().decode(), f"{PREFIX}_flag_file_rejected", release="iris") == 0


@pytest.mark.parametrize(("name", "text", "reason", "field"), INVALID, ids=IDS)
def test_an_invalid_first_file_routes_the_champion_and_is_counted_once(
    tmp_path, router, metrics, caplog, name, text, reason, field
):
    path = flags_path(tmp_path, "iris")
    path.write_text(text)
    with caplog.at_level(logging.INFO, logger="release_assets.serving.flags"):
        for _ in range(LOOKS):
            assert router.route("iris", KEYS[0]) == ("champion", None)
            assert router.shadow("iris", KEYS[0]) is None
            assert router.canary_weight("iris") is None  # nothing applied: no canary weight at all
            time.sleep(POLL_S)
    logged = warnings_about(caplog, path)
    assert len(logged) == 1 and "no valid flags" in logged[0], logged
    assert router.errors == {("iris", reason): 1}
    assert sample(metrics.render().decode(), f"{PREFIX}_flag_errors_total", release="iris", reason=reason) == 1


def test_each_new_bad_edit_is_logged_and_counted_again(tmp_path, router, caplog):
    path = flags_path(tmp_path, "iris")
    write_flags(path, good(canary=V2, canary_percent=5))
    assert router.canary_weight("iris") == (V2, 5)
    with caplog.at_level(logging.WARNING, logger="release_assets.serving.flags"):
        for count, text in enumerate((json.dumps(with_weights(70, 70)), json.dumps(with_weights(-95, 195)), "{"), 1):
            path.write_text(text)
            deadline = time.monotonic() + 5
            while sum(router.errors.values()) < count:
                assert time.monotonic() < deadline, router.errors
                router.route("iris", "k")
                time.sleep(POLL_S)
            for _ in range(LOOKS):  # and not again while it stays the same
                router.route("iris", "k")
                time.sleep(POLL_S)
    assert router.errors == {("iris", "weights"): 2, ("iris", "malformed"): 1}
    assert len(warnings_about(caplog, path)) == 3
    assert router.canary_weight("iris") == (V2, 5)


def test_a_deleted_file_removes_the_flags(tmp_path, router, metrics):
    path = flags_path(tmp_path, "iris")
    write_flags(path, good(canary=V2, canary_percent=100))
    assert router.route("iris", "k") == ("canary", V2)
    path.write_text("{")
    deadline = time.monotonic() + 5
    while not router.errors and time.monotonic() < deadline:
        router.route("iris", "k")
        time.sleep(POLL_S)
    assert router.route("iris", "k") == ("canary", V2)
    path.unlink()  # on purpose: no file means no flags (the champion, no shadow), not a broken file
    deadline = time.monotonic() + 5
    while router.route("iris", "k") != ("champion", None):
        assert time.monotonic() < deadline
        time.sleep(POLL_S)
    assert router.canary_weight("iris") is None
    assert sample(metrics.render().decode(), f"{PREFIX}_flag_file_rejected", release="iris") == 0


# -- the readers outside the server ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "text", "reason", "field"), INVALID, ids=IDS)
def test_flag_reads_refuse_an_invalid_file_naming_it_and_the_field(tmp_path, name, text, reason, field):
    path = flags_path(tmp_path, "iris")
    path.write_text(text)
    for read in (
        lambda: canary_routing(tmp_path, "iris", known_versions=PUBLISHED),
        lambda: shadow_version(path, "iris", known_versions=PUBLISHED),
    ):
        with pytest.raises(FlagError) as raised:
            read()
        assert str(raised.value).startswith(f"{path}: ") and field in str(raised.value), str(raised.value)
        assert raised.value.reason == reason


def test_flag_reads_of_valid_files(tmp_path):
    path = flags_path(tmp_path, "iris")
    assert canary_routing(tmp_path, "iris") is None and shadow_version(path, "iris") is None  # no file
    write_flags(path, good(canary=V2, canary_percent=5, shadow=V3, shadow_percent=10))
    assert canary_routing(tmp_path, "iris", known_versions=PUBLISHED) == (V2, 5)
    assert shadow_version(path, "iris", known_versions=PUBLISHED) == V3


def test_canary_version_refuses_an_invalid_or_unpublished_file(tmp_path):
    store = list_as_published(tmp_path, "iris", V1, V2)
    path = flags_path(tmp_path / "flags", "iris")
    write_flags(path, good(canary=V2, canary_percent=5))
    assert canary_version(store, "iris") == V2
    path.write_text(json.dumps(with_weights(-95, 195)))
    with pytest.raises(StoreError, match=r"iris\.flagd\.json: iris\.route\.targeting\.fractional: weight"):
        canary_version(store, "iris")
    write_flags(path, good(canary=V3, canary_percent=5))  # V3 is not published in this store
    with pytest.raises(StoreError, match=r"iris\.route\.variants\.canary: '?3333333333333333'? is not a published"):
        canary_version(store, "iris")


# -- the server: /metrics over real HTTP ----------------------------------------------------------------------------


def test_serve_keeps_the_last_good_split_and_exports_the_error(tmp_path, monkeypatch, caplog):
    """The issue's report: -95/195 weights sent every request to the canary, exported canary_weight 195 and logged
    nothing. Through ``build_server`` (fake loads) under uvicorn on 127.0.0.1."""
    import release_assets.serving.loader as loader
    from release_assets.serving.server import build_server

    champion, canary = V1, V2
    fakes = {champion: FakeRelease("helpdesk", champion), canary: FakeRelease("helpdesk", canary)}
    monkeypatch.setattr(loader, "load_release", lambda store, release, version=None, **kw: fakes[version or champion])
    store = list_as_published(tmp_path / "store", "helpdesk", champion, canary)
    flags_dir = tmp_path / "store" / "flags"
    path = flags_path(flags_dir, "helpdesk")
    write_flags(path, flag_document("helpdesk", champion, canary, 25))
    server = build_server(
        store, ["helpdesk"], cache_dir=tmp_path / "cache", flags_dir=flags_dir, trace_path=None, champion_poll_s=None
    )
    bad = flag_document("helpdesk", champion, canary, 25)
    bad["flags"]["helpdesk.route"]["targeting"]["fractional"][1:] = [["champion", -95], ["canary", 195]]
    try:
        with serving(server.app) as url, httpx.Client(base_url=url, timeout=10) as client:

            def versions() -> list[str]:
                bodies = [{"message": "refund", "user_id": f"u{i}"} for i in range(40)]
                return [client.post("/v1/helpdesk/predict", json=body).json()["version"] for body in bodies]

            before = versions()
            assert 0 < before.count(canary) < 20, before  # ~25%: a real split to keep
            weight = {"release": "helpdesk", "canary_version": canary}
            assert sample(client.get("/metrics").text, f"{PREFIX}_canary_weight", **weight) == 25
            with caplog.at_level(logging.WARNING, logger="release_assets.serving.flags"):
                path.write_text(json.dumps(bad))
                deadline = time.monotonic() + 10
                errors = {"release": "helpdesk", "reason": "weights"}
                while sample(client.get("/metrics").text, f"{PREFIX}_flag_errors_total", **errors) is None:
                    assert time.monotonic() < deadline, "the rejection never reached /metrics"
                    time.sleep(0.05)
                assert versions() == before  # the same users on the same versions: the last good 25% split
                text = client.get("/metrics").text
    finally:
        server.close()
    assert sample(text, f"{PREFIX}_canary_weight", **weight) == 25  # never 195, never -95
    assert sample(text, f"{PREFIX}_flag_errors_total", **errors) == 1
    assert sample(text, f"{PREFIX}_flag_file_rejected", release="helpdesk") == 1
    logged = warnings_about(caplog, path)
    assert len(logged) == 1 and "weight of 'champion' is -95" in logged[0], logged
