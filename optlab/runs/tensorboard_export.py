"""A run directory as TensorBoard logs: one TensorBoard run (folder) per optlab run, so
`tensorboard --logdir DIR` shows the experiment with runs side by side.

Per run: training loss and learning rate per reporting interval (`train/loss`, `train/lr`),
per epoch the training and validation metrics and the rate the epoch trained with
(`epoch/...`), the test metrics at the end (`test/...`), and the run's hyperparameters with
the HParams plugin, written into the run's own folder: `SummaryWriter.add_hparams` would make
a separate timestamped run instead (pytorch#32651), so its summaries are written directly.
The x axis is the optimizer step; wall times are the run's own (start + training time), so
an export of the same run directory gives the same scalars.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optlab.errors import OptlabError
from optlab.runs.reports import read_run_dir
from optlab.runs.store import read_events
from optlab.training.events import EpochEnded, ExperimentStarted, Progress

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from optlab.training.events import Event

EXTRA = "tensorboard"
EPOCH_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_rmse", "lr")
TEST_KEYS = ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc", "loss", "mse", "rmse", "mae", "r2")


class MissingExtra(OptlabError):
    """An optional extra that a command needs is not installed."""


def _writer_class() -> type[SummaryWriter]:
    try:
        import tensorboard  # noqa: F401  (torch's writer needs the package, and says so less clearly)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MissingExtra(
            "optlab export tensorboard needs the optional extra 'tensorboard': pip install 'optlab[tensorboard]'"
        ) from None
    return SummaryWriter


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """A run's configuration as HParams values (numbers, strings, booleans; lists as text)."""
    optimizer = config.get("optimizer") or {}
    scheduler = config.get("scheduler") or {}
    model = config.get("model") or {}
    flat: dict[str, Any] = {
        "group": config.get("group"), "seed": config.get("seed"), "batch_size": config.get("batch_size"),
        "epochs": config.get("epochs"), "loss": config.get("loss"), "model": model.get("name"),
    }
    flat |= {f"optimizer.{k}" if k != "name" else "optimizer": v for k, v in optimizer.items()}
    flat |= {f"scheduler.{k}" if k != "name" else "scheduler": v for k, v in scheduler.items()}
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, bool | int | float | str) else str(value)
    return out


def _write_run(writer_class: type[SummaryWriter], folder: Path, run: dict[str, Any], events: list[Event],
               start: float) -> None:
    from torch.utils.tensorboard.summary import hparams

    writer = writer_class(log_dir=str(folder))
    try:
        last_step = 0
        for event in events:
            wall = start + float(getattr(event, "elapsed_s", 0.0) or 0.0)
            if isinstance(event, Progress):
                last_step = event.step
                for tag, value in (("train/loss", event.train_loss), ("train/lr", event.lr)):
                    number = _number(value)
                    if number is not None:
                        writer.add_scalar(tag, number, event.step, walltime=wall)
            elif isinstance(event, EpochEnded):
                last_step = event.step
                for key in EPOCH_KEYS:
                    number = _number(getattr(event, key, None))
                    if number is not None:
                        writer.add_scalar(f"epoch/{key}", number, event.step, walltime=wall)
        test = run.get("test") or {}
        metrics = {f"test/{k}": v for k in TEST_KEYS if (v := _number(test.get(k))) is not None}
        end = start + float(run.get("wall_time_s") or 0.0)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, last_step, walltime=end)
        # The HParams summaries in this run's own folder (see the module's docstring).
        experiment, session_start, session_end = hparams(hyperparameters(run.get("config") or {}), metrics)
        file_writer = writer.file_writer
        assert file_writer is not None  # SummaryWriter's constructor made it; only close() clears it
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary, walltime=start)
    finally:
        writer.close()


def export_tensorboard(root: Path, out: Path | None = None) -> Path:
    """Write the TensorBoard logs of the run directory `root` to `out` (default ROOT/tensorboard),
    replacing an earlier export there; returns the folder."""
    writer_class = _writer_class()
    results, _ = read_run_dir(root)
    events = read_events(root).events
    out = out if out is not None else root / "tensorboard"
    if out.exists() and not out.is_dir():
        raise OptlabError(f"--out {out}: exists and is not a directory")
    started = next((e for e in events if isinstance(e, ExperimentStarted)), None)
    start = float(started.time) if started is not None and started.time else 0.0
    by_run: dict[str, list[Event]] = {}
    for event in events:
        if event.run:
            by_run.setdefault(event.run, []).append(event)
    try:
        for run in results.get("runs") or []:
            folder = out / str(run["name"])
            if folder.is_dir():  # a second export replaces the first, rather than doubling every curve
                shutil.rmtree(folder)
            _write_run(writer_class, folder, run, by_run.get(str(run["name"]), []), start)
    except OSError as exc:
        raise OptlabError(f"{out}: cannot write the TensorBoard logs ({exc.strerror or exc})") from None
    return out
