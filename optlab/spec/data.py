"""A run's data configuration (`[data]`): the dataset, its split and the file readers' fields
(`optlab.spec` re-exports these). No torch import here."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from optlab import registry
from optlab.spec.checks import SEED_MAX, Strict, names_text, one_of, registered

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
