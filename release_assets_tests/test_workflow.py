"""The CI workflow runs, not only parses: every `run:` step of lint -> release -> deploy-staging -> deploy-prod in
.github/workflows/release.yml is executed in order, in a temporary clone, against an S3 store on a moto server;
first as a pull request (release and prompt-check: evaluated and commented, nothing published), then as the push
to main that publishes and deploys.

What GitHub provides is stood in for: `${{ ... }}` expressions come from the table below (secrets point at moto,
the run is a pull request, then a push to main, by `ci-test`; `==`, `!=` and `&&` are evaluated, as are `if:`
conditions of jobs and steps), GITHUB_OUTPUT / GITHUB_ENV / GITHUB_STEP_SUMMARY are files, each step runs as
GitHub runs it (`bash --noprofile --norc -eo pipefail`) with a timeout. `uses:` steps are not run: the clone is the
checkout (for the pull request, a merge commit of the branch into origin/main, with no local main, as
actions/checkout leaves it; for the push, main with origin/main at the same commit), this repository's .venv is
the installed Python (so `make setup` is a no-op), `gh` is a stub that records the comment, and upload-artifact's
paths are checked to match files. The `test` job (`make test`, which runs this test) is not run. The helpdesk
release gets the tiny model settings the other tests use (make_tiny of bench/support/project.py, applied to the
clone's releases/helpdesk.yaml and committed there, so promotion does not see weakened gates) and the run takes
about two minutes.
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

from bench.support.project import make_tiny
from release_assets_tests.conftest import REPO
from release_assets_tests.provenance.fake_github import approval, fake_github

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
    from bench.support.s3_moto import moto_s3

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
    # This commit is main: a push's checkout has origin/main at the pushed commit (the default branch that weakened
    # gates are judged against and builds are checked to be on).
    subprocess.run([*git, "update-ref", "refs/remotes/origin/main", "HEAD"], check=True, timeout=60)
    return dest


PR_NUMBER = "7"
REVIEWER = "prod-reviewer"  # who approved the production deployment, unlike the actor who pushed (ci-test)
REMOVED_GOLDEN = 5  # the pull request deletes the first cases of helpdesk's golden suite


def _pull_request(clone: Path) -> list[str]:
    """Check the clone out as a pull request's run: a branch that commits a lower floor, deletes golden cases and
    edits a prompt, merged into origin/main as a detached merge commit, without a local main (actions/checkout on
    `pull_request`). Returns the ids of the deleted golden cases."""
    git = ["git", "-C", str(clone), "-c", "user.name=ci-test", "-c", "user.email=ci-test@example.com"]

    def run(*args: str) -> None:
        subprocess.run([*git, *args], check=True, timeout=60, capture_output=True)

    run("checkout", "-q", "-b", "feature")
    manifest = clone / "releases" / "helpdesk.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["gates"]["chain"]["format_valid"]["min"] = 0.5
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    golden = clone / "data" / "golden" / "helpdesk.jsonl"
    lines = golden.read_text().splitlines(keepends=True)
    golden.write_text("".join(lines[REMOVED_GOLDEN:]))
    chain = clone / "prompts" / "helpdesk" / "chain.yaml"
    chain.write_text(chain.read_text() + "# reworded in the pull request\n")
    run("commit", "-q", "-am", "lower the format floor, drop hard golden cases, edit a prompt")
    run("checkout", "-q", "--detach", "origin/main")
    run("merge", "-q", "--no-ff", "-m", f"Merge pull request #{PR_NUMBER}", "feature")
    run("update-ref", "-d", "refs/heads/main")  # absent already when this test runs in a detached CI checkout
    return [json.loads(line)["id"] for line in lines[:REMOVED_GOLDEN]]


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
            "repository": "acme/models",
            "workflow_ref": "acme/models/.github/workflows/release.yml@refs/heads/main",
            "token": "",
            "base_ref": "",
            "event.pull_request.number": "",
        }
        self.variables: dict[str, str] = {}  # `vars.*`: none set, as on a repository that signs nothing
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
            GITHUB_REPOSITORY=self.github["repository"],
            GITHUB_RUN_ID=self.github["run_id"],
        )

    def pull_request(self, number: str, base_ref: str) -> None:
        """Expressions of a `pull_request` event (its merge commit is checked out)."""
        sha = subprocess.run(["git", "-C", str(self.clone), "rev-parse", "HEAD"], capture_output=True, text=True)
        self.github.update(
            event_name="pull_request",
            ref=f"refs/pull/{number}/merge",
            sha=sha.stdout.strip(),
            base_ref=base_ref,
            **{"event.pull_request.number": number},
        )
        self.base_env["GITHUB_SHA"] = self.github["sha"]

    def expression(self, expr: str) -> str:
        """A value, or `a == 'x'`, `a != 'x'` and `&&` of those (as `true`/`false`), as GitHub renders them."""
        if "&&" in expr:
            return str(all(self.expression(p.strip()) == "true" for p in expr.split("&&"))).lower()
        compared = re.fullmatch(r"(\S+)\s*(==|!=)\s*'([^']*)'", expr)
        if compared:
            left, op, right = compared.groups()
            return str((self.expression(left) == right) == (op == "==")).lower()
        if expr == "always()":
            return "true"
        parts = expr.split(".")
        if parts[0] == "secrets" and len(parts) == 2:
            return self.secrets.get(parts[1], "")  # an unset secret is the empty string on GitHub too
        if parts[0] == "vars" and len(parts) == 2:
            return self.variables.get(parts[1], "")  # so is an unset configuration variable
        if parts[0] == "github" and ".".join(parts[1:]) in self.github:
            return self.github[".".join(parts[1:])]
        if parts[0] == "env" and len(parts) == 2:
            return str(self.workflow.get("env", {})[parts[1]])
        if parts[0] == "needs" and len(parts) == 4 and parts[2] == "outputs":
            return self.job_outputs[parts[1]].get(parts[3], "")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.step_outputs.get(parts[1], {}).get(parts[3], "")
        raise AssertionError(f"release.yml uses ${{{{ {expr} }}}}: add it to test_workflow.Runner.expression")

    def substitute(self, text: str) -> str:
        return EXPRESSION.sub(lambda m: self.expression(m.group(1)), str(text))

    def runs(self, condition: str | None, failed: bool) -> bool:
        """A job's or step's `if:`: without a status function GitHub adds `success() &&`."""
        if condition is None:
            return not failed
        return self.expression(condition) == "true" and ("always()" in condition or not failed)

    def run_job(self, name: str) -> dict[str, str] | None:
        """Run the job's steps; None when its `if:` skips it."""
        job = self.workflow["jobs"][name]
        if not self.runs(job.get("if"), failed=False):
            self.log.append((name, "(job skipped by its if:)", 0, ""))
            return None
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
            if not self.runs(step.get("if"), failed):
                continue
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

    def ran(self, job: str, step: str) -> bool:
        return any((j, name) == (job, step) for j, name, _, _ in self.log)

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
    # Only a push to main publishes; pull requests are evaluated and judged against their base branch.
    assert jobs["release"]["env"]["RELEASE_ASSETS_PUBLISH"] == "${{ " + PUSH_TO_MAIN + " }}"
    assert jobs["release"]["env"]["RELEASE_ASSETS_BASE_REF"] == "${{ github.base_ref }}"
    assert jobs["prompt-check"]["env"]["RELEASE_ASSETS_PUBLISH"] == "false"
    [evaluate] = [s["run"] for s in jobs["prompt-check"]["steps"] if "release-assets release" in s.get("run", "")]
    assert "--no-publish" in evaluate
    actionlint = subprocess.run(
        [str(REPO / ".venv" / "bin" / "actionlint"), str(WORKFLOW)], capture_output=True, text=True, timeout=60
    )
    assert actionlint.returncode == 0, actionlint.stdout + actionlint.stderr


