"""What `optlab tune` costs beside training, per trial (issue 18), in one run of this script:

    python benchmarks/tune_cost.py [--preset quickstart] [--budget 8] [--epochs 4] [--prune asha]
                                   [--final-seeds 3] [--json FILE]

`optlab tune PRESET --budget N --set train.epochs=E` through the tuning service itself
(`tune_into`, SQLite study.db in a real run directory, one torch thread, the local executor).
Training is the time the executor spends answering the driver's requests (every step,
evaluation and checkpoint state: the same split as driver_cost.py's (h)); the overhead is
everything else of `tune_into`: building each run (its start request: model, optimizer,
fingerprints), Optuna (enqueue, ask, tell, report, should_prune, on SQLite), the run store
(events, results.json, checkpoints written), the driver of each wave, tune.json and the
reports, and the study's set-up (its tables, the Sobol points: once per study). Reported per
trained run (trials and final seeds) and as a share of training time (target < 5%), in wall
seconds and in this process's CPU seconds (steadier on a machine shared with other work).
Pruning (asha by default) is on so that its checks are counted; it also shortens trials, which
makes the share larger, not smaller.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class _Clock:
    """Seconds spent inside the wrapped callables (wall, and this process's CPU: on a machine
    shared with other work the CPU seconds are the steadier measure of what the code costs).
    A call inside another call of the same clock counts once."""

    def __init__(self) -> None:
        self.s = self.cpu_s = 0.0
        self._depth = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:
                return fn(*args, **kwargs)
            self._depth += 1
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                self.s += time.perf_counter() - t0
                self.cpu_s += time.process_time() - c0
        return timed


def tune_cost(preset: str, budget: int, epochs: int, prune: str, final_seeds: int, root: Path) -> dict[str, Any]:
    import optuna

    import optlab.tuning.report as report
    import optlab.tuning.service as service
    from optlab.experiment import BackendOptions, prepare
    from optlab.preset.loader import load_preset
    from optlab.preset.search import TuneConfig
    from optlab.runs.store import RunStore, prepare_run_dir
    from optlab.training.executor import LocalExecutor
    from optlab.training.threads import use_threads

    training, building = _Clock(), _Clock()

    class TimedExecutor(LocalExecutor):
        """The local executor, timing the requests it answers: building a run (start) apart,
        the rest (steps, evaluations, checkpoint states, a run's end) is training."""

        def collect(self, timeout: float):  # type: ignore[no-untyped-def]
            if not self._queue:
                return super().collect(timeout)
            clock = building if self._queue[0][0] == "start" else training
            return clock.wrap(super().collect)(timeout)

    use_threads(1)
    loaded = load_preset(preset, [f"train.epochs={epochs}"])
    settings = TuneConfig(budget=budget, pruner=prune, final_seeds=final_seeds)
    _, data, device = prepare(loaded, "cpu", BackendOptions(threads=1))
    candidates = service.candidates_for(loaded, [], device)
    prepare_run_dir(root)
    # Optuna's, the run store's, the reports' and the study's set-up parts, timed where the
    # service calls them.
    optuna_clock, store_clock, reports_clock, setup_clock = _Clock(), _Clock(), _Clock(), _Clock()
    for cls, names in ((optuna.study.Study, ("ask", "tell", "enqueue_trial", "get_trials")),
                       (optuna.trial.Trial, ("report", "should_prune", "set_user_attr"))):
        for name in names:
            setattr(cls, name, optuna_clock.wrap(getattr(cls, name)))
    for name in ("handle", "checkpoint", "best_checkpoint", "predictions"):
        setattr(RunStore, name, store_clock.wrap(getattr(RunStore, name)))
    report.write_tune_files = reports_clock.wrap(report.write_tune_files)  # type: ignore[assignment]
    # Once per study, not per trial: the studies' tables, scipy's import for the Sobol points.
    service.create_study = setup_clock.wrap(service.create_study)  # type: ignore[assignment]
    service.qmc_points = setup_clock.wrap(service.qmc_points)  # type: ignore[assignment]
    service.make_executor = lambda backend, data, device, specs=None: TimedExecutor(data, device)  # type: ignore[assignment,misc]
    t0, c0 = time.perf_counter(), time.process_time()
    outcome = service.tune_into(root, loaded, candidates, data, device, settings, backend=BackendOptions(threads=1))
    total, total_cpu = time.perf_counter() - t0, time.process_time() - c0
    trials = sum(len(c.trials) for c in outcome.candidates)
    runs = trials + sum(len(c.finals) for c in outcome.candidates)
    overhead, overhead_cpu = total - training.s, total_cpu - training.cpu_s
    per_trial = overhead - setup_clock.s  # what grows with the number of runs
    per_trial_cpu = overhead_cpu - setup_clock.cpu_s
    return {
        "preset": preset, "budget": budget, "epochs": epochs, "prune": prune, "final_seeds": final_seeds,
        "candidates": len(outcome.candidates), "trials": trials, "runs": runs,
        "pruned": sum(t.status == "pruned" for c in outcome.candidates for t in c.trials),
        "total_s": total, "training_s": training.s, "overhead_s": overhead, "optuna_s": optuna_clock.s,
        "building_s": building.s, "store_s": store_clock.s, "setup_s": setup_clock.s,
        "reports_s": reports_clock.s, "overhead_per_run_ms": 1000 * overhead / runs,
        "training_per_run_ms": 1000 * training.s / runs, "overhead_share": overhead / training.s,
        "per_run_share": per_trial / training.s,
        "training_cpu_s": training.cpu_s, "overhead_cpu_s": overhead_cpu,
        "overhead_cpu_share": overhead_cpu / training.cpu_s, "per_run_cpu_share": per_trial_cpu / training.cpu_s,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--prune", default="asha")
    parser.add_argument("--final-seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = tune_cost(args.preset, args.budget, args.epochs, args.prune, args.final_seeds, Path(tmp) / "tune")
    print(f"tune {r['preset']} --budget {r['budget']} (train.epochs={r['epochs']}, prune {r['prune']}): "
          f"{r['candidates']} candidates, {r['trials']} trials ({r['pruned']} pruned) + "
          f"{r['runs'] - r['trials']} final seed runs")
    print(f"overhead outside training: {r['overhead_s']:.2f} s beside {r['training_s']:.2f} s of training "
          f"= {100 * r['overhead_share']:.1f}% (target < 5%); per run {r['overhead_per_run_ms']:.0f} ms beside "
          f"{r['training_per_run_ms']:.0f} ms; of it: study set-up {r['setup_s']:.2f} s (once), building runs "
          f"{r['building_s']:.2f} s, Optuna {r['optuna_s']:.2f} s, run store {r['store_s']:.2f} s, tune.json and "
          f"reports {r['reports_s']:.2f} s")
    print(f"without the set-up: {100 * r['per_run_share']:.1f}% of training; CPU seconds of this process: "
          f"{r['overhead_cpu_s']:.2f} beside {r['training_cpu_s']:.2f} = {100 * r['overhead_cpu_share']:.1f}%, "
          f"{100 * r['per_run_cpu_share']:.1f}% without the set-up")
    if args.json is not None:
        args.json.write_text(json.dumps(r, indent=2))
    return r


if __name__ == "__main__":
    main()
