"""`optlab tune`: every run of a preset tuned with the same budget of trials (Optuna), then its
best trial retrained over the final seeds and ranked. See docs/tune.md.

Every check runs before the run directory exists: bad input is one line and exit 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from optlab.cli.backend import (
    DEFAULT,
    AddressOption,
    BackendOption,
    CpusPerRunOption,
    DevicesOption,
    Fuse,
    FuseOption,
    GpusPerRunOption,
    ThreadsOption,
    Where,
    backend_options,
)
from optlab.cli.common import (
    PluginsOption,
    check_device,
    load_plugins,
    preset_toml,
    stderr_console,
    user_errors,
)
from optlab.cli.completion import complete_preset, complete_set
from optlab.errors import OptlabError

if TYPE_CHECKING:
    from optlab.preset.loader import LoadedPreset
    from optlab.preset.search import TuneConfig
    from optlab.tuning.service import Candidate

app = typer.Typer()


def settings_for(loaded: LoadedPreset, given: dict[str, Any]) -> TuneConfig:
    """[tune] with the command line's options over it, checked: one line naming the option."""
    from pydantic import ValidationError

    from optlab.preset.search import TuneConfig

    base = (loaded.preset.tune or TuneConfig()).model_dump()
    if "objective" not in given and loaded.preset.tune is None and _task(loaded) == "regression":
        base["objective"] = "val_loss"  # a regression task has no accuracy
    fields = {**base, **{k: v for k, v in given.items() if v is not None}}
    try:
        return TuneConfig.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0])
        where = f"--{key.replace('_', '-')}" if key in given and given[key] is not None else f"{loaded.origin}: tune.{key}"
        raise OptlabError(f"{where} {fields.get(key)!r}: {err['msg'].removeprefix('Value error, ')}") from None


def _task(loaded: LoadedPreset) -> str:
    from optlab.data.datasets import describe_loaded

    try:
        return describe_loaded(loaded.preset.data).task
    except Exception:  # the dataset's own error comes with the training that needs it
        return ""


def _progress(quiet: bool, objective: str) -> Any:
    console = stderr_console()

    def show(candidates: list[Candidate]) -> None:
        if quiet:
            return
        higher = objective == "val_accuracy"
        for c in candidates:
            best = c.best(higher)
            done = [t for t in c.trials if t.status != "running"]
            tail = f"best {objective} {best.value:.4f} ({best.run})" if best else "no finished trial yet"
            console.print(f"  {c.name}: {len(done)} trials done, {tail}")
    return show


