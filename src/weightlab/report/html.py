"""The report: one self-contained HTML page per run, proof, comparison or sweep.

The numbers are computed here once, in numpy; Bokeh (its JavaScript inlined from its wheel)
draws them in the browser, and a small script (``templates/replay.js``) moves the replay. The
key pictures are also PNG images inside ``<noscript>``, so the page says what it can with
JavaScript off. One jinja2 template, autoescaping on: run names, paths and config values are
user input. Nothing is fetched when the page is viewed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from importlib import resources
from pathlib import Path

from weightlab.errors import RunDirError
from weightlab.fileio import atomic_write


@dataclasses.dataclass(frozen=True)
class StaticImage:
    """A picture that does not need JavaScript: a PNG data URI."""

    uri: str
    caption: str
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class FigureSection:
    title: str
    what: str  # one sentence: what to see in it
    figures: tuple = ()  # Bokeh models, drawn in the browser
    static: tuple[StaticImage, ...] = ()  # shown instead when JavaScript is off


@dataclasses.dataclass(frozen=True)
class TableSection:
    title: str
    headers: list[str]
    rows: list[list[str]]
    what: str = ""


@dataclasses.dataclass(frozen=True)
class ReplayTrack:
    """One run's figures in the replay; ``prefix`` keeps its named models apart from another track's."""

    prefix: str
    label: str
    figures: tuple
    accuracy: float | None  # shown before the script starts: the last snapshot's
    loss: float | None


@dataclasses.dataclass(frozen=True)
class Replay:
    title: str
    what: str
    tracks: tuple[ReplayTrack, ...]
    payload: dict  # {"timeline": {"steps", "epochs"}, "tracks": [...]}, see replay_data
    static: tuple[StaticImage, ...] = ()


def pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def num(value, digits=3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def ci(summary: dict, percent=True) -> str:
    fmt = (lambda v: f"{100 * min(max(v, 0), 1):.1f}%") if percent else (lambda v: f"{v:.3f}")
    if summary["mean"] is None:
        return "—"
    if summary["n"] < 2 or summary.get("ci_low") is None:
        return fmt(summary["mean"])
    return f"{fmt(summary['mean'])} [{fmt(summary['ci_low'])}, {fmt(summary['ci_high'])}]"


def display_name(path: Path) -> str:
    """The directory's name as it will be once finished (reports are written before the rename into place)."""
    from weightlab.store.format import TEMP_PREFIX

    return path.name.removeprefix(TEMP_PREFIX)


def step_text(step: int, epoch: float) -> str:
    """As the page's script writes it: 'step 1,688 · epoch 1.0' (epochs to 3 decimals, as the page receives them)."""
    epoch = round(epoch, 3)
    return f"step {step:,} · epoch {epoch:.2f}" if epoch % 1 else f"step {step:,} · epoch {epoch:.1f}"


def _template_text(name: str) -> str:
    return resources.files("weightlab.report").joinpath("templates", name).read_text(encoding="utf-8")


def _plain(value):
    """numpy scalars and arrays as Python numbers and lists, for json.dumps."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _script_json(value) -> str:
    """JSON safe inside a <script> element (no '</' can close it); numpy arrays become lists, NaN null."""
    from weightlab.store.format import jsonable

    try:  # the common case, fast: nothing that is not finite
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_plain)
    except ValueError:  # NaN or infinity somewhere (a diverged run): JSON has neither, so they become null
        text = json.dumps(jsonable(value), separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/")


def bokeh_javascript() -> str:
    """BokehJS and its plotting API, read from the installed bokeh wheel (its Python side is never imported)."""
    import importlib.util

    found = importlib.util.find_spec("bokeh")
    if found is None or found.origin is None:
        raise RunDirError(
            "the report needs the bokeh package; reinstall weightlab (pip install weightlab) to bring it back"
        )
    folder = Path(found.origin).parent / "server" / "static" / "js"
    return "\n".join((folder / name).read_text(encoding="utf-8") for name in ("bokeh.min.js", "bokeh-api.min.js"))


def ready() -> None:
    """Import the pages' modules and compile the template: what a report's first page costs before its own work
    (≈50 ms; `experiments.ahead` does it while the runs train)."""
    import weightlab.report.comparison_page
    import weightlab.report.proof_page
    import weightlab.report.run_page  # noqa: F401

    _template()


@functools.cache
def _template():
    """The page's template, compiled once per process."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("weightlab.report", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )
    return environment.get_template("report.html.j2")


def render(figures=(), replay: Replay | None = None, **context) -> str:
    """The page: figure specifications go in as JSON, drawn by BokehJS in the browser (templates/page.js)."""
    from markupsafe import Markup

    specs = {}
    sections = []
    for index, section in enumerate(figures):
        keys = [f"figure-{index}-{j}" for j in range(len(section.figures))]
        specs.update(zip(keys, section.figures))
        sections.append({"title": section.title, "what": section.what, "models": keys, "static": section.static})
    tracks = []
    if replay is not None:
        for track in replay.tracks:
            keys = [f"replay-{track.prefix}{j}" for j in range(len(track.figures))]
            specs.update(zip(keys, track.figures))
            tracks.append(
                {
                    "prefix": track.prefix,
                    "label": track.label,
                    "figures": keys,
                    "accuracy": track.accuracy,
                    "loss": track.loss,
                    "accuracy_text": pct(track.accuracy) if track.accuracy is not None else "—",
                    "loss_text": num(track.loss, 4),
                }
            )
    for key in ("cards", "tables", "notes", "sentences"):
        context.setdefault(key, [])
    context.setdefault("holds", True)
    replay_context = None
    if replay is not None:
        timeline = replay.payload["timeline"]
        replay_context = {
            "title": replay.title,
            "what": replay.what,
            "tracks": tracks,
            "last": len(timeline["epochs"]) - 1,
            "step_text": step_text(timeline["steps"][-1], timeline["epochs"][-1])
            if timeline.get("steps")
            else f"epoch {timeline['epochs'][-1]:.2f}",
            "static": replay.static,
            "pictures": any(track.get("pictures") for track in replay.payload["tracks"]),
        }
    return _template().render(
        figures=sections,
        interactive=bool(specs),
        bokeh_js=Markup(bokeh_javascript()) if specs else "",
        figures_data=Markup(_script_json(specs)) if specs else "",
        page_js=Markup(_template_text("page.js")) if specs else "",
        replay=replay_context,
        replay_data=Markup(_script_json(replay.payload)) if replay is not None else "",
        replay_js=Markup(_template_text("replay.js")) if replay is not None else "",
        **context,
    )


def write_report(directory: str | os.PathLike, dataset=None) -> Path:
    """Render the report of a run, proof, comparison or sweep directory into its report.html (atomically).

    Every file is read through `weightlab.store`, which checks it against its schema first.
    """
    from weightlab import store

    directory = Path(directory)
    kind = store.read_directory(directory)
    if kind == "proof":
        from weightlab.report.proof_page import proof_report

        page = proof_report(directory, store.read_proof(directory))
    elif kind == "comparison":
        from weightlab.report.comparison_page import comparison_report

        page = comparison_report(directory, store.read_comparison(directory)[0])
    elif kind == "sweep":
        from weightlab.report.comparison_page import sweep_report

        page = sweep_report(directory, store.read_sweep(directory))
    else:
        from weightlab.report.run_page import run_report

        page = run_report(store.read_run(directory), dataset=dataset)
    target = directory / "report.html"
    with atomic_write(target, encoding="utf-8") as handle:
        handle.write(page)
    return target
