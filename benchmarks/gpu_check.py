"""The checks behind benchmarks/gpu_check.sh (the one GPU proof): each subcommand reads what a
step produced, decides pass or fail, prints a few lines and writes its findings as JSON.

    python3 benchmarks/gpu_check.py env --device cuda --details D.json [--marker FILE]
    python3 benchmarks/gpu_check.py imports --details D.json
    python3 benchmarks/gpu_check.py junit FILE.xml --details D.json [--expect-run ID ...] [--expect-skip ID ...]
    python3 benchmarks/gpu_check.py compare-equal --device cuda --out compare.json --details D.json LABEL=RUN_DIR ...
    python3 benchmarks/gpu_check.py fuse-close --device cuda --details D.json PLAIN_DIR FUSED_DIR
    python3 benchmarks/gpu_check.py amp RUN_DIR --device cuda --details D.json
    python3 benchmarks/gpu_check.py pane --device cuda --work DIR --details D.json
    python3 benchmarks/gpu_check.py bench-check bench.json --device cuda --details D.json
    python3 benchmarks/gpu_check.py summary --steps steps.tsv --details-dir DIR --out summary.json

Exit status: 0 passed, 1 failed, 77 skipped (the reason on stdout's last line). Only `env`
(torch), `pane` (optlab's TUI) and `fuse-close`/`compare-equal` (nothing but JSON) import
anything beyond the standard library, so a step fails on its own without stopping the others.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SKIPPED = 77


def write(path: str | None, doc: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(doc, indent=2, default=str) + "\n")


def version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------- env
IMAGE_PACKAGES = ("numpy", "scipy", "scikit-learn", "torchvision", "typer", "rich", "click", "typing-extensions",
                  "nvidia-ml-py", "psutil", "pytest", "pytest-timeout", "hypothesis", "tensorboard", "pydantic",
                  "textual", "platformdirs", "tomli-w", "optuna", "pytorch-optimizer", "ray")


def cmd_env(args: argparse.Namespace) -> int:
    info: dict[str, Any] = {"python": sys.version.split()[0], "executable": sys.executable,
                            "host": socket.gethostname(), "nproc": os.cpu_count(),
                            "packages_before_wheels": {name: version(name) for name in IMAGE_PACKAGES}}
    try:
        import torch
    except Exception as exc:  # no torch at all: nothing below can run
        info["torch_error"] = repr(exc)
        write(args.details, info)
        print(f"torch does not import: {exc!r}")
        return 1
    info.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                device_count=torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if torch.cuda.is_available():
        info["cudnn"] = torch.backends.cudnn.version()
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        info["devices"] = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["devices"].append({"index": i, "name": p.name, "capability": f"{p.major}.{p.minor}",
                                    "memory_gib": round(p.total_memory / 1024**3, 1),
                                    "multiprocessors": p.multi_processor_count})
        x = torch.arange(4.0, device="cuda").reshape(2, 2)
        info["tiny_matmul_ok"] = (x @ x).tolist() == [[2.0, 3.0], [6.0, 11.0]]
        if args.marker:
            Path(args.marker).write_text(info["devices"][0]["name"] + "\n")
    write(args.details, info)
    print(f"python {info['python']}, torch {info['torch']} (CUDA {info['torch_cuda']}), "
          f"cuda available: {info['cuda_available']}, devices: {info.get('devices', [])}")
    if args.device.startswith("cuda") and not info["cuda_available"]:
        print("CUDA is not available here: the CUDA steps will be skipped")
        return 1
    return 0 if info.get("tiny_matmul_ok", True) else 1


# ------------------------------------------------------------------------------------ imports
# What optlab needs at run time (pyproject.toml) and the extras the checks touch; the ones the
# GPU image lacks travel as wheels (benchmarks/gpu_wheels.txt).
REQUIRED = ("optlab", "torch", "torchvision", "numpy", "sklearn", "scipy", "pydantic", "platformdirs", "tomli_w",
            "typer", "rich", "textual", "pynvml", "psutil")
OPTIONAL = ("optuna", "pytorch_optimizer", "tensorboard")


def cmd_imports(args: argparse.Namespace) -> int:
    import importlib

    found: dict[str, Any] = {}
    missing = []
    for name in REQUIRED + OPTIONAL:
        try:
            module = importlib.import_module(name)
            found[name] = {"version": getattr(module, "__version__", None), "file": getattr(module, "__file__", None)}
        except Exception as exc:
            found[name] = {"error": f"{type(exc).__name__}: {exc}"}
            if name in REQUIRED:
                missing.append(name)
    for name, entry in found.items():
        print(f"  {name:18} {entry.get('version') or ''} {entry.get('file') or entry.get('error')}")
    write(args.details, {"modules": found, "missing_required": missing})
    if missing:
        print(f"missing: {', '.join(missing)}")
    return 1 if missing else 0


# -------------------------------------------------------------------------------------- junit
def node_id(case: ET.Element) -> str:
    """tests/unit/test_rng.py::test_x from junit's classname tests.unit.test_rng and name."""
    classname = case.get("classname", "")
    parts = classname.split(".")
    # A test class shows as one more dotted part: keep it as pytest writes it (File::Class::name).
    for cut in range(len(parts), 0, -1):
        path = REPO / ("/".join(parts[:cut]) + ".py")
        if path.exists():
            rest = parts[cut:]
            return "::".join(["/".join(parts[:cut]) + ".py", *rest, case.get("name", "")])
    return f"{classname}::{case.get('name', '')}"


