"""The peer server of bench/serving_load.py: the least a Starlette app can do to serve the same predictions.

``python bench/support/peer_app.py --port N`` loads the champions of iris and helpdesk from the configured store
(verified, as ``serve`` does) and answers ``POST /v1/{release}/predict`` with ``LoadedRelease.predict`` called on
the event loop, the answer as JSON; ``GET /readyz`` is 200. Nothing else: no routing, metrics, traces, admission
control, request ids or body checks. What ``serve`` costs beyond this is what its features cost.
"""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from release_assets.api import load_release


def app() -> Starlette:
    loaded = {release: load_release(release) for release in ("iris", "helpdesk")}

    async def predict(request: Request) -> Response:
        out = loaded[request.path_params["release"]].predict(await request.json())
        return Response(json.dumps(out).encode(), media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    return Starlette(routes=[Route("/v1/{release}/predict", predict, methods=["POST"]), Route("/readyz", ready)])


if __name__ == "__main__":
    port = int(sys.argv[sys.argv.index("--port") + 1])
    uvicorn.run(app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)
