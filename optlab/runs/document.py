"""The results document (results.json) as typed models: what `ResultsBuilder` writes, read back.

`optlab.runs.results` folds events into a plain dict (fast, and the same fold live and
replayed); these models are its schema for readers (the Python API, `optlab results schema`,
docs/results-schema.json). They parse every document optlab has written: fields added over
time have defaults, values a writer could not represent (NaN) are null, and fields this
version does not know are kept (`extra="allow"`), so a newer writer's document still reads.
`migrate` brings a document of an older `results_version` to this one first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from optlab.errors import RunDirError
from optlab.runs.aggregate import aggregate

# The version `ResultsBuilder` writes; documents of a higher one come from a newer optlab.
from optlab.runs.results import RESULTS_VERSION

Json = dict[str, JsonValue]


class Part(BaseModel):
    """A part of the document: unknown fields kept, values as written."""

    model_config = ConfigDict(extra="allow")


class Placement(Part):
    """Where a run trained (its RunStarted): backend, host, device, GPU name and the training
    process's pid, torch threads, torch version and deterministic flag."""

    backend: str | None = None
    host: str | None = None
    device: str | None = None
    gpu: str | None = None
    pid: int | None = None
    threads: int | None = None
    torch: str | None = None
    deterministic: bool | None = None


class ProgressSnapshot(Part):
    """The latest reporting interval of a run (the step it is at while it trains)."""

    step: int = 0
    epoch: int = 0
    samples_seen: int = 0
    train_loss: float | None = None
    lr: float | None = None
    elapsed_s: float | None = None
    samples_per_s: float | None = None
    grad_evals: int = 0


class EpochRecord(Part):
    """One epoch of a run's history (`optlab.runs.results.HISTORY_KEYS`)."""

    epoch: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    val_rmse: float | None = None
    lr: float | None = None
    epoch_s: float | None = None
    samples_seen: int | None = None  # absent from documents written before time to target


class PerClass(Part):
    precision: list[float | None] = Field(default_factory=list)
    recall: list[float | None] = Field(default_factory=list)
    f1: list[float | None] = Field(default_factory=list)
    specificity: list[float | None] = Field(default_factory=list)
    support: list[int] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)


class TestMetrics(Part):
    """A run's test metrics: classification (accuracy ... confusion matrix) or regression
    (mse, rmse, mae, r2); `n` test samples."""

    __test__ = False  # a model, not a pytest test class

    loss: float | None = None
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    specificity: float | None = None
    roc_auc: float | None = None
    roc_auc_note: str | None = None
    confusion_matrix: list[list[int]] | None = None
    per_class: PerClass | None = None
    average: str | None = None
    mse: float | None = None
    rmse: float | None = None
    mae: float | None = None
    r2: float | None = None
    n: int | None = None


class TimeToTarget(Part):
    reached: bool = False
    epoch: int | None = None
    samples_seen: int | None = None
    wall_time_s: float | None = None


class RunResult(Part):
    """One run (`optlab.runs.results.empty_run`). `status`: pending, running, finished,
    early_stopped, diverged, stopped, failed (or lost, while a worker's run restarts)."""

    name: str
    status: str = "pending"
    reason: str = ""
    config: Json = Field(default_factory=dict)  # the run's ResolvedRun as JSON
    n_params: int | None = None
    init_fingerprint: str = ""
    data_fingerprint: str = ""
    notes: list[str] = Field(default_factory=list)
    provenance: dict[str, dict[str, str]] = Field(default_factory=dict)
    plugin_fingerprint: str = ""
    placement: Placement | None = None
    steps_per_epoch: int | None = None
    total_steps: int | None = None
    epochs_completed: int = 0
    best_epoch: int | None = None
    wall_time_s: float | None = 0.0
    train_samples_per_s: float | None = 0.0
    grad_evals: int = 0
    progress: ProgressSnapshot | None = None
    history: list[EpochRecord] = Field(default_factory=list)
    time_to_target: TimeToTarget | None = None
    test: TestMetrics | None = None

    @property
    def seed(self) -> int | None:
        seed = self.config.get("seed")
        return seed if isinstance(seed, int) else None


class DatasetFacts(Part):
    """The dataset as loaded (`DatasetBundle.facts`): sizes after the split."""

    name: str | None = None
    task: str | None = None
    n_classes: int | None = None
    input_shape: list[int] = Field(default_factory=list)
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    class_names: list[str] = Field(default_factory=list)
    files: list[Json] | None = None


class Stat(Part):
    """mean, sample std (None for fewer than two values), n, min, max."""

    mean: float | None = None
    std: float | None = None
    n: int = 0
    min: float | None = None
    max: float | None = None


