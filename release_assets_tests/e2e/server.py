"""A throwaway Dagster instance with both releases materialized, served by a real ``dagster-webserver``.

Everything lives under one temp folder: the project copy (tiny helpdesk, a deliberately bad iris candidate), the
instance (``DAGSTER_HOME``), the artifact store and MLflow. The releases are materialized by the project's own CLI
in a subprocess under that ``DAGSTER_HOME``, so the webserver sees the very runs a person would.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml

from bench.support.project import copy_project, edit_manifest, make_tiny
from release_assets_tests.conftest import REPO

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 180  # the code location imports dagster, pandas and MLflow; on a busy 2-core machine this is slow
RELEASE_TIMEOUT_S = 900


@dataclass
class UiServer:
    url: str
    root: Path
    env: dict[str, str]
    process: subprocess.Popen
    log: Path
    timings: dict[str, float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bad_iris_candidate(data: dict) -> None:
    """A classifier so over-regularised it is barely better than guessing; only the accuracy gate judges it.

    The other classifier gates are relaxed so exactly one gate fails: the UI test then looks at a single, known
    failure rather than whichever of several failing checks the page happens to list first.
    """
    data["members"]["classifier"]["params"].update({"C": 1e-6})
    gates = data["gates"]["classifier"]
    for gate in list(gates):
        if gate != "accuracy":
            gates.pop(gate)
    gates["accuracy"] = {"min": 0.9}


def prepare(root: Path) -> dict[str, str]:
    """Project copy, instance home and workspace under ``root``; returns the environment every process uses."""
    project = copy_project(root / "project")
    make_tiny(project)
    edit_manifest(project, "iris", bad_iris_candidate)
    home = root / "dagster_home"
    home.mkdir()
    # The repo's instance config, plus a run coordinator that launches at once: runs launched from the UI would
    # otherwise wait in the queue for a dagster-daemon, which `dagster dev` starts but a bare webserver does not.
    config = yaml.safe_load((REPO / "dagster.yaml").read_text()) or {}
    config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # Create the sqlite storage once, here, so the webserver and the release run do not race to create it.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
    workspace = root / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {"load_from": [{"python_module": {"module_name": "release_assets.definitions", "attribute": "defs"}}]}
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASE_ASSETS_")}
    env.update(
        DAGSTER_HOME=str(home),
        RELEASE_ASSETS_PROJECT_ROOT=str(project),
        RELEASE_ASSETS_RELEASES_DIR=str(project / "releases"),
        RELEASE_ASSETS_STORE_ROOT=str(root / "store"),
        RELEASE_ASSETS_MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT=str(root / "mlflow-artifacts"),
        PYTHONUNBUFFERED="1",
    )
    return env


def materialize(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``release-assets release``: helpdesk publishes; iris is held back by its accuracy gate (exit code 1)."""
    result = subprocess.run(
        [str(BIN / "release-assets"), "release"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=RELEASE_TIMEOUT_S,
    )
    out = result.stdout + result.stderr
    if "helpdesk" not in out or not list((root / "store" / "releases" / "helpdesk").glob("*/bundle.tar.gz")):
        raise RuntimeError(f"helpdesk did not publish (exit {result.returncode}):\n{out[-4000:]}")
    if result.returncode != 1 or (root / "store" / "releases" / "iris").exists():
        raise RuntimeError(f"iris was expected to be held back by its accuracy gate:\n{out[-4000:]}")
    return result


def start_webserver(root: Path, env: dict[str, str]) -> tuple[str, subprocess.Popen, Path]:
    port = free_port()
    log = root / "webserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(root / "workspace.yaml"),
            ],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so teardown can stop the code server it spawns too
        )
    return f"http://127.0.0.1:{port}", process, log


def wait_ready(url: str, process: subprocess.Popen, log: Path, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll ``/server_info`` until the webserver answers, then until the code location has loaded."""
    deadline = time.monotonic() + timeout
    query = b'{"query": "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"}'
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5) as r:
                if r.status == 200:
                    request = urllib.request.Request(
                        f"{url}/graphql", data=query, headers={"Content-Type": "application/json"}
                    )
                    with urllib.request.urlopen(request, timeout=10) as g:
                        if b'"LOADED"' in g.read():
                            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"dagster-webserver not ready after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def stop(process: subprocess.Popen) -> None:
    """Terminate the webserver's process group (webserver and its code server), then kill what is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait(timeout=10)
    # The code server may outlive a webserver that exited first.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 9)