@app.command("tune")
def tune(
    preset: str = typer.Argument(..., help="Preset name, path or URL.", autocompletion=complete_preset),
    budget: int | None = typer.Option(None, "--budget", help="Trials per candidate (default 12, or [tune] budget)."),
    sampler: str | None = typer.Option(None, "--sampler", help="qmc (default), tpe, random or grid."),
    prune: str | None = typer.Option(None, "--prune", help="off (default), asha or median."),
    final_seeds: int | None = typer.Option(None, "--final-seeds", help="Seeds the best trial is retrained on (default 3)."),
    objective: str | None = typer.Option(None, "--objective", help="val_accuracy (default) or val_loss."),
    parallel: int | None = typer.Option(None, "--parallel", help="Trials per candidate trained side by side (default 4)."),
    storage: str | None = typer.Option(None, "--storage", help="Optuna storage URL (default: sqlite study.db in the run directory)."),
    runs: list[str] | None = typer.Option(None, "--run", help="Tune only this run (repeatable)."),
    overrides: list[str] | None = typer.Option(None, "--set", "-s", metavar="KEY=VALUE", help="Override a preset field.",
                                               autocompletion=complete_set),
    plugins: PluginsOption = None,
    threads: ThreadsOption = DEFAULT.threads,
    backend: BackendOption = DEFAULT.backend,
    devices: DevicesOption = DEFAULT.devices,
    address: AddressOption = DEFAULT.address,
    gpus_per_run: GpusPerRunOption = DEFAULT.gpus_per_run,
    cpus_per_run: CpusPerRunOption = DEFAULT.cpus_per_run,
    # Fused by default: a wave's trials are runs of one shape, data order and length that
    # differ in their hyperparameters, the repeated jobs fusion (HFTA) was made for (issue 19).
    fuse: FuseOption = Fuse.auto,
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda or cuda:N."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run directory (default: runs/DATE-PRESET-tune)."),
    write_preset: Path | None = typer.Option(None, "--write-preset", help="Also write a compare preset at the tuned values (never overwriting)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table or json (tune.json) on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Tune every run of a preset with the same budget of trials, retrain each best over seeds, rank them."""
    from optlab.data.datasets import load_dataset
    from optlab.experiment import placement_devices
    from optlab.preset.loader import load_preset
    from optlab.runs.files import atomic_write_text
    from optlab.runs.store import default_run_dir, prepare_run_dir
    from optlab.spec import one_of
    from optlab.tuning.service import candidates_for
    from optlab.tuning.study import check_storage_url, require_optuna

    with user_errors():
        require_optuna()
        load_plugins(plugins)
        try:
            one_of(fmt, ("table", "json"), "--format")
        except ValueError as exc:
            raise OptlabError(str(exc)) from None
        loaded = load_preset(preset, overrides or [])
        given = {"budget": budget, "sampler": sampler, "pruner": prune, "final_seeds": final_seeds,
                 "objective": objective, "parallel": parallel}
        settings = settings_for(loaded, given)
        if storage is not None:
            check_storage_url(storage)
        if write_preset is not None and write_preset.exists():
            raise OptlabError(f"--write-preset {write_preset}: exists; optlab never overwrites a preset, choose another name")
        where = backend_options(Where(backend=backend, devices=devices, threads=threads, address=address,
                                      gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run,
                                      fuse=fuse))
        device, data_device = placement_devices(check_device(device), where)
        candidates = candidates_for(loaded, runs or [], device)
        for c in candidates:
            if c.space.note:
                sys.stderr.write(f"optlab: note: {c.name}: {c.space.note}\n")
        root = out if out is not None else default_run_dir(f"{loaded.preset.name}-tune")
        prepare_run_dir(root)
        atomic_write_text(root / "preset.toml", preset_toml(loaded.preset))
        data = load_dataset(loaded.preset.data, data_device)
    from optlab.tuning.service import tune_into

    if not quiet:
        stderr_console().print(f"tuning {len(candidates)} candidate(s), {settings.budget} trials each, into {root}")
    outcome = tune_into(root, loaded, candidates, data, device, settings, storage=storage, backend=where,
                        on_wave=_progress(quiet, settings.objective))
    _print(root, fmt)
    if write_preset is not None and not outcome.interrupted:
        with user_errors():
            _write_preset(loaded, outcome, write_preset)
            stderr_console().print(f"tuned preset in {write_preset}")
    raise typer.Exit(130 if outcome.interrupted else 0)


def resume_tune(run_dir: Path, force: bool, device: str, where: Where, fmt: str, quiet: bool) -> None:
    """`optlab resume` on a tuning run directory: the study continues where it stopped, on the
    backend the command line names (as a compare directory's runs do)."""
    import dataclasses

    from optlab.data.datasets import load_dataset
    from optlab.experiment import placement_devices
    from optlab.runs.owner import claim, release
    from optlab.training.threads import DEFAULT_THREADS
    from optlab.tuning.resume import plan_tune_resume
    from optlab.tuning.service import tune_into

    with user_errors():
        backend = backend_options(where)
        device, data_device = placement_devices(check_device(device), backend)
        resumed = plan_tune_resume(run_dir, device, force)
        # The trials go on with the threads the study trained with, unless --threads says otherwise.
        if backend.threads is None:
            backend = dataclasses.replace(backend, threads=resumed.plan.recorded_threads() or resumed.threads)
        # Fused as the study started (every backend fuses): fused and unfused trials agree to
        # float32 rounding only (docs/benchmarks.md), and a resumed study should equal the
        # uninterrupted one. A study started on ray before ray fused recorded off: it stays so.
        backend = dataclasses.replace(backend, fuse=Fuse(resumed.fuse).value)
        for note in resumed.plan.environment_notes(backend.threads or DEFAULT_THREADS):
            sys.stderr.write(f"optlab: note: {note}\n")
        carry = resumed.carry
        if not quiet:
            done = sum(len(c.trials) - len(c.pending) for c in resumed.candidates)
            stderr_console().print(f"resuming the study in {run_dir}: {done} trial(s) told, {len(carry.wave)} continued "
                                   f"({len(carry.states)} from a checkpoint), {len(carry.finals)} final seed run(s)")
        claim(run_dir)
        try:
            data = load_dataset(resumed.loaded.preset.data, data_device)
            resumed.plan.check_data(data.facts(), force)
        except BaseException:
            release(run_dir)
            raise
    outcome = tune_into(run_dir, resumed.loaded, resumed.candidates, data, device, resumed.settings,
                        storage=resumed.storage, backend=backend, carry=carry,
                        on_wave=_progress(quiet, resumed.settings.objective))
    _print(run_dir, fmt if fmt in ("table", "json") else "table")
    raise typer.Exit(130 if outcome.interrupted else 0)


def _print(root: Path, fmt: str) -> None:
    import json

    from rich.table import Table

    from optlab.runs.aggregate import format_stat

    tune = json.loads((root / "tune.json").read_text(encoding="utf-8"))
    if fmt == "json":
        sys.stdout.write(json.dumps({k: v for k, v in tune.items() if k != "final_results"}, indent=2) + "\n")
        return
    final = tune["final_results"]
    groups = {g["group"]: g for g in (final.get("aggregates") or {}).get("groups") or []}
    ranking = tune.get("ranking") or {}
    metric = ranking.get("metric", "accuracy")
    table = Table(title=f"tuned ranking ({tune['settings']['budget']} trials each, test {metric} over final seeds)")
    for col in ("rank", "candidate", f"test {metric}", "best values", "trials (pruned, diverged)"):
        table.add_column(col)
    by_name = {c["name"]: c for c in tune["candidates"]}
    order = ranking.get("order") or []
    ranks = {r["group"]: r.get("rank") for r in ranking.get("ranks") or []}
    for name in [*order, *(n for n in by_name if n not in order)]:
        c = by_name[name]
        stat = (groups.get(name) or {}).get("test", {}).get(metric)
        if stat is None:  # one final seed: no aggregate, the single run's value
            run = next((r for r in final["runs"] if r.get("name") in c["finals"]), None)
            value = ((run or {}).get("test") or {}).get(metric)
            stat = None if value is None else {"mean": value, "std": None, "n": 1}
        values = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in ((c["best"] or {}).get("params") or {}).items())
        b = c["budget"]
        table.add_row(str(ranks.get(name, "-")), name, format_stat(stat), values or "-",
                      f"{b['trials']} ({b['pruned']}, {b['diverged_or_failed']})")
    console = stderr_console()
    from rich.console import Console

    Console(width=160).print(table)
    if ranking.get("text"):
        sys.stdout.write(ranking["text"] + "\n")
    for c in tune["candidates"]:
        for edge in c["edges"]:
            console.print(f"[yellow]note:[/] {edge}")
    console.print(f"results in [bold]{root}[/] (report.md, tune.json, study.db)")


