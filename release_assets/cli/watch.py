"""``release-assets watch``: the code-change sensor in a warm process, for the edit-evaluate loop.

A run launched the usual way is a fresh process that imports Dagster, builds the definitions and opens the
instance before its first step: about a second and a half of fixed cost that a prompt edit, whose work is about a
second, pays every time. ``watch`` pays it once. It ticks ``code_change_sensor`` itself (the same function the
daemon runs, so the same assets are found stale and the same downstream closure runs) and executes each request in
this process. Three things keep it honest:

- an edit to a module of this package restarts the process (``os.execv``) before anything runs, so a build never
  mixes new code versions with old imported code; the saved cursor is left as it was, so the restarted process
  sees the same edit;
- an edited manifest rebuilds the definitions and ticks again from the same cursor, so the selection comes from
  the manifest as it is now;
- every run stamps what it published, like ``release-assets release``, so a later ``release`` says ``unchanged``.

MLflow is not touched; ``release-assets registry sync`` (or ``registry_sync_sensor``) registers afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from release_assets.cli.common import dagster_instance, definitions, manifests_named

CURSOR_FILE = "release_assets_watch_cursor.json"
PACKAGE_ROOT = Path(__file__).resolve().parent


def changed_files(before: str | None, after: str | None) -> list[str]:
    """Paths whose content digest differs between two code-change sensor cursors (new paths included)."""
    old = (json.loads(before) if before else {}).get("files", {})
    new = (json.loads(after) if after else {}).get("files", {})
    return sorted(p for p, entry in new.items() if p not in old or old[p][2] != entry[2])


def needs_restart(paths: list[str], package_root: Path = PACKAGE_ROOT) -> list[str]:
    """The changed files that are this package's own Python modules: already imported, so only a new process
    runs them."""
    return [p for p in paths if p.endswith(".py") and Path(p).resolve().is_relative_to(package_root)]


class Watcher:
    """One warm process: definitions, instance and the sensor's cursor kept between runs."""

    def __init__(self, args: argparse.Namespace) -> None:
        from release_assets.core.settings import get_settings

        self.args, self.settings = args, get_settings()
        self.instance = dagster_instance(self.settings.project_root)
        self.cursor_path = Path(self.instance.root_directory) / CURSOR_FILE
        self.cursor = (self.cursor_path.read_text() or None) if self.cursor_path.exists() else None
        self.defs, self.manifests, self.sensor = self._definitions()
        self.last_skip: str | None = None

    def _definitions(self) -> tuple[Any, list, Any]:
        import warnings

        manifests, _ = manifests_named(self.args.release)
        defs = definitions(manifests)
        with warnings.catch_warnings():  # about resources on sensors; this one has none
            warnings.simplefilter("ignore", UserWarning)
            return defs, manifests, defs.get_sensor_def("code_change_sensor")

    def _tick(self, cursor: str | None) -> tuple[Any, str | None]:
        import dagster as dg

        context = dg.build_sensor_context(instance=self.instance, cursor=cursor, definitions=self.defs)
        return self.sensor(context), context.cursor

    def poll(self) -> tuple[Any, list[str]] | None:
        """One look at the watched files: ``(run request, changed files)`` when something must run, else None.

        Restarts the process when this package's code changed; rebuilds the definitions when a manifest did."""
        import dagster as dg

        cursor = self.cursor  # read once at start; written only when it moves, not every 0.2 s
        request, new_cursor = self._tick(cursor)
        changed = changed_files(cursor, new_cursor) if cursor else []
        code = needs_restart(changed)
        if code:  # the cursor file still holds the old cursor: the new process sees this edit again
            print(f"package code changed ({', '.join(Path(p).name for p in code)}): restarting to load it", flush=True)
            os.execv(sys.executable, [sys.executable, "-m", "release_assets.cli.main", *_argv(self.args)])
        if {str(m.source) for m in self.manifests if m.source is not None} & set(changed):
            self.defs, self.manifests, self.sensor = self._definitions()  # select from the manifest as it is now
            request, new_cursor = self._tick(cursor)
        if new_cursor != cursor:
            self.cursor_path.write_text(new_cursor or "")
            self.cursor = new_cursor
        if isinstance(request, dg.RunRequest):
            self.last_skip = None
            return request, changed
        message = request.skip_message or ""
        if message != self.last_skip and not message.startswith("no change"):  # say each problem once
            print(f"watching: {message}" if not cursor else f"not running: {message}", flush=True)
        self.last_skip = message
        return None

    def run(self, request: Any, changed: list[str]) -> bool:
        """Execute one request in this process; print each release's outcome; stamp what was published."""
        from contextlib import nullcontext

        import dagster as dg

        from release_assets.api import stamp_published
        from release_assets.cli.progress import showing
        from release_assets.release.summary import summarise_run

        start = time.perf_counter()
        keys = list(request.asset_selection)
        print(
            f"changed: {', '.join(Path(p).name for p in changed) or 'manifest'} -> running {len(keys)} assets "
            f"({', '.join(k.to_user_string() for k in keys)})",
            flush=True,
        )
        job = dg.define_asset_job("watch_run", selection=dg.AssetSelection.assets(*keys), tags=request.tags)
        run_job = dg.Definitions.merge(self.defs, dg.Definitions(jobs=[job])).resolve_job_def("watch_run")
        config = {"loggers": {"console": {"config": {"log_level": self.args.log_level}}}}
        with showing(run_job) if not self.args.quiet else nullcontext(run_job) as shown:
            result = shown.execute_in_process(instance=self.instance, raise_on_error=False, run_config=config)
        releases = sorted({k.path[0] for k in keys})
        summaries = summarise_run(result, releases)
        for summary in summaries:
            print(summary.render())
        stamp_published(self.defs, summaries, [m for m in self.manifests if m.name in releases], self.settings)
        print(f"run {result.run_id} finished in {time.perf_counter() - start:.2f} s", flush=True)
        return all(s.published_ok for s in summaries)


def _argv(args: argparse.Namespace) -> list[str]:
    """The command line that started this watch, for the restart (a test may have called ``cli.main`` directly)."""
    out = ["watch", *args.release, "--interval", str(args.interval), "--log-level", args.log_level]
    out += ["--quiet"] if args.quiet else []
    return out + (["--max-runs", str(args.max_runs)] if args.max_runs else [])


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the loop like Ctrl-C


def cmd_watch(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop)
    watcher = Watcher(args)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    runs, ok = 0, True
    try:
        while deadline is None or time.monotonic() < deadline:
            found = watcher.poll()
            if found is not None:
                ok = watcher.run(*found)
                runs += 1
                if args.max_runs and runs >= args.max_runs:
                    break
            time.sleep(args.interval)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    return 0 if ok else 1


def add_parser(sub) -> None:
    p = sub.add_parser(
        "watch",
        help="materialize what each edit made stale, in one warm process (the code-change sensor, run here)",
    )
    p.add_argument("release", nargs="*", help="release names (default: every releases/*.yaml)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between looks at the files (default 0.2)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on standard error")
    p.add_argument("--log-level", default="CRITICAL", help="Dagster console log level (default: CRITICAL)")
    p.add_argument("--max-runs", type=int, default=0, help="stop after this many runs (default: never)")
    p.add_argument("--timeout", type=float, default=0, help="stop after this many seconds (default: never)")
    p.set_defaults(fn=cmd_watch)
