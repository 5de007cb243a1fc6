"""Optuna's side: studies in one storage, seeded samplers, pruners, and the quasi-random points.

Optuna is imported here only (and lazily): `optlab tune` without the `tune` extra is one line
naming the extra, and nothing else in optlab needs it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from optlab.errors import OptlabError
from optlab.tuning.space import Param, Space

OPTUNA_EXTRA = "pip install 'optlab[tune]'"
MISSING = f"optlab tune needs Optuna, which is not installed: {OPTUNA_EXTRA}"


def check_optuna() -> None:
    """`require_optuna`'s check without importing Optuna: `optlab tui --tune` answers before
    its child starts, and the TUI process stays small."""
    import importlib.util

    try:
        found = importlib.util.find_spec("optuna") is not None
    except (ImportError, ValueError):  # a broken install, or one made unimportable
        found = False
    if not found:
        raise OptlabError(MISSING)


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise OptlabError(MISSING) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # optlab prints its own progress
    return optuna


def make_sampler(name: str, seed: int, space: Space, budget: int) -> Any:
    """The study's sampler, seeded with the same seed for every candidate. For "qmc" and "grid"
    the service replaces it with `planned_sampler` (`planned_points`), which this one backs up:
    Optuna's GridSampler stops the study from inside `tell` once its grid is done, which
    ask-and-tell does not allow."""
    optuna = require_optuna()
    if name == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate and constant_liar are "experimental"
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


def planned_sampler(points: Sequence[dict[str, Any]], base: Any) -> Any:
    """A sampler that gives trial number n the planned point n (qmc and grid), and `base` any
    parameter beyond the plan. Before, each point was enqueued (`enqueue_trial`) and then
    asked: a transaction more per trial and a query of the study's waiting trials at every
    ask. A study from before still has points enqueued and never asked; `ask` takes those
    first, and they are the same points."""
    sampler_base: Any = require_optuna().samplers.BaseSampler  # the optional extra: typed Any

    class Planned(sampler_base):
        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return {}

        def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            return {}

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            if trial.number < len(points) and param_name in points[trial.number]:
                return points[trial.number][param_name]
            return base.sample_independent(study, trial, param_name, param_distribution)

    return Planned()


def grid_values(params: Sequence[Param], budget: int) -> dict[str, list[Any]]:
    """A grid of about `budget` points: each range gets the same number of points (at least 2),
    spaced on its scale; value lists are taken whole."""
    ranges = [p for p in params if p.choices is None]
    fixed = math.prod(len(p.choices or ()) for p in params if p.choices is not None) or 1
    per = max(2, round((budget / fixed) ** (1 / len(ranges)))) if ranges else 0
    out: dict[str, list[Any]] = {}
    for p in params:
        if p.choices is not None:
            out[p.key] = list(p.choices)
        else:
            out[p.key] = [p.from_unit(i / (per - 1)) for i in range(per)]
    return out


def planned_points(space: Space, sampler: str, budget: int, seed: int, keys: Sequence[str],
                   points: np.ndarray) -> list[dict[str, Any]] | None:
    """The trials a qmc or grid study is given, in order (recorded names); None for the
    samplers that choose for themselves. A grid is walked in a seeded order, the same for
    every candidate, and again from the start when the budget is larger than the grid."""
    if sampler == "qmc":
        return [{p.key: p.from_unit(float(points[n][keys.index(p.key)])) for p in space.params} for n in range(budget)]
    if sampler == "grid":
        import itertools

        grid = grid_values(space.params, budget)
        combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
        order = np.random.default_rng(seed).permutation(len(combos))
        return [combos[order[n % len(combos)]] for n in range(budget)]
    return None


def make_pruner(name: str, budget: int) -> Any:
    """The same rule for every candidate, over epochs: ASHA (successive halving from the first
    epoch, a third kept at each rung) or the median of the finished trials at that epoch."""
    optuna = require_optuna()
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, budget // 4), n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def qmc_points(n: int, dims: int, seed: int) -> np.ndarray:
    """The first `n` points of a scrambled Sobol sequence in [0, 1)^dims, the same for a seed.
    Optuna's QMCSampler draws a study's first trial at random and orders dimensions by each
    study's own space; enqueuing these points gives every candidate the same sequence on the
    parameters they share (dimension = the parameter's place among all candidates')."""
    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Sobol's balance warning for n not a power of 2
        return qmc.Sobol(d=max(1, dims), scramble=True, seed=seed).random(n)


_STORAGES: dict[str, Any] = {}


def open_storage(url: str) -> Any:
    """One Optuna storage per URL in this process (every candidate's study shares its engine).
    On SQLite, write-ahead logging with `synchronous = NORMAL`: every ask, tell and attribute
    is a committed transaction, and with SQLite's defaults each one waited for fsyncs of the
    journal and the database (about 225 ms a trial on a busy disk, more than a small trial's
    training). A crash of the process loses nothing committed; a machine that loses power may
    lose the last transactions, which `optlab resume` then trains again."""
    storage = _STORAGES.get(url)
    if storage is not None:
        return storage
    optuna = require_optuna()
    if not url.startswith("sqlite:"):
        storage = url  # Optuna opens other databases with their own settings
    else:
        from sqlalchemy import event

        storage = optuna.storages.RDBStorage(url)

        def pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        event.listen(storage.engine, "connect", pragmas)
        storage.engine.dispose()  # connections opened before the listener reconnect with it
    _STORAGES[url] = storage
    return storage


def create_study(storage: str, study_name: str, direction: str, sampler: Any, pruner: Any,
                 attrs: dict[str, Any]) -> Any:
    optuna = require_optuna()
    try:
        study = optuna.create_study(storage=open_storage(storage), study_name=study_name, direction=direction,
                                    sampler=sampler, pruner=pruner)
    except optuna.exceptions.DuplicatedStudyError:
        raise OptlabError(f"--storage {storage}: a study named {study_name!r} exists already") from None
    except Exception as exc:  # an unreachable database, a bad URL: SQLAlchemy's many errors
        raise OptlabError(f"--storage {storage}: cannot open ({str(exc).splitlines()[0]})") from None
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


def check_storage_url(url: str) -> str:
    """A URL Optuna's RDB storage takes (`dialect[+driver]://...`): one line otherwise."""
    if "://" not in url:
        raise OptlabError(f"--storage {url!r}: expected a database URL such as sqlite:///study.db or postgresql://host/db")
    return url
