"""The run specification the engine consumes: plain pydantic data that serialises to JSON.

`ResolvedRun` is everything one run needs, fully resolved; `optlab.preset` turns preset TOML
into these, and the engine (data, models, training) reads nothing else. Names of optimizers,
schedulers, models and datasets are checked against the registries (`optlab.registry`), so a
plugin's names are valid exactly where the plugin is loaded. No torch import here.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from optlab import registry
from optlab.registry import Kind

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "leaky_relu", "elu", "silu")
INITS = ("default", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform")
LOSSES = ("cross_entropy", "bce_with_logits", "mse", "l1", "smooth_l1")
EARLY_STOP_METRICS = ("val_loss", "val_accuracy")
DATA_TASKS = ("auto", "multiclass", "binary", "regression")
# The fields only some datasets read: a file reader's entry lists its own (extra "fields").
FILE_FIELDS = (
    "path", "test_path", "target", "features", "drop", "task", "delimiter", "image_size", "grayscale", "max_memory"
)
CSV_DELIMITERS = (",", ";", "\t", "|")
_MEMORY_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
WEIGHT_DECAY_ON = ("all", "matrices")
# A matrix-only optimizer's (Muon's) auxiliary AdamW, for the parameters it cannot train:
# Keller Jordan's MuonWithAuxAdam example (lr 3e-4, betas (0.9, 0.95)); no decay by default,
# since what it trains is mostly biases and gains.
AUX_DEFAULTS: dict[str, Any] = {
    "aux_lr": 3e-4,
    "aux_betas": (0.9, 0.95),
    "aux_weight_decay": 0.0,
    "aux_head": True,  # the output layer goes to the auxiliary AdamW (false: to the matrix optimizer)
}
AUX_OPTIMIZER = "adamw"  # the registry entry that trains what a matrix-only optimizer cannot
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


# The largest magnitude a float32 tensor holds: the models, losses and optimizer states train in
# float32, so a number past it (or inf, nan: TOML has them) would train silently wrong.
FLOAT32_MAX = 3.4028234663852886e38
# torch's generators take 64-bit seeds, and the data order of epoch e is seeded with
# seed * 1_000_003 + e: a seed below 2**32 keeps that in range for any number of epochs.
SEED_MAX = 2**32 - 1


def unrepresentable(value: Any, key: str) -> str | None:
    """`key = value` for the first number in `value` that a float32 tensor cannot hold, or None.
    Nested models are left to their own check."""
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        if not (abs(value) <= FLOAT32_MAX):  # also catches nan
            return f"{key} = {value}"
    elif isinstance(value, dict):
        for k, v in value.items():
            found = unrepresentable(v, f"{key}.{k}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = unrepresentable(v, f"{key}[{i}]")
            if found:
                return found
    return None


class Float32Values(BaseModel):
    """Every number a preset gives (declared fields and free arguments alike) must fit a float32
    tensor, where it ends up."""

    @model_validator(mode="after")
    def _fits_float32(self) -> Any:
        values = {**{k: getattr(self, k) for k in type(self).model_fields}, **(self.model_extra or {})}
        for key, value in values.items():
            found = unrepresentable(value, key)
            if found:
                raise ValueError(
                    f"{found} cannot be held by a float32 tensor, where it ends up: "
                    f"allowed are finite numbers of magnitude at most {FLOAT32_MAX:.4g}"
                )
        return self


class Strict(Float32Values):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


def registered(value: str, kind: Kind) -> str:
    """`value` when a registry of `kind` knows it; else the registry's message (known names,
    did-you-mean, how to get a plugin's names)."""
    if value.endswith(".py") or any(c in value for c in ":/\\"):
        # A preset is data: it can never name code to import ("module:attr", a path, a file).
        raise ValueError(
            f"{kind} {value!r} looks like code; a preset names every {kind} by its registered name only. "
            "Code comes from `--plugin MODULE_OR_FILE.py` on the command line or an installed plugin package"
        )
    try:
        registry.registry().get(kind, value)
    except registry.UnknownName as exc:
        raise ValueError(str(exc)) from None  # pydantic reports ValueErrors at the field
    return value


def names_text(kind: Kind) -> str:
    """The built-in names, for field descriptions (the JSON Schema adds every registered one)."""
    return ", ".join(registry.names(kind, autoload=False))


def _file_fields(extra: dict[str, object]) -> tuple[str, ...]:
    """The data fields a dataset entry reads (its `fields` extra: a file reader's, a plugin's)."""
    fields = extra.get("fields", ())
    return tuple(str(f) for f in fields) if isinstance(fields, list | tuple | set | frozenset) else ()


