"""The question asked when quitting while training runs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

STOP, DETACH, CANCEL = "stop", "detach", "cancel"


class QuitScreen(ModalScreen[str]):
    """Stop and keep partial results / detach (training continues) / cancel."""

    BINDINGS = [
        Binding("s", "choose('stop')", "stop training"),
        Binding("d", "choose('detach')", "detach"),
        Binding("escape,c,n", "choose('cancel')", "cancel"),
    ]

    def __init__(self, run_dir: str) -> None:
        super().__init__()
        self.run_dir = run_dir

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            yield Static("[b]Training is still running.[/b]", id="quit-title")
            yield Static(
                "[b]s[/b]top: stop every run, keep the partial results\n"
                f"[b]d[/b]etach: training continues; reattach with [b]optlab view {self.run_dir}[/b]\n"
                "[b]c[/b]ancel: back to the experiment",
                id="quit-text",
            )
            with Horizontal(id="quit-buttons"):
                yield Button("Stop", id=STOP, variant="error")
                yield Button("Detach", id=DETACH, variant="primary")
                yield Button("Cancel", id=CANCEL)

    def on_mount(self) -> None:
        self.query_one(f"#{CANCEL}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or CANCEL)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
