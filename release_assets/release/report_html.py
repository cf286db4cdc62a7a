"""A release version as one self-contained HTML page: its gates against the champion, its plots, its lineage and
what changed since the champion.

Rendered from a release manifest (as ``release/publish.build_manifest`` makes it and ``manifest.json`` keeps it),
the champion's published manifest, and the PNG plots its evidence members carry (``<member>/plots/*.png``). The
page loads nothing: CSS is inline, plots are ``data:`` URIs, and its Content-Security-Policy forbids any other
source. Every string read from a manifest is escaped (Jinja2's autoescape).

The bytes depend only on the inputs: no clock (the manifest's ``created_at`` is left out), every mapping sorted.
The report travels in the bundle as the evidence member :data:`REPORT_MEMBER`, outside the version, so the same
content keeps its version whatever the report says; publishing renders it only when it writes a new bundle.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Any

import jinja2

from release_assets.keys import is_evidence
from release_assets.promotion.policy import bounds_text
from release_assets.release.bundle import is_referenced

# Its bundle name: a member's bundle name starts with a letter (manifest NAME), so none can take it, and it ends
# with ``_report``, so is_evidence counts it out of the version, in this package and in any older one verifying it.
REPORT_MEMBER = "_release_report"
REPORT_FILE = "report.html"
REPORT_PATH = f"{REPORT_MEMBER}/{REPORT_FILE}"
REPORT_KIND = "release_report"
PLOTS = "plots"
_PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Champion:
    """The version a report compares with, and its published manifest."""

    version: str
    manifest: Mapping[str, Any]


def plot_paths(manifest: Mapping[str, Any]) -> list[str]:
    """Bundle paths of the PNG plots the evidence members carry (``<member>/plots/<name>.png``), in order."""
    out = []
    for name, member in manifest.get("members", {}).items():
        if name == REPORT_MEMBER or not is_evidence(name):
            continue
        for f in member.get("files", []):
            if not f["path"].startswith(f"{name}/"):
                continue
            rel = PurePosixPath(f["path"]).relative_to(name)
            if rel.parts[0] == PLOTS and rel.suffix == ".png" and not is_referenced(f):
                out.append(f["path"])
    return sorted(out)


# -- what the page shows, as plain values ------------------------------------------------------------------------


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _delta(candidate: Any, champion: Any) -> str:
    if not (_is_number(candidate) and _is_number(champion)):
        return "–"
    diff = float(candidate) - float(champion)
    return "0" if diff == 0 else f"{diff:+.4g}"


def _size(size: Any) -> str:
    if not isinstance(size, int):
        return _number(size)
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def _status(gate: Mapping[str, Any]) -> tuple[str, str]:
    """(text, css class) of a verdict: whether it held the release is what a reader looks for first."""
    status = str(gate.get("status", ""))
    if status == "passed":
        return "passed", "pass"
    warn = gate.get("severity") == "warn" or (status == "inconclusive" and gate.get("on_inconclusive") == "warn")
    return (f"{status} (warn)", "warn") if warn else (status, "fail")


def _gate_rows(gates: list[Mapping[str, Any]], champion: Champion | None) -> list[dict[str, Any]]:
    theirs = {(g.get("member"), g.get("gate")): g for g in (champion.manifest.get("gates", []) if champion else [])}
    rows = []
    for g in sorted(gates, key=lambda g: (str(g.get("member")), str(g.get("gate")))):
        recorded = g.get("champion")  # the gate's own comparison (regression), else the champion's observed value
        other = theirs.get((g.get("member"), g.get("gate")))
        value = recorded if recorded is not None else (other or {}).get("observed")
        threshold = g.get("threshold") or {}
        params = ", ".join(f"{k}={_number(v)}" for k, v in sorted(threshold.items()) if k not in ("min", "max"))
        text, css = _status(g)
        rows.append(
            {
                "member": g.get("member"),
                "gate": g.get("gate"),
                "status": text,
                "css": css,
                "observed": _number(g.get("observed")),
                "threshold": bounds_text(threshold) or "–",
                "params": params,
                "champion": _number(value),
                "delta": _delta(g.get("observed"), value),
                "reason": g.get("reason", ""),
            }
        )
    return rows


def _files_changed(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    a = {f["path"].split("/", 1)[1]: f["sha256"] for f in theirs.get("files", [])}
    b = {f["path"].split("/", 1)[1]: f["sha256"] for f in mine.get("files", [])}
    return sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))


def _changes(manifest: Mapping[str, Any], champion: Champion | None) -> dict[str, Any]:
    if champion is None:
        return {"state": "none"}
    if champion.version == manifest.get("version"):
        return {"state": "same"}
    mine = {n: m for n, m in manifest.get("members", {}).items() if n != REPORT_MEMBER}
    theirs = {n: m for n, m in champion.manifest.get("members", {}).items() if n != REPORT_MEMBER}
    members, unchanged = [], []
    for name in sorted(set(mine) | set(theirs)):
        a, b = theirs.get(name), mine.get(name)
        if a is not None and b is not None and a.get("digest") == b.get("digest"):
            unchanged.append(name)
            continue
        change = "added" if a is None else "removed" if b is None else "changed"
        members.append(
            {
                "name": name,
                "role": (b or a or {}).get("role", ""),
                "change": change,
                "champion": (a or {}).get("digest", "")[:16] or "–",
                "candidate": (b or {}).get("digest", "")[:16] or "–",
                "files": ", ".join(_files_changed(b or {}, a or {})),
            }
        )
    metrics = []
    for name in sorted(set(mine) & set(theirs)):
        a, b = theirs[name].get("metrics") or {}, mine[name].get("metrics") or {}
        for key in sorted(set(a) | set(b)):
            if _is_number(a.get(key)) or _is_number(b.get(key)):
                metrics.append(
                    {
                        "member": name,
                        "metric": key,
                        "champion": _number(a.get(key)),
                        "candidate": _number(b.get(key)),
                        "delta": _delta(b.get(key), a.get(key)),
                        "moved": a.get(key) != b.get(key),
                    }
                )
    return {"state": "compared", "members": members, "unchanged": unchanged, "metrics": metrics}


def _lineage(manifest: Mapping[str, Any]) -> dict[str, Any]:
    lineage = manifest.get("lineage") or {}
    git = lineage.get("git") or {}
    code, data, prints = (lineage.get(k) or {} for k in ("code_versions", "data_versions", "fingerprints"))
    members, held = [], []
    for name, m in sorted(manifest.get("members", {}).items()):
        if name == REPORT_MEMBER:
            continue
        files = []
        for f in sorted(m.get("files", []), key=lambda f: f["path"]):
            by_reference = is_referenced(f)
            files.append(
                {
                    "path": f["path"],
                    "sha256": f["sha256"],
                    "size": _size(f.get("size")),
                    "format": f.get("format", ""),
                    "stored": "by reference" if by_reference else "in the bundle",
                }
            )
            if by_reference:
                held.append(
                    {"path": f["path"], "sha256": f["sha256"], "size": _size(f.get("size")), "uri": f.get("uri")}
                )
        members.append(
            {
                "name": name,
                "role": m.get("role", ""),
                "kind": m.get("kind", ""),
                "digest": m.get("digest", ""),
                "size": _size(m.get("size")),
                "code_version": code.get(name) or "–",
                "data_version": data.get(name) or m.get("data_version") or "–",
                "fingerprint": prints.get(name) or "–",
                "files": files,
            }
        )
    other = {k: v for k, v in lineage.items() if k not in ("git", "code_versions", "data_versions", "fingerprints")}
    return {
        "git": [(k, _number(v)) for k, v in sorted(git.items())],
        "other": [
            (k, _number(v) if not isinstance(v, Mapping | list) else _plain(v)) for k, v in sorted(other.items())
        ],
        "members": members,
        "held": held,
    }


def _plain(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _plots(manifest: Mapping[str, Any], plots: Mapping[str, bytes]) -> list[dict[str, Any]]:
    out = []
    for path in plot_paths(manifest):
        data = plots.get(path)
        member, _, rel = path.partition("/")
        entry = {"member": member, "name": PurePosixPath(rel).name, "path": path, "src": None, "problem": None}
        if data is None:
            entry["problem"] = "not available when this report was rendered"
        elif not data.startswith(_PNG):
            entry["problem"] = "not a PNG file; not embedded"
        else:
            entry["src"] = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        out.append(entry)
    return out


def report_context(
    manifest: Mapping[str, Any], champion: Champion | None = None, plots: Mapping[str, bytes] | None = None
) -> dict[str, Any]:
    """What :func:`render_report` shows, as plain values (strings are escaped by the template, not here)."""
    gates = list(manifest.get("gates") or [])
    passed = sum(g.get("status") == "passed" for g in gates)
    holding = [g for g in gates if _status(g)[1] == "fail"]
    held = sum(is_referenced(f) for n, m in manifest.get("members", {}).items() for f in m.get("files", []))
    git = (manifest.get("lineage") or {}).get("git") or {}
    return {
        "release": manifest.get("release", ""),
        "version": manifest.get("version", ""),
        "champion": champion.version if champion else None,
        "gates_text": f"{passed}/{len(gates)} gates passed",
        "holding": len(holding),
        "weakened": list(manifest.get("weakened_gates") or []),
        "commit": git.get("commit") or git.get("unavailable") or "unknown",
        "dirty": git.get("dirty"),
        "members": len([n for n in manifest.get("members", {}) if n != REPORT_MEMBER]),
        "held_count": held,
        "gates": _gate_rows(gates, champion),
        "changes": _changes(manifest, champion),
        "plots": _plots(manifest, plots or {}),
        "lineage": _lineage(manifest),
        "report_path": REPORT_PATH,
    }


_CSS = """
:root { --fg: #1d232b; --muted: #5b6673; --line: #d9dee5; --bg: #ffffff; --head: #f3f5f8;
        --pass: #17703a; --pass-bg: #e6f4ea; --warn: #8a5a00; --warn-bg: #fff4d6; --fail: #b3261e; --fail-bg: #fce8e6; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 18px 0 6px; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.summary { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0 0; padding: 0; list-style: none; }
.summary li { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; background: var(--head); }
.summary b { display: block; font-size: 11px; font-weight: 600; color: var(--muted); text-transform: uppercase; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600;
         white-space: nowrap; }
.pass { color: var(--pass); background: var(--pass-bg); }
.warn { color: var(--warn); background: var(--warn-bg); }
.fail { color: var(--fail); background: var(--fail-bg); }
.note { border-left: 4px solid var(--warn); background: var(--warn-bg); padding: 6px 10px; margin: 8px 0; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; }
figure img { display: block; max-width: 560px; height: auto; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
details { margin: 4px 0; }
summary { cursor: pointer; }
tr.moved td { background: #f7f9fc; }
.params { white-space: normal; max-width: 16em; font-size: 12px; color: var(--muted); text-align: left; }
td.reason { min-width: 28em; }
td.mono { word-break: break-all; }
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ release }} {{ version }}: release report</title>
<style>{{ css | safe }}</style>
</head>
<body>
<header>
<h1>{{ release }} <code>{{ version }}</code></h1>
<div class="muted">Release report: gates against the champion, plots, lineage, and what changed since the
champion.</div>
<ul class="summary">
<li><b>champion</b>{% if champion %}<code>{{ champion }}</code>{% else %}none yet{% endif %}</li>
<li><b>gates</b>{{ gates_text }}{% if holding %} ({{ holding }} not passed){% endif %}</li>
<li><b>git commit</b><code>{{ commit }}</code>{% if dirty %} (dirty tree){% endif %}</li>
<li><b>members</b>{{ members }}</li>
<li><b>held by reference</b>{{ held_count }} file{{ "" if held_count == 1 else "s" }}</li>
</ul>
{% if weakened %}
<div class="note"><b>Weakened gates</b> (loosened from the default branch; promotion needs an override):
{% for w in weakened %}<code>{{ w }}</code>{{ "" if loop.last else ", " }}{% endfor %}</div>
{% endif %}
</header>

<section id="gates">
<h2>Gates</h2>
{% if gates %}
<table>
<thead><tr><th>member</th><th>gate</th><th>status</th><th>observed</th><th>threshold</th><th>champion</th>
<th>Δ vs champion</th><th>reason</th></tr></thead>
<tbody>
{% for g in gates %}
<tr><td>{{ g.member }}</td><td>{{ g.gate }}</td><td><span class="badge {{ g.css }}">{{ g.status }}</span></td>
<td class="num">{{ g.observed }}</td>
<td class="num">{{ g.threshold }}{% if g.params %}<div class="params">{{ g.params }}</div>{% endif %}</td>
<td class="num">{{ g.champion }}</td><td class="num">{{ g.delta }}</td><td class="reason">{{ g.reason }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="muted">No gates recorded.</p>
{% endif %}
</section>

<section id="changes">
<h2>Changes since the champion</h2>
{% if changes.state == "none" %}
<p class="muted">No champion yet: nothing to compare with.</p>
{% elif changes.state == "same" %}
<p class="muted">This version is the champion.</p>
{% else %}
<h3>Members whose digest differs from champion <code>{{ champion }}</code></h3>
{% if changes.members %}
<table>
<thead><tr><th>member</th><th>role</th><th>change</th><th>champion digest</th><th>this digest</th>
<th>files that differ</th></tr></thead>
<tbody>
{% for m in changes.members %}
<tr><td>{{ m.name }}</td><td>{{ m.role }}</td><td>{{ m.change }}</td><td class="mono">{{ m.champion }}</td>
<td class="mono">{{ m.candidate }}</td><td class="mono">{{ m.files }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="muted">None: every member has the champion's digest.</p>
{% endif %}
{% if changes.unchanged %}<p class="muted">Unchanged: {{ changes.unchanged | join(", ") }}</p>{% endif %}
<h3>Metrics</h3>
{% if changes.metrics %}
<table>
<thead><tr><th>member</th><th>metric</th><th>champion</th><th>this version</th><th>Δ</th></tr></thead>
<tbody>
{% for m in changes.metrics %}
<tr{% if m.moved %} class="moved"{% endif %}><td>{{ m.member }}</td><td>{{ m.metric }}</td>
<td class="num">{{ m.champion }}</td>
<td class="num">{{ m.candidate }}</td><td class="num">{{ m.delta }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="muted">No metrics recorded by members both versions have.</p>
{% endif %}
{% endif %}
</section>

<section id="plots">
<h2>Plots</h2>
{% if plots %}
<div class="plots">
{% for p in plots %}
<figure>
{% if p.src %}<img src="{{ p.src }}" alt="{{ p.path }}">{% else %}<div class="note">{{ p.problem }}</div>{% endif %}
<figcaption><b>{{ p.member }}</b> · {{ p.name }}</figcaption>
</figure>
{% endfor %}
</div>
{% else %}
<p class="muted">No plots: no evidence member carries <code>plots/*.png</code>.</p>
{% endif %}
</section>

<section id="lineage">
<h2>Lineage</h2>
<table>
<tbody>
{% for k, v in lineage.git %}<tr><th>git {{ k }}</th><td class="mono">{{ v }}</td></tr>
{% endfor %}
{% for k, v in lineage.other %}<tr><th>{{ k }}</th><td class="mono">{{ v }}</td></tr>
{% endfor %}
</tbody>
</table>
<h3>Members</h3>
<table>
<thead><tr><th>member</th><th>role</th><th>kind</th><th>digest</th><th>size</th><th>code version</th>
<th>data version</th><th>fingerprint</th></tr></thead>
<tbody>
{% for m in lineage.members %}
<tr><td>{{ m.name }}</td><td>{{ m.role }}</td><td>{{ m.kind }}</td><td class="mono">{{ m.digest }}</td>
<td class="num">{{ m.size }}</td><td class="mono">{{ m.code_version }}</td><td class="mono">{{ m.data_version }}</td>
<td class="mono">{{ m.fingerprint }}</td></tr>
{% endfor %}
</tbody>
</table>
<h3>Held by reference</h3>
{% if lineage.held %}
<table>
<thead><tr><th>file</th><th>sha256</th><th>size</th><th>where the store keeps it</th></tr></thead>
<tbody>
{% for f in lineage.held %}
<tr><td class="mono">{{ f.path }}</td><td class="mono">{{ f.sha256 }}</td><td class="num">{{ f.size }}</td>
<td class="mono">{{ f.uri }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="muted">Nothing: every file is in the bundle.</p>
{% endif %}
<h3>Files</h3>
{% for m in lineage.members %}
<details><summary><b>{{ m.name }}</b>
({{ m.files | length }} file{{ "" if m.files | length == 1 else "s" }}, {{ m.size }})</summary>
<table>
<thead><tr><th>path</th><th>sha256</th><th>size</th><th>format</th><th>stored</th></tr></thead>
<tbody>
{% for f in m.files %}
<tr><td class="mono">{{ f.path }}</td><td class="mono">{{ f.sha256 }}</td><td class="num">{{ f.size }}</td>
<td>{{ f.format }}</td><td>{{ f.stored }}</td></tr>
{% endfor %}
</tbody>
</table>
</details>
{% endfor %}
<p class="muted">This page is bundle member <code>{{ report_path }}</code>: evidence, outside the version's digest.</p>
</section>
</body>
</html>
"""


@cache
def _page() -> jinja2.Template:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(_TEMPLATE)


def render_report(
    manifest: Mapping[str, Any], champion: Champion | None = None, plots: Mapping[str, bytes] | None = None
) -> str:
    """The report as HTML text. ``champion``: the version to compare with (None: no champion yet); ``plots``: bundle
    path -> bytes of each of :func:`plot_paths` (one missing is named on the page instead)."""
    return _page().render(css=_CSS, **report_context(manifest, champion, plots))


def report_bytes(
    manifest: Mapping[str, Any], champion: Champion | None = None, plots: Mapping[str, bytes] | None = None
) -> bytes:
    return render_report(manifest, champion, plots).encode("utf-8")
