"""Load presets: find them by name, path or URL, parse TOML, follow `extends`, apply `--set`
overrides, validate, and resolve each `[[runs]]` entry (expanded over its sweep and seeds)
into a complete `ResolvedRun`.

Every failure raises `PresetError` whose message names the file, the field path, the bad
value and what is allowed.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from pydantic import ValidationError

from optlab.errors import PresetError
from optlab.preset.expand import expand
from optlab.preset.fetch import fetch_text, is_url, url_stem
from optlab.preset.names import safe_name
from optlab.preset.optional import drop_unavailable_runs, multiplier_sweep_notes
from optlab.preset.overrides import apply_overrides, drop_other_seed
from optlab.preset.schedule_notes import schedule_notes
from optlab.preset.schema import TRAIN_DEFAULTS, Preset, RunConfig
from optlab.preset.validation_errors import format_validation_error
from optlab.spec import ModelConfig, ResolvedRun

MAX_EXTENDS_DEPTH = 16

PROJECT_PRESETS = Path("presets")
# [data] fields that name the user's files: relative to the preset file that writes them.
LOCAL_PATH_FIELDS = ("path", "test_path")


def bundled_dir() -> Path:
    return Path(str(resources.files("optlab") / "bundled_presets"))


def user_dir() -> Path:
    override = os.environ.get("OPTLAB_PRESETS")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("optlab")) / "presets"


@dataclass(frozen=True)
class PresetSource:
    name: str
    path: Path
    origin: str  # "project", "user" or "bundled"


def preset_sources() -> list[PresetSource]:
    """Every preset file, in resolution order: project, user, bundled (first wins by name)."""
    found: list[PresetSource] = []
    for origin, folder in (("project", PROJECT_PRESETS), ("user", user_dir()), ("bundled", bundled_dir())):
        if folder.is_dir():
            found.extend(PresetSource(p.stem, p, origin) for p in sorted(folder.glob("*.toml")))
    return found


def looks_like_path(ref: str) -> bool:
    return Path(ref).suffix == ".toml" or os.sep in ref or "/" in ref


def find_preset(ref: str, skip: Path | None = None) -> Path:
    """A preset reference is a path to a TOML file or the name of a known preset. `skip` is the
    resolved path of the preset that extends `ref`: when it is itself a preset named `ref`, the
    name means the next one down the resolution order (project → user → bundled), so a project
    preset can extend the user or bundled one it shadows, and that one the bundled one."""
    path = Path(ref)
    if looks_like_path(ref):
        if not path.is_file():
            raise PresetError(f"{ref}: no such preset file")
        return path
    sources = [s for s in preset_sources() if s.name == ref]
    below = [i for i, s in enumerate(sources) if s.path.resolve() == skip]
    for source in sources[below[0] + 1 :] if below else sources:
        if source.path.resolve() != skip:
            return source.path
    if skip is not None and any(s.name == ref for s in preset_sources()):
        raise PresetError(f"preset {ref!r} extends itself and no other preset of that name exists")
    names = sorted({s.name for s in preset_sources()})
    hint = difflib.get_close_matches(ref, names, n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise PresetError(f"unknown preset {ref!r}{suggestion}; known presets: {', '.join(names)}")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PresetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise PresetError(f"{path}: not a UTF-8 text file") from None
    return parse_toml(text, str(path))


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message already carries "(at line L, column C)".
        raise PresetError(f"{origin}: malformed TOML: {exc}") from None


# ---------------------------------------------------------------- validation


def validate_preset(raw: dict[str, Any], origin: str) -> Preset:
    try:
        preset = Preset.model_validate(raw)
    except ValidationError as exc:
        raise PresetError(format_validation_error(exc, origin, raw, Preset)) from None
    from optlab.preset.checks import data_error

    problem = data_error(preset.data)
    if problem:
        raise PresetError(f"{origin}: data: {problem}")
    # Each run, over its sweep and seeds, must also resolve (model overrides, torch
    # signatures, task fit): a preset that validates can be trained.
    for variant in expand(preset, origin):
        resolve_run(preset, variant.run, origin, group=variant.group)
    if preset.target is not None:
        from optlab.preset.checks import target_error

        problem = target_error(preset)
        if problem:
            raise PresetError(f"{origin}: target: {problem}")
    return preset


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def train_fields(preset: Preset, run: RunConfig) -> dict[str, Any]:
    """A run's training fields as plain data: defaults <- [train] <- what the run itself sets.
    An optimizer or scheduler of another name replaces [train]'s instead of merging into it;
    one without a name (`optimizer = { lr = 3e-4 }`) keeps [train]'s. Only what was written
    counts: a default of the run's model (say the optimizer name "sgd") must not override
    [train]. No validation against torch here (see `resolve_run`)."""
    train = preset.train.model_dump(exclude_none=True)
    train.pop("seeds", None)  # expand() has already turned seeds into one run per seed
    own = run.model_dump(exclude_none=True, exclude_unset=True, exclude={"name", "model", "seeds", "optional", "search"})
    for key in ("optimizer", "scheduler"):
        if key in own and key in train and own[key].get("name", train[key]["name"]) != train[key]["name"]:
            train.pop(key)
    merged = _merge(_merge(TRAIN_DEFAULTS, train), own)
    merged.setdefault("optimizer", {"name": "sgd", "lr": 0.01})
    merged.setdefault("scheduler", {"name": "constant"})
    return merged


def resolve_run(
    preset: Preset, run: RunConfig, origin: str = "preset", device: str = "cpu", group: str | None = None
) -> ResolvedRun:
    """`train_fields` validated into a ResolvedRun, with the checks that need torch."""
    from optlab.preset.checks import check_run

    merged = train_fields(preset, run)
    where = f"{origin}: runs ({run.name})"
    try:
        model = ModelConfig.model_validate(_merge(preset.model.model_dump(), run.model or {}))
    except ValidationError as exc:
        raise PresetError(format_validation_error(exc, f"{where}: model", {}, ModelConfig)) from None
    try:
        resolved = ResolvedRun.model_validate(
            {
                **merged,
                "name": run.name,
                "group": group or run.name,
                "data": preset.data,
                "model": model,
                "device": device,
            }
        )
    except ValidationError as exc:
        raise PresetError(format_validation_error(exc, where, {}, ResolvedRun)) from None
    problem = check_run(resolved)
    if problem:
        raise PresetError(f"{where}: {problem}")
    return resolved


@dataclass
class LoadedPreset:
    preset: Preset
    path: Path | None
    raw: dict[str, Any]
    url: str | None = None  # set for a preset fetched from the web: `compare` asks before running it
    # `optional = true` runs left out because something they name is not available here: one
    # sentence each, for the front end to show (the loader never prints).
    left_out: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return self.url or (str(self.path) if self.path else self.preset.name)

    @property
    def notes(self) -> list[str]:
        """What the front end should tell before training: optional runs left out, sweeps
        whose learning rates are multipliers (Prodigy-style optimizers), and schedulers the
        runs are too short for."""
        runs = [(v.group, train_fields(self.preset, v.run)) for v in expand(self.preset, self.origin)]
        return [*self.left_out, *multiplier_sweep_notes(self.preset, self.origin), *schedule_notes(runs, self.origin)]

    def resolved_runs(self, device: str = "cpu") -> list[ResolvedRun]:
        """Every run to train: each `[[runs]]` entry over its sweep and seeds, in preset order."""
        return [
            resolve_run(self.preset, v.run, self.origin, device, group=v.group)
            for v in expand(self.preset, self.origin)
        ]


# ---------------------------------------------------------------- extends


def _merge_runs(base: list[Any], over: list[Any]) -> list[Any]:
    """A run of the extending preset with a base run's name changes that run; others are added."""
    out = list(base)
    index = {r.get("name"): i for i, r in enumerate(out) if isinstance(r, dict)}
    for run in over:
        name = run.get("name") if isinstance(run, dict) else None
        if name is not None and name in index:
            out[index[name]] = _merge_tables(out[index[name]], run)
        else:
            out.append(run)
    return out


