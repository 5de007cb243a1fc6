"""Presets from http(s) URLs, against a local HTTP server on 127.0.0.1: size limit, TOML only,
HTTP errors, `extends` relative to the URL, and `compare`'s confirmation."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

import optlab.cli.preset_commands as preset_commands
from optlab.cli.main import app
from optlab.errors import PresetError
from optlab.preset.fetch import MAX_BYTES, fetch_text
from optlab.preset.loader import load_preset, load_preset_text

TINY = """
description = "A tiny remote experiment."
[data]
dataset = "digits"
train_limit = 200
[model]
hidden = [8]
[train]
epochs = 1
[[runs]]
name = "sgd"
optimizer = { name = "sgd", lr = 0.05 }
"""
# route -> (status, content type, body, send Content-Length)
ROUTES: dict[str, tuple[int, str, bytes, bool]] = {
    "/tiny.toml": (200, "application/toml", TINY.encode(), True),
    "/my%20first%20preset.toml": (200, "application/toml", TINY.encode(), True),
    "/..%2F..%2Fescaped.toml": (200, "application/toml", TINY.encode(), True),
    "/child.toml": (200, "text/plain; charset=utf-8", b'extends = "tiny.toml"\n[train]\nepochs = 2\n', True),
    "/big.toml": (200, "text/plain", b"# " + b"x" * MAX_BYTES + b"\n", True),
    "/big-chunked.toml": (200, "text/plain", b"# " + b"x" * MAX_BYTES + b"\n", False),
    "/page.html": (200, "text/html", b"<html><body>not a preset</body></html>", True),
    "/bad.toml": (200, "text/plain", b"<html>[[[ not toml", True),
    "/binary.toml": (200, "application/octet-stream", b"\xff\xfe\x00garbage", True),
    "/plugin.toml": (200, "text/plain", TINY.replace('"sgd", lr', '"evil.py", lr').encode(), True),
    "/module.toml": (200, "text/plain", TINY.replace('"sgd", lr', '"evil:Optimizer", lr').encode(), True),
    "/local-file.toml": (200, "text/plain", b'[data]\ndataset = "csv"\npath = "/etc/passwd"\n[[runs]]\nname = "a"\n', True),
    "/local-test-file.toml": (200, "text/plain", b'extends = "tiny.toml"\n[data]\ntest_path = "t.csv"\n', True),
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        route = ROUTES.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        status, ctype, body, length = route
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")


def test_a_url_preset_loads_and_validates_like_a_file(server: str) -> None:
    loaded = load_preset(f"{server}/tiny.toml")
    assert loaded.url == f"{server}/tiny.toml" and loaded.path is None
    assert loaded.preset.name == "tiny"  # the name defaults to the URL's file name
    assert [r.name for r in loaded.resolved_runs()] == ["sgd"]


def test_a_name_taken_from_the_url_is_made_a_valid_preset_name(server: str) -> None:
    """The user chose no name, so the URL's file name must not fail the name rule (nor, with
    encoded slashes, lead the run directory out of ./runs)."""
    assert load_preset(f"{server}/my%20first%20preset.toml").preset.name == "my-first-preset"
    assert load_preset(f"{server}/..%2F..%2Fescaped.toml").preset.name == "escaped"


def test_extends_in_a_url_preset_is_relative_to_the_url(server: str) -> None:
    loaded = load_preset(f"{server}/child.toml")
    assert loaded.preset.name == "child" and loaded.preset.train.epochs == 2
    assert loaded.preset.description == "A tiny remote experiment."


@pytest.mark.parametrize(("route", "message"), [
    ("/big.toml", r"too large \(262,147 bytes; a preset may be at most 256 KiB\)"),
    ("/big-chunked.toml", r"too large \(more than 256 KiB"),
    ("/page.html", r"not a TOML preset \(the server sent text/html\)"),
    ("/bad.toml", r"bad\.toml: malformed TOML"),
    ("/binary.toml", r"not a TOML preset \(not UTF-8 text\)"),
    ("/missing.toml", r"missing\.toml: HTTP 404 Not Found"),
])
def test_bad_answers_are_clear_errors(server: str, route: str, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        load_preset(server + route)


def test_unreachable_and_slow_servers() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PresetError, match="cannot fetch"):
        fetch_text(f"http://127.0.0.1:{port}/x.toml", timeout=2)
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        with pytest.raises(PresetError, match=r"no answer within 0\.3 s"):
            fetch_text(f"http://127.0.0.1:{silent.getsockname()[1]}/x.toml", timeout=0.3)


def test_a_trickling_server_is_cut_off_at_the_time_limit() -> None:
    """A byte every 50 ms never trips a per-read timeout: the limit is for the whole answer."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            while not done.is_set():
                try:
                    conn.sendall(b"#")
                except OSError:
                    return
                time.sleep(0.05)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(PresetError, match=r"(took longer than|no answer within) 0\.5 s"):
            fetch_text(f"http://127.0.0.1:{listener.getsockname()[1]}/slow.toml", timeout=0.5)
        assert time.monotonic() - started < 3
    finally:
        done.set()
        listener.close()


