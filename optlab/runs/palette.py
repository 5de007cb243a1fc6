"""One colour palette for runs and one for statuses, shared by the console, the TUI and the
charts and HTML of the reports, so a run has the same colour wherever it is shown.

Run colours are 256-colour codes from the xterm colour cube (truecolor terminals show the same
colours); `hex_color` gives the same colour for SVG and HTML.
"""

from __future__ import annotations

# No two are close, none is the red of a failure.
PALETTE = (39, 208, 42, 205, 184, 141, 80, 179, 112, 203, 33, 220)
FADED = 240  # grey of the runs that are not highlighted

# Status -> (rich style, hex colour of the same meaning for SVG/HTML).
STATUS_COLORS = {
    "pending": ("dim", "#8a8a8a"),
    "running": ("blue", "#0087ff"),
    "finished": ("green", "#00a000"),
    "early_stopped": ("cyan", "#00a0a0"),
    "stopped": ("yellow", "#b8a000"),
    "diverged": ("bold red", "#d70000"),
    "failed": ("bold red", "#d70000"),
}
STATUS_STYLES = {status: style for status, (style, _) in STATUS_COLORS.items()}
STATUS_HEX = {status: code for status, (_, code) in STATUS_COLORS.items()}

_CUBE_LEVELS = (0, 95, 135, 175, 215, 255)


def run_color(index: int) -> int:
    return PALETTE[index % len(PALETTE)]


def rich_color(code: int) -> str:
    return f"color({code})"


def hex_color(code: int) -> str:
    """The xterm-256 colour `code` as #rrggbb (the colour cube and the grey ramp)."""
    if 16 <= code <= 231:
        r, g, b = (code - 16) // 36, (code - 16) // 6 % 6, (code - 16) % 6
        return "#" + "".join(f"{_CUBE_LEVELS[c]:02x}" for c in (r, g, b))
    if 232 <= code <= 255:
        level = 8 + 10 * (code - 232)
        return f"#{level:02x}{level:02x}{level:02x}"
    return "#808080"


def dim_color(code: int) -> int:
    """A darker 256-colour shade of the same hue, for band lines: the colour-cube components
    scaled to 55% and snapped back to the cube (grey for codes outside the cube)."""
    if not 16 <= code <= 231:
        return 238
    r, g, b = (code - 16) // 36, (code - 16) // 6 % 6, (code - 16) % 6

    def snap(level: int) -> int:
        value = 0.55 * _CUBE_LEVELS[level]
        return min(range(6), key=lambda i: abs(_CUBE_LEVELS[i] - value))

    return 16 + 36 * snap(r) + 6 * snap(g) + snap(b)
