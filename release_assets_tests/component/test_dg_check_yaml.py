"""`dg check yaml` on a release declared in a project's defs.yaml: a schema error names the file and the line."""

from __future__ import annotations

import json
import re
import sys

from release_assets_tests.component.projects import FAQ, dg, project_env, run, write_faq_release, write_project


def test_dg_check_yaml_points_at_the_file_and_line_of_a_manifest_error(tmp_path):
    package = re.sub(r"\W", "_", f"p_{tmp_path.name}")
    defs = write_project(tmp_path, package)
    # dg runs the project's own interpreter: this one, which has release_assets installed.
    (tmp_path / ".env").write_text(f"DG_PROJECT_PYTHON_EXECUTABLE={sys.executable}\n")
    manifest = json.loads(json.dumps(FAQ))
    manifest["gates"]["chain"]["format_valid"] = {"min": 0.99, "severity": "fatal"}
    defs_yaml = write_faq_release(defs, manifest)
    line = next(i for i, text in enumerate(defs_yaml.read_text().splitlines(), 1) if "fatal" in text)

    out = run([*dg(), "check", "yaml"], tmp_path, project_env(tmp_path), timeout=300)

    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"{defs_yaml}:{line} - release_assets.ReleaseComponent attributes.gates.chain.format_valid.severity" in text
    assert "'fatal' is not one of ['block', 'warn']" in text
