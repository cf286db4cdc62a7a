"""The two processes of the overload test: a server whose model costs a fixed amount of CPU, and a crowd.

``python -m release_assets_tests.serving.busy_app serve PORT MAX_IN_FLIGHT WORK_MS`` serves helpdesk (a fake release
that holds the GIL for WORK_MS per prediction, as a Python model would) on 127.0.0.1:PORT with that admission
limit. ``... crowd BASE_URL CLIENTS SECONDS`` runs CLIENTS clients against it, each sending as soon as its previous
answer came and, when refused, waiting what ``Retry-After`` says (jittered, as well-behaved clients do); it prints
one JSON line: statuses, transport errors, refusals without ``Retry-After``. Each in a process of its own, so
neither shares an interpreter (or a GIL) with the probe the test measures with.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

URL = "/v1/helpdesk/predict"


def serve(port: int, limit: int, work_ms: float) -> None:
    import uvicorn

    from bench.support.fakes import FakeRelease
    from release_assets.serving.admission import AdmissionPolicy
    from release_assets.serving.app import create_app

    class Busy(FakeRelease):
        def predict(self, request, **kwargs):
            end = time.perf_counter() + work_ms / 1000
            while time.perf_counter() < end:  # CPU, holding the GIL: what a Python model costs
                pass
            return super().predict(request, **kwargs)

    app = create_app({"helpdesk": Busy()}, admission=AdmissionPolicy(max_in_flight=limit))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


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


async def crowd(base: str, clients: int, seconds: float) -> dict:
    statuses: dict[int, int] = {}
    problems: list[str] = []
    missing_retry_after = 0
    rng = random.Random(7)
    end = time.perf_counter() + seconds

    async def user(u: int) -> None:
        nonlocal missing_retry_after
        connection, i = await Connection.open(base), 0
        try:
            while time.perf_counter() < end:
                try:
                    status, headers, _ = await connection.post(
                        URL, {"message": f"where is order {u}-{i}", "user_id": f"u{u}"}
                    )
                except (OSError, asyncio.IncompleteReadError) as exc:  # a reset: what admission control must prevent
                    problems.append(repr(exc))
                    return
                i += 1
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    missing_retry_after += "retry-after" not in headers
                    await asyncio.sleep(float(headers.get("retry-after", 1)) * rng.uniform(0.5, 1.5))
        finally:
            connection.close()

    await asyncio.gather(*(user(u) for u in range(clients)))
    return {"statuses": statuses, "problems": problems, "missing_retry_after": missing_retry_after}


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        print(json.dumps(asyncio.run(crowd(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))))