def outcomes(xml: Path) -> dict[str, dict[str, str]]:
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                message = (child.get("message") or "")[:300]
                break
        out[node_id(case)] = {"outcome": outcome, "message": message, "seconds": case.get("time", "")}
    return out


def cmd_junit(args: argparse.Namespace) -> int:
    xml = Path(args.xml)
    if not xml.exists():
        print(f"no junit file {xml}: pytest did not get as far as writing it")
        write(args.details, {"error": "no junit xml"})
        return 1
    tests = outcomes(xml)
    bad = []
    for test in args.expect_run:
        got = tests.get(test, {"outcome": "not collected"})
        if got["outcome"] != "passed":
            bad.append(f"{test}: {got['outcome']} {got.get('message', '')}".strip())
    unexpected_run = [t for t in args.expect_skip if tests.get(t, {}).get("outcome") not in ("skipped", None)]
    for name, got in tests.items():
        print(f"  {got['outcome']:8} {name} {got['message'][:120]}")
    counts: dict[str, int] = {}
    for got in tests.values():
        counts[got["outcome"]] = counts.get(got["outcome"], 0) + 1
    write(args.details, {"counts": counts, "tests": tests, "expected_to_pass_but_did_not": bad,
                         "expected_skip_but_ran": unexpected_run})
    for line in bad:
        print(f"expected to pass: {line}")
    print(f"counts: {counts}")
    return 1 if bad or any(o in counts for o in ("failed", "error")) else 0


# ------------------------------------------------------------------------------ compare-equal
def comparable(run: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the backend (tests/functional/test_backends.py: the same)."""
    return {
        "status": run["status"],
        "fingerprints": (run["init_fingerprint"], run["data_fingerprint"]),
        "history": [{k: v for k, v in h.items() if k != "epoch_s"} for h in run["history"]],
        "test": run["test"],
    }


def numbers(value: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a nested JSON value, by path."""
    if isinstance(value, bool) or value is None:
        return {}
    if isinstance(value, int | float):
        return {prefix: float(value)}
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in numbers(item, f"{prefix}.{key}").items()}
    if isinstance(value, list | tuple):
        return {k: v for i, item in enumerate(value) for k, v in numbers(item, f"{prefix}[{i}]").items()}
    return {}


def max_diff(a: Any, b: Any) -> tuple[float, str]:
    na, nb = numbers(a), numbers(b)
    worst, where = 0.0, ""
    for key in na.keys() & nb.keys():
        x, y = na[key], nb[key]
        d = abs(x - y) if math.isfinite(x) and math.isfinite(y) else (0.0 if x == y else math.inf)
        if d > worst:
            worst, where = d, key
    if na.keys() != nb.keys():
        return math.inf, "different fields: " + ", ".join(sorted(na.keys() ^ nb.keys())[:5])
    return worst, where


