"""A release run with publishing off (`--no-publish`, RELEASE_ASSETS_PUBLISH=false: a pull request's build) gates
and reports like any other, and leaves nothing behind: no bundle in the store, no ledger event, no input stamp."""

from __future__ import annotations

from pathlib import Path

from release_assets.cli import main as cli
from release_assets.core.settings import get_settings


def _published_files(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for d in ("releases", "ledger", "stamps") for p in (store / d).rglob("*"))


def test_no_publish_gates_and_reports_but_publishes_nothing(cli_env, tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    summary, outputs = tmp_path / "gate-table.md", tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    weaken = ["--set", "iris:gates.classifier.accuracy.min=0.5"]
    args = ["release", "iris", "--no-publish", *weaken, "--summary", "markdown", "--summary-file", str(summary)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "== iris: evaluated, not published (publishing is off: nothing in the store, no ledger event)" in out
    assert "bundle:  none (evaluated, not published)" in out and "gates:   9/11 passed" in out
    assert "WEAKENED gates" in out and "gates.classifier.accuracy.min: 0.9 -> 0.5" in out
    assert "evaluated only (--no-publish): nothing was published and no ledger event was written" in out
    assert "registry sync" not in out
    assert _published_files(store) == []
    table = summary.read_text()
    assert "**iris** `" in table and "**evaluated, not published**" in table
    assert "**WEAKENED** from the default branch" in table and "gates.classifier.accuracy.min: 0.9 -> 0.5" in table
    assert not outputs.exists() or "iris_version" not in outputs.read_text()  # nothing to deploy

    # Nothing was stamped: the next run publishes instead of saying "unchanged".
    monkeypatch.delenv("GITHUB_OUTPUT")
    assert cli.main(["release", "iris"]) == 0
    out = capsys.readouterr().out
    assert "== iris: published" in out
    version = next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("version:"))
    events = (store / "ledger" / "iris.jsonl").read_text()

    # The setting does the same without the flag, and says which one turned publishing off.
    monkeypatch.setenv("RELEASE_ASSETS_PUBLISH", "false")
    get_settings.cache_clear()
    assert cli.main(["release", "iris"]) == 0  # the input stamp does not answer for an evaluation
    out = capsys.readouterr().out
    assert f"version: {version}" in out and "this content is already published as that version" in out
    assert "evaluated only (RELEASE_ASSETS_PUBLISH=false)" in out
    assert (store / "ledger" / "iris.jsonl").read_text() == events
