"""Pydantic models of a preset: the single source of validation and of the JSON Schema.

Validation here is pure data (no torch import), so `optlab presets validate` and the
loader stay fast. Checks that need torch (optimizer and scheduler keyword arguments
against the real signatures) run in `optlab.preset.checks`, called by the loader.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from optlab.preset.names import PRESET_NAME_RULE, preset_name_error

DATASETS = ("digits", "breast-cancer", "diabetes", "mnist", "fashion-mnist", "cifar10")
MODELS = ("mlp", "lenet", "cnn")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "leaky_relu", "elu", "silu")
INITS = ("default", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform")
LOSSES = ("cross_entropy", "bce_with_logits", "mse", "l1", "smooth_l1")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "radam")
SCHEDULERS = (
    "constant",
    "step",
    "multistep",
    "exponential",
    "cosine",
    "cosine_warm_restarts",
    "cyclic",
    "onecycle",
    "plateau",
    "linear",
)
EARLY_STOP_METRICS = ("val_loss", "val_accuracy")
TARGET_METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")
# Fields a [sweep] may vary: every train field and the model's, but not the seed (use `seeds`,
# which keeps the repeats of one configuration together as a group).
SWEEP_EXCLUDED = ("seed", "seeds")
DEFAULT_MAX_RUNS = 64
# Integer scheduler arguments torch divides by or counts with: the smallest value that works.
# Checked here because torch reports a 0 as "integer modulo by zero" or not at all.
SCHEDULER_MIN_INTS: dict[str, dict[str, int]] = {
    "step": {"step_size": 1},
    "cosine": {"T_max": 1},
    "cosine_warm_restarts": {"T_0": 1, "T_mult": 1},
    "linear": {"total_iters": 1},
    "cyclic": {"step_size_up": 1, "step_size_down": 1},
    "plateau": {"patience": 0, "cooldown": 0},
}
NO_RUNS = "a preset needs at least one [[runs]] entry"


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


class DataConfig(Strict):
    dataset: str = Field("digits", description="Dataset name: " + ", ".join(DATASETS))
    root: str | None = Field(
        None, description="Folder holding the dataset files (default: the per-user cache directory)"
    )
    download: bool = Field(True, description="Download torchvision datasets when their files are missing")
    val_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="Share of the training split held out for validation"
    )
    val_size: int | None = Field(
        None, ge=0, description="Exact number of validation samples (overrides val_fraction)"
    )
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="Test share for datasets without an official test split"
    )
    split_seed: int = Field(0, description="Seed of the train/validation/test split (shared by every run)")
    train_limit: int | None = Field(
        None, ge=1, description="Use only the first N training samples (quick runs, tests)"
    )
    test_limit: int | None = Field(None, ge=1, description="Use only the first N test samples")
    normalize: bool = Field(True, description="Apply the dataset's standard normalisation")

    _check_dataset = field_validator("dataset")(lambda v: _one_of(v, DATASETS, "dataset"))


class ModelConfig(Strict):
    name: str = Field("mlp", description="Model: " + ", ".join(MODELS))
    hidden: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [128], description="mlp: hidden layer sizes"
    )
    activation: str = Field("relu", description="Activation: " + ", ".join(ACTIVATIONS))
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability before each hidden layer")
    batchnorm: bool = Field(False, description="Batch normalisation after each hidden layer / conv")
    init: str = Field("default", description="Weight init: " + ", ".join(INITS))
    channels: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [32, 64], description="cnn: channels of each conv block"
    )

    _check_name = field_validator("name")(lambda v: _one_of(v, MODELS, "model"))
    _check_activation = field_validator("activation")(lambda v: _one_of(v, ACTIVATIONS, "activation"))
    _check_init = field_validator("init")(lambda v: _one_of(v, INITS, "init"))


class OptimizerConfig(BaseModel):
    """`name` and `lr`; every other key is passed to the torch optimizer and checked against
    its signature (see `optlab.preset.checks`)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("sgd", description="Optimizer: " + ", ".join(OPTIMIZERS))
    lr: float = Field(0.01, gt=0.0, description="Learning rate")

    _check_name = field_validator("name")(lambda v: _one_of(v, OPTIMIZERS, "optimizer"))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _ranges(self) -> OptimizerConfig:
        extra = self.kwargs
        for key in ("momentum", "dampening", "alpha", "rho"):
            if key in extra and not (isinstance(extra[key], int | float) and 0.0 <= extra[key] < 1.0):
                if key == "alpha" and self.name != "rmsprop":
                    continue
                raise ValueError(f"{key} must be in [0, 1), got {extra[key]!r}")
        if "betas" in extra:
            betas = extra["betas"]
            if (
                not isinstance(betas, list | tuple)
                or len(betas) != 2
                or not all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in betas)
            ):
                raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        if "weight_decay" in extra and not (
            isinstance(extra["weight_decay"], int | float) and extra["weight_decay"] >= 0
        ):
            raise ValueError(f"weight_decay must be >= 0, got {extra['weight_decay']!r}")
        return self


