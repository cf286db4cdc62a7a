"""Run a published release: load and verify it, predict, route by feature flag, shadow, trace and measure.

Plain Python, no Dagster import: ``loader`` (verified bundle -> ``LoadedRelease.predict``), ``requests`` (what a
request may hold, and its errors), ``flags`` (OpenFeature over flagd's file format), ``shadow`` (off-path pairs),
``traces`` (OpenTelemetry spans, OpenInference attributes, redaction), ``metrics`` (Prometheus), ``app`` (the
Starlette app ``release-assets serve`` runs).
"""
