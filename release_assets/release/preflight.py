"""Checks that a release store is usable, run before any work so a bad store fails in seconds, not after training.

Each failure becomes one line naming the location and what went wrong: the person reading it should know which
endpoint, bucket or folder to look at without reading a botocore traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def check_writable_folder(root: Path, what: str) -> None:
    """``root`` can be created and a file written in it (a temp file, removed again)."""
    from release_assets.release.store import StoreError

    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{what} at {root} cannot be created: {exc.strerror or exc}") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".preflight-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise StoreError(f"{what} at {root} is not writable: {exc.strerror or exc}") from None


def probe_s3(client: Any, bucket: str, prefix: str) -> None:
    """``head_bucket`` then one listing of ``prefix``, on ``client`` as configured (its timeouts and retries).

    The listing matters on its own: a key may be allowed to see the bucket but not to list or read our prefix.
    """
    from release_assets.release.store import StoreError

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
