"""What every ``release-assets`` command shares: the exit codes, JSON output, and thin wrappers over
``release_assets.api`` (the Python API: one implementation for the commands and for users). The wrappers import it
only when a command runs, so ``release-assets --help`` and a release with nothing to do start without Dagster.

The command modules import from here; ``main.py`` imports them, so nothing here imports a command module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Exit codes (README.md, "Exit codes"); argparse's own usage errors are USAGE too.
OK = 0
REFUSED = 1  # held back by a gate, a promotion or rollback refused, a bundle or ledger that does not verify
USAGE = 2  # bad arguments or configuration: a manifest, a setting, a release name, a file that is not there
UNREACHABLE = 3  # a service did not answer: the S3 store, the MLflow tracking server, a server's /metrics


def print_json(payload: dict[str, Any], code: int = OK, error: str | None = None) -> int:
    """Print ``payload`` as the command's one JSON object on standard output and return ``code``; a command that
    does not succeed says why and with which code in the same object (``error``, ``code``)."""
    if code != OK:
        payload = {**payload, "error": error or "", "code": code}
    print(json.dumps(payload, indent=1, default=str))
    return code


def dagster_instance(project_root: Path) -> Any:
    from release_assets.definitions import dagster_instance

    return dagster_instance(project_root)


def definitions(manifests: list | None = None) -> Any:
    from release_assets.api import definitions

    return definitions(manifests)


def run_job(
    job_name: str,
    run_config: dict | None = None,
    manifests: list | None = None,
    defs: Any = None,
    progress: bool = False,
) -> Any:
    """Execute a job in this process; ``progress`` shows each step (and training epochs) on standard error."""
    from release_assets.api import run_job
    from release_assets.cli.progress import showing

    return run_job(job_name, run_config, manifests=manifests, defs=defs, display=showing if progress else None)


def failure_messages(result: Any) -> list[str]:
    from release_assets.api import failure_messages

    return failure_messages(result)


def quiet_run_config(log_level: str = "CRITICAL") -> dict:
    from release_assets.api import quiet_run_config

    return quiet_run_config(log_level)


def manifests_named(names: list[str] | None = None) -> tuple[list, bool]:
    """The manifests asked for (default: all that load), and whether any failed to load when none was named. A
    broken manifest is reported on one line and does not stop the others; asking for it by name is an error."""
    from release_assets.api import load_manifests

    manifests, errors = load_manifests(names)
    for error in errors:
        print(f"FAILED: {error}", file=sys.stderr)
    return manifests, bool(errors) and not names


def run_op(job: str, op: str, op_config: dict, release: str) -> int:
    """Run a one-op job that moves ``release``'s ledger (canary start, abort) with typed config; print its failure
    (if any) once, without Dagster's traceback. OK; REFUSED when it recorded nothing; UNREACHABLE when the move
    was recorded but MLflow's aliases could not follow it (the move stands)."""
    from release_assets.api import run_move

    moved, _, failures = run_move(job, op, op_config, release)
    for message in failures:
        print(message, file=sys.stderr)
    if not failures:
        return OK
    return UNREACHABLE if moved else REFUSED


def release_store() -> Any:
    from release_assets.api import release_store

    return release_store()


def manifest_golden(release: str) -> Path | None:
    """The chain's ``golden`` file in ``releases/<release>.yaml``, if there is one: the suite ``golden add``
    appends to, and what ``triage`` scores versions published before evaluations carried their suite on."""
    from release_assets.core.settings import get_settings
    from release_assets.manifest import load_manifest

    settings = get_settings()
    path = settings.releases_path / f"{release}.yaml"
    if not path.is_file():
        return None
    manifest = load_manifest(path)
    chains = sorted(manifest.members_of("prompt_chain"))
    return settings.project_root / manifest.chain(chains[0]).golden if chains else None
