"""Drawing, encoding and embedding, shared by every plot: the one place that touches matplotlib's machinery.

Determinism: same inputs, same bytes. Figures are ``matplotlib.figure.Figure`` on the Agg canvas (no pyplot, so
no global figure state and no GUI backend), drawn under a fixed style (the library's defaults, then the fonts,
sizes and colours below: a user's matplotlibrc changes nothing), saved as PNG with no ``Software`` or date
chunk. Drawing holds a lock: the style is process-wide while a figure is drawn.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release_assets.core.extras import not_installed

log = logging.getLogger(__name__)

DPI = 80
SIZE = (5.0, 3.5)  # inches: 400 x 280 pixels at DPI
FOLDER = "plots"  # inside an evidence artifact: plots/<name>.png
CANDIDATE, CHAMPION, GOOD, BAD, MUTED, LIMIT = "#1f77b4", "#7f7f7f", "#2ca02c", "#d62728", "#ff7f0e", "#000000"
_STYLE = {
    "font.family": "DejaVu Sans",  # shipped inside matplotlib: the same glyphs on every machine
    "font.size": 8.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "axes.grid": False,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "path.simplify": True,
}
_NOT_STYLE = ("backend", "backend_fallback", "interactive")  # how matplotlib runs, not how a figure looks
_LOCK = threading.Lock()
_said: list[str] = []


@dataclass(frozen=True)
class Plot:
    name: str  # file stem and metadata key suffix: plots/<name>.png, plot_<name>
    title: str
    png: bytes

    @property
    def key(self) -> str:
        return f"plot_{self.name}"

    def markdown(self) -> str:
        """The image inline, as Dagster's markdown metadata shows it."""
        return f"![{self.title}](data:image/png;base64,{base64.b64encode(self.png).decode('ascii')})"


def missing() -> str | None:
    """The line saying drawing is skipped (matplotlib, the ``plots`` extra, is not installed), else None."""
    return not_installed("matplotlib")


def available() -> bool:
    """Whether plots can be drawn; the first time they cannot, one log line says why."""
    line = missing()
    if line is None:
        return True
    if not _said:
        _said.append(line)
        log.warning(f"plots skipped: {line}")
    return False


def _style() -> Any:
    """matplotlib's own defaults (whatever matplotlibrc this machine has), then this package's style."""
    import matplotlib

    style: dict[Any, Any] = {k: v for k, v in matplotlib.rcParamsDefault.items() if k not in _NOT_STYLE}
    style.update(_STYLE)
    return style


def draw(name: str, title: str, paint: Callable[[Any], None], size: tuple[float, float] = SIZE) -> Plot | None:
    """``paint(figure)`` on a fresh figure of ``size`` inches, as a :class:`Plot`; None without matplotlib, or when
    painting fails (logged: a plot is evidence, it never fails the step that draws it)."""
    if not available():
        return None
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with _LOCK, matplotlib.rc_context(_style()):
        try:
            figure = Figure(figsize=size, dpi=DPI)
            FigureCanvasAgg(figure)
            paint(figure)
            # tight_layout leaves a placeholder layout engine behind, for which savefig lays the figure out again
            # (a whole draw without rendering): the same bytes without it, a sixth less time.
            figure.set_layout_engine(None)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
        except Exception as exc:  # evidence must not fail a build, a check or a tick
            log.warning(f"plot {name} not drawn: {type(exc).__name__}: {exc}")
            return None
    return Plot(name, title, buffer.getvalue())


def kept(plots: Iterable[Plot | None]) -> list[Plot]:
    return [p for p in plots if p is not None]


def write(plots: Iterable[Plot], folder: Path) -> list[str]:
    """Each plot as ``<folder>/plots/<name>.png``; the paths written, relative to ``folder``."""
    out = []
    for plot in plots:
        path = folder / FOLDER / f"{plot.name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(plot.png)
        out.append(f"{FOLDER}/{plot.name}.png")
    return out


def append_links(markdown: Path, written: list[str]) -> None:
    """A ``## Plots`` section linking each written plot (relative paths) at the end of a report's markdown."""
    if written:
        links = "\n\n".join(f"![{Path(w).stem.replace('_', ' ')}]({w})" for w in written)
        markdown.write_text(markdown.read_text().rstrip("\n") + "\n\n## Plots\n\n" + links + "\n")


def read(folder: Path, titles: dict[str, str]) -> list[Plot]:
    """The plots an artifact folder holds (``plots/*.png``), by name, titled from ``titles`` (else the name)."""
    where = folder / FOLDER
    if not where.is_dir():
        return []
    return [
        Plot(p.stem, titles.get(p.stem, p.stem.replace("_", " ")), p.read_bytes()) for p in sorted(where.glob("*.png"))
    ]


def metadata(plots: Iterable[Plot]) -> dict[str, str]:
    """``plot_<name>`` -> the markdown of each plot (the wiring wraps each in ``MetadataValue.md``)."""
    return {p.key: p.markdown() for p in plots}


def shorten(text: Any, limit: int = 18) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
