"""`Experiment`: a run directory (finished, running, or a comparison of several) read back as
typed results, with the tables and reports the CLI shows of it.

Every view is computed by the same functions as the CLI's and the report files' (summary rows,
ranking, fingerprints, the report writers), from the typed `ResultsDocument`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from optlab.errors import OptlabError
from optlab.runs.document import EpochRecord, ResultsDocument, RunResult, TestMetrics
from optlab.runs.document import Ranking as RankingModel

ReportFormat = Literal["html", "markdown", "csv", "json"]
REPORT_FILES: dict[str, str] = {"html": "report.html", "markdown": "report.md", "csv": "metrics.csv",
                                "json": "results.json"}


class TableRow(BaseModel):
    """One row of the final table (`optlab.runs.reports.summary_rows`): a value that is missing
    or undefined is None; the columns the task has not are None too."""

    model_config = ConfigDict(extra="allow")

    name: str
    status: str
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    specificity: float | None = None
    roc_auc: float | None = None
    mse: float | None = None
    rmse: float | None = None
    mae: float | None = None
    r2: float | None = None
    test_loss: float | None = None
    best_epoch: int | None = None
    wall_time_s: float | None = None
    samples_per_s: float | None = None


class Fingerprint(BaseModel):
    """What proves two runs were compared fairly: their seed, model, initial weights and data order."""

    name: str
    seed: int | None
    model: str
    init_fingerprint: str
    data_fingerprint: str


def to_frame(rows: Sequence[BaseModel], frame: Literal["pandas", "polars", "auto", "rows"] = "auto") -> object:
    """Rows as a pandas (or polars) DataFrame where installed; as the typed rows otherwise.
    `auto`: pandas if installed, else the rows. Naming a library that is missing is an error."""
    records = [row.model_dump() for row in rows]
    if frame in ("auto", "pandas"):
        try:
            import pandas
        except ImportError:
            if frame == "pandas":
                raise OptlabError("to_pandas: pandas is not installed (pip install pandas)") from None
        else:
            return pandas.DataFrame.from_records(records)
    if frame == "polars":
        try:
            import polars
        except ImportError:
            raise OptlabError("to_polars: polars is not installed (pip install polars)") from None
        return polars.DataFrame(records)
    return list(rows)


class History(list[EpochRecord]):
    """A run's epochs, in order; `to_pandas()` / `to_polars()` where they are installed."""

    def to_pandas(self) -> object:
        return to_frame(self, "pandas")

    def to_polars(self) -> object:
        return to_frame(self, "polars")

    def column(self, key: str) -> list[float | int | None]:
        """One column over the epochs, e.g. `history.column("val_accuracy")`."""
        return [getattr(record, key, None) for record in self]


class Run:
    """One run of an experiment: its typed result, with its history as a `History`."""

    def __init__(self, result: RunResult) -> None:
        self.result = result

    name = property(lambda self: self.result.name)
    status = property(lambda self: self.result.status)
    config = property(lambda self: self.result.config)

    @property
    def history(self) -> History:
        return History(self.result.history)

    @property
    def test(self) -> TestMetrics | None:
        return self.result.test

    def __repr__(self) -> str:
        accuracy = self.test.accuracy if self.test is not None else None
        return f"Run({self.name!r}, status={self.status!r}, epochs={self.result.epochs_completed}, test_accuracy={accuracy})"


