"""The experiment service: one experiment into one run directory, on the backend asked for.

`optlab compare`, `optlab resume` and the TUI's training child (which is `optlab compare`) all
go through `train_into`: it assembles the run store, the control file, the executor and the
driver, runs them, and leaves the run directory closed with its reports written. Front ends
add their own sinks (the console's progress) and print the outcome.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optlab.data.datasets import DatasetBundle, load_dataset
from optlab.errors import ClusterLost, RunDirError, StorageError, Terminated
from optlab.preset.loader import LoadedPreset
from optlab.registry import loaded_plugins
from optlab.runs.control import FileControl
from optlab.runs.owner import release
from optlab.runs.publish import write_reports
from optlab.runs.store import RunStore, load_results, read_events
from optlab.spec import ResolvedRun
from optlab.training.checkpoint_policy import CheckpointPolicy
from optlab.training.events import ExperimentEnded, RunEnded
from optlab.training.runner import Control, Runner, resolve_device
from optlab.training.threads import use_threads

if TYPE_CHECKING:
    from optlab.runs.resume import ResumePlan
    from optlab.training.executor import Executor

BACKENDS = ("local", "processes", "ray")


@dataclass(frozen=True)
class BackendOptions:
    """Where the runs train. `devices` (processes only) is a checked list such as
    ["cuda:0", "cuda:1"] or ["cpu", "cpu"] (`optlab.training.processes.parse_devices`);
    `address`, `gpus_per_run` and `cpus_per_run` are the ray backend's (`check_backend`)."""

    name: str = "local"
    devices: list[str] | None = None
    threads: int | None = None
    pace: str = "even"
    max_restarts: int = 2
    address: str | None = None
    gpus_per_run: float | None = None
    cpus_per_run: float = 1.0
    checkpoints: CheckpointPolicy = CheckpointPolicy()
    fuse: str = "off"  # auto: fusion groups train as one stacked model (optlab/training/fused/)


def check_backend(backend: BackendOptions) -> BackendOptions:
    """What can only be checked by asking the backend, before anything is written: for ray,
    that the extra is installed, the cluster answers and some node has the resources a run
    asks for (which also settles the default GPUs per run). Raises OptlabError."""
    if backend.name != "ray":
        return backend
    from optlab.training.ray_cluster import connect
    from optlab.training.ray_executor import check_resources

    ray = connect(backend.address)
    return dataclasses.replace(backend, gpus_per_run=check_resources(ray, backend.gpus_per_run, backend.cpus_per_run))


@dataclass
class Outcome:
    results: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    terminated: bool = False  # the interruption was SIGTERM (errors.Terminated), not Ctrl-C
    # The interruption was the Ray cluster losing the driver's node: what it lost (ClusterLost).
    cluster_lost: str | None = None
    storage_error: StorageError | None = None


def placement_devices(device: str, backend: BackendOptions | None = None) -> tuple[str, str]:
    """(the device the runs are resolved for, the device the driver loads the dataset on): the
    same for the local backend; for worker processes, which each load their own copy on their
    device, the driver keeps its copy on the CPU."""
    if backend is not None and backend.name == "processes":
        devices = backend.devices or ["cpu"]
        return ("cuda" if all(d.startswith("cuda") for d in devices) else "cpu"), "cpu"
    if backend is not None and backend.name == "ray":
        return ("cuda" if backend.gpus_per_run else "cpu"), "cpu"
    device = resolve_device(device)
    return device, device


def prepare(
    loaded: LoadedPreset, device: str = "auto", backend: BackendOptions | None = None
) -> tuple[list[ResolvedRun], DatasetBundle, str]:
    """Resolve the runs and load the dataset once for all of them."""
    device, data_device = placement_devices(device, backend)
    return loaded.resolved_runs(device), load_dataset(loaded.preset.data, data_device), device


def make_executor(
    backend: BackendOptions, data: DatasetBundle, device: str, specs: list[ResolvedRun] | None = None
) -> Executor:
    if backend.name == "processes":
        from optlab.training.processes import ProcessExecutor, default_devices

        plugins = loaded_plugins()
        fuse = specs if backend.fuse == "auto" and specs else None
        return ProcessExecutor(backend.devices or default_devices(), backend.threads, plugins, fuse)
    if backend.name == "ray":
        plugins = loaded_plugins()
        if backend.fuse == "auto" and specs:
            from optlab.training.ray_fused import FusedRayExecutor

            return FusedRayExecutor(data, specs, backend.address, backend.gpus_per_run, backend.cpus_per_run,
                                    backend.threads, plugins)
        from optlab.training.ray_executor import RayExecutor

        return RayExecutor(data, backend.address, backend.gpus_per_run, backend.cpus_per_run, backend.threads, plugins)
    from optlab.training.executor import LocalExecutor

    use_threads(backend.threads)
    if backend.fuse == "auto" and specs:
        from optlab.training.fused.host import FusedLocalExecutor

        return FusedLocalExecutor(data, device, specs)
    return LocalExecutor(data, device)


