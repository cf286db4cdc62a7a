"""`release-assets release` never imports MLflow; `release-assets registry sync` then registers what it published."""

import subprocess
import sys

from release_assets.cli import main as cli
from release_assets.core.settings import get_settings
from release_assets.release.store import LocalReleaseStore
from release_assets.resources.registry import Registry

RELEASE_THEN_REPORT = (
    "import sys; from release_assets.cli.main import main; rc = main(['release', 'iris', '--quiet']); "
    "print('mlflow imported:', any(m.split('.')[0] == 'mlflow' for m in sys.modules), 'rc:', rc)"
)


def test_release_leaves_mlflow_alone_and_the_sync_registers_it(cli_env, capsys):
    # A fresh process, as a person's shell: the whole release run, then which modules it imported.
    out = subprocess.run([sys.executable, "-c", RELEASE_THEN_REPORT], capture_output=True, text=True, check=True)
    assert "== iris: published" in out.stdout, out.stderr[-3000:]
    assert "MLflow registration follows: `release-assets registry sync`" in out.stdout
    assert out.stdout.strip().endswith("mlflow imported: False rc: 0"), out.stdout
    version = next(line.split()[-1] for line in out.stdout.splitlines() if line.strip().startswith("version:"))

    assert cli.main(["registry", "sync", "iris"]) == 0
    printed = capsys.readouterr().out
    assert f"iris {version}: registered in MLflow" in printed and "model versions: iris.classifier v1" in printed
    settings = get_settings()
    registry = Registry(settings.tracking_uri, settings.artifact_root)
    assert registry.aliases("iris") == {"candidate": version}
    assert registry.client.get_model_version("iris.classifier", "1").tags["release_version"] == version

    assert cli.main(["registry", "sync"]) == 0  # every release; nothing new to register
    assert "registry: 0 version(s) newly registered" in capsys.readouterr().out


def test_a_bundle_that_fails_verification_is_named_and_the_sync_fails(cli_env, tmp_path, capsys):
    assert cli.main(["release", "iris", "--quiet"]) == 0
    [version] = LocalReleaseStore(tmp_path / "store").versions("iris")
    bundle = tmp_path / "store" / "releases" / "iris" / version / "bundle.tar.gz"
    bundle.write_bytes(bundle.read_bytes()[:-100])  # truncated after publishing
    capsys.readouterr()
    assert cli.main(["registry", "sync", "iris"]) == 1
    err = capsys.readouterr().err
    assert f"not registered: iris {version}:" in err and "bundle" in err
    settings = get_settings()
    assert not Registry(settings.tracking_uri, settings.artifact_root).has_version("iris", version)