def _published_keys(s3) -> list[str]:
    """What anything published left in the bucket: release units and ledger events."""
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="release_assets/").get("Contents", [])
    return [o["Key"] for o in listing if o["Key"].startswith(("release_assets/releases/", "release_assets/ledger/"))]


def _gh_stub(folder: Path) -> Path:
    """`gh` on the PATH of prompt-check's steps: records its arguments and the comment body instead of calling
    GitHub."""
    folder.mkdir(parents=True)
    log = folder / "gh.log"
    gh = folder / "gh"
    gh.write_text(f'#!/bin/bash\necho "$*" >> {log}\n[ "$4" = --body-file ] && cat "$5" >> {log}\nexit 0\n')
    gh.chmod(0o755)
    return log


def _run_pull_request(tmp_path: Path, clone: Path, secrets: dict[str, str], s3) -> None:
    """The pull request's run: release and prompt-check evaluate and report (the gate table, the comment, what is
    weakened against the base branch) and publish nothing; the deploy jobs are skipped."""
    removed = _pull_request(clone)
    (tmp_path / "pr" / "home").mkdir(parents=True)
    runner = Runner(_workflow(), clone, tmp_path / "pr", secrets)
    runner.pull_request(PR_NUMBER, "main")
    gh_log = _gh_stub(tmp_path / "pr" / "bin")
    runner.base_env["PATH"] = f"{gh_log.parent}:{runner.base_env['PATH']}"

    outputs = runner.run_job("release")
    assert outputs == {"version": ""}, runner.report()  # nothing to deploy: no version was published
    assert _published_keys(s3) == [], runner.report()
    assert not runner.ran(
        "release", "Register the published versions in MLflow (a follow-up step, off the release's critical path)"
    )
    summary = (tmp_path / "pr" / "release.summary.md").read_text()
    for release in ("helpdesk", "kbqa", "iris"):
        assert re.search(rf"\*\*{release}\*\* `[0-9a-f]{{16}}`: \*\*evaluated, not published\*\*", summary), summary
    # Weakened against the pull request's base branch, though both changes are committed on the branch.
    assert "gates.chain.format_valid.min: 0.99 -> 0.5" in summary, summary
    golden = re.search(
        r"golden suite data/golden/helpdesk.jsonl: (\d+) cases on origin/main, (\d+) here: (.*)", summary
    )
    assert golden and int(golden[1]) - int(golden[2]) == REMOVED_GOLDEN, summary
    assert golden[3].startswith(f"{REMOVED_GOLDEN} removed ({', '.join(sorted(removed))})"), summary
    release_log = runner.output("release", "Release (materialize, gate, publish to S3 on a push to main)")
    assert "evaluated only (RELEASE_ASSETS_PUBLISH=false)" in release_log, runner.report()
    assert runner.run_job("deploy-staging") is None and runner.run_job("deploy-prod") is None

    runner.run_job("prompt-check")  # the pull request edits a prompt: evaluated and commented, not published
    assert runner.step_outputs["changes"] == {"prompts": "true"}, runner.report()
    comment = gh_log.read_text()
    assert comment.startswith(f"pr comment {PR_NUMBER} --body-file gate-table.md"), comment
    assert "**helpdesk**" in comment and "evaluated, not published" in comment, comment
    assert _published_keys(s3) == [], runner.report()