@contextlib.contextmanager
def _interrupts_wind_down(runner: Runner) -> Iterator[None]:
    """While the runs train, a first Ctrl-C (or SIGTERM, a scheduler's preemption) asks the
    driver to stop them at a safe point with a state to resume from: a KeyboardInterrupt raised
    mid-step could not save one. A second one acts as the handler outside training does (Ctrl-C
    interrupts at once; SIGTERM raises Terminated where it lands)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}
    previous = {sig: signal.getsignal(sig) for sig in raised}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def first(signum: int, frame: object) -> None:
        restore()
        runner.interrupt(raised[signal.Signals(signum)])

    for sig in raised:
        signal.signal(sig, first)
    try:
        yield
    finally:
        restore()


def run_experiment(
    loaded: LoadedPreset,
    device: str = "auto",
    sinks: Iterable[Any] = (),
    control: Control | None = None,
    backend: BackendOptions | None = None,
) -> dict[str, RunEnded]:
    """Train a preset's runs into `sinks` only (no run directory): tests and benchmarks."""
    backend = check_backend(backend or BackendOptions())
    specs, data, device = prepare(loaded, device, backend)
    runner = Runner(
        specs, data, device, sinks, control, preset=loaded.preset.model_dump(mode="json"),
        executor=make_executor(backend, data, device, specs), pace=backend.pace, max_restarts=backend.max_restarts,
    )
    return runner.run()


def train_into(
    root: Path,
    loaded: LoadedPreset,
    specs: list[ResolvedRun],
    data: DatasetBundle,
    device: str,
    *,
    sinks: Iterable[Any] = (),
    backend: BackendOptions | None = None,
    plan: ResumePlan | None = None,
    on_interrupt: Callable[[], None] = lambda: None,
    cleanup_guard: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    charts: bool = True,
) -> Outcome:
    """Run the experiment into `root` (fresh, or continuing `plan`). Ctrl-C or SIGTERM stops
    every run and keeps what was done: during training at a safe point, each run saved where it
    stopped (`_interrupts_wind_down`); otherwise as the front end's handler raises it
    (`KeyboardInterrupt`, `Terminated`). `on_interrupt` runs first, e.g. to make a second
    Ctrl-C leave at once; the cleanup after training runs inside `cleanup_guard`; `charts`: the
    reports' charts and report.html too. The extra sinks are closed (when they have `close`)
    before the run store."""
    backend = backend or BackendOptions()
    extra = list(sinks)
    if plan is not None:
        # Controls belong to the process that was stopped: a resumed run starts unpaused.
        (root / "control.json").unlink(missing_ok=True)
    store = RunStore(root, resume=plan is not None)
    runner = Runner(
        specs,
        data,
        device,
        [store, *extra],
        FileControl(root),
        preset=loaded.preset.model_dump(mode="json"),
        resume=plan.states if plan is not None else None,
        finished=plan.done if plan is not None else (),
        executor=make_executor(backend, data, device, specs),
        pace=backend.pace,
        max_restarts=backend.max_restarts,
        checkpoints=backend.checkpoints,
    )
    outcome = Outcome()
    try:
        with _interrupts_wind_down(runner):
            runner.run()
    except KeyboardInterrupt as exc:
        on_interrupt()
        outcome.interrupted = True
        outcome.terminated = isinstance(exc, Terminated)
        if isinstance(exc, ClusterLost):
            outcome.cluster_lost = str(exc)
    except StorageError as exc:
        outcome.storage_error = exc
    finally:
        with cleanup_guard():
            for sink in extra:
                close = getattr(sink, "close", None)
                if close is not None:
                    close()
            try:
                store.close()
                outcome.results = load_results(root)
                write_reports(root, outcome.results, charts=charts)
            except (StorageError, OSError) as exc:
                outcome.storage_error = outcome.storage_error or StorageError(f"{root}: cannot write ({exc})")
            finally:
                release(root)  # a full disk stopped the close before the owner record went
    return outcome


def close_ended(root: Path, charts: bool = True) -> dict[str, Any]:
    """The results of a run directory whose runs have all ended. Where the record does not say
    the experiment ended (a full disk, or a kill, came after the last run's end and before the
    experiment's), the end is written now, with results.json and the reports, so the directory
    no longer reads as `running`. The caller has claimed `root`."""
    events = read_events(root).events
    last = events[-1] if events else None
    ended = isinstance(last, ExperimentEnded)
    if isinstance(last, ExperimentEnded):
        with contextlib.suppress(RunDirError):
            results = load_results(root)
            if results.get("status") == last.status:
                return results
    store = RunStore(root, resume=True)
    try:
        if not ended:
            store.handle(ExperimentEnded(run="", status="finished", wall_time_s=store.results.get("wall_time_s") or 0.0))
    finally:
        store.close()
    try:
        results = load_results(root)
        write_reports(root, results, charts=charts)
    except OSError as exc:
        raise StorageError(f"{root}: cannot write the reports ({exc.strerror or exc})") from None
    return results