def test_compare_needs_confirmation_for_a_url(server: str) -> None:
    url = f"{server}/tiny.toml"
    result = CliRunner().invoke(app, ["compare", url, "--out", "r1", "-q"])
    assert result.exit_code == 2, result.output
    assert "stdin is not interactive" in result.output and "pass --yes" in result.output
    assert "sgd" in result.output  # the resolved runs were shown first
    assert not Path("r1").exists()


def test_compare_asks_and_a_no_trains_nothing(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preset_commands, "stdin_interactive", lambda: True)
    result = CliRunner().invoke(app, ["compare", f"{server}/tiny.toml", "--out", "r2", "-q"], input="n\n")
    assert result.exit_code == 1 and "Run these 1 run(s)?" in result.output
    assert not Path("r2").exists()


def test_compare_with_yes_runs_the_url_preset(server: str) -> None:
    result = CliRunner().invoke(
        app, ["compare", f"{server}/tiny.toml", "--yes", "--out", "r3", "-q", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    assert (Path("r3") / "results.json").is_file() and "sgd,finished" in result.output
    assert 'name = "tiny"' in (Path("r3") / "preset.toml").read_text()


def test_presets_show_a_url_as_written_and_resolved(server: str) -> None:
    shown = CliRunner().invoke(app, ["presets", "show", f"{server}/child.toml"])
    assert shown.exit_code == 0, shown.output
    assert 'extends = "tiny.toml"' in shown.stdout and f"{server}/child.toml [url]" in shown.stderr

    resolved = CliRunner().invoke(app, ["presets", "show", f"{server}/child.toml", "--resolved", "-s", "train.seed=4"])
    assert resolved.exit_code == 0, resolved.output
    doc = tomllib.loads(resolved.stdout)  # stdout is TOML alone: the base followed, overrides applied
    assert "extends" not in doc and doc["train"]["epochs"] == 2 and doc["train"]["seed"] == 4
    assert doc["runs"][0]["name"] == "sgd" and doc["data"]["train_limit"] == 200
    direct = load_preset(f"{server}/child.toml", ["train.seed=4"]).preset
    assert load_preset_text(resolved.stdout).preset == direct


def test_tui_confirms_a_url_preset_before_anything_starts(server: str, tmp_path: Path) -> None:
    refused = CliRunner().invoke(app, ["tui", f"{server}/child.toml", "--out", str(tmp_path / "run")])
    assert refused.exit_code == 2 and "pass --yes" in refused.output
    assert not (tmp_path / "run").exists()

    from optlab.cli.tui_commands import _confirmed_remote

    # What the training child gets is the preset that was shown and confirmed, resolved.
    path, name = _confirmed_remote(f"{server}/child.toml", ["train.seed=5"], yes=True)
    try:
        handed = load_preset(str(path)).preset
        assert handed == load_preset(f"{server}/child.toml", ["train.seed=5"]).preset
        assert name == handed.name and handed.train.seed == 5
    finally:
        path.unlink()


@pytest.mark.parametrize("route", ["/plugin.toml", "/module.toml"])
def test_a_url_preset_never_loads_a_plugin(server: str, tmp_path: Path, route: str) -> None:
    """Code gets in only through --plugin or an installed package: a remote preset naming a
    file or module beside the user (here one that would leave a mark if imported) is refused."""
    (tmp_path / "evil.py").write_text(
        "open('IMPORTED', 'w').write('x')\nclass Optimizer: ...\ndef register(r): ...\n"
    )
    result = CliRunner().invoke(app, ["compare", f"{server}{route}", "--yes", "--quiet"])
    assert result.exit_code == 2
    assert "looks like code; a preset names every optimizer by its registered name only" in result.output
    assert not (tmp_path / "IMPORTED").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("route", "field"), [("/local-file.toml", "path"), ("/local-test-file.toml", "test_path")])
def test_a_url_preset_may_not_name_local_files(server: str, tmp_path: Path, route: str, field: str) -> None:
    with pytest.raises(PresetError, match=rf"{route[1:]}: data.{field}: a preset fetched from a URL may not name "
                                          "local files"):
        load_preset(server + route)
    result = CliRunner().invoke(app, ["compare", server + route, "--yes", "--out", "out"])
    assert result.exit_code == 2 and "may not name local files" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and not (tmp_path / "out").exists()


def test_a_local_preset_extending_a_url_may_name_its_own_files(server: str, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    (tmp_path / "mine.toml").write_text(f'extends = "{server}/tiny.toml"\n[data]\ndataset = "csv"\n'
                                        'path = "d.csv"\ntrain_limit = 10\n[train]\nbatch_size = 4\n')
    loaded = load_preset(str(tmp_path / "mine.toml"))
    assert loaded.preset.data.path == str(tmp_path / "d.csv")
