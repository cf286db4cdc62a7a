"""The CI workflow runs, not only parses: every `run:` step of lint -> release -> deploy-staging -> deploy-prod in
.github/workflows/release.yml is executed in order, in a temporary clone, against an S3 store on a moto server.

What GitHub provides is stood in for: `${{ ... }}` expressions come from the table below (secrets point at moto,
the run is a push to main by `ci-test`), GITHUB_OUTPUT / GITHUB_ENV / GITHUB_STEP_SUMMARY are files, each step
runs as GitHub runs it (`bash --noprofile --norc -eo pipefail`) with a timeout. `uses:` steps are not run: the
clone is the checkout, this repository's .venv is the installed Python (so `make setup` is a no-op), and
upload-artifact's paths are checked to match files. The `test` job (`make test`, which runs this test) and the
pull-request-only `prompt-check` job are not run. The helpdesk release gets the tiny model settings the other
tests use (conftest.make_tiny, applied to the clone's releases/helpdesk.yaml and committed there, so promotion
does not see weakened gates) and the run takes about a minute.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from release_assets_tests.conftest import REPO, make_tiny

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
RUN_JOBS = ["lint", "release", "deploy-staging", "deploy-prod"]
PUSH_TO_MAIN = "github.event_name == 'push' && github.ref == 'refs/heads/main'"
STEP_TIMEOUT = 600  # seconds; the release step (three releases, tiny models) takes well under a minute here
BUCKET = "release-assets-ci"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _workflow() -> dict:
    # PyYAML reads the bare key `on:` as True.
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture
def moto_s3():
    from release_assets_tests.s3_moto import moto_s3

    with moto_s3(BUCKET) as endpoint_and_client:
        yield endpoint_and_client


def _clone(dest: Path) -> Path:
    """The committed HEAD, plus what the working tree changes and adds (not ignored): what the next commit holds."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True, timeout=60)
    diff = subprocess.run(["git", "-C", str(REPO), "diff", "HEAD", "--binary"], capture_output=True, check=True)
    if diff.stdout:
        subprocess.run(["git", "-C", str(dest), "apply", "--binary", "-"], input=diff.stdout, check=True)
    untracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--others", "--exclude-standard", "-z"], capture_output=True, check=True
    )
    for name in filter(None, untracked.stdout.decode().split("\0")):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes((REPO / name).read_bytes())
    # The installed Python is this repository's: .venv/bin is linked, and the stamp is newer than pyproject.toml,
    # so `make setup` installs nothing (reinstalling would point the shared editable install at the clone).
    (dest / ".venv").mkdir()
    (dest / ".venv" / "bin").symlink_to(REPO / ".venv" / "bin")
    (dest / ".venv" / ".installed").touch()
    make_tiny(dest)
    # Committed in the clone: promotion compares a release's gates with the committed manifest, and the tiny
    # settings are this repository's manifest here, not gates weakened for one run.
    git = ["git", "-C", str(dest), "-c", "user.name=ci-test", "-c", "user.email=ci-test@example.com"]
    subprocess.run([*git, "add", "-A", "."], check=True, timeout=60)
    subprocess.run([*git, "commit", "-q", "-m", "test_workflow: working tree, tiny helpdesk"], check=True, timeout=60)
    return dest


