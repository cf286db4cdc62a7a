"""Who approved a GitHub Actions deployment: the reviewer the promotion records, not the actor who pushed.

A job that targets an environment with required reviewers waits until one approves; GitHub keeps that review on the
workflow run (``GET /repos/{repo}/actions/runs/{run_id}/approvals``: each review's state, the environments it
covered, the reviewer's login and comment). ``approver`` reads it with the job's token, so the ledger's
``approved`` event and the verification summary name the person who let the version into prod.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

TIMEOUT_S = 10.0


class ApprovalError(RuntimeError):
    """No approval to record: the API did not answer, or no reviewer approved the environment in this run."""


@dataclass(frozen=True)
class Approval:
    login: str
    comment: str
    environment: str


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(
        url,
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise ApprovalError(f"{url}: HTTP {exc.code} {exc.reason} (the job's token needs actions: read)") from None
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        raise ApprovalError(f"{url}: {exc}") from None


def approver(api_url: str, repository: str, run_id: str, environment: str, token: str) -> Approval:
    """The last reviewer who approved ``environment`` in workflow run ``run_id`` of ``repository``."""
    url = f"{api_url.rstrip('/')}/repos/{repository}/actions/runs/{run_id}/approvals"
    reviews = _get(url, token)
    if not isinstance(reviews, list):
        raise ApprovalError(f"{url}: expected a list of reviews, got {type(reviews).__name__}")
    approved = [
        r
        for r in reviews
        if r.get("state") == "approved" and environment in {e.get("name") for e in r.get("environments") or []}
    ]
    if not approved:
        raise ApprovalError(
            f"run {run_id} of {repository} has no approval of the {environment!r} environment (is it protected by "
            "required reviewers? Settings -> Environments)"
        )
    last = approved[-1]
    login = (last.get("user") or {}).get("login")
    if not login:
        raise ApprovalError(f"{url}: the approval of {environment!r} names no reviewer")
    return Approval(login, last.get("comment") or "", environment)