def load_results(run_dir: str) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "results.json").read_text())


def run_line(run: dict[str, Any]) -> dict[str, Any]:
    test = run.get("test") or {}
    placement = run.get("placement") or {}
    return {"status": run["status"], "test_loss": test.get("loss"), "test_accuracy": test.get("accuracy"),
            "final_val_loss": (run.get("history") or [{}])[-1].get("val_loss"),
            "wall_time_s": run.get("wall_time_s"), "train_samples_per_s": run.get("train_samples_per_s"),
            "placement": {k: placement.get(k) for k in ("backend", "device", "gpu", "pid", "fused")}}


def cmd_compare_equal(args: argparse.Namespace) -> int:
    docs: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for item in args.runs:
        label, _, run_dir = item.partition("=")
        try:
            docs[label] = load_results(run_dir)
        except (OSError, ValueError) as exc:
            problems.append(f"{label}: no results.json ({exc})")
    if not docs:
        write(args.details, {"problems": problems})
        print("\n".join(problems))
        return 1
    labels = list(docs)
    ref_label = labels[0]
    ref = {r["name"]: r for r in docs[ref_label]["runs"]}
    table: dict[str, dict[str, Any]] = {}
    for name, run in ref.items():
        row: dict[str, Any] = {ref_label: run_line(run)}
        for label in labels[1:]:
            other = {r["name"]: r for r in docs[label]["runs"]}.get(name)
            if other is None:
                problems.append(f"{label}: run {name} missing")
                continue
            row[label] = run_line(other)
            same = comparable(run) == comparable(other)
            diff, where = max_diff(comparable(run), comparable(other))
            row[label]["identical_to_" + ref_label] = same
            row[label]["max_abs_diff"] = diff if math.isfinite(diff) else str(diff)
            row[label]["max_abs_diff_at"] = where
            if not same:
                problems.append(f"{label}/{name}: differs from {ref_label} (max |diff| {diff:.3g} at {where})")
        for label in labels:
            line = row.get(label)
            if line is None:
                continue
            if line["status"] != "finished":
                problems.append(f"{label}/{name}: {line['status']}")
            device = str(line["placement"].get("device") or "")
            if args.device.startswith("cuda") and (not device.startswith("cuda") or not line["placement"].get("gpu")):
                problems.append(f"{label}/{name}: placed on {device or '?'} (gpu {line['placement'].get('gpu')})")
        table[name] = row
    doc = {"reference": ref_label, "device_field": {k: d.get("device") for k, d in docs.items()},
           "wall_time_s": {k: d.get("wall_time_s") for k, d in docs.items()}, "runs": table, "problems": problems}
    write(args.out, doc)
    write(args.details, {"problems": problems, "wall_time_s": doc["wall_time_s"],
                         "identical": not any("differs" in p for p in problems)})
    for name, row in table.items():
        cells = [f"{label} acc {line['test_accuracy']:.4f} loss {line['test_loss']:.5f}"
                 for label, line in row.items() if line.get("test_accuracy") is not None]
        print(f"  {name:22} " + " | ".join(cells))
    for p in problems:
        print(f"problem: {p}")
    return 1 if problems else 0


# --------------------------------------------------------------------------------- fuse-close
LOSS_RTOL = 1e-4  # tests/unit/test_fused_training.py's tolerance on CPU


