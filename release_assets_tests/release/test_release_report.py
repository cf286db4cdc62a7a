"""The release report (release/report_html.py): escaped, self-contained, the same bytes for the same inputs, and
bundled as evidence by publishing without changing the version."""

from __future__ import annotations

import base64
import copy
import json
import re
import struct
import zlib
from html.parser import HTMLParser

import pytest

from release_assets.artifacts import ArtifactRef, LocalArtifactStore
from release_assets.keys import is_evidence
from release_assets.manifest.models import NAME
from release_assets.promotion.policy import Verdict
from release_assets.release.bundle import read_manifest, release_version, verify_bundle
from release_assets.release.publish import build_manifest, publish_release, report_file, with_report
from release_assets.release.report_html import (
    REPORT_MEMBER,
    REPORT_PATH,
    Champion,
    plot_paths,
    render_report,
    report_bytes,
)
from release_assets.release.store import LocalReleaseStore
from release_assets_tests.release.test_publish import RELEASE, artifact

HOSTILE = '<script>alert("x")</script><img src="https://evil.example/x.png">'


def png(width: int = 6, height: int = 4, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid PNG, made without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _file(path: str, sha: str = "a" * 64, size: int = 10, **extra) -> dict:
    return {"path": path, "sha256": sha, "size": size, "format": "binary", **extra}


def manifest(**changes) -> dict:
    """A manifest shaped as publish.build_manifest makes it: a model, its report (with a plot), a dataset held by
    reference, gates and lineage."""
    m = {
        "release": "iris",
        "version": "0123456789abcdef",
        "members": {
            "classifier": {
                "kind": "tabular_classifier",
                "role": "artifact",
                "digest": "d1" * 32,
                "files": [_file("classifier/model.json", "b" * 64, 722)],
                "size": 722,
                "metrics": {},
                "data_version": "d1" * 8,
            },
            "classifier_report": {
                "kind": "model_report",
                "role": "evidence",
                "digest": "e1" * 32,
                "files": [_file("classifier_report/report.json"), _file("classifier_report/plots/confusion.png")],
                "size": 20,
                "metrics": {"accuracy": 0.95, "p95_ms": 0.03},
                "data_version": "e1" * 8,
            },
            "dataset": {
                "kind": "sklearn_dataset",
                "role": "artifact",
                "digest": "f1" * 32,
                "files": [_file("dataset/rows.jsonl", "c" * 64, 16100, stored="reference", uri="/store/data/cc")],
                "size": 16100,
                "metrics": {"rows": 150},
                "data_version": "f1" * 8,
            },
        },
        "gates": [
            Verdict("classifier", "accuracy", "passed", "accuracy = 0.95 meets >= 0.9", 0.95, {"min": 0.9}).as_dict(),
            Verdict("dataset", "drift", "inconclusive", "no champion", None, {"max": 0.0, "alpha": 0.01}).as_dict()
            | {"on_inconclusive": "warn"},
        ],
        "weakened_gates": [],
        "lineage": {
            "dagster_run_id": "run-1",
            "git": {"commit": "abc123", "dirty": False, "branch": "main"},
            "code_versions": {"classifier": "c0de"},
            "data_versions": {"classifier": "d1" * 8},
            "fingerprints": {"classifier": "f00d"},
        },
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    m.update(changes)
    return m


class _Resources(HTMLParser):
    """Every element and attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.csp: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.csp = values.get("content")
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data", "background", "formaction"):
                self.urls.append((tag, name, value or ""))


def resources(html: str) -> _Resources:
    parser = _Resources()
    parser.feed(html)
    return parser


def test_every_string_from_the_manifest_is_escaped():
    m = manifest()
    m["release"] = HOSTILE
    m["gates"][0]["reason"] = HOSTILE
    m["gates"][0]["gate"] = HOSTILE
    m["weakened_gates"] = [HOSTILE]
    m["lineage"]["git"]["branch"] = HOSTILE
    m["lineage"]["dagster_run_id"] = HOSTILE
    m["members"]["dataset"]["files"][0]["uri"] = HOSTILE
    m["members"][HOSTILE] = copy.deepcopy(m["members"]["classifier"])
    html = render_report(m)
    assert "<script" not in html and 'evil.example/x.png">' not in html
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") >= 6
    found = resources(html)
    assert "script" not in found.tags and found.urls == []  # no plot here, so no src at all


def test_the_page_loads_nothing_from_outside():
    html = render_report(manifest(), plots={"classifier_report/plots/confusion.png": png()})
    found = resources(html)
    assert found.csp is not None and "default-src 'none'" in found.csp and "img-src data:" in found.csp
    assert {"link", "script", "iframe", "object", "embed", "base"}.isdisjoint(found.tags)
    assert found.urls and all(
        name == "src" and value.startswith("data:image/png;base64,") for _, name, value in found.urls
    )
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None and "url(" not in style.group(1) and "@import" not in style.group(1)
    assert "http://" not in html and "https://" not in html


def test_the_same_inputs_give_the_same_bytes_whatever_the_order_and_the_clock():
    plots = {"classifier_report/plots/confusion.png": png()}
    champion = Champion("fedcba9876543210", manifest(version="fedcba9876543210"))
    first = report_bytes(manifest(), champion, plots)
    assert report_bytes(manifest(), champion, plots) == first
    # As manifest.json keeps it (keys sorted), published at another time: the same page.
    stored = json.loads(json.dumps(manifest(created_at="2099-12-31T23:59:59+00:00"), sort_keys=True))
    reordered = {**stored, "members": dict(reversed(list(stored["members"].items())))}
    assert report_bytes(reordered, champion, plots) == first
    assert "2026-01-01" not in first.decode() and "2099" not in first.decode()


def test_plots_of_evidence_members_are_embedded_and_none_is_fine():
    m = manifest()
    m["members"]["classifier"]["files"].append(_file("classifier/plots/weights.png"))  # an artifact's: not shown
    assert plot_paths(m) == ["classifier_report/plots/confusion.png"]
    image = png()
    html = render_report(m, plots={"classifier_report/plots/confusion.png": image})
    assert f"data:image/png;base64,{base64.b64encode(image).decode()}" in html
    assert html.count("<img ") == 1 and "confusion.png" in html
    # Not a PNG, or not at hand: named, not embedded.
    assert "<img " not in render_report(m, plots={"classifier_report/plots/confusion.png": b"GIF89a"})
    assert "not available" in render_report(m)
    m["members"]["classifier_report"]["files"].pop()
    html = render_report(m)
    assert "<img " not in html and "No plots" in html


def test_gates_and_changes_are_read_against_the_champion():
    old = manifest(version="fedcba9876543210")
    old["members"]["classifier"]["digest"] = "0" * 64
    old["members"]["classifier"]["files"][0]["sha256"] = "9" * 64
    old["members"]["classifier_report"]["metrics"] = {"accuracy": 0.9, "p95_ms": 0.03}
    old["gates"][0]["observed"] = 0.9
    del old["members"]["dataset"]
    html = render_report(manifest(), Champion("fedcba9876543210", old))
    gates = html[html.index('id="gates"') : html.index('id="changes"')]
    assert re.search(r"accuracy</td>.*?>0\.95<.*?>&gt;= 0\.9<.*?>0\.9<.*?>\+0\.05<", gates, re.S)
    changes = html[html.index('id="changes"') : html.index('id="plots"')]
    assert re.search(r"classifier</td><td>artifact</td><td>changed</td>.*?model\.json", changes, re.S)
    assert re.search(r"dataset</td><td>artifact</td><td>added</td>", changes)
    assert "Unchanged: classifier_report" in changes
    assert re.search(r"classifier_report</td><td>accuracy</td>\s*<td class=\"num\">0\.9</td>", changes)
    assert "No champion yet" in render_report(manifest())
    assert "This version is the champion" in render_report(manifest(), Champion("0123456789abcdef", manifest()))


def test_lineage_lists_members_digests_sizes_and_what_is_held_by_reference():
    html = render_report(manifest())
    lineage = html[html.index('id="lineage"') :]
    for text in ("abc123", "run-1", "d1" * 32, "c0de", "f00d", "722 B", "15.7 KiB", "/store/data/cc", "c" * 64):
        assert text in lineage, text
    assert "by reference" in lineage


def test_the_report_member_is_evidence_and_no_member_can_take_its_name():
    assert is_evidence(REPORT_MEMBER) and REPORT_PATH.split("/") == [REPORT_MEMBER, "report.html"]
    assert re.match(NAME, REPORT_MEMBER) is None  # member names (and so their bundle names) start with a letter


# -- publishing ----------------------------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "cache")


def _refs(cache) -> dict[str, ArtifactRef]:
    def report_with_plot(out):
        (out / "report.md").write_text("p95 12 ms")
        (out / "plots").mkdir()
        (out / "plots" / "latency.png").write_bytes(png())
        return {"metrics": {"accuracy": 0.9}}

    ref, _ = cache.build(
        release=RELEASE, member="intent_model_report", kind="report", fingerprint="r" * 24, builder=report_with_plot
    )
    return {
        "intent_model": artifact(cache, "intent_model", {"model.json": '{"w": 1}'}),
        "intent_model_report": ref,
        "chain": artifact(cache, "chain", {"chain.yaml": "steps: []"}, kind="chain"),
    }


def test_a_published_bundle_carries_the_report_as_evidence_and_keeps_its_version(tmp_path, cache):
    refs = _refs(cache)
    candidate = build_manifest(RELEASE, refs, [], {"git": {"commit": "abc"}})
    releases = LocalReleaseStore(tmp_path / "store")
    bundle, published, new = publish_release(cache, releases, RELEASE, refs, candidate, report=True)
    assert new and published["version"] == candidate["version"]
    assert verify_bundle(bundle) == published == releases.manifest(RELEASE, candidate["version"])
    member = published["members"][REPORT_MEMBER]
    assert member["role"] == "evidence" and [f["path"] for f in member["files"]] == [REPORT_PATH]
    assert member["files"][0]["format"] == "html"
    without = {n: m for n, m in published["members"].items() if n != REPORT_MEMBER}
    assert release_version(without) == release_version(published["members"]) == candidate["version"]
    # The bundle's report is the one rendered from the manifest without it, its plot embedded.
    html = report_file(cache, RELEASE, published).read_bytes()
    plot = (refs["intent_model_report"].path(cache.root, "plots/latency.png")).read_bytes()
    assert html == report_bytes(candidate, None, {"intent_model_report/plots/latency.png": plot})
    assert base64.b64encode(plot) in html

    # The same content again, built later by another run: already published, the first bundle and report kept.
    again = build_manifest(RELEASE, refs, [], {"git": {"commit": "abc"}, "dagster_run_id": "another run"})
    written = bundle.read_bytes()
    _, republished, new = publish_release(cache, releases, RELEASE, refs, again, report=True)
    assert new is False and republished == published and bundle.read_bytes() == written
    assert read_manifest(bundle)["members"][REPORT_MEMBER] == member


def test_with_report_compares_with_the_champion_and_changes_nothing_else(cache):
    refs = _refs(cache)
    candidate = build_manifest(RELEASE, refs, [], {})
    champion = Champion("f" * 16, {**candidate, "version": "f" * 16})
    new_refs, with_it = with_report(cache, RELEASE, refs, candidate, champion)
    assert set(new_refs) == set(refs) | {REPORT_MEMBER}
    assert {k: v for k, v in with_it.items() if k != "members"} == {
        k: v for k, v in candidate.items() if k != "members"
    }
    assert {n: m for n, m in with_it["members"].items() if n != REPORT_MEMBER} == candidate["members"]
    assert b"f" * 16 in report_file(cache, RELEASE, with_it).read_bytes()
