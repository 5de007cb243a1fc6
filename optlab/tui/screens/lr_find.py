"""The LR range test from the start screen: `optlab lr-find` as a child in its own session (the
detach rules of training: leaving the screen or the TUI leaves it running, its results land in
its run directory), then every run's curve on one chart against log10(lr), the suggestions
marked, and one key to save them as a new preset in the user's preset directory."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from optlab import registry
from optlab.errors import OptlabError, PresetError
from optlab.preset.export import MAX_SUFFIX, safe_stem
from optlab.preset.loader import PresetSource, preset_sources, read_toml, resolve_extends, user_dir
from optlab.preset.lr_write import preset_with_lrs, write_new_preset
from optlab.preset.names import safe_name
from optlab.runs.lr_find_report import LR_FIND_PARTIAL
from optlab.runs.palette import run_color
from optlab.runs.series import Series
from optlab.tui.process import TrainingProcess
from optlab.tui.widgets.chart import Chart

POLL_S = 0.5


class RangeTestProcess(TrainingProcess):
    """`optlab lr-find PRESET --out DIR` instead of `compare` (the same child rules)."""

    def __init__(self, preset: str, run_dir: Path, device: str = "auto") -> None:
        super().__init__(preset, run_dir, device)
        self.command = [
            *self.command[:3], "lr-find", preset, "--out", str(run_dir), "--format", "json", "--device", device,
        ]
        # The plugins this process was given, as the training child gets them (see compare_command).
        for ref, plugin in registry.registry().plugins:
            self.command += ["--plugin", plugin.path or ref]


def lr_find_series(doc: dict[str, Any]) -> list[Series]:
    """Each run's smoothed curve against log10(lr), and its suggestion as a marked point."""
    series = []
    for i, run in enumerate(doc.get("runs") or []):
        points = run.get("points") or []
        xs = [math.log10(p["lr"]) for p in points]
        ys = [p["smoothed"] for p in points]
        series.append(Series(run["name"], xs, ys, run_color(i), run=run["name"]))
        if run.get("suggestion") and xs:
            x = math.log10(run["suggestion"])
            y = ys[min(range(len(xs)), key=lambda k: abs(xs[k] - x))]
            series.append(Series(f"{run['name']} suggestion", [x], [y], run_color(i), style="points", legend=False))
    return series


def _lr(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def lr_find_table(doc: dict[str, Any]) -> Table:
    table = Table(header_style="bold", expand=True)
    for column in ("run", "suggestion", "range", "min loss lr", "confidence", "stopped"):
        table.add_column(column, no_wrap=column != "run")
    for i, run in enumerate(doc.get("runs") or []):
        span = run.get("range")
        table.add_row(
            Text(run["name"], style=f"color({run_color(i)})"),
            _lr(run.get("suggestion")),
            "—" if not span else f"{span[0]:.3g} – {span[1]:.3g}",
            _lr(run.get("min_loss_lr")),
            Text(run["confidence"], style="green" if run["confidence"] == "high" else "yellow"),
            run.get("stopped", ""),
        )
    return table


def save_suggestions(source: PresetSource, doc: dict[str, Any], folder: Path | None = None) -> Path:
    """A new preset with the suggested learning rates in the user's preset directory, named as
    the experiment screen's `w` names its presets: NAME-lrfind, then -2, -3, ... past any name
    a known preset has, the preset's `name` following the file's; nothing is overwritten.
    Checked against the schema only: the torch-side checks (optimizer arguments) were passed
    by the child with these same optimizers, and only lr values changed."""
    folder = user_dir() if folder is None else folder
    raw = read_toml(source.path)
    raw.setdefault("name", safe_name(source.path.stem, "unnamed"))
    raw = resolve_extends(raw, str(source.path), source.path, None)
    runs = doc.get("runs") or []
    readings = {r["name"]: (r.get("suggestion"), "; ".join(r.get("notes") or []) or "no clear descent") for r in runs}
    optimizers = {r["name"]: r["optimizer"] for r in runs}
    stem = safe_stem(f"{raw['name']}-lrfind")
    taken = {s.name for s in preset_sources()}
    for n in range(1, MAX_SUFFIX):
        candidate = stem if n == 1 else f"{stem}-{n}"
        path = folder / f"{candidate}.toml"
        if candidate in taken or path.exists():
            continue
        try:
            write_new_preset(path, preset_with_lrs(raw, optimizers, readings, name=candidate), torch_checks=False)
        except PresetError:
            if path.exists():  # appeared meanwhile: take the next name
                continue
            raise
        return path
    raise OptlabError(f"{folder}: no free file name for preset {stem!r}")


class LrFindScreen(Screen[None]):
    BINDINGS = [
        Binding("question_mark", "app.show_keys", "keys"),
        Binding("escape", "back", "back"),
        Binding("w", "write_preset", "write preset"),
        Binding("s", "stop", "stop"),
    ]

    def __init__(self, source: PresetSource, process: RangeTestProcess) -> None:
        super().__init__()
        self.source = source
        self.process = process
        self.doc: dict[str, Any] | None = None
        self.partial_mtime = 0  # of the runs-so-far file last drawn (ns)

    def compose(self) -> ComposeResult:
        yield Static(f"optlab │ LR range test of {self.source.name} │ {self.process.run_dir}", id="header")
        yield Chart("smoothed loss against log10(lr)", x_label="log10 lr", id="lr-chart", clip_outliers=True)
        yield Static("starting the range test…", id="lr-status")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(POLL_S, self.poll)

    def poll(self) -> None:
        if self.doc is not None:
            return
        code = self.process.poll()
        status = self.query_one("#lr-status", Static)
        if code is None:
            partial = self.read_partial()
            if partial is not None:
                self.query_one("#lr-chart", Chart).set_series(lr_find_series(partial))
                done = partial.get("partial") or {}
                self.query_one("#lr-chart", Chart).note = f"{done.get('tested', '?')}/{done.get('of', '?')} runs tested"
            status.update(Text(self.process.log_tail(3) or "starting the range test…", style="dim"))
            return
        path = self.process.run_dir / "lr_find.json"
        if code != 0 or not path.is_file():
            status.update(Text(f"the range test failed (exit code {code}):\n{self.process.error_lines()}", style="red"))
            self.doc = {}
            return
        self.doc = json.loads(path.read_text(encoding="utf-8"))
        self.show(self.doc)

    def read_partial(self) -> dict[str, Any] | None:
        """The runs tested so far, when the child wrote more since the last look."""
        path = self.process.run_dir / LR_FIND_PARTIAL
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == self.partial_mtime:
                return None
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # not there yet, or gone with the final file
            return None
        self.partial_mtime = mtime
        return doc if isinstance(doc, dict) else None

    def show(self, doc: dict[str, Any]) -> None:
        chart = self.query_one("#lr-chart", Chart)
        chart.set_series(lr_find_series(doc))
        chart.note = "• suggestion"
        self.query_one("#lr-status", Static).update(lr_find_table(doc))

    def action_back(self) -> None:
        if self.process.running:
            self.app.notify(f"the range test goes on; results in {self.process.run_dir}")
        self.app.pop_screen()

    def action_stop(self) -> None:
        if self.process.running:
            self.process.stop(timeout=10.0)
            self.query_one("#lr-status", Static).update(Text("stopped", style="yellow"))

    def action_write_preset(self) -> None:
        if not self.doc:
            self.app.notify("no suggestions yet", severity="warning")
            return
        try:
            path = save_suggestions(self.source, self.doc)
        except (OptlabError, OSError) as exc:
            self.app.notify(str(exc), severity="error")
            return
        self.app.notify(f"wrote {path}")
