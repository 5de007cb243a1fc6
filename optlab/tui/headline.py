"""The experiment screen's header line and the chart settings of its status line, as text
(plain functions, so the screen module keeps to its event handling)."""

from __future__ import annotations

from typing import Any

from optlab.runs.formatting import dataset_title
from optlab.runs.grouping import BAND_LABELS


def model_text(preset: dict[str, Any]) -> str:
    model = preset.get("model") or {}
    name = model.get("name", "?")
    if name == "mlp" and model.get("hidden") is not None:
        return f"mlp {model['hidden']}"
    if name == "cnn" and model.get("channels") is not None:
        return f"cnn {model['channels']}"
    return str(name)


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def header_text(doc: dict[str, Any], label: str, elapsed: float) -> str:
    """`optlab │ preset │ mm:ss │ device │ dataset, N train │ model`, with … for what is not known
    yet. The header is one line: what changes and what is short come first, so a narrow
    terminal cuts the model's description, not the clock."""
    preset = doc.get("preset") or {}
    dataset = doc.get("dataset") or {}
    parts = [
        str(preset.get("name") or label),
        clock(elapsed),
        str(doc.get("device") or "device …"),
        f"{dataset_title(dataset)}, {dataset.get('n_train', '?')} train" if dataset else "dataset …",
        model_text(preset) if preset else "model …",
    ]
    return "optlab │ " + " │ ".join(parts)


def settings_text(
    x_axis: str, log_y: bool, smoothing: float, highlight: str | None, band_mode: str | None = None
) -> str:
    """The chart settings in use; `band_mode` only when seeds are repeated (None otherwise)."""
    settings = [f"x: {x_axis}"]
    if log_y:
        settings.append("log")
    if smoothing:
        settings.append(f"EMA {smoothing}")
    if band_mode is not None:
        settings.append("each seed" if band_mode == "seeds" else f"band {BAND_LABELS[band_mode]}")
    if highlight:
        settings.append(f"highlight {highlight}")
    return " · ".join(settings)
