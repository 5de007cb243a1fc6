"""The LR range test's record: lr_find.json (every point, the suggestion, stop reason and
fingerprints of each run), lr_find.csv (one row per point) and lr_find.md, written atomically.

The document holds no timings, so the same preset, settings and device give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from optlab.runs.files import atomic_write_json, atomic_write_text

VERSION = 1
# What `--format json` promises for each run (the file holds more).
RUN_KEYS = ("name", "suggestion", "range", "min_loss_lr", "confidence", "stopped", "points")


def run_entry(name: str, optimizer: dict[str, Any], combined: dict[str, Any], seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """One run: the combined reading, the first seed's curve as `points`, and every seed's own."""
    first = seeds[0]
    return {
        "name": name,
        "optimizer": optimizer,
        "suggestion": combined["suggestion"],
        "range": combined["range"],
        "min_loss_lr": combined["min_loss_lr"],
        "confidence": combined["confidence"],
        "stopped": first["stopped"],
        "detail": first["detail"],
        "points": first["points"],
        "median_suggestion": combined["median_suggestion"],
        "spread_decades": combined["spread_decades"],
        "notes": combined["notes"],
        "init_fingerprint": first["init_fingerprint"],
        "data_fingerprint": first["data_fingerprint"],
        "plugin_fingerprint": first["plugin_fingerprint"],
        "provenance": first["provenance"],
        "seeds": seeds,
    }


def document(preset: str, device: str, settings: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"v": VERSION, "kind": "lr_find", "preset": preset, "device": device, "settings": settings, "runs": runs}


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def to_csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "seed", "step", "lr", "loss", "smoothed"])
    for run in doc["runs"]:
        for seed in run["seeds"]:
            for step, p in enumerate(seed["points"], start=1):
                writer.writerow([run["name"], seed["seed"], step, repr(p["lr"]), repr(p["loss"]), repr(p["smoothed"])])
    return buf.getvalue()


def lr_text(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3g}"


def range_text(span: list[float] | None) -> str:
    return "—" if not span else f"{lr_text(span[0])} – {lr_text(span[1])}"


def to_markdown(doc: dict[str, Any]) -> str:
    s = doc["settings"]
    lines = [
        f"# LR range test: {doc['preset']}",
        "",
        f"lr from {s['start']:g} to {s['end']:g} over {s['steps']} steps, {s['loss']} loss, "
        f"stop at {s['stop_factor']:g}x the best smoothed loss, device {doc['device']}.",
        "",
        "| run | optimizer | suggestion | range | min loss lr | confidence | stopped | seeds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in doc["runs"]:
        lines.append(
            f"| {run['name']} | {run['optimizer'].get('name', '')} | {lr_text(run['suggestion'])} | "
            f"{range_text(run['range'])} | {lr_text(run['min_loss_lr'])} | {run['confidence']} | "
            f"{run['stopped']} | {len(run['seeds'])} |"
        )
    notes = [(run["name"], n) for run in doc["runs"] for n in [run["detail"], *run["notes"]] if n]
    if notes:
        lines += ["", *[f"- **{name}:** {note}" for name, note in notes]]
    lines += [
        "",
        "A low confidence gives no suggestion: read the curve (lr_find.csv) instead. Method and "
        "limits: docs/lr-find.md.",
    ]
    return "\n".join(lines) + "\n"


LR_FIND_PARTIAL = "lr_find.partial.json"  # the runs tested so far, while the test goes on


def write_lr_find_partial(root: Path, doc: dict[str, Any], total: int) -> None:
    """The document so far, for a live view (the TUI draws each run's curve as it is done);
    removed once lr_find.json is written."""
    atomic_write_json(root / LR_FIND_PARTIAL, {**doc, "partial": {"tested": len(doc["runs"]), "of": total}})


def write_lr_find(root: Path, doc: dict[str, Any]) -> None:
    atomic_write_json(root / "lr_find.json", doc)
    atomic_write_text(root / "lr_find.csv", to_csv(doc))
    atomic_write_text(root / "lr_find.md", to_markdown(doc))
    (root / LR_FIND_PARTIAL).unlink(missing_ok=True)