def cmd_fuse_close(args: argparse.Namespace) -> int:
    plain, fused = load_results(args.plain), load_results(args.fused)
    problems: list[str] = []
    rows = {}
    fused_runs = {r["name"]: r for r in fused["runs"]}
    for a in plain["runs"]:
        b = fused_runs[a["name"]]
        group = (b.get("placement") or {}).get("fused")
        if (a["init_fingerprint"], a["data_fingerprint"]) != (b["init_fingerprint"], b["data_fingerprint"]):
            problems.append(f"{a['name']}: fingerprints differ")
        worst = 0.0
        for x, y in zip(a["history"], b["history"], strict=False):
            for key in ("train_loss", "val_loss"):
                if x.get(key) is not None and y.get(key) is not None:
                    worst = max(worst, abs(x[key] - y[key]) / max(abs(x[key]), 1e-12))
        n = (a.get("test") or {}).get("n") or 100
        acc_diff = abs(a["test"]["accuracy"] - b["test"]["accuracy"])
        if worst > LOSS_RTOL:
            problems.append(f"{a['name']}: losses differ by {worst:.3g} relative (> {LOSS_RTOL})")
        if acc_diff > 1 / n + 1e-12:
            problems.append(f"{a['name']}: test accuracy differs by {acc_diff:.4f} (> 1/{n})")
        if b["status"] != "finished":
            problems.append(f"{a['name']}: fused run {b['status']}")
        rows[a["name"]] = {"fused_group": group, "loss_max_rel_diff": worst, "test_accuracy_diff": acc_diff,
                           "unfused_samples_per_s": a.get("train_samples_per_s"),
                           "fused_samples_per_s": b.get("train_samples_per_s")}
        print(f"  {a['name']:22} group {group} loss rel diff {worst:.2e} test acc diff {acc_diff:.4f}")
    if not any(r["fused_group"] for r in rows.values()):
        problems.append("no run trained fused")
    doc = {"runs": rows, "problems": problems,
           "wall_time_s": {"unfused": plain.get("wall_time_s"), "fused": fused.get("wall_time_s")}}
    write(args.details, doc)
    for p in problems:
        print(f"problem: {p}")
    return 1 if problems else 0


# ---------------------------------------------------------------------------------------- amp
def cmd_amp(args: argparse.Namespace) -> int:
    doc = load_results(args.run_dir)
    problems: list[str] = []
    rows = {}
    by_name = {run["name"]: run for run in doc["runs"]}
    for run in doc["runs"]:
        config = run.get("config") or {}
        notes = [str(n) for n in run.get("notes") or []]
        losses = [h.get("train_loss") for h in run.get("history") or []]
        rows[run["name"]] = {**run_line(run), "amp": config.get("amp"), "clip_grad_norm": config.get("clip_grad_norm"),
                             "clip_grad_value": config.get("clip_grad_value"), "notes": notes,
                             "train_losses": losses}
        if run["status"] != "finished":
            problems.append(f"{run['name']}: {run['status']} {run.get('reason') or ''}")
        if not losses or not all(isinstance(x, float) and math.isfinite(x) for x in losses):
            problems.append(f"{run['name']}: train losses {losses}")
        if args.device.startswith("cuda"):
            if any("mixed precision needs CUDA" in n for n in notes):
                problems.append(f"{run['name']}: AMP was turned off on CUDA: {notes}")
            if not str((run.get("placement") or {}).get("device") or "").startswith("cuda"):
                problems.append(f"{run['name']}: not placed on CUDA")
        twin = by_name.get(run["name"].replace("bf16", "fp32").replace("fp16", "fp32"))
        if args.device.startswith("cuda") and config.get("amp") and twin is not None and twin is not run:
            # Same init, data and batches as its float32 twin: identical losses mean autocast did nothing.
            same = [h.get("train_loss") for h in twin.get("history") or []] == losses
            rows[run["name"]]["identical_to_" + twin["name"]] = same
            if same:
                problems.append(f"{run['name']}: the same losses as {twin['name']}: autocast had no effect")
        print(f"  {run['name']:16} amp {config.get('amp')!s:5} status {run['status']} "
              f"test acc {(run.get('test') or {}).get('accuracy')} losses {losses} notes {notes}")
    write(args.details, {"runs": rows, "problems": problems, "wall_time_s": doc.get("wall_time_s")})
    for p in problems:
        print(f"problem: {p}")
    return 1 if problems else 0


