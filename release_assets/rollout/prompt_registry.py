"""A release's chain templates in MLflow's Prompt Registry: one prompt per template, one version per content.

Every ``.j2`` under a chain member's ``chain/`` folder in a verified bundle is registered as the prompt
``<release>.<chain member>.<template path, "/" and "." as "_">`` (``helpdesk.chain.responses__order_j2``); MLflow
allows letters, digits, ``_``, ``.`` and ``-`` in a prompt's name, so anything else becomes ``_`` too. The template
text is stored as it is (Jinja: ``{{ x }}``, ``{% if %}``; MLflow's own ``{{x}}`` formatting is not how this
package renders it). A prompt gets a new version only when the template's sha256 (the bundle's, kept in the
version's tag ``release_assets.sha256``) is not among its versions already, so a release that leaves a template
alone, or returns to an earlier text, reuses that version. The release's aliases are then mirrored onto the prompt
versions it shipped (``Registry.mirror``), so the Prompt Registry shows which text is ``champion``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

SHA_TAG = "release_assets.sha256"
PATH_TAG = "release_assets.template"
RELEASE_VERSION_TAG = "release_assets.release_version"  # the release version that registered it first
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Template:
    chain: str  # the chain member
    path: str  # relative to the chain's folder of templates (``responses/_order.j2``)
    sha256: str  # as the verified bundle lists it
    file: Path  # the extracted file
    name: str  # the prompt's name


def prompt_name(release: str, chain: str, path: str) -> str:
    return _NOT_ALLOWED.sub("_", f"{release}.{chain}.{path.replace('/', '_').replace('.', '_')}")


def chain_templates(manifest: dict[str, Any], root: Path) -> list[Template]:
    """Each ``.j2`` of each chain member of ``manifest``, extracted under ``root``. Two paths that would make one
    prompt name (``a/b.j2``, ``a_b.j2``) each get a short hash of their path after it."""
    release, found = manifest["release"], []
    for chain, member in sorted(manifest["members"].items()):
        if member["kind"] != "prompt_chain":
            continue
        prefix = f"{chain}/chain/"
        for entry in sorted(member["files"], key=lambda f: f["path"]):
            path = entry["path"]
            if path.startswith(prefix) and path.endswith(".j2"):
                rel = path[len(prefix) :]
                found.append(Template(chain, rel, entry["sha256"], root / path, prompt_name(release, chain, rel)))
    counts = Counter(t.name for t in found)
    return [
        t if counts[t.name] == 1 else replace(t, name=f"{t.name}-{hashlib.sha256(t.path.encode()).hexdigest()[:8]}")
        for t in found
    ]


def _versions(client: Any, name: str) -> list[Any]:
    from mlflow.exceptions import MlflowException

    out: list[Any] = []
    token = None
    while True:
        try:
            page = client.search_prompt_versions(name, max_results=1000, page_token=token)
        except MlflowException:
            return out  # no such prompt yet
        out += list(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def register_templates(
    client: Any, release: str, release_version: str, templates: list[Template]
) -> tuple[dict[str, int], list[str]]:
    """Register each template whose sha256 its prompt has no version of; returns every template's prompt version
    (prompt name -> version) and those newly registered (``"<prompt> v<n>"``).

    (Not linked to the release's MLflow run: ``MlflowClient.link_prompt_version_to_run`` reads the run through
    MLflow's process-wide tracking URI, not the client's, and would open a ``./mlflow.db`` of its own. The release's
    registered model version lists them in its ``prompt_versions`` tag instead.)"""
    shipped, new = {}, []
    for t in templates:
        same = [v for v in _versions(client, t.name) if (v.tags or {}).get(SHA_TAG) == t.sha256]
        if same:
            version = min(int(v.version) for v in same)
        else:
            created = client.register_prompt(
                t.name,
                t.file.read_text(encoding="utf-8"),
                commit_message=f"{release} {release_version}: {t.chain}/chain/{t.path}",
                tags={SHA_TAG: t.sha256, PATH_TAG: f"{t.chain}/chain/{t.path}", RELEASE_VERSION_TAG: release_version},
            )
            version = int(created.version)
            new.append(f"{t.name} v{version}")
        shipped[t.name] = version
    return shipped, new


def mirror_prompt_aliases(client: Any, prompts: set[str], targets: dict[str, dict[str, int] | None]) -> None:
    """For each alias: point it, on each of ``prompts``, at the version the aliased release version shipped, and
    remove it from a prompt that release version did not ship (``targets``: alias -> prompt -> version, or None
    when the alias names no release version)."""
    for alias, shipped in targets.items():
        for name in sorted(prompts):
            version = (shipped or {}).get(name)
            if version is None:
                with contextlib.suppress(Exception):  # not set, or the prompt is gone
                    client.delete_prompt_alias(name, alias)
            else:
                client.set_prompt_alias(name, alias, version)