class DataConfig(Strict):
    dataset: str = Field("digits", description="Dataset name: " + names_text("dataset"))
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
    split_seed: int = Field(
        0, ge=0, le=SEED_MAX, description="Seed of the train/validation/test split (shared by every run)"
    )
    train_limit: int | None = Field(
        None, ge=1, description="Use only the first N training samples (quick runs, tests)"
    )
    test_limit: int | None = Field(None, ge=1, description="Use only the first N test samples")
    normalize: bool = Field(True, description="Apply the dataset's standard normalisation")
    path: str | None = Field(
        None, description="csv, npz, imagefolder: the file or folder (relative to the preset file, or absolute)"
    )
    test_path: str | None = Field(None, description="csv: a test CSV with the same columns (else a seeded split)")
    target: str | None = Field(None, description="csv: the target column (default: the last column)")
    features: list[str] | None = Field(None, description="csv: the feature columns (default: all but the target)")
    drop: list[str] | None = Field(None, description="csv: columns that are not features (not with features)")
    task: str = Field(
        "auto", description="csv, npz: " + ", ".join(DATA_TASKS) + " (auto: integer-like targets with at most "
        "100 distinct values, or text, are classification)"
    )
    delimiter: str = Field(",", description="csv: the cell separator: ',', ';', '\\t' (tab) or '|'")
    image_size: int | list[int] | None = Field(
        None, description="imagefolder: resize every image to SIZE x SIZE or [HEIGHT, WIDTH]"
    )
    grayscale: bool = Field(False, description="imagefolder: one grey channel instead of RGB")
    max_memory: int | str | None = Field(
        None, description="imagefolder: refuse a dataset whose tensors would need more (bytes or '2GiB'); "
        "default a quarter of the RAM"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="A plugin dataset's loader options (checked against its signature)"
    )

    _check_dataset = field_validator("dataset")(lambda v: registered(v, "dataset"))
    _check_task = field_validator("task")(lambda v: one_of(v, DATA_TASKS, "task"))

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, v: int | list[int] | None) -> int | list[int] | None:
        sizes = [v] if isinstance(v, int) else v
        if sizes is not None and (len(sizes) != 2 and isinstance(v, list) or any(s < 1 for s in sizes)):
            raise ValueError("image_size must be a size >= 1 or [height, width] of sizes >= 1")
        return v

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, v: str) -> str:
        if v not in CSV_DELIMITERS:
            raise ValueError(f"unknown delimiter {v!r}; allowed: {', '.join(map(repr, CSV_DELIMITERS))}")
        return v

    @field_validator("max_memory")
    @classmethod
    def _memory(cls, v: int | str | None) -> int | None:
        return None if v is None else parse_bytes(v)

    @model_serializer(mode="wrap")
    def _leave_out_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The file readers' and plugins' fields at their defaults say nothing about a digits
        # run: keep them out of every preset.toml, spec and event that does not use them.
        out = handler(self)
        defaults = type(self).model_fields
        for name in (*FILE_FIELDS, "options"):
            if name in out and getattr(self, name) == defaults[name].get_default(call_default_factory=True):
                del out[name]
        return out

    @model_validator(mode="after")
    def _fields_of_the_dataset(self) -> DataConfig:
        entry = registry.registry().find("dataset", self.dataset)
        if entry is None:  # the name's own error says so
            return self
        own = _file_fields(entry.extra)
        defaults = type(self).model_fields
        for name in FILE_FIELDS:
            if getattr(self, name) != defaults[name].get_default(call_default_factory=True) and name not in own:
                readers = [
                    e.name for e in registry.registry().entries("dataset", autoload=False)
                    if name in _file_fields(e.extra)
                ]
                raise ValueError(f"{name} is only for dataset {' or '.join(map(repr, readers))}, not {self.dataset!r}")
        if "path" in own and not self.path:
            raise ValueError(f"dataset {self.dataset!r} needs data.path (the file or folder to read)")
        if self.features is not None and self.drop is not None:
            raise ValueError("set either features or drop, not both")
        if self.target is not None and self.target in (self.features or []):
            raise ValueError(f"the target column {self.target!r} cannot also be a feature")
        if self.options and (entry.source.origin == "builtin"):
            raise ValueError(
                f"options are for plugin datasets; {self.dataset!r} is built in and takes its settings as [data] fields"
            )
        return self


