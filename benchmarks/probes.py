"""Benchmark parts that need a fresh process: CLI start-up, peak memory, `optlab compare`
headless and the TUI. Each child is `bench.py --child KIND ...` and prints one JSON line."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent / "bench.py"
REPO = BENCH.parents[1]
CHILD_TIMEOUT_S = 600


def _python() -> list[str]:
    return [sys.executable]


def _last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in child output: {stdout[-500:]!r}")


def child(kind: str, *args: str, timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    return children([(kind, *args)], timeout)[0]


def children(calls: list[tuple[str, ...]], timeout: float = CHILD_TIMEOUT_S) -> list[dict[str, Any]]:
    """Run `bench.py --child KIND ARGS...` for every call at once (for measurements that are
    not timed) and return their JSON results in order."""
    procs = [
        subprocess.Popen([*_python(), str(BENCH), "--child", *call], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=REPO)
        for call in calls
    ]
    results = []
    for call, proc in zip(calls, procs, strict=True):
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"child {call[0]} failed ({proc.returncode}): {stderr[-2000:]}")
        results.append(_last_json(stdout))
    return results


# ------------------------------------------------------------------------------------ CLI start-up


def cli_timings(repeats: int) -> dict[str, Any]:
    """Median wall time of `optlab --help` and `optlab presets list`, and whether --help
    imported torch (it must not: `import torch` alone takes seconds)."""
    out: dict[str, Any] = {}
    for key, argv in (("help_s", ["--help"]), ("presets_list_s", ["presets", "list"])):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([*_python(), "-m", "optlab", *argv], capture_output=True, check=True, cwd=REPO)
            times.append(time.perf_counter() - t0)
        out[key] = statistics.median(times)
    probe = (
        "import sys\nsys.argv = ['optlab', '--help']\nfrom optlab.cli.main import run\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('TORCH=%s' % ('torch' in sys.modules))\n"
    )
    proc = subprocess.run([*_python(), "-c", probe], capture_output=True, text=True, cwd=REPO)
    out["help_imports_torch"] = "TORCH=True" in proc.stderr
    return out


# ------------------------------------------------------------------------------------ peak memory


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a
    child would report its parent's peak when that was higher."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Restart the VmHWM count (Linux >= 4.0), to see the peak of one phase alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_child(data_root: str, n_runs: int, chunks: int, device: str) -> dict[str, Any]:
    """Load the dataset once, train `n_runs` configurations side by side for `chunks`
    reporting intervals each, end them (test evaluation included), report peak memory."""
    import contenders
    import psutil
    import torch

    from optlab.training.runner import Control, Runner

    # One thread: the two memory children run at once, and two threads each would fight over
    # two cores (peak memory does not depend on the thread count).
    torch.set_num_threads(1)
    after_import = psutil.Process().memory_info().rss / 2**20

    class StopAfter(Control):
        def __init__(self, polls: int) -> None:
            super().__init__()
            self.left = polls

        def poll(self) -> None:
            self.left -= 1
            if self.left <= 0:
                self.stop()

    text = contenders.preset_text(Path(data_root), contenders.FOUR_RUNS[:n_runs], 1, None)
    specs, data = contenders.load_engine(text, device)
    after_data = psutil.Process().memory_info().rss / 2**20
    load_peak = peak_rss_mb()
    reset = reset_peak_rss()
    Runner(specs, data, device, control=StopAfter(n_runs * chunks + 1)).run()
    result: dict[str, Any] = {
        "runs": n_runs,
        "rss_after_import_torch_mb": after_import,
        "rss_after_data_mb": after_data,
        "peak_rss_mb": max(load_peak, peak_rss_mb()),
        "peak_rss_training_mb": peak_rss_mb() if reset else None,
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["cuda_max_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    return result


def memory(data_root: Path, chunks: int, device: str) -> dict[str, Any]:
    # Concurrent: peak RSS is per process, and neither child is timed.
    one, four = children([("rss", str(data_root), str(n), str(chunks), device) for n in (1, 4)])
    return {"one_run": one, "four_runs": four}


# ------------------------------------------------------------------------------------ compare, TUI


def _results(out: Path, wait_s: float = 15.0) -> dict[str, Any]:
    deadline = time.perf_counter() + wait_s  # the training process writes it after its last event
    while not (out / "results.json").is_file() and time.perf_counter() < deadline:
        time.sleep(0.1)
    doc = json.loads((out / "results.json").read_text())
    runs = doc.get("runs") or []
    rates = [r.get("train_samples_per_s") or 0.0 for r in runs]
    return {
        "statuses": [r.get("status") for r in runs],
        "mean_run_samples_per_s": sum(rates) / len(rates) if rates else 0.0,
    }


def compare_headless(preset: Path, out: Path, device: str, train_samples: int) -> dict[str, Any]:
    """`optlab compare` as a user runs it, start-up and data loading included."""
    t0 = time.perf_counter()
    subprocess.run(
        [*_python(), "-m", "optlab", "compare", str(preset), "--out", str(out), "--quiet",
         "--format", "json", "--device", device],
        capture_output=True, check=True, cwd=REPO, timeout=CHILD_TIMEOUT_S,
    )
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "samples_per_s": train_samples / wall, **_results(out)}


def tui_child(preset: str, out: str, device: str, timeout: float) -> dict[str, Any]:
    """Drive the TUI headless (App.run_test) on `preset` until its training child has ended."""
    import asyncio

    from optlab.tui.app import OptlabApp

    run_dir = Path(out)

    def ended() -> bool:
        events = run_dir / "events.jsonl"
        return events.is_file() and '"experiment_ended"' in events.read_text()

    async def drive() -> float:
        app = OptlabApp(preset=preset, device=device, out=run_dir)
        t0 = time.perf_counter()
        async with app.run_test(size=(120, 40)) as pilot:
            while not ended():
                if time.perf_counter() - t0 > timeout:
                    raise TimeoutError(f"the TUI's experiment did not end within {timeout:.0f} s")
                await pilot.pause(0.1)
            wall = time.perf_counter() - t0
            process = getattr(app, "process", None)
            if process is not None and hasattr(process, "wait"):
                process.wait()
        return wall

    return {"wall_s": asyncio.run(drive())}


def tui(preset: Path, out: Path, device: str, train_samples: int, timeout: float = 570.0) -> dict[str, Any]:
    """The TUI on the same preset, or why it could not be measured (never blocks the suite
    for more than `timeout` seconds)."""
    try:
        import importlib.util

        if importlib.util.find_spec("optlab.tui.app") is None:
            return {"available": False, "reason": "n/a (TUI not available)"}
        result = child("tui", str(preset), str(out), device, str(timeout), timeout=timeout + 30)
    except Exception as exc:  # the TUI is developed separately: never let it break the suite
        reason = " ".join(str(exc).split())[-300:]
        return {"available": False, "reason": f"n/a (TUI not available: {reason})"}
    result.update(available=True, samples_per_s=train_samples / result["wall_s"], **_results(out))
    return result


def run_child(argv: list[str]) -> None:
    kind, *args = argv
    if kind == "rss":
        result = rss_child(args[0], int(args[1]), int(args[2]), args[3])
    elif kind == "tui":
        result = tui_child(args[0], args[1], args[2], float(args[3]))
    else:
        raise SystemExit(f"unknown child {kind!r}")
    print(json.dumps(result))
