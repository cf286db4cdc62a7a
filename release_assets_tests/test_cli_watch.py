"""`release-assets watch`: each edit materializes what it made stale in one warm process, and no more."""

import subprocess
import sys
import time
from pathlib import Path

from bench.support.project import edit_manifest
from release_assets.cli import main as cli
from release_assets.cli.watch import PACKAGE_ROOT, changed_files, needs_restart
from release_assets.release.store import LocalReleaseStore

DEADLINE_S = 180


def _cursor(files: dict[str, str]) -> str:
    import json

    return json.dumps({"files": {p: [0, 0, digest] for p, digest in files.items()}})


def test_changed_files_compare_content_digests_and_list_new_paths():
    before = _cursor({"a.j2": "1", "b.py": "2"})
    after = _cursor({"a.j2": "1", "b.py": "3", "c.yaml": "4"})
    assert changed_files(before, after) == ["b.py", "c.yaml"]
    assert changed_files(after, after) == []


def test_only_this_packages_modules_need_a_restart(tmp_path):
    own = str(PACKAGE_ROOT / "chains" / "render.py")
    assert needs_restart([own, str(tmp_path / "prompts" / "x.j2"), str(tmp_path / "plugin.py")]) == [own]


def _wait_for(path: Path, text: str, process: subprocess.Popen, count: int = 1) -> str:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        out = path.read_text() if path.exists() else ""
        if out.count(text) >= count:
            return out
        assert process.poll() is None, f"watch exited early ({process.returncode}):\n{out}"
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} within {DEADLINE_S} s:\n{path.read_text()}")


def test_prompt_and_manifest_edits_each_publish_one_new_version(cli_env, tmp_path, capsys):
    project = cli_env
    assert cli.main(["release", "kbqa", "iris", "--quiet"]) == 0
    store = LocalReleaseStore(tmp_path / "store")
    first = {name: store.latest(name) for name in ("kbqa", "iris")}
    out = tmp_path / "watch.out"
    args = ["watch", "kbqa", "iris", "--quiet", "--interval", "0.2", "--max-runs", "2", "--timeout", str(DEADLINE_S)]
    with out.open("w") as sink:
        watch = subprocess.Popen([sys.executable, "-m", "release_assets.cli.main", *args], stdout=sink, stderr=sink)
    try:
        _wait_for(out, "watching: baseline recorded", watch)
        template = project / "prompts" / "kbqa" / "answer.j2"
        template.write_text(template.read_text() + "{# edited by the watch test #}\n")
        text = _wait_for(out, "finished in", watch)
        assert "changed: answer.j2 -> running" in text and "kbqa/chain" in text and "iris/" not in text
        assert "== kbqa: published" in text

        edit_manifest(project, "iris", lambda d: d["members"]["classifier"]["params"].update({"C": 0.5}))
        text = _wait_for(out, "finished in", watch, count=2)
        assert "changed: iris.yaml -> running" in text and "== iris: published" in text
        assert watch.wait(30) == 0  # --max-runs 2
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait(30)
    assert all(store.latest(name) != first[name] for name in first), text
    assert len(store.versions("kbqa")) == len(store.versions("iris")) == 2
    # Each run stamped what it published: the next release has nothing to do.
    capsys.readouterr()
    assert cli.main(["release", "kbqa", "iris", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "== kbqa: unchanged" in printed and "== iris: unchanged" in printed
    assert not (tmp_path / "mlflow.db").exists()  # neither release nor watch touched MLflow
