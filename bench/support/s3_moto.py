"""An S3 endpoint for tests: a moto server on a free 127.0.0.1 port with one bucket, stopped on exit."""

import contextlib
import socket
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[tuple[str, Any]]:
    """Yields the endpoint URL and a boto3 S3 client for it (credentials ``ci``/``ci``)."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="ci", aws_secret_access_key="ci", region_name="us-east-1"
        )
        client.create_bucket(Bucket=bucket)
        yield endpoint, client
    finally:
        server.stop()


def store_client(endpoint: str, timeout_s: float = 5.0, attempts: int = 2) -> Any:
    """The release store's own bounded client for ``endpoint`` (what ``serve`` and the CLI build), credentials
    ``ci``/``ci``: connect within 2 s (or ``timeout_s`` if shorter), read within ``timeout_s``."""
    from release_assets.core.s3_client import bounded_client

    return bounded_client(
        endpoint_url=endpoint,
        region_name="us-east-1",
        connect_timeout=min(2.0, timeout_s),
        read_timeout=timeout_s,
        max_attempts=attempts,
        aws_access_key_id="ci",
        aws_secret_access_key="ci",
    )
