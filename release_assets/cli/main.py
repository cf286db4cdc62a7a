"""``release-assets``: run releases on the embedded defaults, verify bundles, validate manifests.

Exit codes (README.md): 0 success; 1 held or refused (a gate held a release, a promotion or rollback was refused, a
bundle or ledger does not verify, a manifest does not validate); 2 a usage or configuration error; 3 a service did
not answer (the S3 store, the MLflow tracking server, a server's metrics). With ``--json`` a command prints one JSON
object on standard output, its error too: ``{"error": "...", "code": N}``.
"""

from __future__ import annotations

import argparse
import json
import sys

from release_assets.cli.canary import add_parser as add_canary_parser
from release_assets.cli.ci import add_parser as add_ci_parser
from release_assets.cli.common import REFUSED, UNREACHABLE, USAGE, print_json
from release_assets.cli.config import add_parser as add_config_parser
from release_assets.cli.golden import add_parser as add_golden_parser
from release_assets.cli.inspect import cmd_history, cmd_list, cmd_validate, cmd_verify
from release_assets.cli.promotion import add_parser as add_promotion_parser
from release_assets.cli.registry import add_parser as add_registry_parser
from release_assets.cli.release import add_parser as add_release_parser
from release_assets.cli.report import add_parser as add_report_parser
from release_assets.cli.reproduce import add_parser as add_reproduce_parser
from release_assets.cli.scaffold import add_parser as add_scaffold_parser
from release_assets.cli.serving import cmd_flags, cmd_predict, cmd_serve
from release_assets.cli.triage import add_parser as add_triage_parser
from release_assets.cli.watch import add_parser as add_watch_parser
from release_assets.core.extras import missing_extra


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Dagster flags data versions as beta; the flag is noise for people running a release.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    parser = argparse.ArgumentParser(
        prog="release-assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_release_parser(sub)
    p = sub.add_parser("verify", help="re-hash a release bundle against its manifest, or check ledgers")
    p.add_argument("path", nargs="?", help="bundle.tar.gz or its release folder (whose manifest.json must agree)")
    p.add_argument(
        "--ledger",
        nargs="*",
        metavar="RELEASE",
        help="verify the promotion ledgers' hash chains instead (default: every release)",
    )
    p.add_argument(
        "--bundle-only",
        action="store_true",
        help="do not check the data the bundle holds by reference in the release store (by default each such "
        "file must be there and match its sha256)",
    )
    p.add_argument(
        "--trusted-key",
        action="append",
        metavar="PEM",
        help="a public key the unit must be signed by (repeatable; default: environments.yaml's trusted_keys, "
        "else the configured signing key's public half; with none of these the signature is reported unchecked)",
    )
    _json_flag(p)
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("validate", help="validate every release manifest")
    _json_flag(p)
    p.set_defaults(fn=cmd_validate)
    add_promotion_parser(sub)
    p = sub.add_parser("history", help="the promotion ledger of a release, as a table")
    p.add_argument("release")
    _json_flag(p)
    p.set_defaults(fn=cmd_history)
    p = sub.add_parser("list", help="published versions with their gate verdicts and aliases")
    p.add_argument("release", nargs="*")
    _json_flag(p)
    p.set_defaults(fn=cmd_list)
    add_report_parser(sub)
    add_reproduce_parser(sub)
    add_ci_parser(sub)
    p = sub.add_parser("predict", help="answer one request with a published release, as JSON")
    p.add_argument("release")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", help="a published version (default: the champion)")
    which.add_argument("--alias", choices=["champion", "candidate", "canary"])
    body = p.add_mutually_exclusive_group()
    body.add_argument("--message", help="the customer's message (chains)")
    body.add_argument("--json", metavar="FILE", help="the request as a JSON file, or - for standard input")
    p.add_argument("--image", metavar="PATH", help="a PNG or JPEG photo of a handwritten number to attach")
    p.set_defaults(fn=cmd_predict)
    p = sub.add_parser("serve", help="serve the releases' champions over HTTP (predict, healthz, readyz, metrics)")
    p.add_argument("release", nargs="*", help="release names (default: every releases/*.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--traces", metavar="PATH", help="span file (default: <store>/traces/serve.jsonl)")
    p.add_argument(
        "--env",
        metavar="NAME",
        help="route through this environment's flag files (environments.yaml: its `flags`), where its canaries write",
    )
    p.add_argument("--max-body", type=int, default=64 * 1024, help="largest request body in bytes (default 64 KiB)")
    p.add_argument(
        "--feedback-capacity",
        type=int,
        default=100_000,
        help="recent answers each worker remembers for POST /v1/{release}/feedback (default 100000)",
    )
    p.add_argument(
        "--signed-only",
        action="store_true",
        help="load only release units signed by a trusted key (--trusted-key, else environments.yaml's "
        "trusted_keys, else the configured signing key's public half); any other is NOT READY, with the reason",
    )
    p.add_argument("--trusted-key", action="append", metavar="PEM", help="a public key to trust (repeatable)")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (default 1)")
    p.add_argument(
        "--max-in-flight", type=int, default=8, help="predictions one worker holds at once; past it 503 (default 8)"
    )
    p.add_argument("--retry-after", type=int, default=1, help="seconds a 503 tells the client to wait (default 1)")
    p.add_argument("--rate-limit", type=float, help="requests/s per client credential; past it 429 (default: none)")
    p.add_argument("--burst", type=int, help="requests a client may send at once within its rate (default: 1 s worth)")
    p.set_defaults(fn=cmd_serve)
    p = sub.add_parser("flags", help="route a share of a release's traffic to a canary, or shadow it (flag file)")
    p.add_argument("release")
    p.add_argument("--canary", metavar="VERSION", help="published version to serve to --canary-percent of keys")
    p.add_argument("--canary-percent", type=int, default=0)
    p.add_argument("--shadow", metavar="VERSION", help="published version to mirror --shadow-percent of requests to")
    p.add_argument("--shadow-percent", type=int, default=0)
    p.add_argument("--approved-by", help="who sends users to the canary (required with --canary-percent > 0)")
    p.add_argument("--reason", help="why (recorded in the ledger)")
    p.add_argument("--override-weakened-gates", action="store_true", help="a canary built with weakened gates")
    p.set_defaults(fn=cmd_flags)
    add_canary_parser(sub)
    add_triage_parser(sub)
    add_golden_parser(sub)
    add_registry_parser(sub)
    add_watch_parser(sub)
    add_config_parser(sub)
    add_scaffold_parser(sub)
    args = parser.parse_args(argv)
    as_json = getattr(args, "json", None) is True  # `predict --json FILE` names its request file: not this
    try:
        if getattr(args, "by", "") is None:
            from release_assets.record.ledger import default_actor

            args.by = default_actor()
        return args.fn(args)
    except ModuleNotFoundError as exc:
        # A library of an extra that is not installed (`serve` without [serve]): one line naming the extra. First,
        # so the errors below are never looked up (some of them live beside such libraries) for it.
        line = missing_extra(exc)
        if line is None:
            raise
        return _failed(line, USAGE, as_json)
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        # Errors written for people (they name the file, field, line or endpoint): one line, no traceback. A file
        # named on the command line that is missing or unreadable, a nameless container user: its class too.
        return _failed(str(exc) if isinstance(exc, _worded()) else f"{type(exc).__name__}: {exc}", code, as_json)


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (errors too)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("release_assets")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _failed(line: str, code: int, as_json: bool) -> int:
    if as_json:
        return print_json({}, code, line)
    print(f"FAILED: {line}", file=sys.stderr)
    return code


def exit_code(exc: BaseException) -> int | None:
    """The exit code an error ends a command with (None: not one written for people; its traceback shows)."""
    if _unreachable(exc):
        return UNREACHABLE
    if isinstance(exc, _refusals()):
        return REFUSED
    if isinstance(exc, (*_user_errors(), OSError, UnicodeDecodeError, KeyError)):
        return USAGE
    return None


def _worded() -> tuple[type[Exception], ...]:
    """Errors whose message is written for people: printed as it is (other errors get their class name)."""
    from release_assets.release.tracking_server import RegistryUnavailable
    from release_assets.rollout.metrics_source import MetricsUnavailable

    return (*_user_errors(), *_refusals(), RegistryUnavailable, MetricsUnavailable)


def _unreachable(exc: BaseException) -> bool:
    """A service that did not answer: the MLflow tracking server, a server's /metrics or Prometheus, a connection
    refused or timed out, or the S3 store (its errors keep botocore's on their context)."""
    from release_assets.release.store import StoreError
    from release_assets.release.tracking_server import RegistryUnavailable
    from release_assets.rollout.metrics_source import MetricsUnavailable

    if isinstance(exc, RegistryUnavailable | MetricsUnavailable | ConnectionError | TimeoutError):
        return True
    botocore = sys.modules.get("botocore.exceptions")  # not loaded: no S3 call was made
    if not isinstance(exc, StoreError) or botocore is None:
        return False
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, botocore.ConnectionError | botocore.HTTPClientError):  # refused, timed out, dropped
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _refusals() -> tuple[type[Exception], ...]:
    from release_assets.record.ledger import PromotionError
    from release_assets.release.bundle import BundleError
    from release_assets.release.store import LedgerError

    api = sys.modules.get("release_assets.api")  # not imported: none of its errors can have been raised
    return (PromotionError, LedgerError, BundleError) + ((api.RunFailed,) if api is not None else ())


def _user_errors() -> tuple[type[Exception], ...]:
    from pydantic import ValidationError  # an invalid RELEASE_ASSETS_* setting: pydantic names the variable

    from release_assets.chains.spec import ChainSpecError
    from release_assets.core.git_base import BaseRefError
    from release_assets.datasets.build import DataFileError
    from release_assets.evaluation.golden_inputs import GoldenSuiteError
    from release_assets.manifest import ManifestError
    from release_assets.release.store import StoreError
    from release_assets.rollout.environments import EnvironmentsError
    from release_assets.serving.flag_error import FlagError  # not serving.flags: that loads OpenFeature ([serve])
    from release_assets.serving.loader import StepFailed
    from release_assets.serving.requests import RequestError

    api = sys.modules.get("release_assets.api")
    return (
        ValidationError,
        RequestError,
        StepFailed,
        FlagError,
        json.JSONDecodeError,
        ManifestError,
        StoreError,
        ChainSpecError,
        GoldenSuiteError,
        DataFileError,
        EnvironmentsError,
        BaseRefError,
    ) + ((api.UsageError,) if api is not None else ())


if __name__ == "__main__":
    sys.exit(main())