def _back_to_main(clone: Path) -> None:
    """The push's checkout: main at origin/main, nothing left over from the pull request's run."""
    (clone / "gate-table.md").unlink(missing_ok=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "-B", "main", "origin/main"], check=True, timeout=60)
    status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == "", f"the push would build from a dirty tree: {status.stdout}"


def test_a_pull_request_publishes_nothing_then_every_step_of_lint_release_and_deploy_runs_on_moto(tmp_path, moto_s3):
    endpoint, s3 = moto_s3
    (tmp_path / "home").mkdir()
    clone = _clone(tmp_path / "repo")
    secrets = {
        "RELEASE_ASSETS_S3_BUCKET": BUCKET,
        "RELEASE_ASSETS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "ci",
        "AWS_SECRET_ACCESS_KEY": "ci",
    }  # MLFLOW_TRACKING_URI unset: empty, as on a repository without it (sqlite on the runner)
    _run_pull_request(tmp_path, clone, secrets, s3)

    _back_to_main(clone)
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
    # deploy-prod records who approved the `production` deployment of this run, from GitHub's approvals API (a
    # fake here), not the actor who pushed.
    reviews = [approval("sam", "staging"), approval(REVIEWER, "production", comment="ship it")]
    path = f"/repos/{runner.github['repository']}/actions/runs/{runner.github['run_id']}/approvals"
    with fake_github({path: (200, reviews)}) as (api, seen):
        runner.base_env["GITHUB_API_URL"] = api
        runner.run_job("deploy-prod")
    assert [s["path"] for s in seen] == [path], seen
    staging = runner.output("deploy-staging", "Promote to staging")
    prod = runner.output("deploy-prod", "Promote to prod")
    assert f"helpdesk: {version} is now champion of staging" in staging and "by ci-test" in staging, runner.report()
    assert f"helpdesk: {version} is now champion of prod" in prod and f"by {REVIEWER}" in prod, runner.report()
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
    assert [e["actor"] for e in _ledger(s3) if e["action"] == "approved"] == ["ci-test", REVIEWER]

    # A push that does not change the release rebuilds the same version: the deploys pass, promoting nothing.
    runner.run_job("deploy-staging")
    with fake_github({path: (200, reviews)}) as (api, _):
        runner.base_env["GITHUB_API_URL"] = api
        runner.run_job("deploy-prod")
    assert "already the champion of staging" in runner.output("deploy-staging", "Promote to staging")
    assert "already the champion of prod" in runner.output("deploy-prod", "Promote to prod")
    assert len(_ledger(s3)) == len(moves)


