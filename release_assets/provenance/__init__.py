"""Provenance anyone can check: release units signed with OpenSSF model signing, in-toto attestations (SLSA
provenance, test results, verification summaries) in DSSE envelopes signed with the same key, the CycloneDX SBOM
of the environment that built a unit, and the comparison behind ``release-assets reproduce``.

Pure logic: files in, bytes and verdicts out. Where the files beside a bundle are stored is the release store's
business (``ReleaseStore.put_beside``); when they are written and checked is publishing's, promotion's and
serving's. Every library of the ``provenance`` extra is imported inside the function that needs it.
"""
