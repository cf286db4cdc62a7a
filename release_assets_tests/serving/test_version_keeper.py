"""The version keeper: versions the applied flags name are loaded before users reach them; the others are dropped."""

from __future__ import annotations

import gc
import weakref

from starlette.testclient import TestClient

from bench.support.fakes import FakeRelease, FakeRouter
from release_assets.serving.app import create_app
from release_assets.serving.flags import FlagRouting
from release_assets.serving.version_keeper import VersionKeeper


def test_named_versions_are_preloaded_and_the_rest_unloaded_and_freed():
    champions = {"helpdesk": FakeRelease(), "iris": FakeRelease("iris", kind="classifier")}
    routing = {"helpdesk": FlagRouting("helpdesk", "v1", canary="v2", canary_percent=0, shadow="v3")}
    loads = []

    def load(release, version):
        loads.append((release, version))
        return FakeRelease(release, version)

    app = create_app(champions, router=FakeRouter("canary", "v2"), loader=load)
    versions = app.state.versions
    keeper = VersionKeeper(champions, routing.get, versions.preload, versions.retire)
    assert keeper.check() == ([("helpdesk", "v2"), ("helpdesk", "v3")], [])
    # The canary is in memory before any user: the first request routed to it is answered by it.
    first = TestClient(app).post("/v1/helpdesk/predict", json={"message": "refund"}).json()
    assert (first["variant"], first["version"]) == ("canary", "v2")
    assert keeper.check() == ([("helpdesk", "v2"), ("helpdesk", "v3")], []) and len(loads) == 2  # loaded once
    canary = weakref.ref(versions.loaded[("helpdesk", "v2")])
    routing["helpdesk"] = FlagRouting("helpdesk", "v1", shadow="v3")  # the canary left the flag file
    assert keeper.check() == ([("helpdesk", "v3")], [("helpdesk", "v2")])
    gc.collect()
    assert canary() is None  # nothing holds the retired version: its models are freed
    del routing["helpdesk"]
    assert keeper.check() == ([], [("helpdesk", "v3")]) and versions.loaded == {}


def test_a_version_that_fails_to_load_is_not_kept_and_the_pass_goes_on():
    champions = {"helpdesk": FakeRelease()}
    routing = {"helpdesk": FlagRouting("helpdesk", "v1", canary="v2", canary_percent=10, shadow="v3")}

    def load(release, version):
        if version == "v2":
            raise OSError("sha256 mismatch")
        return FakeRelease(release, version)

    versions = create_app(champions, loader=load).state.versions
    keeper = VersionKeeper(champions, routing.get, versions.preload, versions.retire)
    assert keeper.check() == ([("helpdesk", "v3")], [])
    assert ("helpdesk", "v2") in versions.failed


def test_a_router_that_raises_keeps_everything_loaded():
    champions = {"helpdesk": FakeRelease()}
    versions = create_app(champions, loader=lambda r, v: FakeRelease(r, v)).state.versions
    versions.preload("helpdesk", "v2")

    def broken(release):
        raise OSError("flags folder gone")

    assert VersionKeeper(champions, broken, versions.preload, versions.retire).check() == ([], [])
    assert ("helpdesk", "v2") in versions.loaded
