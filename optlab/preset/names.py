"""Preset names: the rule a preset's `name` follows, and valid names made from file stems and
URL segments. Pure text (no pydantic, no torch), shared by the schema, the loader, the run
store and `optlab presets new`."""

from __future__ import annotations

import re
from urllib.parse import unquote

# A preset name becomes part of a directory name (runs/DATE-NAME): no path separators, no
# leading dot (so never "." or ".."), and short enough for any file system.
PRESET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
MAX_NAME_LENGTH = 100
PRESET_NAME_RULE = (
    f"a preset name may hold only letters, digits and - _ . + (1 to {MAX_NAME_LENGTH} of them, "
    "starting with a letter or digit): it names the run directory"
)


def preset_name_error(name: str) -> str | None:
    """Why `name` cannot be a preset name (the rule), or None."""
    if PRESET_NAME_RE.fullmatch(name) and len(name) <= MAX_NAME_LENGTH:
        return None
    return PRESET_NAME_RULE


def safe_name(text: str, fallback: str) -> str:
    """A valid preset name made from a file stem or a URL segment the user did not choose as
    a name: decoded, other characters turned into '-', leading punctuation dropped."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", unquote(text)).lstrip("._+-")[:MAX_NAME_LENGTH]
    return name if PRESET_NAME_RE.fullmatch(name) else fallback
