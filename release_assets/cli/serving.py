"""The serving ``release-assets`` commands: ``predict`` one request, ``serve`` over HTTP, set ``flags``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from release_assets.cli.common import manifests_named, release_store


def serving_cache() -> Path:
    """Extracted, verified release versions for serving: beside the store's build cache, reused across runs."""
    from release_assets.api import serving_cache

    return serving_cache()


def cmd_predict(args: argparse.Namespace) -> int:
    """One request through a published release, printed as JSON (what ``serve`` would answer)."""
    import base64
    import json

    from release_assets.api import load_release

    if args.json == "-" or (args.json is None and args.message is None):
        request = json.loads(sys.stdin.read())
    elif args.json is not None:
        request = json.loads(Path(args.json).read_text(encoding="utf-8"))
    else:
        request = {"message": args.message}
    if args.image:
        if not isinstance(request, dict):
            raise ValueError("--image needs a JSON object request")
        request["attachment"] = {"image_b64": base64.b64encode(Path(args.image).read_bytes()).decode()}
    loaded = load_release(args.release, args.version, args.alias)
    print(json.dumps(loaded.predict(request), indent=1, sort_keys=True))
    return 0


# serve's options, as JSON, for the workers it starts. Not a setting (nobody sets it): a handoff from serve to its own
# workers, so it stays outside the RELEASE_ASSETS_ namespace the settings own (and `config` lists as unknown).
SERVE_OPTIONS_ENV = "RA_SERVE_WORKER_OPTIONS"


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the champions of the named releases (default: every manifest) on 127.0.0.1 until interrupted; with
    ``--workers N``, N uvicorn worker processes share the port, each loading the releases itself."""
    import uvicorn

    from release_assets.serving.http_protocol import protocol_class

    options = {
        "release": args.release,
        "traces": args.traces,
        "max_body": args.max_body,
        "feedback_capacity": args.feedback_capacity,
        "max_in_flight": args.max_in_flight,
        "retry_after": args.retry_after,
        "rate_limit": args.rate_limit,
        "burst": args.burst,
        "signed_only": args.signed_only,
        "trusted_key": args.trusted_key,
        "env": args.env,
    }
    _serving_trust(args.signed_only, args.trusted_key)  # a usage error here, before any worker starts
    if args.workers < 1:
        raise ValueError(f"--workers: {args.workers}; at least 1")
    if args.workers == 1:
        server = _build_server(options)
        _announce(server, args.host, args.port)
        _close_on_shutdown(server)
        try:
            uvicorn.run(
                server.app,
                host=args.host,
                port=args.port,
                log_level=args.log_level,
                access_log=False,
                http=protocol_class(),
            )
        finally:
            server.close()
        return 0
    import os
    import shutil
    import tempfile

    # What the workers share, in a fresh folder per server (so no old count or open breaker carries over): their
    # metric values, which /metrics sums (prometheus_client's multiprocess mode, set before the workers start), and
    # the breakers one of them opened, and the journal of answers feedback may name (serving/feedback.py).
    shared = Path(tempfile.mkdtemp(prefix="release-assets-serve-"))
    folder = shared / "metrics"
    folder.mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    os.environ[SERVE_OPTIONS_ENV] = json.dumps(
        {**options, "breaker_board": str(shared / "breakers"), "feedback_journal": str(shared / "feedback")}
    )
    print(f"serving with {args.workers} workers at http://{args.host}:{args.port} (metrics summed in {folder})")
    try:
        uvicorn.run(
            "release_assets.cli.serving:worker_app",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
            http=protocol_class(),
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return 0


def worker_app():
    """One worker of ``serve --workers N`` (uvicorn calls this in each worker process): the server built from the
    options the parent process left in the environment, closed when the worker stops."""
    import os

    server = _build_server(json.loads(os.environ[SERVE_OPTIONS_ENV]))
    _announce(server, None, None)
    _close_on_shutdown(server, server.app.state.metrics.close)
    return server.app


def _close_on_shutdown(server, *also) -> None:
    """Close ``server`` (then ``also``) when uvicorn shuts the app down. On SIGTERM (what Kubernetes sends) uvicorn
    stops gracefully and then raises the signal again with its default handler, which ends the process before the
    code after ``uvicorn.run`` runs: closing there would drop the shadow pairs and spans still waiting."""
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            server.close()
            for close in also:
                close()

    server.app.router.lifespan_context = lifespan


def _environment_flags(name: str, store):
    from release_assets.rollout.environments import EnvironmentsError, flags_dir_of, project_environments

    envs = project_environments()
    env = envs.get(name)
    if env is None:
        raise EnvironmentsError(
            f"--env: unknown environment {name!r} (environments.yaml declares: {', '.join(envs.names)})"
        )
    return flags_dir_of(env, store, env.name == envs.first.name)


# How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms). The server's other
# threads (the span exporter redacting and encoding a batch, the shadow pool) would otherwise keep a request the
# event loop is ready to answer waiting up to 5 ms, which was most of iris's p99 at 100 requests/s.
SWITCH_INTERVAL_S = 0.0005


def _build_server(options: dict):
    import sys

    from release_assets.core.settings import get_settings
    from release_assets.serving.admission import AdmissionPolicy
    from release_assets.serving.flag_source import store_flags
    from release_assets.serving.server import build_server
    from release_assets.serving.shadow_store import store_shadow_pairs

    sys.setswitchinterval(SWITCH_INTERVAL_S)  # this process serves: see SWITCH_INTERVAL_S
    trust = _serving_trust(options["signed_only"], options["trusted_key"])
    store = release_store()
    manifests = manifests_named()[0]  # every manifest that loads: a served release's breaker policy is in its own
    releases = options["release"] or [m.name for m in manifests]
    # Flags live where the release store lives (its flags folder, or its flags/ objects in S3), so every replica
    # on that store routes alike. The servers of an environment (--env) read that environment's (environments.yaml:
    # `flags`, else its store's), where its canaries write.
    flags_dir = _environment_flags(options["env"], store) if options.get("env") else store_flags(store)
    traces = options["traces"]
    trace_path = Path(traces) if traces else get_settings().store_path / "traces" / "serve.jsonl"
    admission = AdmissionPolicy(
        max_in_flight=options["max_in_flight"],
        retry_after_s=options["retry_after"],
        rate_per_s=options["rate_limit"],
        burst=options["burst"],
    )
    return build_server(
        store,
        releases,
        cache_dir=serving_cache(),
        flags_dir=flags_dir,
        trace_path=trace_path,
        token=get_settings().serve_token,  # unset or empty: no token
        max_body=options["max_body"],
        # Live pairs for the shadow_report asset where the store is: files beside a local one, segments in S3.
        shadow_log_dir=store_shadow_pairs(store, get_settings().store_path / "shadow"),
        breaker_policies=_breaker_policies([m for m in manifests if m.name in releases]),
        admission=admission,
        trust=trust,
        breaker_board=Path(options["breaker_board"]) if options.get("breaker_board") else None,
        feedback_capacity=options["feedback_capacity"],
        feedback_journal=Path(options["feedback_journal"]) if options.get("feedback_journal") else None,
    )


def _serving_trust(signed_only: bool, trusted_key: list[str] | None):
    """With ``signed_only`` (``--signed-only``), whose signatures the server accepts (``checking_trust``); a usage
    error when there is nobody to trust, and for ``--trusted-key`` without it."""
    from release_assets.api import UsageError

    if not signed_only:
        if trusted_key:
            raise UsageError("--trusted-key is for --signed-only")
        return None
    from release_assets.rollout.environments import checking_trust

    trust = checking_trust(trusted_key)
    if trust is None:
        raise UsageError(
            "--signed-only needs a key to trust: --trusted-key PEM, trusted_keys in environments.yaml, or "
            "RELEASE_ASSETS_SIGNING_KEY(_FILE)"
        )
    return trust


def _announce(server, host: str | None, port: int | None) -> None:
    for release, problem in server.problems.items():
        print(f"NOT READY: {release}: {problem}", file=sys.stderr)
    for release, loaded in server.loaded.items():
        if loaded is not None:
            where = f" at http://{host}:{port}/v1/{release}/predict" if host else ""
            print(f"serving {release} {loaded.version}{where}")


def _breaker_policies(manifests: list) -> dict:
    """release -> BreakerPolicy from each manifest's ``rollout.circuit_breaker`` (validated when the manifest
    loaded); a release without one has no breaker."""
    from release_assets.serving.breaker import BreakerPolicy

    return {
        m.name: BreakerPolicy(**m.rollout.circuit_breaker.model_dump())
        for m in manifests
        if m.rollout is not None and m.rollout.circuit_breaker is not None
    }


def cmd_flags(args: argparse.Namespace) -> int:
    """Write a release's flag file (champion from the ledger, optional canary and shadow shares); a running
    ``serve`` picks it up without a restart. Routing never changes over HTTP: only through this file."""
    from release_assets.record.ledger import check_servable, record_routing
    from release_assets.serving.flag_source import store_flags
    from release_assets.serving.flags import flag_document, publish_flags
    from release_assets.serving.loader import resolve_version

    store = release_store()
    champion = resolve_version(store, args.release, None, "champion")
    document = flag_document(args.release, champion, args.canary, args.canary_percent, args.shadow, args.shadow_percent)
    if args.canary and args.canary_percent > 0:
        if not (args.approved_by and args.reason):  # a usage error, before anything is checked or written
            from release_assets.api import UsageError

            raise UsageError("sending traffic to a canary needs both --approved-by and --reason")
        # Users will get this version's answers: the same checks as promotion, and a ledger record of who and why.
        check_servable(store, args.release, args.canary, args.override_weakened_gates)
        routing = {"canary": args.canary, "canary_percent": args.canary_percent}
        record_routing(store, args.release, routing, args.approved_by or "", args.reason or "")
    path = publish_flags(store_flags(store), args.release, document)
    print(
        f"{args.release}: champion {champion}"
        + (f", canary {args.canary} {args.canary_percent}%" if args.canary else "")
        + (f", shadow {args.shadow} {args.shadow_percent}%" if args.shadow else "")
        + f" -> {path}"
    )
    return 0
