"""A store with the shipped releases published on tiny models, shared by the serving tests of one module.

The first call of a test session publishes every release once, into a folder of its own; each call then copies
that project and store into the caller's ``root``: the same bytes a publish there would have made, for a few
hundred milliseconds instead of half a minute, and each module still owns (and may change) its copy.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import dagster as dg

from bench.support.project import copy_project, make_tiny

ALL = ("iris", "helpdesk", "kbqa")
_published: tuple[Path, dict[str, str]] | None = None


def publish_tiny(root: Path, releases: tuple[str, ...] = ALL) -> tuple[Path, dict[str, str]]:
    """Copy the project to ``root / "project"`` and a store with ``releases`` published on tiny models to
    ``root / "store"``; return the store and their versions. The store also holds the other shipped releases."""
    unknown = set(releases) - set(ALL)
    assert not unknown, f"publish_tiny publishes {ALL}, not {sorted(unknown)}"
    template, versions = _template()
    for part in ("project", "store"):
        shutil.copytree(template / part, root / part, symlinks=True)
    return root / "store", {name: versions[name] for name in releases}


def _template() -> tuple[Path, dict[str, str]]:
    global _published
    if _published is None:
        from release_assets_tests.test_release_end_to_end import run_release

        folder = Path(tempfile.mkdtemp(prefix="tiny-releases-"))
        atexit.register(shutil.rmtree, folder, True)
        project = copy_project(folder / "project")
        make_tiny(project)
        with dg.instance_for_test() as instance:
            _, summaries = run_release(project, folder / "store", instance, only=list(ALL))
        versions = {name: s.version for name, s in summaries.items()}
        assert all(versions.values()), {name: s.render() for name, s in summaries.items()}
        _published = folder, versions
    return _published
