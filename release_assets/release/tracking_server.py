"""The MLflow tracking server: whether it is there, checked before any work (:func:`check_tracking_server`: one
short GET, no retry), every MLflow request after it bounded (:func:`bound_requests`), and the one line naming it
when it cannot be reached (:func:`registry_failure`), in seconds rather than after MLflow's retries for minutes.

Plain Python, no MLflow import: the registry resource (``resources/registry.py``) checks and bounds with these,
and the moves that mirror aliases after the ledger (``rollout/aliases.py``) report with them.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit

# Bound on the preflight's wait to connect and for an answer: long enough for a slow but healthy server, short enough
# that a hanging one is reported before anyone wonders whether the command started.
PREFLIGHT_TIMEOUT = 5.0
SETTING = "RELEASE_ASSETS_MLFLOW_TRACKING_URI"  # named in every message: where the URI came from


class RegistryUnavailable(Exception):
    """The MLflow tracking server cannot be reached; the message is the one line to show."""


def is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def shown(tracking_uri: str) -> str:
    """The URI as printed: without a password, should one be written into it."""
    parts = urlsplit(tracking_uri)
    if parts.password is None:
        return tracking_uri
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")))


def unreachable_line(tracking_uri: str, reason: str) -> str:
    return f"MLflow tracking server {shown(tracking_uri)} unreachable: {reason} ({SETTING})"


def bound_requests(timeout_s: int, max_attempts: int) -> None:
    """Bound every MLflow HTTP request this process makes from now on.

    MLflow reads these variables on each request (``mlflow.utils.rest_utils.http_request``; its ``requests`` session
    is cached per retry setting, so new values take effect). Its defaults, 120 s and 7 retries with a backoff
    factor of 2, made a sync against a dead server take 8 minutes and one against a hanging server longer still.
    With a factor of 1, urllib3 waits 0 s before the first retry and 2, 4, ... s (plus up to 0.5 s) after.
    """
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(timeout_s))  # MLflow parses it as an int
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(max_attempts - 1)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"] = "0.5"


def check_tracking_server(tracking_uri: str, timeout: float = PREFLIGHT_TIMEOUT) -> None:
    """Raise :class:`RegistryUnavailable` unless the tracking server answers one GET of ``<uri>/health`` within
    ``timeout`` seconds (to connect, then to answer), tried once. sqlite, file and other URIs are not checked.

    Any answer below 500 counts: a server is there (a proxy asking for credentials, or a server without
    ``/health``, is MLflow's to report on the first real call, bounded by :func:`bound_requests`).
    """
    if not is_server(tracking_uri):
        return
    import requests  # MLflow's own HTTP client; imported here so sqlite users never load it for this

    insecure = os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1")
    verify = False if insecure else os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
    try:
        answer = requests.get(
            f"{tracking_uri.rstrip('/')}/health",
            timeout=timeout,
            verify=verify,
            cert=os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None,
        )
    except requests.RequestException as exc:
        raise RegistryUnavailable(unreachable_line(tracking_uri, _reason(exc, timeout))) from None
    if answer.status_code >= 500:
        reason = f"it answered {answer.status_code} {answer.reason or ''}".rstrip()
        raise RegistryUnavailable(unreachable_line(tracking_uri, reason))


def _reason(exc: BaseException, timeout: float, attempts: int = 1) -> str:
    """What went wrong with a request to the server, in words (``exc``: a ``requests`` exception)."""
    import requests
    from urllib3.exceptions import (
        ConnectTimeoutError,
        MaxRetryError,
        NameResolutionError,
        NewConnectionError,
        ReadTimeoutError,
    )

    tried = f" ({attempts} attempts)" if attempts > 1 else ""
    cause: BaseException | None = exc
    if isinstance(exc, requests.ConnectionError) and exc.args and isinstance(exc.args[0], MaxRetryError):
        cause = exc.args[0].reason  # after retries urllib3 gives up with the last attempt's error inside
    if isinstance(exc, requests.ReadTimeout) or isinstance(cause, ReadTimeoutError):
        return f"no answer within {timeout:g} s{tried}"
    if isinstance(cause, NameResolutionError):
        return f"cannot resolve its host name{tried}"
    # urllib3's NewConnectionError (refused, unreachable) is a ConnectTimeoutError too, for history's sake.
    if isinstance(exc, requests.ConnectTimeout) or (
        isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError)
    ):
        return f"no connection within {timeout:g} s{tried}"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failed: {' '.join(str(exc).split())[:200]}"
    while cause is not None:  # a refused or reset connection: the operating system's words for it
        if isinstance(cause, OSError) and cause.strerror:
            return f"{cause.strerror[:1].lower()}{cause.strerror[1:]}{tried}"
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}{tried}"


def registry_failure(exc: BaseException, tracking_uri: str) -> str | None:
    """The one line for ``exc`` when it says the tracking server cannot be reached (the preflight, or an MLflow
    request that ran out of retries or time), else None (any other error keeps its own words and traceback)."""
    if isinstance(exc, RegistryUnavailable):
        return str(exc)

    requests = sys.modules.get("requests")  # MLflow imports it; when it is not loaded, no request was made
    if requests is None:
        return None
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, requests.RequestException):
        seen = seen.__cause__ or seen.__context__
    if seen is None or isinstance(seen, requests.exceptions.InvalidURL):
        return None
    timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120"))
    attempts = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")) + 1
    return unreachable_line(tracking_uri, _reason(seen, timeout, attempts))
