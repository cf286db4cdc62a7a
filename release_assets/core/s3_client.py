"""One way to build a boto3 S3 client, bounded: connect and read timeouts and standard retries, so an unreachable
endpoint fails in seconds wherever S3 is used (the release store, an environment's region, a table's s3:// file).
boto3 is imported here, when a client is built, so loading definitions stays free of it."""

from __future__ import annotations

from typing import Any


def bounded_client(
    *,
    endpoint_url: str | None,
    region_name: str | None,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
) -> Any:
    """With no keys given, boto3's usual chain applies (environment, profile, instance role)."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # botocore normalises the retry settings to `total_max_attempts` (the first try included).
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region_name,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        config=config,
    )
