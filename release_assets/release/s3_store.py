"""The release store in an S3 bucket, through any S3-compatible endpoint (AWS, MinIO, LocalStack, moto)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from release_assets.release.ledger_chain import (
    GENESIS,
    LedgerError,
    VerifiedLedger,
    event_hash,
    parse_event,
    parse_head,
    verify_chain,
)
from release_assets.release.store import (
    BUNDLE,
    MANIFEST,
    ReleaseStore,
    StoreError,
    check_beside_name,
    check_release_name,
    check_sha256,
    check_version,
    manifest_json,
)

_S3_HEAD = "head.json"
_S3_EVENT = re.compile(r"^\d{12}\.json$")
_S3_CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict")


class S3ReleaseStore(ReleaseStore):
    """The same layout in a bucket, through any S3-compatible endpoint (AWS, MinIO, LocalStack).

    S3 has no append or lock, so the ledger is one object per event, ``ledger/<name>/<seq:012d>.json``, created
    with a conditional put (``If-None-Match: *``): of two writers that read the same tail, one gets the seq and the
    other a 412 and chains on from the winner's event. Key order is seq order, a total order that no writer's clock
    decides. ``ledger/<name>/head.json`` holds the last seq and hash; it only moves forward (``If-Match``).
    Objects from before the chain (``<time>-<uuid>.json``) are read as a legacy prefix, ordered by their time.
    """

    APPEND_ATTEMPTS = 64  # each failed attempt means another writer appended, so this bounds contention, not time

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, *parts: str) -> str:
        if len(parts) > 1 and parts[0] in ("releases", "ledger"):
            check_release_name(parts[1])
            if parts[0] == "releases" and len(parts) > 3:
                check_version(parts[2])
        return "/".join([p for p in (self.prefix, *parts) if p])

    def _get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def _put_bundle(self, name: str, version: str, bundle: Path) -> None:
        self.client.upload_file(str(bundle), self.bucket, self._key("releases", name, version, BUNDLE))

    def _put_manifest(self, name: str, version: str, manifest: dict[str, Any]) -> None:
        body = json.dumps(manifest, indent=1, sort_keys=True).encode()
        self.client.put_object(Bucket=self.bucket, Key=self._key("releases", name, version, MANIFEST), Body=body)

    def _put_pointer(self, name: str, pointer: dict[str, Any]) -> None:
        key = self._key("releases", name, "latest.json")
        self.client.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(pointer).encode())

    def manifest(self, name: str, version: str) -> dict[str, Any] | None:
        key = self._key("releases", name, version, MANIFEST)
        body = self._get(key)
        return manifest_json(f"s3://{self.bucket}/{key}", body) if body is not None else None

    def _list(self, prefix: str) -> list[str]:
        keys, token = [], None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
            page = self.client.list_objects_v2(**kwargs)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def versions(self, name: str) -> list[str]:
        base = self._key("releases", name) + "/"
        return sorted({k[len(base) :].split("/")[0] for k in self._list(base) if k.endswith("/" + MANIFEST)})

    def fetch_bundle(self, name: str, version: str, dest: Path) -> Path:
        key = self._key("releases", name, version, BUNDLE)
        try:
            self.client.download_file(self.bucket, key, str(dest))
        except Exception as exc:
            raise StoreError(f"s3://{self.bucket}/{key}: cannot download ({exc})") from None
        return dest

    def bundle_uri(self, name: str, version: str) -> str:
        return f"s3://{self.bucket}/{self._key('releases', name, version, BUNDLE)}"

    def latest(self, name: str) -> str | None:
        body = self._get(self._key("releases", name, "latest.json"))
        return json.loads(body)["version"] if body else None

    def _put_beside(self, name: str, version: str, filename: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key("releases", name, version, filename), Body=body)

    def beside(self, name: str, version: str, filename: str) -> bytes | None:
        return self._get(self._key("releases", name, version, check_beside_name(filename)))

    def names_beside(self, name: str, version: str) -> list[str]:
        base = self._key("releases", name, check_version(version)) + "/"
        names = (k[len(base) :] for k in self._list(base))
        return sorted(n for n in names if "/" not in n and n not in (BUNDLE, MANIFEST))

    def _data_key(self, digest: str) -> str:
        return self._key("data", "sha256", check_sha256(digest))

    def has_data(self, digest: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._data_key(digest))
        except Exception as exc:  # botocore's ClientError; a 404 is "not there", anything else is an error
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreError(f"{self.data_uri(digest)}: cannot check ({exc})") from None
        return True

    def _put_data(self, digest: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._data_key(digest))

    def _get_data(self, digest: str, dest: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._data_key(digest), str(dest))
        except Exception as exc:
            raise StoreError(f"{self.data_uri(digest)}: cannot download ({exc})") from None

    def data_uri(self, digest: str) -> str:
        return self._uri(self._data_key(digest))

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _event_key(self, name: str, seq: int) -> str:
        return self._key("ledger", name, f"{seq:012d}.json")

    def _load(self, key: str) -> dict[str, Any]:
        body = self._get(key)
        if body is None:  # listed a moment ago, and events are never deleted
            raise LedgerError(f"{self._uri(key)}: deleted while the ledger was read")
        return parse_event(self._uri(key), body)

    def _scan(self, name: str) -> tuple[list[str], list[str]]:
        """Chained event keys in seq order (12 digits: name order is seq order), and legacy keys."""
        base = self._key("ledger", name) + "/"
        chained: list[str] = []
        legacy: list[str] = []
        for key in self._list(base):
            rest = key[len(base) :]
            if rest != _S3_HEAD and "/" not in rest:
                (chained if _S3_EVENT.match(rest) else legacy).append(key)
        return sorted(chained), legacy

    def _legacy(self, keys: list[str]) -> list[tuple[str, dict[str, Any]]]:
        # The order the pre-chain reader used: the writers' clocks.
        return sorted(((k, self._load(k)) for k in keys), key=lambda ke: (ke[1].get("time", ""), ke[0]))

    def _tail(self, name: str) -> tuple[int, str]:
        chained, legacy = self._scan(name)
        if chained:
            return int(chained[-1].rsplit("/", 1)[-1][:12]), event_hash(self._load(chained[-1]))
        if legacy:
            return len(legacy), event_hash(self._legacy(legacy)[-1][1])
        return 0, GENESIS

    def _conflict(self, exc: Exception) -> bool:
        # 412: the key exists (or the head moved); 409: a concurrent conditional write to the key is in flight.
        return getattr(exc, "response", {}).get("Error", {}).get("Code") in _S3_CONFLICTS

    def append_event(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        last, prev = self._tail(name)
        for _ in range(self.APPEND_ATTEMPTS):
            event.update(seq=last + 1, prev=prev)
            key = self._event_key(name, last + 1)
            body = json.dumps(event, sort_keys=True).encode()
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
            except self.client.exceptions.ClientError as exc:
                if not self._conflict(exc):
                    raise
                taken = self._get(key)
                if taken is None:
                    time.sleep(0.05)  # 409: the other write is still in flight; try the same seq again
                else:  # another writer took this seq: chain from its event
                    last, prev = last + 1, event_hash(parse_event(self._uri(key), taken))
                continue
            self._advance_head(name, last + 1, event_hash(event))
            return event
        where = self._uri(self._key("ledger", name))
        raise StoreError(f"{where}/: no free seq after {self.APPEND_ATTEMPTS} attempts (too many concurrent writers)")

    def _advance_head(self, name: str, seq: int, digest: str) -> None:
        """Move the head record to ``seq``, never back: concurrent writers finish out of order."""
        key = self._key("ledger", name, _S3_HEAD)
        body = json.dumps({"seq": seq, "hash": digest}).encode()
        for _ in range(self.APPEND_ATTEMPTS):
            try:
                current = self.client.get_object(Bucket=self.bucket, Key=key)
            except self.client.exceptions.NoSuchKey:
                condition = {"IfNoneMatch": "*"}
            else:
                head = parse_head(self._uri(key), current["Body"].read())
                if head is not None and head["seq"] >= seq:  # (a body always parses to a head or raises)
                    return
                condition = {"IfMatch": current["ETag"]}
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **condition)
                return
            except self.client.exceptions.ClientError as exc:
                if not self._conflict(exc):
                    raise
        # Still racing after every attempt: the head lags behind the ledger, which reading accepts.

    def read_ledger(self, name: str) -> VerifiedLedger:
        head_key = self._key("ledger", name, _S3_HEAD)
        # The head before the listing: a writer moves the head only once its event exists, so every event the
        # head counts is in the listing that follows.
        head = parse_head(self._uri(head_key), self._get(head_key))
        chained_keys, legacy_keys = self._scan(name)
        legacy, chained = self._legacy(legacy_keys), [(k, self._load(k)) for k in chained_keys]
        if legacy and chained and legacy[-1][1].get("time", "") > chained[0][1].get("time", ""):
            where = self._uri(legacy[-1][0])
            raise LedgerError(f"{where}: an unchained event written after the chain began (an old writer?)")
        loaded = legacy + chained
        entries = [(self._uri(k), k.rsplit("/", 1)[-1], e) for k, e in loaded]
        count = verify_chain(
            entries, head, head_at=self._uri(head_key), missing_at=lambda i: self._uri(self._event_key(name, i + 1))
        )
        for key, e in chained:  # a consistent chain under the wrong names would fork at the next append
            if int(key.rsplit("/", 1)[-1][:12]) != e["seq"]:
                raise LedgerError(f"{self._uri(key)}: holds seq {e['seq']} (the object was renamed)")
        return VerifiedLedger([e for _, e in loaded], count, head)

    def preflight(self) -> None:
        """``head_bucket`` and one listing of the prefix, with this store's client: its timeouts and retries bound
        how long this takes, so give it a short-fused client (``ArtifactStore.preflight`` does)."""
        probe_s3(self.client, self.bucket, self.prefix)


def probe_s3(client: Any, bucket: str, prefix: str) -> None:
    """``head_bucket`` then one listing of ``prefix``, on ``client`` as configured (its timeouts and retries).

    The listing matters on its own: a key may be allowed to see the bucket but not to list or read our prefix.
    """
    location = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    where = f"S3 store {location} at {client.meta.endpoint_url}"
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as exc:
        raise StoreError(f"{where} {_describe(exc, client, bucket)}") from None
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)
    except Exception as exc:
        raise StoreError(f"{where} (listing the prefix) {_describe(exc, client, bucket)}") from None


def _describe(exc: Exception, client: Any, bucket: str) -> str:
    """What failed, in words; transient failures say how long and how often we tried."""
    from botocore import exceptions as bce

    config = client.meta.config
    # botocore normalises the client's retry settings to ``total_max_attempts`` (the first try included).
    attempts = (config.retries or {}).get("total_max_attempts")
    tried = f" ({attempts} attempt{'s' if attempts != 1 else ''})" if attempts else ""
    if isinstance(exc, bce.ConnectTimeoutError):
        return f"is unreachable: no connection within {config.connect_timeout:g} s{tried}"
    if isinstance(exc, bce.EndpointConnectionError):
        return f"is unreachable: Could not connect to the endpoint URL{tried}"
    if isinstance(exc, bce.ReadTimeoutError):
        return f"did not answer within {config.read_timeout:g} s{tried}"
    if isinstance(exc, bce.NoCredentialsError):
        return "has no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile)"
    if isinstance(exc, bce.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket"):
            return f"failed: bucket {bucket!r} does not exist"
        if code in ("403", "AccessDenied", "Forbidden") or status == 403:
            return "failed: access denied (check the credentials and the bucket policy)"
        if status and status >= 500:
            return f"failed: the endpoint answered {status} {error.get('Message') or code}{tried}"
        return f"failed: {code} {error.get('Message') or ''}".rstrip()
    return f"failed: {type(exc).__name__}: {' '.join(str(exc).split())}"