class Experiment:
    """A run directory's results (`path` None for a comparison not written anywhere yet)."""

    def __init__(self, results: ResultsDocument, path: Path | None = None, raw: dict[str, Any] | None = None) -> None:
        self.results = results
        self.path = path
        # The document as read: the reports are rendered from it, so they match `optlab report`'s
        # byte for byte (the typed model fills in defaults a writer left out).
        self._raw = raw

    # ------------------------------------------------------------ reading

    @property
    def runs(self) -> dict[str, Run]:
        return {run.name: Run(run) for run in self.results.runs}

    @property
    def status(self) -> str:
        return self.results.status

    def refresh(self) -> Experiment:
        """Read the run directory again (a run that is still training moves on)."""
        if self.path is None:
            raise OptlabError("this experiment has no run directory to read again; write it with report(out=...)")
        from optlab.api import load

        fresh = load(self.path)
        self.results, self._raw = fresh.results, fresh._raw
        return self

    def _doc(self) -> dict[str, Any]:
        return self._raw if self._raw is not None else self.results.to_dict()

    def rows(self) -> list[TableRow]:
        """The final table's rows, as `optlab compare` prints them (in preset order)."""
        from optlab.runs.reports import summary_rows

        return [TableRow.model_validate(row) for row in summary_rows(self._doc())]

    def table(self, frame: Literal["pandas", "polars", "auto", "rows"] = "auto") -> object:
        """The final table: a pandas DataFrame where pandas is installed, else a list of `TableRow`."""
        return to_frame(self.rows(), frame)

    def ranking(self, metric: str | None = None) -> RankingModel:
        """Configurations by the mean of `metric` (accuracy; r2 for regression), with the Welch
        verdict on the top two, as the report ranks them."""
        from optlab.runs.aggregate import rank_groups

        return RankingModel.model_validate(rank_groups(self._doc(), metric))

    def fingerprints(self, frame: Literal["pandas", "polars", "auto", "rows"] = "auto") -> object:
        """Each run's seed, model, initial-weights and data-order fingerprints."""
        import json

        rows = [
            Fingerprint(name=r.name, seed=r.seed, model=json.dumps(r.config.get("model"), sort_keys=True),
                        init_fingerprint=r.init_fingerprint, data_fingerprint=r.data_fingerprint)
            for r in self.results.runs
        ]
        return to_frame(rows, frame)

    # ------------------------------------------------------------ writing

    def report(self, format: ReportFormat = "html", charts: bool = True, out: str | Path | None = None) -> Path:
        """Write the files `optlab report` writes (report.md, metrics.csv, and with `charts`
        charts/*.svg and report.html) into the run directory (a comparison: into `out`, a new
        directory) and return the path of the one in `format`."""
        from optlab.runs.files import atomic_write_text
        from optlab.runs.publish import render_reports
        from optlab.runs.store import prepare_run_dir, write_results_json

        if format not in REPORT_FILES:
            raise OptlabError(f"format {format!r}: expected one of {', '.join(REPORT_FILES)}")
        if format == "html" and not charts:
            raise OptlabError("format html: report.html is written with the charts; leave charts on")
        root = Path(out) if out is not None else self.path
        if root is None:
            raise OptlabError("this comparison has no directory yet: give report(out=DIR)")
        fresh = root != self.path
        doc = self._doc()
        files = render_reports(root, doc, charts=charts)
        if fresh:
            from optlab.runs.owner import release

            prepare_run_dir(root)
            release(root)
        try:
            # As `optlab report`: a document replayed from events.jsonl is written back whole.
            if fresh or (root / "events.jsonl").is_file():
                write_results_json(root, doc)
            for name, text in files.items():
                atomic_write_text(root / name, text)
        except OSError as exc:
            raise OptlabError(f"{root}: cannot write the reports ({exc.strerror or exc})") from None
        if fresh:
            self.path = root
        return root / REPORT_FILES[format]

    # ------------------------------------------------------------ combining and display

    def __add__(self, other: Experiment) -> Experiment:
        from optlab.api import combine

        return combine([self, other])

    def _repr_html_(self) -> str:
        from optlab.runs.html import table_html

        return table_html(self._doc())

    def __repr__(self) -> str:
        name = self.results.preset.get("name", "unnamed")
        return f"Experiment({name!r}, status={self.status!r}, runs={list(self.runs)}, path={str(self.path) if self.path else None!r})"

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs.values())