# --------------------------------------------------------------------------------------- pane
def cmd_pane(args: argparse.Namespace) -> int:
    """The TUI's devices pane on a live run (the `d` key), as tests/tui/test_tui_devices.py's
    pane test does on the CPU: on CUDA the line must carry NVML's memory and utilisation."""
    import asyncio

    sys.path.insert(0, str(REPO / "tests"))
    from tui.helpers import tiny_preset, wait_for_the_end, wait_until

    from optlab.tui.app import OptlabApp
    from optlab.tui.devices import Nvml
    from optlab.tui.screens.experiment import ExperimentScreen
    from optlab.tui.widgets.devices import DevicesPane

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    preset = tiny_preset(work, epochs=3)
    seen: dict[str, Any] = {"lines": [], "during": []}

    async def drive() -> None:
        app = OptlabApp(preset=str(preset), out=work / "pane-run", device=args.device)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            assert isinstance(screen, ExperimentScreen), type(screen)
            pane = screen.query_one("#devices", DevicesPane)
            await pilot.press("d")
            await wait_until(pilot, lambda: " run" in pane.text and "not started" not in pane.text,
                             timeout=90, what="a placed run in the devices pane")
            seen["during"] = pane.text.splitlines()
            await wait_for_the_end(pilot, app, screen)
            await wait_until(pilot, lambda: "3 runs" in pane.text, timeout=30, what="all three runs in the pane")
            seen["lines"] = pane.text.splitlines()

    t0 = time.perf_counter()
    error = ""
    try:
        asyncio.run(drive())
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:  # the TUI's training child runs in its own session and outlives the app by design
        try:
            import psutil

            for child in psutil.Process().children(recursive=True):
                child.kill()
        except Exception as exc:
            print(f"could not end the training child: {exc}")
    seen["seconds"] = round(time.perf_counter() - t0, 1)
    nvml = Nvml()
    if nvml.available:
        r = nvml.read(0)
        seen["nvml_device_0"] = {"memory_used": r.memory_used, "memory_total": r.memory_total,
                                 "utilisation": r.utilisation, "note": r.note}
    else:
        seen["nvml_device_0"] = {"note": nvml.error}
    problems = [error] if error else []
    lines = seen["lines"]
    if args.device.startswith("cuda"):
        # The local backend places runs on "cuda" (a processes worker on "cuda:N"): NVML reads index 0.
        ok = (len(lines) == 1 and re.match(r"cuda(:0)? \(.+\) · memory [\d.]+ / [\d.]+ GiB · util \d+% · 3 runs: ",
                                          lines[0]) is not None)
        if not ok:
            problems.append(f"expected one cuda line with the GPU's name, NVML memory and util, got {lines}")
    elif not (len(lines) == 1 and lines[0].startswith("cpu · RAM ")):
        problems.append(f"expected one cpu line, got {lines}")
    seen["problems"] = problems
    write(args.details, seen)
    print(f"  during: {seen['during']}\n  at the end: {lines}\n  NVML device 0: {seen['nvml_device_0']}")
    for p in problems:
        print(f"problem: {p}")
    return 1 if problems else 0


# -------------------------------------------------------------------------------- bench-check
def cmd_bench_check(args: argparse.Namespace) -> int:
    """tests/unit/test_bench_smoke.py::test_quick_bench_on_cuda's assertions on the JSON."""
    try:
        doc = json.loads(Path(args.json).read_text())
    except (OSError, ValueError) as exc:
        write(args.details, {"problems": [f"no bench JSON: {exc}"]})
        print(f"no bench JSON: {exc}")
        return 1
    problems = []
    con = doc.get("contenders", {})
    if doc.get("machine", {}).get("device") != args.device:
        problems.append(f"machine.device is {doc.get('machine', {}).get('device')}")
    if not con.get("engine", {}).get("samples_per_s", 0) > 0:
        problems.append("no engine samples/s")
    if args.device == "cuda":
        if not (doc.get("memory", {}).get("four_runs", {}).get("cuda_max_allocated_mb") or 0) > 0:
            problems.append("no cuda_max_allocated_mb for four runs")
        if "engine_vs_tutorial_cuda" not in {t["name"] for t in doc.get("targets", [])}:
            problems.append("no engine_vs_tutorial_cuda target")
    summary = {
        "gpu": doc.get("machine", {}).get("gpu"),
        "matmul_peak_gflops": doc.get("matmul_peak_gflops"),
        "samples_per_s": {k: v.get("samples_per_s") for k, v in con.items()},
        "ratios": doc.get("ratios"),
        "memory": doc.get("memory"),
        "problems": problems,
    }
    write(args.details, summary)
    print(json.dumps({k: summary[k] for k in ("gpu", "matmul_peak_gflops", "samples_per_s")}, default=str))
    for p in problems:
        print(f"problem: {p}")
    return 1 if problems else 0


