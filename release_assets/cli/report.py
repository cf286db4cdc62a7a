"""``release-assets report RELEASE VERSION``: a published version's release report, as one HTML file.

The bundle is fetched from the configured release store and verified (every digest, and the store's manifest
against the bundle's own); the report it carries is written as it was bundled. A version published before bundles
carried reports gets one rendered now from its verified manifest, against the champion it was published beside
(replayed from the ledger up to its ``published`` event), with the plots its evidence members carry.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from release_assets.cli.common import OK, print_json, release_store


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="a published version's release report (gates, plots, lineage, changes) as one HTML file"
    )
    p.add_argument("release")
    p.add_argument("version", help="a published version (16 hex digits, as `release-assets list` shows)")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: ./<release>-<version>.html)")
    p.add_argument(
        "--open",
        action="store_true",
        help="open it in the web browser (written to a temporary folder unless --out is given)",
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (errors too)")
    p.set_defaults(fn=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from release_assets.release.store import check_release_name, check_version

    release, version = check_release_name(args.release), check_version(args.version)
    html, bundled = published_report(release_store(), release, version)
    name = f"{release}-{version}.html"
    if args.out:
        out = Path(args.out)
    elif args.open:
        out = Path(tempfile.mkdtemp(prefix="release-report-")) / name  # kept: the browser reads it after we exit
    else:
        out = Path.cwd() / name
    out.write_bytes(html)
    opened = False
    if args.open:
        import webbrowser

        opened = webbrowser.open(out.resolve().as_uri())
    if args.json:
        return print_json(
            {"release": release, "version": version, "path": str(out), "bundled": bundled, "opened": opened}
        )
    source = "from its bundle" if bundled else "rendered now (its bundle predates release reports)"
    print(f"{release} {version}: report written to {out} ({source})")
    if args.open and not opened:
        print(f"no web browser could be opened; open {out.resolve().as_uri()}", file=sys.stderr)
    return OK


def published_report(store: Any, release: str, version: str) -> tuple[bytes, bool]:
    """The report of ``release`` ``version`` from its verified bundle, and True; or, for a bundle without one,
    one rendered from the verified manifest, and False. Raises ``StoreError`` for a version not published and
    ``BundleError`` for a bundle that does not verify or disagrees with the store's manifest."""
    from release_assets.record.verified import check_agreement
    from release_assets.release.bundle import BundleError, extract_bundle
    from release_assets.release.report_html import REPORT_MEMBER, REPORT_PATH, plot_paths, report_bytes
    from release_assets.release.store import BUNDLE, StoreError

    stored = store.manifest(release, version)
    if stored is None:
        raise StoreError(f"{release} {version} is not published (`release-assets list {release}` shows what is)")
    where = store.bundle_uri(release, version)
    with tempfile.TemporaryDirectory(prefix=f"report-{release}-") as tmp:
        bundle = store.fetch_bundle(release, version, Path(tmp) / BUNDLE)
        # Verified whole; only the report and the evidence members (their plots) are written out.
        wanted = {REPORT_MEMBER} | {p.split("/", 1)[0] for p in plot_paths(stored)}
        try:
            own = extract_bundle(bundle, Path(tmp) / "files", members=wanted)
        except BundleError as exc:  # name the bundle where it is stored, not the temporary copy
            raise BundleError(str(exc).replace(str(bundle), where)) from None
        if own.get("release") != release or own.get("version") != version:
            raise BundleError(f"{where}: the bundle is {own.get('release')} {own.get('version')}, not {version}")
        check_agreement(stored, own, where)
        files = Path(tmp) / "files"
        if REPORT_MEMBER in own["members"]:
            return (files / REPORT_PATH).read_bytes(), True
        plots = {p: (files / p).read_bytes() for p in plot_paths(own) if (files / p).is_file()}
        return report_bytes(own, _champion_when_published(store, release, version), plots), False


def _champion_when_published(store: Any, release: str, version: str) -> Any:
    """The champion ``version`` was published beside (the one its gates compared with), with its manifest."""
    from release_assets.record.ledger import replay
    from release_assets.release.report_html import Champion

    events = store.events(release)
    at = next(
        (
            i
            for i, e in enumerate(events)
            if e.get("action") == "published" and e.get("environment") is None and e.get("to_version") == version
        ),
        len(events),
    )
    champion = replay(events[:at]).champion
    manifest = store.manifest(release, champion) if champion and champion != version else None
    return Champion(champion, manifest) if champion and manifest is not None else None
