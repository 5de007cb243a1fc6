"""What a TUI watching costs training (issue 11), A B A B ... A:

    python benchmarks/tui_cost.py [--preset optimizers] [--rounds 2] [--size 120x40]
                                  [-- BACKEND OPTIONS, e.g. --backend processes --devices cpu,cpu]

A: `optlab compare PRESET -q` (headless). B: `optlab tui PRESET` in a real terminal, a tmux pane
of the given size (TERM=xterm-256color), watched to the end, then `q`. The TUI's training child
trains with compare's own threads (one per training process unless the options say otherwise),
so A and B train alike and the ratio is what the UI costs. Each B is set against the mean of
the two A's around it, which cancels a
machine that drifts slowly (on a shared VM the same headless run moved 25% in a minute); the
ratio of those two A's is the round's noise floor, reported beside it. Throughput two ways:

- per run: the mean of the runs' own `train_samples_per_s` (results.json);
- experiment: samples trained by all runs / the experiment's wall time (events.jsonl).

Target: >= 0.95 on every round (a TUI watching costs training at most 5%), judged where the
noise floor is within a few percent.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600.0


def throughput(run_dir: Path) -> dict[str, float]:
    results = json.loads((run_dir / "results.json").read_text())
    runs = results["runs"]
    per_run = statistics.mean(r["train_samples_per_s"] for r in runs)
    samples = sum(r["history"][-1]["samples_seen"] for r in runs if r.get("history"))
    wall = next(json.loads(line)["wall_time_s"] for line in (run_dir / "events.jsonl").read_text().splitlines()
                if '"experiment_ended"' in line)
    return {"mean_run_samples_per_s": per_run, "experiment_samples_per_s": samples / wall, "wall_s": wall}


def headless(preset: str, out: Path, extra: list[str]) -> dict[str, float]:
    subprocess.run([sys.executable, "-m", "optlab", "compare", preset, "--out", str(out), "-q", "-d", "cpu", *extra],
                   check=True, capture_output=True, cwd=REPO, timeout=TIMEOUT_S)
    return throughput(out)


def watched(preset: str, out: Path, extra: list[str], size: tuple[int, int], work: Path) -> dict[str, float]:
    """The TUI in a tmux pane on a private socket (never the user's sessions)."""
    tmux = ["tmux", "-S", str(work / "tmux.sock")]
    command = shlex.join([sys.executable, "-m", "optlab", "tui", preset, "--out", str(out), "-d", "cpu", *extra])
    env = ["env", "-u", "COLORTERM", "-u", "COLUMNS", "-u", "LINES", "TERM=xterm-256color"]
    subprocess.run([*tmux, "new-session", "-d", "-s", "b", "-x", str(size[0]), "-y", str(size[1]), *env,
                    "sh", "-c", f"cd {shlex.quote(str(REPO))} && {command}"], check=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        events = out / "events.jsonl"
        while not (events.is_file() and '"experiment_ended"' in events.read_text()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the TUI's experiment did not end within {TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        while not (out / "results.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        subprocess.run([*tmux, "send-keys", "-t", "b", "q"], check=False)
        time.sleep(1.0)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)
    return throughput(out)


def measure(preset: str, rounds: int, size: tuple[int, int], extra: list[str]) -> dict[str, Any]:
    if shutil.which("tmux") is None:
        return {"skipped": "tmux is not installed"}
    a_extra = list(extra)  # the TUI's child trains with the same options: compare's defaults
    doc: dict[str, Any] = {"preset": preset, "size": f"{size[0]}x{size[1]}", "tui_options": extra,
                           "headless_options": a_extra, "nproc": os.cpu_count(),
                           "load_average_start": os.getloadavg(), "rounds": []}
    with tempfile.TemporaryDirectory(prefix="optlab-tui-cost-") as tmp:
        work = Path(tmp)
        before = headless(preset, work / "a0", a_extra)
        for i in range(rounds):  # A B A B ... A
            b = watched(preset, work / f"b{i}", extra, size, work)
            after = headless(preset, work / f"a{i + 1}", a_extra)
            round_: dict[str, Any] = {"headless_before": before, "tui": b, "headless_after": after}
            for key, field in (("per_run", "mean_run_samples_per_s"), ("experiment", "experiment_samples_per_s")):
                round_[key] = b[field] / statistics.mean((before[field], after[field]))
                round_[f"{key}_noise_floor"] = after[field] / before[field]
            doc["rounds"].append(round_)
            before = after
    doc["load_average_end"] = os.getloadavg()
    for key in ("per_run", "experiment"):
        values = [r[key] for r in doc["rounds"]]
        noise = [abs(r[f"{key}_noise_floor"] - 1) for r in doc["rounds"]]
        doc[key] = {"min": min(values), "median": statistics.median(values), "max": max(values),
                    "largest_noise_floor": max(noise), "pass_every_round": min(values) >= 0.95}
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="optimizers")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", default="120x40", help="the pane, COLUMNSxLINES")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: options for both compare and tui")
    args = parser.parse_args(argv)
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    width, height = (int(v) for v in args.size.lower().split("x"))
    doc = measure(args.preset, args.rounds, (width, height), extra)
    text = json.dumps(doc, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
