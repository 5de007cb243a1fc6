"""The start screen: pick a preset (Enter starts it) or a recent run directory (Enter views it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from optlab.errors import OptlabError, PresetError
from optlab.preset.expand import Variant, expand
from optlab.preset.fetch import is_url
from optlab.preset.loader import PresetSource, preset_sources, read_toml, resolve_extends, train_fields
from optlab.preset.names import safe_name
from optlab.preset.schema import Preset, RunConfig
from optlab.preset.validation_errors import format_validation_error
from optlab.tui.process import RunDirInfo, recent_run_dirs

DEFAULT_PRESET = "quickstart"


def preset_choices() -> list[PresetSource]:
    """Every preset file, first one of each name (the one `optlab tui NAME` would use)."""
    seen: set[str] = set()
    out = []
    for source in preset_sources():
        if source.name not in seen:
            seen.add(source.name)
            out.append(source)
    return out


def preset_ref(source: PresetSource) -> str:
    return source.name if source.origin == "bundled" else str(source.path)


MAX_LISTED = 12  # configurations listed in the side panel; the rest are counted


def expanded_runs(source: PresetSource) -> tuple[Preset, list[Variant]]:
    """The preset with `extends` followed and its runs over sweeps and seeds, validated by the
    schema alone: the checks against torch's signatures would import torch into the TUI
    process (seconds and hundreds of MB); training reports those when it starts."""
    origin = str(source.path)
    raw = read_toml(source.path)
    raw.setdefault("name", safe_name(source.path.stem, "unnamed"))  # as load_preset names it
    extends = raw.get("extends")
    if isinstance(extends, str) and is_url(extends):  # never fetch from the network unasked
        raise PresetError(f"extends {extends}: fetched (and shown for confirmation) when it starts")
    raw = resolve_extends(raw, origin, source.path, None)
    try:
        preset = Preset.model_validate(raw)
    except ValidationError as exc:
        raise PresetError(format_validation_error(exc, origin, raw, Preset)) from None
    return preset, expand(preset, origin)


def describe(source: PresetSource) -> Text:
    """The preset as it would train: `extends` followed, sweeps expanded, seeds repeated."""
    text = Text()
    text.append(f"{source.name}\n", style="bold")
    text.append(f"{source.origin} preset · {source.path}\n\n", style="dim")
    try:
        preset, variants = expanded_runs(source)
    except OptlabError as exc:
        text.append(str(exc), style="red")
        return text
    description = (preset.description or "").strip()
    text.append((description or "(no description)") + "\n\n")
    fields = [(variant.group, variant.run, train_fields(preset, variant.run)) for variant in variants]
    facts = [f"dataset {preset.data.dataset}", f"model {preset.model.name}"]
    epochs = sorted({f["epochs"] for _, _, f in fields})
    if epochs:
        facts.append(f"{epochs[0]} epochs" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]} epochs")
    text.append(" · ".join(facts) + "\n\n", style="dim")
    groups: dict[str, list[tuple[RunConfig, dict[str, Any]]]] = {}
    for group, run, merged in fields:  # a configuration repeated over seeds is listed once, with its seeds
        groups.setdefault(group, []).append((run, merged))
    n = len(variants)
    text.append(f"{n} runs:\n" if len(groups) == n else f"{len(groups)} configurations, {n} runs:\n", style="bold")
    for group, members in list(groups.items())[:MAX_LISTED]:
        merged = members[0][1]
        opt, sched = merged["optimizer"], merged["scheduler"]
        detail = f"{opt.get('name', 'sgd')} lr={opt.get('lr', 0.01):g}"
        if sched.get("name", "constant") != "constant":
            detail += f" · {sched['name']}"
        detail += f" · batch {merged['batch_size']}"
        if len(members) > 1:
            detail += f" · seeds {', '.join(str(run.seed) for run, _ in members)}"
        text.append(f"  {group}", style="bold")
        text.append(f"  {detail}\n", style="dim")
    if len(groups) > MAX_LISTED:
        text.append(f"  … and {len(groups) - MAX_LISTED} more\n", style="dim")
    return text


def run_dir_label(info: RunDirInfo) -> Text:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.mtime))
    style = {"finished": "green", "running": "bold", "interrupted": "yellow"}.get(info.status, "dim")
    text = Text(f"{info.path.name}  ")
    text.append(f"{info.status}", style=style)
    text.append(f"  {info.runs} runs · {when}", style="dim")
    return text


class StartScreen(Screen[None]):
    BINDINGS = [
        Binding("q", "app.quit", "quit"),
        Binding("tab", "app.focus_next", "presets / runs", show=True),
        Binding("l", "lr_find", "lr-find"),
    ]

    def __init__(self, runs_base: Path = Path("runs")) -> None:
        super().__init__()
        self.presets = preset_choices()
        self.recent = recent_run_dirs(runs_base)

    def compose(self) -> ComposeResult:
        yield Static("optlab │ pick a preset and press Enter to train it, or open a recent run", id="header")
        with Horizontal(id="start-body"):
            with Vertical(id="start-left"):
                yield Static("presets", classes="section-title")
                yield OptionList(
                    *(
                        Option(Text.assemble(s.name, (f"  {s.origin}", "dim")), id=f"preset-{i}")
                        for i, s in enumerate(self.presets)
                    ),
                    id="presets",
                )
                yield Static("recent runs (./runs)", classes="section-title", id="recent-title")
                recent = [Option(run_dir_label(r), id=f"run-{i}") for i, r in enumerate(self.recent)]
                yield OptionList(*recent, id="recent")
            yield Static(id="preset-info")
        yield Footer()

    def on_mount(self) -> None:
        presets = self.query_one("#presets", OptionList)
        names = [s.name for s in self.presets]
        if self.presets:
            presets.highlighted = names.index(DEFAULT_PRESET) if DEFAULT_PRESET in names else 0
        recent = self.query_one("#recent", OptionList)
        recent.display = bool(self.recent)
        self.query_one("#recent-title", Static).display = bool(self.recent)
        presets.focus()
        self.show_preset(presets.highlighted)

    def show_preset(self, index: int | None) -> None:
        info = self.query_one("#preset-info", Static)
        if index is None or not self.presets:
            info.update("no presets found")
        else:
            info.update(describe(self.presets[index]))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "presets":
            self.show_preset(event.option_index)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        app: Any = self.app
        if event.option_list.id == "presets":
            app.start_experiment(preset_ref(self.presets[event.option_index]))
        elif event.option_list.id == "recent":
            app.open_view(self.recent[event.option_index].path)

    def action_lr_find(self) -> None:
        """The LR range test of the highlighted preset, as a child process (see screens/lr_find.py)."""
        from optlab.runs.store import default_run_dir
        from optlab.tui.screens.lr_find import LrFindScreen, RangeTestProcess

        index = self.query_one("#presets", OptionList).highlighted
        if index is None or not self.presets:
            return
        app: Any = self.app
        source = self.presets[index]
        run_dir = default_run_dir(f"{source.name}-lrfind", getattr(app, "runs_base", Path("runs")))
        process = RangeTestProcess(preset_ref(source), run_dir, getattr(app, "device", "auto"))
        process.start()
        app.push_screen(LrFindScreen(source, process))
