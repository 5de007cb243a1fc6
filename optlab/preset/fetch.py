"""Presets given as http(s) URLs: fetched within a time limit (for the whole answer) and a size
limit, read as TOML only.

A remote preset is data like any other (no field runs code), but it is still someone else's
experiment: the loader validates it exactly like a local file, and `compare` shows its
resolved runs and asks before training (see `optlab.cli.preset_commands`).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

from optlab import __version__
from optlab.errors import PresetError
from optlab.preset.names import safe_name

MAX_BYTES = 256 * 1024
TIMEOUT_S = 10.0
# Content types that are certainly not a TOML file; anything textual is parsed and judged by TOML.
NOT_TOML_TYPES = ("text/html", "image/", "audio/", "video/", "application/pdf", "application/zip")


def is_url(ref: str) -> bool:
    return ref.lower().startswith(("http://", "https://"))


def url_stem(url: str) -> str:
    """The default preset name of a URL: its last path segment without `.toml`, made a valid
    name (`my%20preset.toml` -> `my-preset`): the user never chose it, so it must not fail."""
    last = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
    return safe_name(last.removesuffix(".toml"), "remote")


def fetch_text(url: str, timeout: float = TIMEOUT_S, max_bytes: int = MAX_BYTES) -> str:
    """The body of `url` as text; every failure is a PresetError naming the URL."""
    request = urllib.request.Request(
        url, headers={"User-Agent": f"optlab/{__version__}", "Accept": "application/toml, text/plain, */*"}
    )
    try:
        deadline = time.monotonic() + timeout  # for the whole answer, headers included
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            if urlparse(response.geturl()).scheme not in ("http", "https"):
                raise PresetError(f"{url}: redirected to a non-http(s) address; refused")
            ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype.startswith(NOT_TOML_TYPES):
                raise PresetError(f"{url}: not a TOML preset (the server sent {ctype})")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise PresetError(f"{url}: too large ({int(length):,} bytes; a preset may be at most {_kib(max_bytes)})")
            body = _read_body(response, url, max_bytes, deadline=deadline, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise PresetError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise PresetError(f"{url}: no answer within {timeout:g} s") from None
        raise PresetError(f"{url}: cannot fetch ({reason})") from None
    except TimeoutError:
        raise PresetError(f"{url}: no answer within {timeout:g} s") from None
    except (OSError, ValueError) as exc:
        raise PresetError(f"{url}: cannot fetch ({exc})") from None
    if len(body) > max_bytes:
        raise PresetError(f"{url}: too large (more than {_kib(max_bytes)}, the limit for a preset)")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise PresetError(f"{url}: not a TOML preset (not UTF-8 text)") from None


def _read_body(response: Any, url: str, max_bytes: int, deadline: float, timeout: float) -> bytes:
    """The body, read one byte past the limit (an answer without Content-Length is caught too),
    within `timeout` seconds in all: urlopen's timeout bounds each read, so a server trickling
    a byte a second would otherwise hold the command for as long as it likes."""
    sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PresetError(f"{url}: the answer took longer than {timeout:g} s; refused")
        if sock is not None:
            sock.settimeout(left)
        chunk = response.read1(max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _kib(n: int) -> str:
    return f"{n // 1024} KiB"
