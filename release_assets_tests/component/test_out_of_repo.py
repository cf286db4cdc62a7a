"""The built wheel, installed into a fresh virtual environment, used by a `dg` project that is not this repository.

The environment is new (`python -m venv`, no system site packages) and gets release_assets only from the wheel;
the third-party dependencies are not downloaded again (minutes, and the registry is not what is tested): a `.pth`
line puts this repository's site-packages folder on the path. That folder holds the editable install as a finder
activated by another `.pth` file, and `.pth` files of a folder added that way are not processed, so the editable
install stays invisible; the test asserts `release_assets` is imported from the new environment.

In a temporary folder the project declares, like a team's project would: a release scaffolded by
`dg scaffold defs release_assets.ReleaseComponent flowers` (which also declares the platform) and a release of its
own, `defs/faq/`, with its prompts, knowledge base and golden suite beside its defs.yaml. `dg check yaml` and
`dg check defs` pass, `release-assets release` (run in the project) publishes both into the project's own store,
and `release-assets verify` checks the bundles.
"""

from __future__ import annotations

from pathlib import Path

from release_assets_tests.component.projects import (
    REPO,
    build_wheel,
    dg,
    fresh_venv,
    project_env,
    run,
    write_faq_release,
    write_project,
)


def test_the_wheel_in_a_fresh_venv_serves_a_dg_project_outside_the_repository(tmp_path):
    wheel = build_wheel(tmp_path / "build")
    project = tmp_path / "shop"
    project.mkdir()
    python = fresh_venv(project / ".venv", wheel)
    defs = write_project(project, "shop")
    # The project itself importable, as `pip install -e .` makes it in a team's environment.
    site = next((project / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "_shop_project.pth").write_text(str(project / "src") + "\n")
    env = project_env(project, project / ".venv")
    where = run([str(python), "-c", "import release_assets; print(release_assets.__file__)"], tmp_path, env)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout
    assert not Path(where.stdout.strip()).is_relative_to(REPO)

    scaffold = run([*dg(python), "scaffold", "defs", "release_assets.ReleaseComponent", "flowers"], project, env)
    assert scaffold.returncode == 0, scaffold.stdout + scaffold.stderr
    assert (defs / "flowers" / "defs.yaml").is_file() and (defs / "release_platform" / "defs.yaml").is_file()
    write_faq_release(defs)

    for check in ("yaml", "defs"):
        out = run([*dg(python), "check", check], project, env, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
    assert "All definitions loaded successfully" in out.stdout + out.stderr

    released = run([str(project / ".venv" / "bin" / "release-assets"), "release"], project / "src", env, timeout=600)
    assert released.returncode == 0, released.stdout + released.stderr
    assert "== faq: published" in released.stdout and "== flowers: published" in released.stdout, released.stdout
    bundles = sorted((project / ".release_store" / "releases").glob("*/*/bundle.tar.gz"))
    assert [b.parent.parent.name for b in bundles] == ["faq", "flowers"]
    for bundle in bundles:
        verified = run([str(project / ".venv" / "bin" / "release-assets"), "verify", str(bundle)], project, env)
        assert verified.returncode == 0 and verified.stdout.startswith("OK: "), verified.stdout + verified.stderr
    assert not (REPO / ".release_store" / "releases" / "faq").exists()  # nothing went to this repository