class BandPoint(Stat):
    epoch: int = 0


class TargetStats(Part):
    reached: int = 0
    of: int = 0
    epoch: Stat = Field(default_factory=Stat)
    samples_seen: Stat = Field(default_factory=Stat)
    wall_time_s: Stat = Field(default_factory=Stat)


class AggregateGroup(Part):
    """One configuration over its seeds (`optlab.runs.aggregate.aggregate_group`)."""

    group: str
    runs: list[str] = Field(default_factory=list)
    seeds: list[int | None] = Field(default_factory=list)
    n: int = 0
    statuses: dict[str, int] = Field(default_factory=dict)
    test: dict[str, Stat] = Field(default_factory=dict)
    wall_time_s: Stat | None = None
    best_epoch: Stat | None = None
    time_to_target: TargetStats | None = None
    history: dict[str, list[BandPoint]] = Field(default_factory=dict)


class RankEntry(Part):
    group: str
    rank: int
    label: str
    versus: str | None = None
    verdict: str | None = None  # distinguishable, not distinguishable, cannot tell
    p_value: float | None = None


class Ranking(Part):
    """Configurations by the mean of `metric`, and the verdict on the top two
    (`optlab.runs.aggregate.rank_groups`)."""

    metric: str
    higher_is_better: bool = True
    order: list[str] = Field(default_factory=list)
    test: str = "welch t-test"
    alpha: float = 0.05
    p_value: float | None = None
    verdict: str = "single"
    ranks: list[RankEntry] = Field(default_factory=list)
    text: str = ""


class Aggregates(Part):
    std_ddof: int = 1
    groups: list[AggregateGroup] = Field(default_factory=list)
    ranking: Ranking | None = None


class CombinedSource(Part):
    """One run directory of a combined comparison (`optlab report A B --out DIR`)."""

    path: str
    label: str  # the prefix its runs get where a name is taken by another directory
    preset: str = ""
    started_at: str | None = None
    runs: list[str] = Field(default_factory=list)  # the names in the combined document
    differences: list[str] = Field(default_factory=list)  # what is not as in the first directory


class Combined(Part):
    sources: list[CombinedSource]
    comparable: bool = True
    forced: bool = False  # kept although not comparable (--force)


class ResultsDocument(Part):
    """results.json: the experiment and its runs."""

    results_version: int = RESULTS_VERSION
    optlab_version: str | None = None
    torch_version: str | None = None
    status: str = "running"  # running, finished, interrupted
    started_at: str | None = None
    wall_time_s: float | None = 0.0
    preset: Json = Field(default_factory=dict)  # the resolved preset as JSON
    dataset: DatasetFacts = Field(default_factory=DatasetFacts)
    device: str = ""
    runs: list[RunResult] = Field(default_factory=list)
    aggregates: Aggregates | None = None  # when some configuration ran over several seeds
    combined: Combined | None = None  # a comparison of several run directories

    @classmethod
    def parse(cls, doc: dict[str, Any], source: str = "results.json") -> ResultsDocument:
        """A document as written by any optlab version (migrated first); RunDirError naming
        `source` when it is not one."""
        from pydantic import ValidationError

        try:
            return cls.model_validate(migrate(doc, source))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            raise RunDirError(f"{source}: not a results document optlab can read ({where}: {first['msg']})") from None

    def to_dict(self) -> dict[str, Any]:
        """The plain document the report writers take (as results.json holds it)."""
        return self.model_dump(mode="json", exclude_none=False)


def _fill_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """Documents of version 1 written before seeds were repeated have no `aggregates`: computed
    now from the runs, as the writer of today would have."""
    if "aggregates" not in doc:
        doc = {**doc, "aggregates": aggregate(doc)}
    return doc


# version n -> the function that turns a document of version n into one of version n + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def migrate(doc: dict[str, Any], source: str = "results.json") -> dict[str, Any]:
    """`doc` brought to RESULTS_VERSION (a new dict; `doc` is left as it is). A version this
    optlab cannot read raises RunDirError."""
    version = doc.get("results_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RunDirError(f"{source}: not a results document written by optlab (no results_version)")
    if version > RESULTS_VERSION:
        raise RunDirError(
            f"{source}: written by a newer optlab (results_version {version}; this one reads up to {RESULTS_VERSION})"
        )
    while version < RESULTS_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise RunDirError(f"{source}: results_version {version} is older than any optlab can read")
        doc = step(doc)
        version += 1
        doc = {**doc, "results_version": version}
    return _fill_v1(doc)
