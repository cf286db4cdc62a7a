"""`release-assets ci approver` against a fake GitHub API on 127.0.0.1: the reviewer who approved the production
deployment of this run is printed (the last approval of that environment), not a reviewer of another environment
or a rejection; no approval, an API error and a missing run context each fail with the reason."""

from __future__ import annotations

import pytest

from release_assets.cli import main as cli
from release_assets_tests.provenance.fake_github import approval, fake_github

REVIEWS = [
    approval("sam", "staging", comment="staging ok"),
    approval("rey", "production", state="rejected", comment="not yet"),
    approval("alice", "production", comment="ship"),
]


@pytest.fixture
def github(monkeypatch):
    """A fake API answering the approvals of run 42 of acme/models; the requests it saw."""
    answers = {"/repos/acme/models/actions/runs/42/approvals": (200, REVIEWS)}
    with fake_github(answers) as (url, seen):
        monkeypatch.setenv("GITHUB_API_URL", url)
        monkeypatch.setenv("GITHUB_REPOSITORY", "acme/models")
        monkeypatch.setenv("GITHUB_RUN_ID", "42")
        monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
        yield answers, seen


def test_the_reviewer_who_approved_production_is_printed(github, capsys):
    _, seen = github
    assert cli.main(["ci", "approver"]) == 0
    assert capsys.readouterr().out == "alice\n"
    assert seen == [{"path": "/repos/acme/models/actions/runs/42/approvals", "auth": "Bearer t0ken"}]
    assert cli.main(["ci", "approver", "--environment", "staging"]) == 0
    assert capsys.readouterr().out == "sam\n"


def test_no_approval_an_api_error_and_no_run_context_fail_with_the_reason(github, capsys, monkeypatch):
    answers, _ = github
    assert cli.main(["ci", "approver", "--environment", "qa"]) == 1
    assert "run 42 of acme/models has no approval of the 'qa' environment" in capsys.readouterr().err
    answers["/repos/acme/models/actions/runs/42/approvals"] = (403, {"message": "Resource not accessible"})
    assert cli.main(["ci", "approver"]) == 1
    error = capsys.readouterr().err
    assert "HTTP 403 Forbidden (the job's token needs actions: read)" in error, error
    monkeypatch.delenv("GITHUB_RUN_ID")
    assert cli.main(["ci", "approver"]) == 1
    assert "GITHUB_RUN_ID not set" in capsys.readouterr().err