def _merge_tables(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge for `extends`, with the resolution rule: an optimizer or scheduler of another
    name replaces the inherited one (an Adam run does not inherit SGD's momentum)."""
    out = dict(base)
    for key, value in over.items():
        drop_other_seed(out, key)
        old = out.get(key)
        if key == "runs" and isinstance(value, list) and isinstance(old, list):
            out[key] = _merge_runs(old, value)
        elif isinstance(value, dict) and isinstance(old, dict):
            renamed = key in ("optimizer", "scheduler") and value.get("name", old.get("name")) != old.get("name")
            out[key] = dict(value) if renamed else _merge_tables(old, value)
        else:
            out[key] = value
    return out


def anchor_paths(raw: dict[str, Any], origin: str, folder: Path | None, url: str | None) -> dict[str, Any]:
    """`raw` with its data files made absolute: relative to `folder` (the preset file's), or to
    the working directory for a preset without a file (text, `--set`). The resolved runs then
    name the same files wherever they are resumed from. A preset fetched from a URL may name
    no local file at all: whoever wrote it does not know this machine's files."""
    data = raw.get("data")
    named = [k for k in LOCAL_PATH_FIELDS if isinstance(data, dict) and isinstance(data.get(k), str)]
    if not named:
        return raw
    assert isinstance(data, dict)
    if url is not None:
        key = named[0]
        raise PresetError(
            f"{origin}: data.{key}: a preset fetched from a URL may not name local files (got {data[key]!r}); "
            f"save it as a local preset, or give the file yourself with --set data.{key}=FILE"
        )
    base = folder if folder is not None else Path.cwd()
    anchored = {k: str((base / Path(data[k]).expanduser()).resolve()) for k in named}
    return {**raw, "data": {**data, **anchored}}


def _read_ref(ref: str, skip: Path | None = None) -> tuple[dict[str, Any], str, Path | None, str | None]:
    """Raw TOML data (its data files made absolute), a label for messages, and the file path
    or URL it came from."""
    if is_url(ref):
        return anchor_paths(parse_toml(fetch_text(ref), ref), ref, None, ref), ref, None, ref
    path = find_preset(ref, skip)
    return anchor_paths(read_toml(path), str(path), path.parent, None), str(path), path, None


def resolve_extends(
    raw: dict[str, Any], origin: str, path: Path | None, url: str | None, chain: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`raw` merged over the chain of presets it extends. A relative path is relative to the
    extending file (or URL); a name is looked up like any preset name."""
    ext = raw.get("extends")
    if ext is None:
        return raw
    if not isinstance(ext, str) or not ext.strip():
        raise PresetError(f"{origin}: extends: expected a preset name, relative path or URL (got {ext!r})")
    chain = chain or (url or str(path.resolve() if path else origin),)
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise PresetError(f"{origin}: extends: more than {MAX_EXTENDS_DEPTH} levels deep")
    if is_url(ext):
        ref = ext
    elif url is not None and looks_like_path(ext):
        ref = urljoin(url, ext)
    elif path is not None and looks_like_path(ext) and not Path(ext).is_absolute():
        ref = str(path.parent / ext)
    else:
        ref = ext
    try:
        base, base_origin, base_path, base_url = _read_ref(ref, path.resolve() if path else None)
    except PresetError as exc:
        raise PresetError(f"{origin}: extends = {ext!r}: {exc}") from None
    identity = base_url or str(base_path.resolve() if base_path else base_origin)
    if identity in chain:
        cycle = " -> ".join([*chain, identity])
        raise PresetError(f"{origin}: extends: cycle ({cycle})")
    base = resolve_extends(base, base_origin, base_path, base_url, (*chain, identity))
    return _merge_tables(base, {k: v for k, v in raw.items() if k != "extends"})


def with_seeds(raw: dict[str, Any], n: int) -> dict[str, Any]:
    """`--seeds N`: every run repeated over seeds 0..N-1, whatever the preset said."""
    if n < 1:
        raise PresetError(f"--seeds {n}: expected at least 1")
    out = json.loads(json.dumps(raw))
    out.setdefault("train", {})
    if isinstance(out["train"], dict):
        out["train"].pop("seed", None)
        out["train"]["seeds"] = list(range(n))
    for run in out.get("runs") or []:
        if isinstance(run, dict):
            run.pop("seed", None)
            run.pop("seeds", None)
    return out


def load_preset(ref: str, overrides: list[str] | None = None, seeds: int | None = None) -> LoadedPreset:
    """A preset by name, path or http(s) URL, with `extends` followed and overrides applied."""
    raw, origin, path, url = _read_ref(ref)
    # The name defaults to this file's, not to the name of a preset it extends.
    raw.setdefault("name", url_stem(url) if url else safe_name(path.stem, "unnamed") if path else "unnamed")
    raw = resolve_extends(raw, origin, path, url)
    # A file given on the command line is relative to where the command runs.
    raw = anchor_paths(apply_overrides(raw, overrides or []), origin, None, None)
    if seeds is not None:
        raw = with_seeds(raw, seeds)
    # A value given on the command line is not in the file: say so, or the user looks for it there.
    given = [f"--set {item}" for item in overrides or []] + ([f"--seeds {seeds}"] if seeds is not None else [])
    try:
        raw, left_out = drop_unavailable_runs(raw, origin)
        preset = validate_preset(raw, origin)
    except PresetError as exc:
        if not given:
            raise
        raise PresetError(str(exc).replace(f"{origin}: ", f"{origin} (with {' '.join(given)}): ")) from None
    return LoadedPreset(preset, path, raw, url, left_out)


def load_preset_text(text: str, origin: str = "<preset>") -> LoadedPreset:
    raw = anchor_paths(resolve_extends(parse_toml(text, origin), origin, None, None), origin, None, None)
    raw, left_out = drop_unavailable_runs(raw, origin)
    return LoadedPreset(validate_preset(raw, origin), None, raw, left_out=left_out)