# ------------------------------------------------------------------------------------ summary
def meta(text: str) -> dict[str, Any]:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {"unparsed": text}


def cmd_summary(args: argparse.Namespace) -> int:
    steps = []
    path = Path(args.steps)
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        name, status, rc, seconds, limit, reason = (line.split("\t") + [""] * 6)[:6]
        step: dict[str, Any] = {"name": name, "status": status, "rc": int(rc) if rc.lstrip("-").isdigit() else None,
                                "seconds": float(seconds) if seconds else None,
                                "limit_s": int(limit) if limit.isdigit() else None}
        if reason:
            step["reason"] = reason
        details = Path(args.details_dir) / f"{name}.json"
        if details.exists():
            try:
                step["details"] = json.loads(details.read_text())
            except ValueError as exc:
                step["details"] = {"unreadable": str(exc)}
        steps.append(step)
    counts: dict[str, int] = {}
    for step in steps:
        counts[step["status"]] = counts.get(step["status"], 0) + 1
    ran = [s for s in steps if s["status"] not in ("skipped", "not-selected", "dry-run")]
    info = set(args.info_steps.split())
    core = [s for s in ran if s["name"] not in info]
    late = any(s["status"] == "skipped" and s.get("reason", "").startswith("out of time") for s in steps)
    overall = ("incomplete" if args.partial else
               "dry-run" if steps and all(s["status"] in ("dry-run", "not-selected") for s in steps) else
               "passed" if core and all(s["status"] == "passed" for s in core) and not late else "failed")
    for step in steps:
        if step["name"] in info:
            step["informational"] = True  # its outcome does not decide `overall`
    doc = {"script": "benchmarks/gpu_check.sh", "overall": overall, "counts": counts,
           "meta": meta(args.meta), "steps": steps}
    write(args.out, doc)
    if not args.quiet:
        print(f"\n{'step':22} {'status':12} {'rc':>4} {'s':>7}  reason")
        for s in steps:
            secs = "" if s["seconds"] is None else f"{s['seconds']:.1f}"
            print(f"{s['name']:22} {s['status']:12} {s['rc'] if s['rc'] is not None else '':>4} {secs:>7}  "
                  f"{s.get('reason', '')}")
        print(f"overall: {overall} {counts}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, *extra: tuple[tuple[str, ...], dict[str, Any]]) -> argparse.ArgumentParser:
        p = sub.add_parser(name)
        p.add_argument("--details", default=None, help="write the findings here (JSON)")
        for flags, kwargs in extra:
            p.add_argument(*flags, **kwargs)
        return p

    device = (("--device",), {"default": "cuda"})
    command("env", device, (("--marker",), {"default": None}))
    command("imports")
    command("junit", (("xml",), {}), (("--expect-run",), {"nargs": "*", "default": []}),
            (("--expect-skip",), {"nargs": "*", "default": []}))
    command("compare-equal", device, (("--out",), {"default": None}), (("runs",), {"nargs": "+"}))
    command("fuse-close", device, (("plain",), {}), (("fused",), {}))
    command("amp", device, (("run_dir",), {}))
    command("pane", device, (("--work",), {"required": True}))
    command("bench-check", device, (("json",), {}))
    command("summary", (("--steps",), {"required": True}), (("--details-dir",), {"required": True}),
            (("--out",), {"required": True}), (("--meta",), {"default": ""}), (("--info-steps",), {"default": ""}),
            (("--partial",), {"action": "store_true"}), (("--quiet",), {"action": "store_true"}))
    args = parser.parse_args(argv)
    handler = globals()["cmd_" + args.command.replace("-", "_")]
    return int(handler(args))


if __name__ == "__main__":
    sys.exit(main())
