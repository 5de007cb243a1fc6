"""Pydantic models of a preset file: the single source of its validation and JSON Schema.

The parts a run is made of (data, model, optimizer, scheduler, early stopping) are the run
specification's own models (`optlab.spec`); this module adds the file format around them:
`[train]` defaults, `[[runs]]`, sweeps, seeds, targets. Validation here is pure data (no torch
import), so `optlab presets validate` and the loader stay fast. Checks that need torch
(optimizer and scheduler keyword arguments against the real signatures) run in
`optlab.preset.checks`, called by the loader.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from optlab.preset.names import MAX_NAME_LENGTH, PRESET_NAME_RULE, preset_name_error
from optlab.preset.search import TuneConfig, check_space
from optlab.registry import Kind
from optlab.spec import (
    LOSSES,
    SEED_MAX,
    DataConfig,
    EarlyStopping,
    ModelConfig,
    OptimizerConfig,
    SchedulerConfig,
    Strict,
    one_of,
)

TARGET_METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")
# Fields a [sweep] may vary: every train field and the model's, but not the seed (use `seeds`,
# which keeps the repeats of one configuration together as a group).
SWEEP_EXCLUDED = ("seed", "seeds")
DEFAULT_MAX_RUNS = 64
NO_RUNS = "a preset needs at least one [[runs]] entry"


class TrainFields(Strict):
    """Fields shared by `[train]` (defaults) and `[[runs]]` (overrides)."""

    epochs: int | None = Field(None, ge=1, description="Number of epochs")
    batch_size: int | None = Field(None, ge=1, description="Training batch size")
    loss: str | None = Field(None, description="Loss: " + ", ".join(LOSSES))
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="Seed of weights, data order and dropout")
    shuffle: bool | None = Field(
        None, description="Shuffle the training data every epoch (default); false keeps the dataset's order"
    )
    label_smoothing: float | None = Field(
        None, ge=0.0, lt=1.0, description="cross_entropy only: label smoothing"
    )
    l1: float | None = Field(None, ge=0.0, description="L1 penalty coefficient on the weights")
    clip_grad_norm: float | None = Field(None, gt=0.0, description="Clip the gradient's total norm")
    clip_grad_value: float | None = Field(None, gt=0.0, description="Clip each gradient value")
    amp: Literal["off", "bf16", "fp16"] | None = Field(
        None, description="Mixed precision on CUDA (ignored with a note on CPU)"
    )
    early_stopping: EarlyStopping | None = Field(None, description="Stop when validation stalls")
    log_every: int | None = Field(
        None, ge=1, description="Report progress every N steps (default: about 10 times per epoch, at least 4 steps apart)"
    )
    diverge_factor: float | None = Field(
        None, ge=0.0, allow_inf_nan=False,
        description="End a run diverged when its smoothed training loss exceeds this many times "
        "its first step's loss (0: only on a non-finite loss)",
    )
    eval_batch_size: int | None = Field(None, ge=1, description="Batch size for evaluation")
    compile: bool | None = Field(None, description="torch.compile the model (off by default)")
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] | None = Field(
        None, description="Repeat each run once per seed (not with seed in the same table); runs are named NAME@sSEED"
    )
    optimizer: OptimizerConfig | None = None
    scheduler: SchedulerConfig | None = None

    @field_validator("loss")
    @classmethod
    def _check_loss(cls, v: str | None) -> str | None:
        return None if v is None else one_of(v, LOSSES, "loss")

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if not v:
                raise ValueError("seeds needs at least one seed")
            if len(set(v)) != len(v):
                raise ValueError(f"seeds must be distinct, got {v}")
        return v

    @model_validator(mode="after")
    def _seed_or_seeds(self) -> TrainFields:
        # Both in one table used to mean "seeds wins", silently dropping the seed the user wrote.
        if self.seed is not None and self.seeds is not None:
            raise ValueError(
                f"set either seed ({self.seed}) or seeds ({self.seeds}), not both: "
                "seeds repeats each run once per seed, seed runs it once"
            )
        return self


TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 64,
    "loss": "cross_entropy",
    "seed": 0,
    "label_smoothing": 0.0,
    "l1": 0.0,
    "amp": "off",
    "eval_batch_size": 1024,
    "compile": False,
    "diverge_factor": 100.0,
}


class RunConfig(TrainFields):
    """One `[[runs]]` entry: a name, and any train field or model field to override."""

    name: str = Field(..., min_length=1, description="Run name (unique within the preset)")
    model: dict[str, Any] | None = Field(None, description="Partial override of [model] for this run")
    optional: bool = Field(
        False,
        description="Leave this run out, with a note, when its optimizer, model or dataset is not available "
        "here (e.g. an optional extra is not installed) instead of refusing the preset",
    )
    search: dict[str, Any] | None = Field(
        None, description="optlab tune: this run's search space (default: its optimizer's), name -> range or values"
    )

    _check_search = field_validator("search")(lambda v: v if v is None else check_space(v))

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+")
        if not set(v) <= allowed or v.startswith("."):
            raise ValueError(f"run name {v!r} may hold only letters, digits and - _ . +")
        if len(v) > MAX_NAME_LENGTH:  # it names a folder: runs/NAME (with @sSEED after it)
            raise ValueError(f"run name of {len(v)} characters: at most {MAX_NAME_LENGTH}, it names a folder")
        return v


class Target(Strict):
    """The time-to-target measure: when did each run first reach `metric` = `value`?"""

    metric: str = Field("val_accuracy", description="Metric: " + ", ".join(TARGET_METRICS))
    value: float = Field(..., description="Accuracies reach it from below, losses from above")

    _check_metric = field_validator("metric")(lambda v: one_of(v, TARGET_METRICS, "target metric"))

    @field_validator("value")
    @classmethod
    def _reachable(cls, v: float, info: ValidationInfo) -> float:
        metric = info.data.get("metric", "")
        if not math.isfinite(v):
            raise ValueError("a target must be a finite number")
        if metric.endswith("accuracy") and not 0.0 <= v <= 1.0:
            hint = f" (for {v:g}% write {v / 100:g})" if 1.0 < v <= 100.0 else ""
            raise ValueError(f"an accuracy target must be in [0, 1]{hint}")
        if metric.endswith("loss") and v < 0.0:
            raise ValueError("a loss target must be >= 0 (every loss optlab offers is non-negative)")
        return v


def _flatten_sweep(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """TOML reads `optimizer.lr = [...]` as a nested table; a sweep key is the dotted path."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten_sweep(value, path + "."))
        else:
            flat[path] = value
    return flat


