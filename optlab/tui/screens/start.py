"""The start screen: pick a preset (Enter starts it) or a recent run directory (Enter views it)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from optlab.errors import OptlabError
from optlab.preset.loader import PresetSource, preset_sources, read_toml
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


def describe(source: PresetSource) -> Text:
    text = Text()
    text.append(f"{source.name}\n", style="bold")
    text.append(f"{source.origin} preset · {source.path}\n\n", style="dim")
    try:
        raw: dict[str, Any] = read_toml(source.path)
    except OptlabError as exc:
        text.append(str(exc), style="red")
        return text
    description = str(raw.get("description") or "").strip()
    text.append((description or "(no description)") + "\n\n")
    data = raw.get("data") or {}
    model = raw.get("model") or {}
    train = raw.get("train") or {}
    facts = [f"dataset {data.get('dataset', 'digits')}", f"model {model.get('name', 'mlp')}"]
    if train.get("epochs"):
        facts.append(f"{train['epochs']} epochs")
    if isinstance(train.get("seeds"), list):  # each run repeated: the runs below are configurations
        facts.append(f"seeds {', '.join(str(s) for s in train['seeds'])}")
    text.append(" · ".join(facts) + "\n\n", style="dim")
    runs = [r for r in raw.get("runs") or [] if isinstance(r, dict)]
    text.append(f"{len(runs)} runs:\n", style="bold")
    for run in runs:
        opt = run.get("optimizer") or {}
        detail = f"{opt.get('name', '')} lr={opt['lr']}" if "lr" in opt else str(opt.get("name", ""))
        text.append(f"  {run.get('name', '?')}", style="bold")
        seeds = f", seeds {', '.join(str(s) for s in run['seeds'])}" if isinstance(run.get("seeds"), list) else ""
        text.append(f"  {detail}{seeds}\n", style="dim")
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