class Runner:
    """Runs one workflow's `run:` steps the way a GitHub runner would, with expressions from a table."""

    def __init__(self, workflow: dict, clone: Path, tmp: Path, secrets: dict[str, str]) -> None:
        self.workflow, self.clone, self.tmp, self.secrets = workflow, clone, tmp, secrets
        sha = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True)
        self.github = {
            "actor": "ci-test",
            "event_name": "push",
            "ref": "refs/heads/main",
            "sha": sha.stdout.strip(),
            "run_id": "4242",
            "token": "",
            "base_ref": "",
        }
        self.job_outputs: dict[str, dict[str, str]] = {}
        self.step_outputs: dict[str, dict[str, str]] = {}
        self.log: list[tuple[str, str, int, str]] = []  # job, step name, exit code, output
        # Nothing from this process's own settings leaks into a step: the clone runs on the workflow's env alone.
        leaked = ("RELEASE_ASSETS_", "DAGSTER", "AWS_", "GITHUB_", "MLFLOW", "PYTEST", "VIRTUAL_ENV")
        self.base_env = {k: v for k, v in os.environ.items() if not k.startswith(leaked)}
        self.base_env.update(
            PATH=f"{clone / '.venv' / 'bin'}:{os.environ['PATH']}",
            # The clone's package, not the editable install's (which points at this repository).
            PYTHONPATH=str(clone),
            HOME=str(tmp / "home"),
            CI="true",
            GITHUB_ACTIONS="true",
            GITHUB_ACTOR=self.github["actor"],
            GITHUB_SHA=self.github["sha"],
        )

    def expression(self, expr: str) -> str:
        parts = expr.split(".")
        if parts[0] == "secrets" and len(parts) == 2:
            return self.secrets.get(parts[1], "")  # an unset secret is the empty string on GitHub too
        if parts[0] == "github" and len(parts) == 2 and parts[1] in self.github:
            return self.github[parts[1]]
        if parts[0] == "env" and len(parts) == 2:
            return str(self.workflow.get("env", {})[parts[1]])
        if parts[0] == "needs" and len(parts) == 4 and parts[2] == "outputs":
            return self.job_outputs[parts[1]].get(parts[3], "")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.step_outputs.get(parts[1], {}).get(parts[3], "")
        raise AssertionError(f"release.yml uses ${{{{ {expr} }}}}: add it to test_workflow.Runner.expression")

    def substitute(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: self.expression(m.group(1)), str(text))

    def run_job(self, name: str) -> dict[str, str]:
        job = self.workflow["jobs"][name]
        env = {**self.base_env}
        for scope in (self.workflow.get("env", {}), job.get("env", {})):
            env.update({k: self.substitute(v) for k, v in scope.items()})
        self.step_outputs = {}
        summary = self.tmp / f"{name}.summary.md"
        summary.touch()
        failed = False
        for i, step in enumerate(job["steps"]):
            if "uses" in step:
                self._check_uses(step)
                continue
            condition = step.get("if")
            if failed and condition != "always()":
                continue
            assert condition in (None, "always()"), f"{name} step {i}: add `if: {condition}` to the test"
            start = time.perf_counter()
            code, output = self._run_step(name, i, step, env, summary)
            output += f"\n[{time.perf_counter() - start:.1f} s]"
            self.log.append((name, step.get("name", step["run"][:40]), code, output))
            failed = failed or code != 0
        assert not failed, self.report()
        outputs = {k: self.substitute(v) for k, v in job.get("outputs", {}).items()}
        self.job_outputs[name] = outputs
        return outputs

    def _run_step(self, job: str, i: int, step: dict, env: dict, summary: Path) -> tuple[int, str]:
        script = self.tmp / f"{job}-{i}.sh"
        script.write_text(self.substitute(step["run"]))
        output_file, env_file = self.tmp / f"{job}-{i}.output", self.tmp / f"{job}-{i}.env"
        output_file.touch()
        env_file.touch()
        step_env = {**env, **{k: self.substitute(v) for k, v in step.get("env", {}).items()}}
        step_env.update(GITHUB_OUTPUT=str(output_file), GITHUB_ENV=str(env_file), GITHUB_STEP_SUMMARY=str(summary))
        try:
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=self.clone,
                env=step_env,
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT,
            )
            code, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code, output = -1, f"timed out after {STEP_TIMEOUT} s: {exc.stdout or ''}{exc.stderr or ''}"
        if "id" in step:
            self.step_outputs[step["id"]] = _key_values(output_file.read_text())
        env.update(_key_values(env_file.read_text()))  # GITHUB_ENV: later steps of the job see these
        return code, output

    def _check_uses(self, step: dict) -> None:
        """Stand-ins for the actions: only upload-artifact has something to check (its files exist by now)."""
        action = step["uses"].split("@")[0]
        assert action in {"actions/checkout", "actions/setup-python", "actions/cache", "actions/upload-artifact"}
        if action == "actions/upload-artifact":
            patterns = [p for p in step["with"]["path"].split("\n") if p.strip()]
            self.uploaded = {p: glob.glob(str(self.clone / p.strip()), recursive=True) for p in patterns}

    def output(self, job: str, step: str) -> str:
        """The output of the last run of ``job``'s step named ``step``."""
        return next(out for j, name, _, out in reversed(self.log) if (j, name) == (job, step))

    def report(self) -> str:
        return "\n".join(f"--- {job} / {name}: exit {code}\n{out[-3000:]}" for job, name, code, out in self.log)


def _key_values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _ledger(s3) -> list[dict]:
    """helpdesk's ledger events in the bucket, in order (one object per event, named by its sequence number)."""
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="release_assets/ledger/helpdesk/")["Contents"]
    keys = sorted(o["Key"] for o in listing if re.search(r"/\d{12}\.json$", o["Key"]))
    return [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]


