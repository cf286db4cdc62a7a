"""Serving is plain Python: a server process never pays for (or depends on) Dagster."""

import subprocess
import sys

from release_assets_tests.conftest import REPO


def test_the_serving_package_imports_no_dagster():
    code = (
        "import sys\n"
        "import release_assets.serving.server, release_assets.serving.app, release_assets.serving.loader\n"
        "import release_assets.serving.flags, release_assets.serving.shadow, release_assets.serving.traces\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'dagster', 'dagster_aws', 'dagster_mlflow'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
