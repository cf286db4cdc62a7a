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

from bench.support.raw_http import Connection

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
