"""A load generator's HTTP client: keep-alive HTTP/1.1 over asyncio streams, just enough to post JSON.

An order of magnitude less CPU per request than a full client (httpx), so a load generator on the same machine as
the server takes less of the CPU it is measuring. It speaks only to our own servers on 127.0.0.1: no TLS, no
chunked answers (every answer has a Content-Length), no redirects.
"""

from __future__ import annotations

import asyncio
import json


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol to post JSON: an order of magnitude
    less CPU per request than a full client, so the load generator disturbs the machine it measures less."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base: str) -> Connection:
        host, port = base.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(self, path: str, body: dict) -> tuple[int, dict[str, str], bytes]:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        await self.writer.drain()
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        content = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, content

    def close(self) -> None:
        self.writer.close()
