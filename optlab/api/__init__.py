"""optlab from Python (a notebook, a script): the services the CLI uses, without a terminal.

    import optlab
    exp = optlab.compare("quickstart", set={"train.epochs": 5}, out="runs/q")
    exp.table(); exp.ranking(); exp.runs["adam"].history
    exp = optlab.load("runs/q")                  # a finished or running run directory
    both = optlab.load("runs/a") + optlab.load("runs/b")   # refused unless comparable

Errors raise `optlab.OptlabError` subclasses with the CLI's one-line messages; nothing is
printed unless asked (`progress=True`). See docs/api.md.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from optlab.api.experiment import Experiment, History, Run, TableRow
from optlab.errors import OptlabError, PresetError
from optlab.runs.document import ResultsDocument

if TYPE_CHECKING:
    from optlab.preset.loader import LoadedPreset
    from optlab.training.events import Event

Overrides = Mapping[str, object] | Sequence[str] | None


def _override_list(overrides: Overrides) -> list[str]:
    """`{"train.epochs": 5}` as the CLI's `--set train.epochs=5` (values written as TOML, which
    is how `--set` reads them); a list of "key=value" strings passes as it is."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        import tomli_w

        out = []
        for key, value in overrides.items():
            try:
                text = tomli_w.dumps({"v": value}).strip().removeprefix("v = ")
            except TypeError:
                raise PresetError(f"set {key}={value!r}: not a TOML value (a number, string, bool, list or table)") from None
            out.append(f"{key}={text}")
        return out
    return [str(item) for item in overrides]


def _check_device(device: str) -> str:
    """The CLI's `--device` check (optlab.cli.common.check_device), with the same messages."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise OptlabError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise OptlabError(f"--device {device}: CUDA is not available here; use --device cpu or auto")
    return device


def _load(preset: str, overrides: Overrides, seeds: int | None, plugins: Sequence[str], yes: bool) -> LoadedPreset:
    from optlab.preset.loader import load_preset
    from optlab.registry import load_plugins

    if plugins:
        load_plugins(list(plugins))
    loaded = load_preset(preset, _override_list(overrides), seeds=seeds)
    if loaded.url is not None and not yes:
        raise PresetError(f"{loaded.url}: a preset from a URL runs only after confirmation; check its runs and pass yes=True")
    return loaded


class _Progress:
    """progress=True: one line on stderr per epoch and per run end (the console's progress bars
    are rich's, a front end's)."""

    def handle(self, event: Event) -> None:
        from optlab.training.events import EpochEnded, RunEnded

        if isinstance(event, EpochEnded):
            val = "" if event.val_accuracy is None else f", val accuracy {event.val_accuracy:.4f}"
            sys.stderr.write(f"optlab: {event.run} epoch {event.epoch}: train loss {event.train_loss:.4f}{val}\n")
        elif isinstance(event, RunEnded):
            sys.stderr.write(f"optlab: {event.run} {event.status}{f' ({event.reason})' if event.reason else ''}\n")


def compare(
    preset: str = "quickstart",
    *,
    set: Overrides = None,  # noqa: A002 - the CLI's --set, by its name
    out: str | Path | None = None,
    seeds: int | None = None,
    device: str = "auto",
    backend: str = "local",
    devices: Sequence[str] | None = None,
    threads: int | None = None,
    charts: bool = True,
    progress: bool = False,
    plugins: Sequence[str] = (),
    yes: bool = False,
) -> Experiment:
    """Train every run of `preset` side by side into a run directory (`out`, default
    runs/DATE-PRESET), as `optlab compare` does, and return it as an Experiment. Ctrl-C (a
    notebook's interrupt) stops the runs and returns what was done, resumable with
    `optlab resume`. Raises OptlabError where the CLI would exit 2."""
    from optlab.experiment import BACKENDS, BackendOptions, check_backend, prepare, train_into
    from optlab.runs.command_line import write_overrides
    from optlab.runs.files import atomic_write_text
    from optlab.runs.store import default_run_dir, prepare_run_dir

    loaded = _load(preset, set, seeds, plugins, yes)
    device = _check_device(device)
    if backend not in BACKENDS:
        raise OptlabError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if devices is not None and backend != "processes":
        raise OptlabError(f"--devices {','.join(devices)}: only the processes backend takes it; add --backend processes")
    where = check_backend(BackendOptions(backend, list(devices) if devices else None, threads))
    root = Path(out) if out is not None else default_run_dir(loaded.preset.name)
    created = [p for p in (root, *root.parents) if not p.exists()]
    prepare_run_dir(root)
    try:
        import tomli_w

        toml = tomli_w.dumps(loaded.preset.model_dump(mode="json", exclude_none=True))
        atomic_write_text(root / "preset.toml", toml)
        write_overrides(root, _override_list(set), seeds)
        specs, data, device = prepare(loaded, device, where)
    except BaseException:
        _discard(root, created)
        raise
    outcome = train_into(root, loaded, specs, data, device, sinks=[_Progress()] if progress else [],
                         backend=where, charts=charts)
    if outcome.storage_error is not None:
        raise outcome.storage_error
    return Experiment(ResultsDocument.parse(outcome.results, str(root / "results.json")), root, outcome.results)


def _discard(root: Path, created: list[Path]) -> None:
    """What `compare` made before training started goes again, as the CLI's does."""
    import contextlib

    from optlab.runs.command_line import OVERRIDES_FILE
    from optlab.runs.owner import release

    release(root)
    with contextlib.suppress(OSError):
        (root / "preset.toml").unlink(missing_ok=True)
        (root / OVERRIDES_FILE).unlink(missing_ok=True)
        for path in created:
            path.rmdir()


def load(path: str | Path) -> Experiment:
    """A run directory, finished or still training (replayed from its events.jsonl, as
    `optlab report` reads it), or a comparison written by `optlab report A B --out DIR`."""
    from optlab.runs.reports import read_run_dir_from

    root = Path(path)
    raw, _, source = read_run_dir_from(root)
    name = root / ("events.jsonl" if source == "events" else "results.json")
    return Experiment(ResultsDocument.parse(raw, str(name)), root, raw)


def combine(experiments: Sequence[Experiment | str | Path], force: bool = False) -> Experiment:
    """One comparison of experiments trained at different times, as `optlab report A B --out`
    makes it: refused (`NotComparable`, naming the first difference) where their fingerprints
    say they are not comparable, unless `force` (then marked). Nothing is written: call
    `.report(out=DIR)`. The source directories are only read."""
    from optlab.runs.combine import SourceDoc
    from optlab.runs.combine import combine as combine_docs

    loaded = [e if isinstance(e, Experiment) else load(e) for e in experiments]
    sources = []
    for i, exp in enumerate(loaded):
        sources.append(SourceDoc(exp.path if exp.path is not None else Path(f"experiment-{i + 1}"), exp._doc()))
    doc = combine_docs(sources, force)
    return Experiment(ResultsDocument.parse(doc, "combined results"), None, doc)


from optlab.api.lr_find import LrFindResult, lr_find  # noqa: E402 - it uses the helpers above

__all__ = [
    "Experiment", "History", "LrFindResult", "OptlabError", "ResultsDocument", "Run", "TableRow", "combine", "compare",
    "load", "lr_find",
]
