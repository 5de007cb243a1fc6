"""How the experiment screen's state moves (issue 22): what the reading timer posts, which
messages coalesce, the app's record of a detach, and the runs table's best-value label; on a
synthetic, finished run directory (no training)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sweep_fixtures import write_sweep_dir
from textual.message import Message
from textual.widgets.data_table import ColumnKey
from tui.helpers import wait_until

from optlab.tui.app import OptlabApp
from optlab.tui.messages import Detached, EventsArrived, StateChanged
from optlab.tui.screens.experiment import ExperimentScreen


def test_only_redraw_requests_coalesce() -> None:
    # A queued redraw says nothing a newer one does not; queued events must each be folded.
    assert StateChanged().can_replace(StateChanged())
    assert not EventsArrived([]).can_replace(EventsArrived([]))
    assert not StateChanged().can_replace(EventsArrived([]))


def test_read_events_arrive_as_messages_and_detach_is_the_apps(tmp_path: Path) -> None:
    asyncio.run(_read_and_detach(write_sweep_dir(tmp_path / "run")))


async def _read_and_detach(run_dir: Path) -> None:
    posted: list[Message] = []
    app = OptlabApp(view=run_dir)
    async with app.run_test(size=(120, 40), message_hook=posted.append) as pilot:
        screen = app.screen
        assert isinstance(screen, ExperimentScreen)
        await wait_until(pilot, lambda: screen.showing_final, 20, "the end tables")
        # Each read once, in order (the hook may see a message more than once: by identity).
        arrived = list({id(m): m for m in posted if isinstance(m, EventsArrived)}.values())
        assert arrived and sum(len(m.events) for m in arrived) == screen.state.events_seen
        assert any(isinstance(m, StateChanged) for m in posted)

        # A new best-value label keeps the rows and the selected one (the columns are added again).
        table = screen.runs_table
        rows = table.row_count
        table.move_cursor(row=2)
        table.set_best_label("best of all")
        await pilot.pause()
        best = table.columns[ColumnKey("best")]
        assert str(best.label) == "best of all" and best.content_width >= len("best of all")
        assert table.row_count == rows and table.cursor_row == 2

        # The screen says it detached; the app keeps the record and exits.
        screen.post_message(Detached(run_dir))
        await wait_until(pilot, lambda: app.return_code is not None, 5, "the app to exit")
    assert app.detached and not app.stopped
