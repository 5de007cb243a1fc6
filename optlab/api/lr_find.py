"""`optlab.lr_find`: the LR range test of a preset's runs, as `optlab lr-find` runs it
(`optlab.runs.lr_find_run`), returned as typed readings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from optlab.errors import OptlabError


class LrPoint(BaseModel):
    model_config = ConfigDict(extra="allow")

    lr: float
    loss: float | None = None
    smoothed: float | None = None


class LrReading(BaseModel):
    """One configuration's range test (lr_find.json's run entry): the suggested learning rate,
    the range it trusts, how sure it is, and the curve."""

    model_config = ConfigDict(extra="allow")

    name: str
    suggestion: float | None = None
    range: list[float] | None = None
    min_loss_lr: float | None = None
    confidence: str | None = None
    stopped: str | None = None
    notes: list[str] = []
    points: list[LrPoint] = []


class LrFindResult(BaseModel):
    """lr_find.json, and the directory it was written to."""

    model_config = ConfigDict(extra="allow")

    path: Path
    preset: str
    device: str
    runs: list[LrReading]

    @property
    def suggestions(self) -> dict[str, float | None]:
        return {run.name: run.suggestion for run in self.runs}


def lr_find(
    preset: str = "quickstart",
    *,
    set: Sequence[str] | dict[str, object] | None = None,  # noqa: A002 - the CLI's --set
    runs: Sequence[str] = (),
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
    seeds: int | None = None,
    loss: str = "train",
    stop_factor: float = 4.0,
    out: str | Path | None = None,
    device: str = "auto",
    threads: int | None = None,
    progress: bool = False,
    plugins: Sequence[str] = (),
    yes: bool = False,
) -> LrFindResult:
    """`optlab lr-find PRESET`: each configuration's learning rate read off an LR range test,
    written to `out` (default runs/DATE-PRESET-lrfind). Raises OptlabError as the CLI exits 2."""
    from optlab.api import _check_device, _load
    from optlab.runs.lr_find_run import lr_find_into, select_groups
    from optlab.runs.store import default_run_dir, prepare_run_dir
    from optlab.training.lr_find import RangeTestSettings, check_optimizer
    from optlab.training.runner import resolve_device
    from optlab.training.threads import use_threads

    if loss not in ("train", "val"):
        raise OptlabError(f"--loss {loss!r}: expected train or val")
    settings = RangeTestSettings(start=start, end=end, steps=steps, loss=loss, stop_factor=stop_factor)  # type: ignore[arg-type]
    settings.check()
    loaded = _load(preset, set, seeds, plugins, yes)
    device = resolve_device(_check_device(device))
    use_threads(threads)
    groups = select_groups(loaded.resolved_runs(device), list(runs))
    for members in groups.values():
        check_optimizer(members[0])
    root = Path(out) if out is not None else default_run_dir(f"{loaded.preset.name}-lrfind")
    created = [p for p in (root, *root.parents) if not p.exists()]
    prepare_run_dir(root)
    doc = lr_find_into(root, loaded, groups, device, settings, not progress, created)
    return LrFindResult.model_validate({**doc, "path": root})
