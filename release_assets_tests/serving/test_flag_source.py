"""Flag documents in the S3 release store: written checked and whole, read with a conditional GET, validated
before they route, exactly as a local flag file is."""

import json
import time

import pytest

from bench.support.s3_moto import moto_s3
from release_assets.release.s3_store import S3ReleaseStore
from release_assets.release.store import LocalReleaseStore
from release_assets.serving.flag_source import UNCHANGED, LocalFlagSource, S3FlagSource, store_flags
from release_assets.serving.flags import FlagError, FlagRouter, canary_version, flag_document, publish_flags

V1, V2 = "1" * 16, "2" * 16
BUCKET = "flags"
POLL_S = 0.01


def next_poll() -> None:
    time.sleep(POLL_S * 1.5)  # the router looks at the document again


class CountingClient:
    """The boto3 client, with every get_object's conditions and outcome recorded."""

    def __init__(self, client):
        self.client, self.gets = client, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get_object(self, **kwargs):
        try:
            response = self.client.get_object(**kwargs)
        except Exception as exc:
            self.gets.append((kwargs.get("IfNoneMatch"), exc.response["Error"]["Code"]))
            raise
        self.gets.append((kwargs.get("IfNoneMatch"), "200"))
        return response


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as (_, client):
        yield client


@pytest.fixture
def source(s3, request):
    # One prefix per test: the tests share the bucket.
    return S3FlagSource(CountingClient(s3), BUCKET, prefix=f"team/{request.node.name}")


def test_the_document_is_an_object_beside_the_releases_read_with_its_etag(s3, source):
    assert source.where("iris") == f"s3://{BUCKET}/team/{source.prefix.split('/')[1]}/flags/iris.flagd.json"
    assert source.read("iris", None) is None  # no object: no flags
    where = publish_flags(source, "iris", flag_document("iris", V1, V2, 30))
    assert where == source.where("iris")
    first = source.read("iris", None)
    assert json.loads(first.raw) == flag_document("iris", V1, V2, 30)
    assert source.read("iris", first.tag) is UNCHANGED
    assert source.client.gets[-1] == (first.tag, "304")  # a conditional GET the store answered "not modified"
    publish_flags(source, "iris", flag_document("iris", V1, V2, 60))
    second = source.read("iris", first.tag)
    assert second.tag != first.tag and json.loads(second.raw)["flags"]["iris.route"]["targeting"]


def test_a_document_the_router_would_refuse_is_never_written(source):
    document = flag_document("iris", V1, V2, 30)
    document["flags"]["iris.route"]["targeting"]["fractional"][1][1] = 60  # 60 + 30
    with pytest.raises(FlagError, match=r"s3://.*/flags/iris\.flagd\.json: .*sum to 90, not 100"):
        publish_flags(source, "iris", document)
    assert source.read("iris", None) is None


def test_the_router_polls_with_if_none_match_and_routes_by_the_object(s3, source):
    router = FlagRouter(source, poll_interval_s=POLL_S)
    try:
        assert router.route("iris", "user-1") == ("champion", None)  # missing object: the champion only
        assert router.counts["no_file"] == 1
        publish_flags(source, "iris", flag_document("iris", V1, V2, 100))
        next_poll()
        assert router.route("iris", "user-1") == ("canary", V2)
        source.client.gets.clear()
        for _ in range(5):
            next_poll()
            assert router.canary_weight("iris") == (V2, 100)
        assert len(source.client.gets) == 5  # one look per poll interval
        assert all(tag is not None and code == "304" for tag, code in source.client.gets)
    finally:
        router.close()


def test_an_invalid_object_keeps_the_last_good_flags_and_is_counted_once(s3, source):
    router = FlagRouter(source, poll_interval_s=POLL_S, known_versions=lambda release: {V1, V2})
    try:
        publish_flags(source, "iris", flag_document("iris", V1, V2, 100))
        assert router.route("iris", "u") == ("canary", V2)
        bad = flag_document("iris", V1, V2, 100)
        bad["flags"]["iris.route"]["targeting"]["fractional"][1][1] = -95  # flagd would send every key on
        s3.put_object(Bucket=BUCKET, Key=f"{source.prefix}/flags/iris.flagd.json", Body=json.dumps(bad).encode())
        for _ in range(5):
            next_poll()
            assert router.route("iris", "u") == ("canary", V2)  # the last good document still routes
        assert router.errors == {("iris", "weights"): 1}  # one bad document, counted once however often polled
        s3.delete_object(Bucket=BUCKET, Key=f"{source.prefix}/flags/iris.flagd.json")
        next_poll()
        assert router.route("iris", "u") == ("champion", None)  # removed: champion only
        assert router.routing("iris") is None
    finally:
        router.close()


def test_routers_on_different_clients_give_each_user_the_same_variant(s3, source):
    publish_flags(source, "iris", flag_document("iris", V1, V2, 40))
    routers = [FlagRouter(S3FlagSource(CountingClient(s3), BUCKET, source.prefix)) for _ in range(2)]
    try:
        users = [f"user-{i}" for i in range(200)]
        first, second = ([router.route("iris", u) for u in users] for router in routers)
        assert first == second
        assert 40 < sum(variant == "canary" for variant, _ in first) < 120  # about 40%: both variants in use
    finally:
        for router in routers:
            router.close()


def test_each_store_keeps_its_flags_beside_its_releases(s3, tmp_path):
    assert store_flags(LocalReleaseStore(tmp_path / "store")) == tmp_path / "store" / "flags"
    assert store_flags(S3ReleaseStore(s3, BUCKET, prefix="p/")) == S3FlagSource(s3, BUCKET, "p")
    local = LocalFlagSource(tmp_path / "store" / "flags")
    publish_flags(local, "iris", flag_document("iris", V1))
    found = local.read("iris", None)
    assert local.read("iris", found.tag) is UNCHANGED


def test_canary_version_reads_the_s3_stores_object(s3, request, tmp_path):
    from bench.support.bundles import publish_unit

    store = S3ReleaseStore(s3, BUCKET, prefix=f"team/{request.node.name}")
    v1, v2 = (publish_unit(store, "iris", name) for name in ("one", "two"))
    assert canary_version(store, "iris") is None
    publish_flags(store_flags(store), "iris", flag_document("iris", v1, v2, 10))
    assert canary_version(store, "iris") == v2