def parse_bytes(value: int | str) -> int:
    """A memory size: a number of bytes, or a string such as "512MB", "2GiB", "1.5 GB"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number of bytes or a size such as '2GiB', got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a memory size must be at least 1 byte, got {value}")
        return value
    text = value.strip().lower().replace(" ", "")
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(number):] or "b"
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if unit not in _MEMORY_UNITS or not amount > 0 or amount == float("inf"):
        raise ValueError(
            f"expected a number of bytes or a size such as '2GiB' or '500MB' "
            f"(units: {', '.join(sorted(_MEMORY_UNITS, key=_MEMORY_UNITS.__getitem__))}), got {value!r}"
        )
    return max(1, int(amount * _MEMORY_UNITS[unit]))


class ModelConfig(Float32Values):
    """The built-in models' fields; a plugin model takes its own keyword arguments as extra keys
    (checked against its factory's signature)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    name: str = Field("mlp", description="Model: " + names_text("model"))
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

    _check_name = field_validator("name")(lambda v: registered(v, "model"))
    _check_activation = field_validator("activation")(lambda v: one_of(v, ACTIVATIONS, "activation"))
    _check_init = field_validator("init")(lambda v: one_of(v, INITS, "init"))

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments beyond the built-in fields (a plugin model's own)."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _extras_belong_to_plugins(self) -> ModelConfig:
        # Built-in models take only the declared fields: a typo must not pass as a plugin option.
        entry = registry.registry().find("model", self.name)
        if entry is not None and entry.source.origin == "builtin" and self.kwargs:
            key = next(iter(self.kwargs))
            known = list(type(self).model_fields)
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"unknown key {key!r}{suggestion}; allowed: {', '.join(known)}")
        return self


class OptimizerConfig(Float32Values):
    """`name`, `lr` and `weight_decay_on`; every other key is passed to the optimizer and
    checked against its signature (see `optlab.training.optim`)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("sgd", description="Optimizer: " + names_text("optimizer"))
    lr: float = Field(0.01, gt=0.0, description="Learning rate")
    weight_decay_on: str = Field(
        "all",
        description="Which parameters weight decay applies to: all, or matrices (no decay for biases "
        "and normalisation parameters, every parameter with fewer than 2 dimensions)",
    )

    _check_name = field_validator("name")(lambda v: registered(v, "optimizer"))
    _check_decay_on = field_validator("weight_decay_on")(lambda v: one_of(v, WEIGHT_DECAY_ON, "weight_decay_on"))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_serializer(mode="wrap")
    def _omit_default_decay_on(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out at its default, so specs, checkpoints and results written before the field
        # existed (and the tables that list an optimizer's arguments) stay as they were.
        data = handler(self)
        if data.get("weight_decay_on") == "all":
            del data["weight_decay_on"]
        return data

    @model_validator(mode="after")
    def _ranges(self) -> OptimizerConfig:
        extra = self.kwargs
        for key in ("momentum", "dampening", "alpha", "rho"):
            if key in extra and not (isinstance(extra[key], int | float) and 0.0 <= extra[key] < 1.0):
                if key == "alpha" and self.name != "rmsprop":
                    continue
                raise ValueError(f"{key} must be in [0, 1), got {extra[key]!r}")
        # Adan and AdEMAMix take three betas; the auxiliary AdamW two.
        for key, counts, words in (("betas", (2, 3), "two (or three)"), ("aux_betas", (2,), "two")):
            betas = extra.get(key)
            if key in extra and (
                not isinstance(betas, list | tuple)
                or len(betas) not in counts
                or not all(isinstance(b, int | float) and 0.0 <= b < 1.0 for b in betas)
            ):
                raise ValueError(f"{key} must be {words} numbers in [0, 1), got {betas!r}")
        for key, least, strict in (("weight_decay", 0, False), ("aux_weight_decay", 0, False), ("aux_lr", 0, True)):
            value = extra.get(key)
            if key in extra and (isinstance(value, bool) or not isinstance(value, int | float)
                                 or value < least or (strict and value == least)):
                raise ValueError(f"{key} must be {'>' if strict else '>='} {least}, got {value!r}")
        if "aux_head" in extra and not isinstance(extra["aux_head"], bool):
            raise ValueError(f"aux_head must be true or false, got {extra['aux_head']!r}")
        return self


class SchedulerConfig(Float32Values):
    """`name` plus optional warm-up; every other key goes to the torch scheduler."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("constant", description="Scheduler: " + names_text("scheduler"))
    warmup_epochs: float = Field(
        0.0, ge=0.0, description="Linear warm-up length in epochs, before the scheduler starts"
    )
    warmup_start_factor: float = Field(
        0.1, gt=0.0, le=1.0, description="Warm-up starts at this fraction of the learning rate"
    )

    _check_name = field_validator("name")(lambda v: registered(v, "scheduler"))

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

    _check_metric = field_validator("metric")(lambda v: one_of(v, EARLY_STOP_METRICS, "metric"))


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
    diverge_factor: float = 100.0  # 0: only a non-finite loss ends a run diverged
    eval_batch_size: int
    compile: bool
    optimizer: OptimizerConfig
    scheduler: SchedulerConfig
    device: str = "cpu"
    # Whether the run's end evaluates the test split (metrics and predictions). A tuning trial
    # does not: selection uses validation data only, and the test split is touched by the
    # final runs alone (and its evaluation was a share of a small trial's cost).
    evaluate_test: bool = True

    def model_key(self) -> str:
        """Runs with equal model keys (and seeds) start from identical weights."""
        return self.model.model_dump_json()


def provenance(run: ResolvedRun) -> dict[str, dict[str, str]]:
    """Where this run's optimizer, scheduler, model and dataset come from (`registry.sources`):
    recorded in results.json and checkpoints, so a result names the code that produced it."""
    return registry.sources({
        "optimizer": run.optimizer.name,
        "scheduler": run.scheduler.name,
        "model": run.model.name,
        "dataset": run.data.dataset,
    })
