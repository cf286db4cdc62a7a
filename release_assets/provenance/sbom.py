"""The CycloneDX SBOM (JSON, spec 1.6) of the Python environment that builds a release unit: every installed
distribution with its version and package URL, the interpreter, and release_assets itself as the subject.

It travels in the bundle as evidence (outside the version, like the reports) and is named, by sha256, in the
unit's SLSA provenance. The same environment gives the same bytes: components sorted, no timestamp, the serial
number derived from the contents; so a rebuild in an unchanged environment bundles an identical SBOM.
"""

from __future__ import annotations

import platform
import uuid
from importlib import metadata

SBOM_MEMBER = "_build_environment_report"  # evidence by its _report suffix (keys.is_evidence): outside the version
SBOM_FILE = "sbom.cdx.json"
SBOM_KIND = "cyclonedx_sbom"
SBOM_PATH = f"{SBOM_MEMBER}/{SBOM_FILE}"
_NAMESPACE = uuid.UUID("7f1b6c1e-2d0a-4c55-9a37-3f0e6f0d6a51")  # this SBOM's serial numbers: uuid5 of the contents


def installed() -> list[tuple[str, str]]:
    """(name, version) of every distribution the running interpreter can import, normalised and sorted."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[name.lower().replace("_", "-")] = dist.version
    return sorted(found.items())


def sbom_bytes(packages: list[tuple[str, str]] | None = None) -> bytes:
    """The SBOM of ``packages`` (default: this environment's) as CycloneDX 1.6 JSON."""
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    packages = installed() if packages is None else sorted(packages)
    ours = dict(packages).get("release-assets", "unknown")
    python = platform.python_version()
    listing = "\n".join(f"{n}=={v}" for n, v in packages) + f"\npython=={python}"
    components = [
        Component(
            name=name,
            version=version,
            type=ComponentType.LIBRARY,
            purl=PackageURL("pypi", None, name, version),
            bom_ref=f"pkg:pypi/{name}@{version}",
        )
        for name, version in packages
        if name != "release-assets"
    ]
    components.append(Component(name="python", version=python, type=ComponentType.PLATFORM, bom_ref=f"python@{python}"))
    root = Component(name="release-assets", version=ours, type=ComponentType.APPLICATION, bom_ref="release-assets")
    bom = Bom(
        components=components, serial_number=uuid.uuid5(_NAMESPACE, listing), metadata=BomMetaData(component=root)
    )
    # What was installed, not who needs whom: the root depends on every component, one level.
    bom.register_dependency(root, components)
    # The same environment, the same bytes: the serializer leaves out a timestamp that is None (typed datetime).
    bom.metadata.timestamp = None  # type: ignore[assignment]
    return JsonV1Dot6(bom).output_as_string(indent=1).encode()
