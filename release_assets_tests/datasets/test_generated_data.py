"""data/ is generated: the generator (data/generate.py and its data/generators/ package) rewrites the shipped files
byte for byte, and a project's copy leaves the generator out."""

from __future__ import annotations

import subprocess
import sys

from bench.support.project import REPO, copy_project

OUTPUTS = [
    "support/messages.jsonl",
    "support/knowledge_base.yaml",
    "golden/helpdesk.jsonl",
    "traffic/helpdesk.jsonl",
    "kbqa/knowledge_base.yaml",
    "golden/kbqa.jsonl",
    "golden/kbqa_build.jsonl",
    "SOURCES.md",
]
# Written by hand beside the generated files (SOURCES.md describes it; the generator reads it and never writes it);
# a project copy keeps it.
HAND_WRITTEN = ["judge/labelled.jsonl"]


def test_the_generator_rewrites_the_shipped_files_byte_for_byte(tmp_path):
    out = tmp_path / "data"
    cmd = [sys.executable, str(REPO / "data" / "generate.py"), "--out", str(out)]
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(OUTPUTS)
    changed = [rel for rel in OUTPUTS if (out / rel).read_bytes() != (REPO / "data" / rel).read_bytes()]
    assert not changed, f"data/ differs from what data/generate.py writes: {changed}"


def test_a_project_copy_leaves_the_generator_and_the_notes_out(tmp_path):
    project = copy_project(tmp_path / "project")
    assert sorted(str(p.relative_to(project / "data")) for p in (project / "data").rglob("*") if p.is_file()) == sorted(
        [*(rel for rel in OUTPUTS if not rel.endswith(".md")), *HAND_WRITTEN]
    )