class SchedulerConfig(BaseModel):
    """`name` plus optional warm-up; every other key goes to the torch scheduler."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("constant", description="Scheduler: " + ", ".join(SCHEDULERS))
    warmup_epochs: float = Field(
        0.0, ge=0.0, description="Linear warm-up length in epochs, before the scheduler starts"
    )
    warmup_start_factor: float = Field(
        0.1, gt=0.0, le=1.0, description="Warm-up starts at this fraction of the learning rate"
    )

    _check_name = field_validator("name")(lambda v: _one_of(v, SCHEDULERS, "scheduler"))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _positive_ints(self) -> SchedulerConfig:
        extra = self.kwargs
        for key, least in SCHEDULER_MIN_INTS.get(self.name, {}).items():
            value = extra.get(key)
            if key in extra and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ValueError(
                    f"scheduler {self.name!r}: {key} must be an integer >= {least} (got {value!r})"
                )
        return self


class EarlyStopping(Strict):
    patience: int = Field(5, ge=1, description="Epochs without improvement before stopping")
    metric: str = Field("val_loss", description="Watched metric: " + ", ".join(EARLY_STOP_METRICS))
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts as an improvement")
    restore_best: bool = Field(True, description="Restore the best weights before testing")

    _check_metric = field_validator("metric")(lambda v: _one_of(v, EARLY_STOP_METRICS, "metric"))


class TrainFields(Strict):
    """Fields shared by `[train]` (defaults) and `[[runs]]` (overrides)."""

    epochs: int | None = Field(None, ge=1, description="Number of epochs")
    batch_size: int | None = Field(None, ge=1, description="Training batch size")
    loss: str | None = Field(None, description="Loss: " + ", ".join(LOSSES))
    seed: int | None = Field(None, ge=0, description="Seed of weights, data order and dropout")
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
    eval_batch_size: int | None = Field(None, ge=1, description="Batch size for evaluation")
    compile: bool | None = Field(None, description="torch.compile the model (off by default)")
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, description="Repeat each run once per seed (not with seed in the same table); runs are named NAME@sSEED"
    )
    optimizer: OptimizerConfig | None = None
    scheduler: SchedulerConfig | None = None

    @field_validator("loss")
    @classmethod
    def _check_loss(cls, v: str | None) -> str | None:
        return None if v is None else _one_of(v, LOSSES, "loss")

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
}


class RunConfig(TrainFields):
    """One `[[runs]]` entry: a name, and any train field or model field to override."""

    name: str = Field(..., min_length=1, description="Run name (unique within the preset)")
    model: dict[str, Any] | None = Field(None, description="Partial override of [model] for this run")

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+")
        if not set(v) <= allowed or v.startswith("."):
            raise ValueError(f"run name {v!r} may hold only letters, digits and - _ . +")
        return v


class Target(Strict):
    """The time-to-target measure: when did each run first reach `metric` = `value`?"""

    metric: str = Field("val_accuracy", description="Metric: " + ", ".join(TARGET_METRICS))
    value: float = Field(..., description="Accuracies reach it from below, losses from above")

    _check_metric = field_validator("metric")(lambda v: _one_of(v, TARGET_METRICS, "target metric"))

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


class ResolvedRun(Strict):
    """Everything one run needs, fully resolved: plain data that serialises to JSON."""

    name: str
    group: str = ""  # the configuration this run repeats over seeds (its name without @sSEED)
    data: DataConfig
    model: ModelConfig
    epochs: int
    batch_size: int
    loss: str
    seed: int
    shuffle: bool = True
    label_smoothing: float
    l1: float
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    amp: Literal["off", "bf16", "fp16"]
    early_stopping: EarlyStopping | None = None
    log_every: int | None = None
    eval_batch_size: int
    compile: bool
    optimizer: OptimizerConfig
    scheduler: SchedulerConfig
    device: str = "cpu"

    def model_key(self) -> str:
        """Runs with equal model keys (and seeds) start from identical weights."""
        return self.model.model_dump_json()