def _deploy_prod(tmp_path: Path, champion: str, start_says: str = "", wait_code: int = 0) -> tuple[int, list[str]]:
    """deploy-prod's "Promote to prod" step run as GitHub runs it, with a stand-in `release-assets` that records
    its arguments, reports ``champion`` as prod's, refuses `canary start` with ``start_says`` when given, and
    ends `canary wait` with ``wait_code``."""
    [step] = [s for s in _workflow()["jobs"]["deploy-prod"]["steps"] if s.get("name") == "Promote to prod"]
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(REPO / ".venv" / "bin" / "python")
    log = tmp_path / "calls.log"
    stub = bin_dir / "release-assets"
    stub.write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {log}\n'
        'case "$1 $2" in\n'
        f'  "canary status") echo \'{{"champion": {json.dumps(champion or None)}}}\' ;;\n'
        f'  "canary start") [ -n "{start_says}" ] && {{ echo "{start_says}" >&2; exit 1; }}; echo started ;;\n'
        f'  "canary wait") exit {wait_code} ;;\n'
        "esac\n"
    )
    stub.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "VERSION": "b" * 16, "APPROVED_BY": "ci-test", "REASON": "run 1"}
    env["CANARY_TIMEOUT_S"] = "60"
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, log.read_text().splitlines() if log.exists() else []


def test_deploy_prod_enters_prod_through_a_prod_canary_and_waits_for_its_verdict(tmp_path):
    version = "b" * 16
    approval = "--approved-by ci-test --reason run 1"
    code, calls = _deploy_prod(tmp_path / "canary", "a" * 16)
    assert code == 0 and calls == [
        "canary status helpdesk --env prod --json",
        f"canary start helpdesk {version} --env prod {approval}",
        f"canary wait helpdesk {version} --env prod --timeout 60",
    ], calls
    # The canary's verdict is the job's: rolled back, aborted or paused fails the deploy.
    assert _deploy_prod(tmp_path / "rolled", "a" * 16, wait_code=1)[0] == 1
    # A re-run finds its canary running and waits for it again; any other refusal fails.
    code, calls = _deploy_prod(tmp_path / "rerun", "a" * 16, f"helpdesk already has canary {version} at 25%")
    assert code == 0 and calls[-1].startswith("canary wait"), calls
    assert _deploy_prod(tmp_path / "refused", "a" * 16, "cannot go to prod: it is not the champion of staging")[0] == 1
    # prod's first champion has none to judge a canary against: promoted directly; the champion already: nothing.
    code, calls = _deploy_prod(tmp_path / "first", "")
    assert code == 0 and calls[-1] == f"promote helpdesk {version} --to prod {approval}", calls
    code, calls = _deploy_prod(tmp_path / "same", version)
    assert code == 0 and calls == ["canary status helpdesk --env prod --json"], calls
    # What makes the canary the way in: prod's soak in the shipped environments.yaml.
    assert yaml.safe_load((REPO / "environments.yaml").read_text())["environments"][-1]["soak"] == {"canary": True}
