"""The tuning screen's tables: every trial (rows added and cells updated as trials start and
end, never rebuilt: a study is hundreds of trials) and, at the end, the tuned ranking."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from optlab.runs.aggregate import format_stat
from optlab.runs.palette import rich_color, run_color
from optlab.tuning.live import LiveTrial, TuneLog, format_params

TRIAL_COLUMNS = (("trial", "trial"), ("candidate", "candidate"), ("state", "state"), ("value", "value"),
                 ("params", "params"))
# The trial states in the palette's status colours: a pruned trial reads like a stopped run.
STATE_STYLES = {"running": "blue", "complete": "green", "pruned": "yellow", "diverged": "bold red",
                "failed": "bold red", "interrupted": "dim"}


def trial_cells(trial: LiveTrial, index: int, objective_digits: int = 4) -> dict[str, Any]:
    value = "-" if trial.value is None else f"{trial.value:.{objective_digits}f}"
    return {
        "trial": f"#{trial.number}",
        "candidate": Text.assemble(("■ ", rich_color(run_color(index))), trial.candidate),
        "state": Text(trial.status, style=STATE_STYLES.get(trial.status, "")),
        "value": value,
        "params": format_params(trial.params),
    }


class TrialsTable(DataTable[Any]):
    """One row per trial, keyed by its run name, in the order trials started."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.shown: dict[str, dict[str, Any]] = {}  # the cells on screen, per row

    def on_mount(self) -> None:
        for key, label in TRIAL_COLUMNS:
            self.add_column(label, key=key)

    def sync(self, log: TuneLog, changed: set[str]) -> None:
        """Add the trials that are new (in the order they started), update the cells of those
        that changed. With the cursor on the last row the table follows new trials, as
        `tail -f` does; moved up, it stays where the user put it."""
        follow = self.cursor_row >= self.row_count - 1
        added = False
        for trial in sorted((log.trials[r] for r in changed if r in log.trials), key=lambda t: t.order):
            run = trial.run
            cells = trial_cells(trial, log.candidates[trial.candidate].index)
            was = self.shown.get(run)
            if was is None:
                self.add_row(*(cells[k] for k, _ in TRIAL_COLUMNS), key=run)
                added = True
            else:
                for key, _ in TRIAL_COLUMNS:
                    if cells[key] != was[key]:
                        self.update_cell(run, key, cells[key])
            self.shown[run] = cells
        if added and follow:
            self.move_cursor(row=self.row_count - 1, animate=False)


def ranking_rows(summary: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """tune.json's tuned ranking, as `optlab tune` prints it: rank, candidate, the final
    seeds' test metric, the best values, the trials spent (pruned, diverged or failed)."""
    final = summary.get("final_results") or {}
    ranking = summary.get("ranking") or {}
    metric = ranking.get("metric", "accuracy")
    groups = {g["group"]: g for g in (final.get("aggregates") or {}).get("groups") or []}
    ranks = {r["group"]: r.get("rank") for r in ranking.get("ranks") or []}
    by_name = {c["name"]: (i, c) for i, c in enumerate(summary.get("candidates") or [])}
    order = [n for n in ranking.get("order") or [] if n in by_name]
    rows = []
    for name in [*order, *(n for n in by_name if n not in order)]:
        index, c = by_name[name]
        stat = (groups.get(name) or {}).get("test", {}).get(metric)
        if stat is None:  # one final seed: no aggregate, the single run's value
            run = next((r for r in final.get("runs") or [] if r.get("name") in c.get("finals", [])), None)
            value = ((run or {}).get("test") or {}).get(metric)
            stat = None if value is None else {"mean": value, "std": None, "n": 1}
        b = c.get("budget") or {}
        rows.append((str(ranks.get(name, "-")), Text.assemble(("■ ", rich_color(run_color(index))), name),
                     format_stat(stat), format_params((c.get("best") or {}).get("params") or {}) or "-",
                     f"{b.get('trials', 0)} ({b.get('pruned', 0)}, {b.get('diverged_or_failed', 0)})"))
    header = ["rank", "candidate", f"test {metric}", "best values", "trials (pruned, failed)"]
    return header, rows


class RankingTable(DataTable[Any]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)

    def show(self, summary: dict[str, Any]) -> None:
        header, rows = ranking_rows(summary)
        self.clear(columns=True)
        self.add_columns(*header)
        self.add_rows(rows)
