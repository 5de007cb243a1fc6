"""Checks of a fully resolved run that go beyond one field: the combination of dataset, model,
loss, split and training settings, and optimizer/scheduler arguments against torch itself.

`check_run` returns the first problem as one sentence; the loader prefixes file and run name.
The torch-backed modules are imported inside `check_run`, so importing this module (and the
pydantic-only preset schema) stays cheap.
"""

from __future__ import annotations

from optlab import registry
from optlab.data.catalog import describe_dataset, split_sizes
from optlab.errors import PresetError
from optlab.preset.check_cache import cached_check, check_key
from optlab.preset.schema import Preset
from optlab.registry import Kind, PluginError
from optlab.spec import AUX_OPTIMIZER, DataConfig, ResolvedRun
from optlab.training.loss_rules import loss_task_error, n_outputs


def data_error(data: DataConfig) -> str | None:
    """Why the dataset cannot be read as configured (a file dataset's bad file, a plugin
    loader's unknown option or bad arrays), or None. Reading it here, once, makes a bad file
    an error of validation, before any run directory is written; describe_dataset keeps what
    it learnt, so the runs' checks do not read it again."""
    entry = registry.get("dataset", data.dataset)
    if not entry.extra.get("catalog") and not entry.extra.get("file"):
        from optlab.data.plugins import options_error

        problem = options_error(entry, data.options)
        if problem:
            return problem
    try:
        describe_dataset(data)
    except (PresetError, PluginError) as exc:
        return str(exc)
    return None


def _data_error(run: ResolvedRun) -> str | None:
    """Split sizes and the settings that depend on them."""
    data = run.data
    info = describe_dataset(data)
    n_train, n_val, _ = split_sizes(
        info, data.test_fraction, data.val_fraction, data.val_size, data.train_limit
    )
    if n_train <= 0:
        n_pool = n_train + n_val  # before any train_limit, which cannot make it empty
        held = (
            f"data.val_size = {data.val_size}"
            if data.val_size is not None
            else (f"data.val_fraction = {data.val_fraction:g} ({n_val} samples)")
        )
        return f"{held} leaves no training data ({data.dataset} has {n_pool} samples for train + validation)"
    if n_val == 0:
        if run.early_stopping is not None:
            return (
                "early_stopping needs a validation split, but this run has none "
                "(set data.val_fraction > 0 or data.val_size > 0)"
            )
        if run.scheduler.name == "plateau":
            return (
                "scheduler 'plateau' steps on the validation loss, but this run has no validation split "
                "(set data.val_fraction > 0 or data.val_size > 0)"
            )
    if run.batch_size > n_train:
        return f"batch_size {run.batch_size} is larger than the training split ({n_train} samples)"
    return None


def check_run(run: ResolvedRun) -> str | None:
    """The first problem with `run`, or None when it can be trained."""
    info = describe_dataset(run.data)
    problem = loss_task_error(run.loss, info.task, info.name)
    if problem:
        return problem
    if run.label_smoothing and run.loss != "cross_entropy":
        return (
            f"label_smoothing = {run.label_smoothing:g} works only with the cross_entropy loss "
            f"(this run uses {run.loss!r})"
        )
    if (
        run.early_stopping is not None
        and run.early_stopping.metric == "val_accuracy"
        and info.task == "regression"
    ):
        return f"early_stopping.metric 'val_accuracy' needs a classification dataset; {info.name!r} is regression"
    if run.clip_grad_norm is not None and run.clip_grad_value is not None:
        return "set either clip_grad_norm or clip_grad_value, not both"
    problem = _data_error(run)
    if problem:
        return problem

    outputs = n_outputs(info.task, info.n_classes, run.loss)
    return cached_check(_torch_check_key(run, info.input_shape, outputs),
                        lambda: _torch_error(run, info.input_shape, outputs))


def _torch_check_key(run: ResolvedRun, input_shape: tuple[int, ...], outputs: int) -> str | None:
    """What `_torch_error`'s verdict depends on besides code: the entries and these fields."""
    entries: list[tuple[Kind, str]] = [
        ("model", run.model.name), ("optimizer", run.optimizer.name), ("scheduler", run.scheduler.name)
    ]
    entry = registry.registry().find("optimizer", run.optimizer.name)
    if entry is not None and entry.has("matrix_only"):
        entries.append(("optimizer", AUX_OPTIMIZER))
    facts = {
        "model": run.model.model_dump(mode="json"),
        "input_shape": list(input_shape),
        "outputs": outputs,
        "optimizer": run.optimizer.model_dump(mode="json"),
        "scheduler": run.scheduler.model_dump(mode="json"),
        "epochs": run.epochs,
    }
    return check_key(entries, facts)


def _torch_error(run: ResolvedRun, input_shape: tuple[int, ...], outputs: int) -> str | None:
    """The checks that need torch: the model builds for the data, the optimizer takes a trial
    step, the schedule runs."""
    from optlab.models.registry import model_fit_error
    from optlab.training.optim import optimizer_kwargs_error
    from optlab.training.schedulers import scheduler_kwargs_error

    return (
        model_fit_error(run.model, input_shape, outputs)
        or optimizer_kwargs_error(run.optimizer)
        or _matrix_error(run, input_shape, outputs)
        or scheduler_kwargs_error(run.scheduler, run.epochs, run.optimizer)
    )


def _matrix_error(run: ResolvedRun, input_shape: tuple[int, ...], outputs: int) -> str | None:
    """A matrix-only optimizer (Muon) needs a hidden weight matrix in the run's own model."""
    import torch

    from optlab.models.registry import build_model
    from optlab.training.optim import matrix_fit_error

    if not registry.get("optimizer", run.optimizer.name).has("matrix_only"):
        return None
    with torch.random.fork_rng(devices=[]):  # building draws initial weights
        model = build_model(run.model, input_shape, outputs)
    return matrix_fit_error(run.optimizer, model)


def target_error(preset: Preset) -> str | None:
    """The preset-wide target must be measurable: a validation metric needs a validation split,
    an accuracy needs a classification dataset."""
    target = preset.target
    if target is None:
        return None
    info = describe_dataset(preset.data)
    if target.metric.endswith("accuracy") and info.task == "regression":
        return f"metric {target.metric!r} needs a classification dataset; {info.name!r} is regression"
    if target.metric.startswith("val_"):
        data = preset.data
        _, n_val, _ = split_sizes(info, data.test_fraction, data.val_fraction, data.val_size, data.train_limit)
        if n_val == 0:
            return (
                f"metric {target.metric!r} needs a validation split, but this preset has none "
                "(set data.val_fraction > 0 or data.val_size > 0, or use a train_ metric)"
            )
    return None
