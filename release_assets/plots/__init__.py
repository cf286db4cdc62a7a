"""Plots as evidence: small, deterministic PNGs drawn from what a stage already measured, shown in the Dagster
UI's metadata (markdown with the image inline) and written beside the report they illustrate.

Pure and low: plain data in, PNG bytes out; no Dagster, nothing of the stages. matplotlib (the ``plots`` extra) is
imported only inside the drawing functions; without it every plot is None, one line says why, and nothing else
changes. A plot never decides a gate and never enters a release version: it lives only in evidence (reports,
check and asset metadata).
"""
