"""Every key of the screen underneath, in one list: the footer is cut at 80 columns."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def key_lines(screen: Screen[object]) -> list[str]:
    """`key  what it does` for the screen's own keys and the app's, as declared (hidden ones
    too: the footer leaves some out to save room), each key once; not those the screen has
    switched off for now."""
    lines: list[str] = []
    seen: set[str] = set()
    for node in (screen, screen.app):
        for binding in node.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            if node is screen and screen.check_action(binding.action, ()) is False:
                continue  # a key the screen has switched off (the band key without seeds)
            keys = [k.strip() for k in binding.key.split(",")]
            if keys[0] in seen:
                continue
            seen.update(keys)
            shown = " / ".join(screen.app.get_key_display(Binding(k, "")) for k in keys)
            lines.append(f"[b]{shown:>9}[/b]  {binding.description}")
    return lines


class KeysScreen(ModalScreen[None]):
    """Closed by ?, Escape or q; nothing else happens while it is open."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="keys-dialog"):
            yield Static("[b]Keys[/b]  (? or Escape closes; docs/tui.md says more)", id="keys-title")
            yield Static("\n".join(self.lines), id="keys-text")