def _promote_has_to(clone: Path, env: dict) -> bool:
    done = subprocess.run(
        ["release-assets", "promote", "--help"], cwd=clone, env=env, capture_output=True, text=True, timeout=120
    )
    return "--to" in done.stdout


def test_the_workflow_is_wired_as_the_contract_says():
    workflow = _workflow()
    assert set(workflow[True]) == {"pull_request", "push"} and workflow[True]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert [jobs[j].get("needs") for j in ("test", "release", "deploy-staging")] == ["lint", "test", "release"]
    assert jobs["deploy-prod"]["environment"] == "production" and "deploy-staging" in jobs["deploy-prod"]["needs"]
    assert jobs["deploy-staging"]["if"] == jobs["deploy-prod"]["if"] == PUSH_TO_MAIN
    assert jobs["release"]["outputs"]["version"] == "${{ steps.release.outputs.helpdesk_version }}"
    assert [s["run"] for s in jobs["test"]["steps"] if "run" in s][-1] == "make test"
    assert jobs["prompt-check"]["if"] == "github.event_name == 'pull_request'"
    actionlint = subprocess.run(
        [str(REPO / ".venv" / "bin" / "actionlint"), str(WORKFLOW)], capture_output=True, text=True, timeout=60
    )
    assert actionlint.returncode == 0, actionlint.stdout + actionlint.stderr


def test_every_step_of_lint_release_and_deploy_runs_against_s3_on_moto(tmp_path, moto_s3):
    endpoint, s3 = moto_s3
    (tmp_path / "home").mkdir()
    clone = _clone(tmp_path / "repo")
    secrets = {
        "RELEASE_ASSETS_S3_BUCKET": BUCKET,
        "RELEASE_ASSETS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "ci",
        "AWS_SECRET_ACCESS_KEY": "ci",
    }  # MLFLOW_TRACKING_URI unset: empty, as on a repository without it (sqlite on the runner)
    runner = Runner(_workflow(), clone, tmp_path, secrets)

    runner.run_job("lint")
    version = runner.run_job("release")["version"]
    assert re.fullmatch(r"[0-9a-f]{16}", version), runner.report()
    # The job summary holds the gate table; the artifact paths match the table and this run's bundle.
    summary = (tmp_path / "release.summary.md").read_text()
    assert "| release | metric | candidate | champion | difference | verdict |" in summary
    assert f"**helpdesk** `{version}`: published" in summary and "**kbqa**" in summary and "**iris**" in summary
    uploaded = {p.strip(): files for p, files in runner.uploaded.items()}
    bundles = uploaded[".release_store/bundles/**/bundle.tar.gz"]
    assert uploaded["gate-table.md"] and any(f"/helpdesk/{version}/" in f for f in bundles), uploaded
    # Published to the bucket on moto, not to a local folder.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="release_assets/releases/helpdesk/")["Contents"]]
    assert f"release_assets/releases/helpdesk/{version}/bundle.tar.gz" in keys
    assert not (clone / ".release_store" / "releases" / "helpdesk" / version).exists()

    if not _promote_has_to(clone, runner.base_env):
        pytest.skip("`release-assets promote` has no --to yet: deploy-staging and deploy-prod steps were not run")
    runner.run_job("deploy-staging")
    runner.run_job("deploy-prod")
    staging = runner.output("deploy-staging", "Promote to staging")
    prod = runner.output("deploy-prod", "Promote to prod")
    assert f"helpdesk: {version} is now champion of staging" in staging and "by ci-test" in staging, runner.report()
    assert f"helpdesk: {version} is now champion of prod" in prod and "by ci-test" in prod, runner.report()
    for env in ("staging", "prod"):  # the committed environments.yaml keeps both in folders of the project
        assert (clone / ".release_store" / "environments" / env / "releases" / "helpdesk" / version).is_dir()
    moves = [(e["action"], e.get("environment"), e["to_version"]) for e in _ledger(s3)]
    assert moves == [
        ("published", None, version),
        ("approved", "staging", version),
        ("promoted", "staging", version),
        ("approved", "prod", version),
        ("promoted", "prod", version),
    ], moves

    # A push that does not change the release rebuilds the same version: the deploys pass, promoting nothing.
    runner.run_job("deploy-staging")
    runner.run_job("deploy-prod")
    assert "already the champion of staging" in runner.output("deploy-staging", "Promote to staging")
    assert "already the champion of prod" in runner.output("deploy-prod", "Promote to prod")
    assert len(_ledger(s3)) == len(moves)
