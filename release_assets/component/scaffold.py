"""``dg scaffold defs release_assets.ReleaseComponent <name>``: a minimal release that works as written.

It writes ``<name>/defs.yaml`` with a starter dataset, model and gates (the iris flowers, which scikit-learn ships,
so nothing needs downloading), and, when the project declares no ``ReleasePlatformComponent`` yet, a
``release_platform/defs.yaml`` beside it, since releases need the shared jobs, sensors and resources to load.
With ``--from-table PATH --target COLUMN`` the release is inferred from the team's table instead
(``table_scaffold.py``).
"""

import getpass
import re
import string
from importlib.resources import files
from pathlib import Path

PLATFORM_TYPE = "release_assets.ReleasePlatformComponent"


def template(name: str) -> str:
    """A scaffolding template shipped in the package (package data: it must be in the wheel)."""
    return files("release_assets").joinpath("templates", name).read_text(encoding="utf-8")


def release_name(folder: str) -> str:
    """A release name (lower case, digits, underscores, starting with a letter) from the folder's name."""
    name = re.sub(r"[^a-z0-9_]", "_", folder.lower()).strip("_")
    return name if re.match(r"^[a-z]", name) else f"release_{name}"


def has_platform(defs_root: Path) -> bool:
    return any(PLATFORM_TYPE in p.read_text(encoding="utf-8") for p in defs_root.rglob("defs.y*ml"))


def write_release(target: Path, type_name: str, owner: str | None = None) -> list[Path]:
    """The starter release in ``target`` (and the platform beside it if the project has none); the files written."""
    target.mkdir(parents=True, exist_ok=True)
    values = {"type": type_name, "name": release_name(target.name), "owner": owner or user_email()}
    release = target / "defs.yaml"
    release.write_text(string.Template(template("release.defs.yaml")).substitute(values), encoding="utf-8")
    return [release, *ensure_platform(target.parent)]


def ensure_platform(defs_root: Path) -> list[Path]:
    """``release_platform/defs.yaml`` in ``defs_root`` unless the project declares the platform already; the
    files written."""
    if has_platform(defs_root):
        return []
    platform = defs_root / "release_platform" / "defs.yaml"
    platform.parent.mkdir(exist_ok=True)
    platform.write_text(template("platform.defs.yaml"), encoding="utf-8")
    return [platform]


def user_email() -> str:
    """An owner to start from: the user's name at example.com (the scaffolded file says to review it)."""
    return f"{_user()}@example.com"


def _user() -> str:
    try:
        return re.sub(r"[^A-Za-z0-9._-]", "", getpass.getuser()) or "owner"
    except (KeyError, OSError):  # a container user without a passwd entry
        return "owner"
