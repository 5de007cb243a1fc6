"""The devices pane: one line per device the runs train on (see optlab/tui/devices.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from collections.abc import Iterable

    from optlab.tui.devices import DeviceMonitor


class DevicesPane(Static):
    """Hidden until toggled (the `d` key): the screen's layouts at 80x24 stay as they were."""

    def __init__(self, monitor: DeviceMonitor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.monitor = monitor
        self.text = ""

    @property
    def shown(self) -> bool:
        return self.has_class("-shown")

    def refresh_from(self, runs: Iterable[dict[str, Any]]) -> None:
        text = "\n".join(self.monitor.lines(runs))
        if text != self.text:  # run names are text, never markup
            self.text = text
            self.update(Text.assemble(("devices  ", "bold"), text))
