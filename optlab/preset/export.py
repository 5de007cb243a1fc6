"""The exact preset of a run directory, as a file to keep or share.

A run directory's `preset.toml` is the resolved preset that produced it (`extends` followed,
`--set` and `--seeds` applied). `export_text` turns it into a preset file that states its seed
explicitly and carries the optlab and torch versions and the device as comments;
`save_to_user_dir` writes that file into the user's preset directory (the TUI's save key), under
a name that neither overwrites nor shadows any preset already known.

Plain files and TOML only: no torch, no run-store imports (presets are the bottom layer).
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from optlab.errors import OptlabError, RunDirError
from optlab.preset.loader import load_preset_text, parse_toml, preset_sources, user_dir
from optlab.preset.names import safe_name
from optlab.preset.schema import TRAIN_DEFAULTS

MAX_SUFFIX = 1000


def _results(run_dir: Path) -> dict[str, Any]:
    """results.json, or {} while training has not written it (a live experiment)."""
    path = run_dir / "results.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: cannot read ({exc})") from None
    return data if isinstance(data, dict) else {}


def run_dir_preset(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The raw preset of a run directory (preset.toml, else results.json's copy), with its seed
    stated, and the results document ({} if none yet)."""
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a run directory (no such directory)")
    results = _results(run_dir)
    preset_file = run_dir / "preset.toml"
    if preset_file.is_file():
        raw = parse_toml(preset_file.read_text(encoding="utf-8"), str(preset_file))
    elif isinstance(results.get("preset"), dict):
        raw = dict(results["preset"])
    else:
        raise RunDirError(f"{run_dir}: not a run directory (no preset.toml or results.json)")
    # State the seed even where the default was used: the file must not depend on what a later
    # optlab's default is.
    train = raw.setdefault("train", {})
    if isinstance(train, dict) and "seeds" not in train and "seed" not in train:
        train["seed"] = TRAIN_DEFAULTS["seed"]
    raw.pop("extends", None)
    return raw, results


def _versions(results: dict[str, Any]) -> tuple[str, str]:
    from optlab import __version__

    try:
        installed_torch: str | None = metadata.version("torch")  # importing torch would cost seconds
    except metadata.PackageNotFoundError:
        installed_torch = None
    optlab_v = str(results.get("optlab_version") or f"{__version__} (installed now; not recorded)")
    torch_v = str(results.get("torch_version") or f"{installed_torch} (installed now; not recorded)")
    return optlab_v, torch_v


def export_text(run_dir: Path, name: str | None = None, made_by: str | None = None) -> str:
    """The preset that produced `run_dir` as TOML, headed by comments: how it was made
    (`made_by`, default the `optlab presets export` command), the versions and device, and its
    runs and seeds. `name` renames the preset. The text is validated before it is returned."""
    import tomli_w

    raw, results = run_dir_preset(run_dir)
    if name is not None:
        raw["name"] = name
    text = tomli_w.dumps(raw)
    runs = load_preset_text(text, str(run_dir / "preset.toml")).resolved_runs()  # must validate as it stands
    seeds = sorted({r.seed for r in runs})
    optlab_v, torch_v = _versions(results)
    header = [
        f"# {made_by or f'Exported by `optlab presets export {run_dir}`'}: the exact preset of that run directory.",
        f"# Produced with optlab {optlab_v} and torch {torch_v} on {results.get('device') or 'unknown device'}.",
        "# The same versions on the same kind of device reproduce the same histories; torch does not",
        "# promise identical numbers across releases or platforms.",
        f"# {len(runs)} run(s), seed(s) {', '.join(str(s) for s in seeds)}: {', '.join(r.name for r in runs)}",
        "# Reproduce with: optlab compare THIS_FILE.toml",
        "",
    ]
    return "\n".join(header) + text


def safe_stem(name: str) -> str:
    """A file name from a preset name that is also a preset name `optlab compare NAME` finds
    (the one rule of optlab.preset.names), at most 80 characters."""
    return safe_name(name[:80].strip("-._+ ") or "preset", "preset")[:80].rstrip("-._+") or "preset"


def save_to_user_dir(run_dir: Path, folder: Path | None = None) -> Path:
    """Write the run directory's preset into the user's preset directory and return the file.

    The file is named after the preset; when that name is taken by any known preset (a file in
    this folder, or a project or bundled preset it would shadow, like `quickstart`), `-2`, `-3`,
    ... is added, and the preset's `name` follows the file's. Nothing is ever overwritten."""
    folder = user_dir() if folder is None else folder
    raw, _ = run_dir_preset(run_dir)
    stem = safe_stem(str(raw.get("name") or run_dir.name))
    taken = {source.name for source in preset_sources()}
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptlabError(f"{folder}: cannot create the preset directory ({exc.strerror or exc})") from None
    for n in range(1, MAX_SUFFIX):
        candidate = stem if n == 1 else f"{stem}-{n}"
        path = folder / f"{candidate}.toml"
        if candidate in taken or path.exists():
            continue
        text = export_text(run_dir, name=candidate, made_by=f"Saved from the optlab TUI, run directory {run_dir}")
        try:
            with open(path, "x", encoding="utf-8") as fh:  # "x": never replaces a file that appeared meanwhile
                fh.write(text)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OptlabError(f"{path}: cannot write ({exc.strerror or exc})") from None
        return path
    raise OptlabError(f"{folder}: no free file name for preset {stem!r}")
