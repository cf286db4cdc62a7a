"""A fake GitHub REST API on 127.0.0.1 that answers a workflow run's deployment approvals, for `ci approver`'s
tests and for the workflow's deploy-prod job run by test_workflow."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def approval(login: str, environment: str, state: str = "approved", comment: str = "") -> dict[str, Any]:
    """One review as GitHub lists it under ``/actions/runs/{run_id}/approvals``."""
    return {"state": state, "comment": comment, "environments": [{"name": environment}], "user": {"login": login}}


@contextmanager
def fake_github(answers: dict[str, tuple[int, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The API's URL, and the requests it saw (path and Authorization header); ``answers``: path -> (status,
    body), read at each request (a test may change them); any other path is 404."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
            status, body = answers.get(self.path, (404, {"message": "Not Found"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
