"""A store with the shipped releases published on tiny models, shared by the serving tests of one module."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from bench.support.project import copy_project, make_tiny


def publish_tiny(root: Path, releases: tuple[str, ...] = ("iris", "helpdesk", "kbqa")) -> tuple[Path, dict[str, str]]:
    """Copy the project to ``root``, publish ``releases`` on tiny models; return the store and their versions."""
    from release_assets_tests.test_release_end_to_end import run_release

    project = copy_project(root / "project")
    make_tiny(project)
    store = root / "store"
    with dg.instance_for_test() as instance:
        _, summaries = run_release(project, store, instance, only=list(releases))
    versions = {name: s.version for name, s in summaries.items()}
    assert all(versions.values()), {name: s.render() for name, s in summaries.items()}
    return store, versions