class Preset(Strict):
    name: str = Field("unnamed", description="Preset name: " + PRESET_NAME_RULE)
    description: str = Field("", description="What the experiment shows")
    extends: str | None = Field(
        None, description="Inherit another preset (name, relative path or URL) and override parts of it"
    )
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainFields = Field(default_factory=TrainFields)
    runs: list[RunConfig] = Field(..., description="The configurations to compare")
    sweep: dict[str, list[Any]] | None = Field(
        None, description="Field path -> values; every run is expanded over the grid of all values"
    )
    max_runs: int = Field(
        DEFAULT_MAX_RUNS, ge=1, description="Refuse a preset that expands (sweep x seeds) to more runs"
    )
    target: Target | None = Field(None, description="Report when each run first reaches this value")
    tune: TuneConfig | None = Field(None, description="optlab tune: budget, sampler, pruner, objective, final seeds")

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        problem = preset_name_error(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("runs")
    @classmethod
    def _check_runs(cls, v: list[RunConfig]) -> list[RunConfig]:
        if not v:
            raise PydanticCustomError("no_runs", NO_RUNS)
        first: dict[str, int] = {}
        for i, run in enumerate(v):
            if run.name in first:
                # The index lets the loader point at runs[i].name rather than at the whole list.
                raise PydanticCustomError(
                    "duplicate_run_name",
                    "duplicate run name '{name}' (runs[{first}] has it too): run names must be unique",
                    {"name": run.name, "first": first[run.name], "index": i},
                )
            first[run.name] = i
        return v

    @field_validator("sweep", mode="before")
    @classmethod
    def _flat_sweep(cls, v: Any) -> Any:
        return _flatten_sweep(v) if isinstance(v, dict) else v

    @field_validator("sweep")
    @classmethod
    def _check_sweep(cls, v: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if v is None:
            return v
        nested = ("optimizer", "scheduler", "early_stopping", "model")
        allowed = [f for f in TrainFields.model_fields if f not in SWEEP_EXCLUDED] + ["model"]
        for key, values in v.items():
            head, _, rest = key.partition(".")
            if head in SWEEP_EXCLUDED:
                raise ValueError(f"sweep key {key!r}: repeat over seeds with seeds = [...] instead")
            if head not in allowed:
                raise ValueError(f"sweep key {key!r}: unknown field {head!r}; allowed: {', '.join(allowed)}")
            if rest and head not in nested:
                raise ValueError(f"sweep key {key!r}: {head!r} is not a table")
            if not values:
                raise ValueError(f"sweep key {key!r}: needs at least one value")
        return v


# Where each registry's names go in the JSON Schema: (definition, property, kind).
NAMED_FIELDS: tuple[tuple[str, str, Kind], ...] = (
    ("DataConfig", "dataset", "dataset"),
    ("ModelConfig", "name", "model"),
    ("OptimizerConfig", "name", "optimizer"),
    ("SchedulerConfig", "name", "scheduler"),
)


def json_schema() -> dict[str, Any]:
    """The preset file's JSON Schema, with every name the registries know here (built-ins, the
    installed plugins and those given with --plugin) as the name fields' examples."""
    from optlab import registry

    schema = Preset.model_json_schema()
    for definition, prop, kind in NAMED_FIELDS:
        field = schema["$defs"][definition]["properties"][prop]
        known = registry.names(kind)
        field["examples"] = known
        field["description"] = f"{kind.capitalize()}: one of the registered names ({', '.join(known)})"
    return schema
