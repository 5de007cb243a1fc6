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
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from optlab import registry
from optlab.spec.checks import (
    FLOAT32_MAX,
    SEED_MAX,
    Float32Values,
    Strict,
    names_text,
    one_of,
    registered,
    unrepresentable,
)
from optlab.spec.data import CSV_DELIMITERS, DATA_TASKS, FILE_FIELDS, DataConfig, parse_bytes

# Re-exported: the spec's parts are imported from `optlab.spec` everywhere.
__all__ = [
    "ACTIVATIONS", "AUX_DEFAULTS", "AUX_OPTIMIZER", "CSV_DELIMITERS", "DATA_TASKS", "EARLY_STOP_METRICS",
    "FILE_FIELDS", "FLOAT32_MAX", "INITS", "LOSSES", "SCHEDULER_MIN_INTS", "SEED_MAX", "WEIGHT_DECAY_ON",
    "DataConfig", "EarlyStopping", "Float32Values", "ModelConfig", "OptimizerConfig", "ResolvedRun",
    "SchedulerConfig", "Strict", "names_text", "one_of", "parse_bytes", "provenance", "registered",
    "unrepresentable",
]

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "leaky_relu", "elu", "silu")
INITS = ("default", "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform")
LOSSES = ("cross_entropy", "bce_with_logits", "mse", "l1", "smooth_l1")
EARLY_STOP_METRICS = ("val_loss", "val_accuracy")
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
