"""Run a published release: load and verify it, predict, route by feature flag, shadow, trace and measure.

Plain Python, no Dagster import: ``loader`` (verified bundle -> ``LoadedRelease.predict``), ``schemas`` (the pydantic
models of every request and answer), ``requests`` (validation by them, and its errors worded for a person), ``oip``
(the Open Inference Protocol's tensors as /v1 bodies and back), ``openapi`` (/openapi.json from the models),
``flags`` (OpenFeature over flagd's file format), ``shadow`` (off-path pairs), ``traces`` (OpenTelemetry spans,
OpenInference attributes, redaction), ``metrics`` (Prometheus), ``app`` (the Starlette app ``release-assets serve``
runs).
"""
