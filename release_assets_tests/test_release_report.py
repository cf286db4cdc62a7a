"""The release report end to end: a tiny iris release bundles it as evidence (the version unchanged by it), the
registry sync logs it with the release's MLflow run, and `release-assets report` writes or opens it, rendering one
for a version published before bundles carried reports."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from release_assets.artifacts import LocalArtifactStore
from release_assets.cli import main as cli
from release_assets.core.settings import get_settings
from release_assets.record.ledger import event, record_published
from release_assets.release.bundle import release_version, verify_bundle
from release_assets.release.publish import build_manifest, publish_release
from release_assets.release.report_html import REPORT_MEMBER, REPORT_PATH
from release_assets.release.store import LocalReleaseStore
from release_assets_tests.release.test_publish import artifact


def _bundled_report(bundle: Path) -> bytes:
    with tarfile.open(bundle, "r:gz") as tar:
        member = tar.extractfile(REPORT_PATH)
        assert member is not None
        return member.read()


def _version(out: str) -> str:
    return next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("version:"))


def test_an_iris_release_bundles_its_report_and_the_command_writes_it(cli_env, tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    assert cli.main(["release", "iris", "--quiet"]) == 0
    first = _version(capsys.readouterr().out)
    bundle = store / "releases" / "iris" / first / "bundle.tar.gz"
    manifest = verify_bundle(bundle)
    assert manifest["members"][REPORT_MEMBER]["role"] == "evidence"
    # The version is the one its artifact members make, with or without the report.
    without = {n: m for n, m in manifest["members"].items() if n != REPORT_MEMBER}
    assert release_version(without) == first == manifest["version"]
    html = _bundled_report(bundle)
    assert b"No champion yet" in html and first.encode() in html

    # Written as bundled: to --out, to ./<release>-<version>.html, or opened in a browser.
    assert cli.main(["report", "iris", first, "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_bytes() == html
    assert "(from its bundle)" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", "iris", first]) == 0
    assert (tmp_path / f"iris-{first}.html").read_bytes() == html
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    capsys.readouterr()
    assert cli.main(["report", "iris", first, "--open", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bundled"] and result["opened"] and opened == [Path(result["path"]).resolve().as_uri()]
    assert Path(result["path"]).read_bytes() == html

    # Re-publishing the same content stays "already published", its bundle (report included) untouched.
    written = bundle.read_bytes()
    assert cli.main(["release", "iris", "--quiet", "--force"]) == 0
    assert "unchanged (already published, nothing new)" in capsys.readouterr().out
    assert bundle.read_bytes() == written

    # A candidate against the champion: what changed, and the MLflow run of the release carries the report.
    assert cli.main(["promote", "iris", first, "--approved-by", "a", "--reason", "first"]) == 0
    assert cli.main(["release", "iris", "--quiet", "--set", "iris:members.classifier.params.C=0.5"]) == 0
    second = _version(capsys.readouterr().out)
    assert second != first
    html = _bundled_report(store / "releases" / "iris" / second / "bundle.tar.gz")
    changes = html[html.index(b'id="changes"') : html.index(b'id="plots"')].decode()
    assert (
        f"champion <code>{first}</code>" in changes
        and "<td>classifier</td><td>artifact</td><td>changed</td>" in changes
    )
    assert cli.main(["registry", "sync", "iris"]) == 0
    from release_assets.resources.registry import RELEASE_VERSION_TAG, Registry

    settings = get_settings()
    registry = Registry(settings.tracking_uri, settings.artifact_root)
    [run] = registry.client.search_runs([registry.experiment_id], f"tags.{RELEASE_VERSION_TAG} = '{second}'")
    assert "report.html" in {a.path for a in registry.client.list_artifacts(run.info.run_id)}
    logged = registry.client.download_artifacts(run.info.run_id, "report.html", str(tmp_path))
    assert Path(logged).read_bytes() == html


@pytest.fixture
def old_versions(cli_env, tmp_path) -> tuple[str, str]:
    """Two versions published as before reports (no report in their bundles): the first promoted, then the second
    published beside it and promoted too."""
    cache, store = LocalArtifactStore(tmp_path / "cache"), LocalReleaseStore(tmp_path / "store")
    versions = []
    for weight in ("1", "2"):
        refs = {
            "intent_model": artifact(cache, "intent_model", {"model.json": f'{{"w": {weight}}}'}),
            "intent_model_report": artifact(cache, "intent_model_report", {"report.md": f"w {weight}"}, "report"),
        }
        manifest = build_manifest("helpdesk", refs, [], {"git": {"commit": "abc"}})
        publish_release(cache, store, "helpdesk", refs, manifest)  # report=False: as published before reports
        record_published(store, "helpdesk", manifest["version"], actor="t", run_id="r")
        champion = versions[-1] if versions else None
        store.append_event(
            "helpdesk",
            event("promoted", "helpdesk", actor="t", reason="r", from_version=champion, to_version=manifest["version"]),
        )
        versions.append(manifest["version"])
    return versions[0], versions[1]


def test_a_version_published_before_reports_gets_one_rendered_against_its_champion_then(old_versions, tmp_path, capsys):
    first, second = old_versions
    out = tmp_path / "old.html"
    assert cli.main(["report", "helpdesk", second, "--out", str(out)]) == 0
    assert "rendered now (its bundle predates release reports)" in capsys.readouterr().out
    html = out.read_text()
    # Against the champion it was published beside (the first), not today's (itself).
    assert f"champion <code>{first}</code>" in html and "This version is the champion" not in html
    assert "<td>intent_model</td><td>artifact</td><td>changed</td>" in html
    assert cli.main(["report", "helpdesk", first, "--out", str(out)]) == 0
    assert "No champion yet" in out.read_text()
    # Rendered twice from the same store: the same bytes.
    again = tmp_path / "again.html"
    capsys.readouterr()
    assert cli.main(["report", "helpdesk", first, "--out", str(again), "--json"]) == 0
    expected = {"release": "helpdesk", "version": first, "path": str(again), "bundled": False, "opened": False}
    assert json.loads(capsys.readouterr().out) == expected
    assert again.read_bytes() == out.read_bytes()


def test_a_bundle_that_disagrees_with_the_store_or_a_version_not_published_is_refused(old_versions, tmp_path, capsys):
    first, _ = old_versions
    assert cli.main(["report", "helpdesk", "0" * 16, "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"].startswith(f"helpdesk {'0' * 16} is not published")
    loose = tmp_path / "store" / "releases" / "helpdesk" / first / "manifest.json"
    edited = json.loads(loose.read_text())
    edited["weakened_gates"] = []
    edited["gates"] = [{"member": "intent_model", "gate": "accuracy", "status": "passed"}]
    loose.write_text(json.dumps(edited))
    assert cli.main(["report", "helpdesk", first, "--out", str(tmp_path / "x.html")]) == 1
    assert "differs from the bundle's own in gates" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_the_release_unit_links_its_report_published_or_evaluated_only(project, tmp_path, monkeypatch):
    import dagster as dg

    from release_assets_tests.test_release_end_to_end import materializations, run_release

    store = tmp_path / "store"
    with dg.instance_for_test() as instance:
        result, summaries = run_release(project, store, instance, only=["iris"])
        meta = materializations(result)["iris/release_unit"]
        version = summaries["iris"].version
        assert meta["published"] and Path(meta["report"]).read_bytes() == _bundled_report(
            store / "releases" / "iris" / version / "bundle.tar.gz"
        )
        # Publishing off (a pull request's build): a report of the candidate, linked, in no bundle.
        monkeypatch.setenv("RELEASE_ASSETS_PUBLISH", "false")
        get_settings.cache_clear()
        try:
            result, _ = run_release(project, store, instance, only=["iris"])
        finally:
            get_settings.cache_clear()
        meta = materializations(result)["iris/release_unit"]
        assert meta["evaluated_only"] and f"iris {version}".encode() in Path(meta["report"]).read_bytes()