def _write_preset(loaded: LoadedPreset, outcome: Any, path: Path) -> None:
    """A compare preset with each candidate at its best trial's values."""
    import json

    import tomli_w

    from optlab.preset.loader import load_preset_text
    from optlab.runs.files import atomic_write_text

    raw = json.loads(json.dumps(loaded.raw))
    for key in ("tune", "sweep", "extends"):
        raw.pop(key, None)
    by_name = {r.get("name"): r for r in raw.get("runs") or [] if isinstance(r, dict)}
    runs = []
    for c in outcome.candidates:
        best = c.best(outcome.settings.objective == "val_accuracy")
        if best is None:
            continue
        run = dict(by_name.get(c.name) or {"name": c.name})
        run.pop("search", None)
        run["name"] = c.name
        optimizer = c.spec.optimizer.model_dump()
        for key, value in best.params.items():
            if key in ("beta1", "beta2"):
                betas = list(optimizer.get("betas") or (0.9, 0.999))
                betas[int(key[-1]) - 1] = value
                optimizer["betas"] = betas
            else:
                optimizer[key] = value
        run["optimizer"] = optimizer
        runs.append(run)
    raw["runs"] = runs
    raw["description"] = f"{raw.get('description', '')} Tuned by optlab tune ({outcome.settings.budget} trials each).".strip()
    text = tomli_w.dumps(raw)
    load_preset_text(text, str(path))  # what is written must load
    if path.exists():
        raise OptlabError(f"--write-preset {path}: exists; optlab never overwrites a preset")
    atomic_write_text(path, text)
