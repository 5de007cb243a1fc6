"""What the devices pane shows: each device the runs train on (from their placements) and how
busy it is, read without torch (the TUI process never imports it) and without a terminal.

- CPU workers on this host: the load average over the cores this process may use, and RAM
  used / total from /proc/meminfo (psutil is not a runtime dependency).
- CUDA on this host: memory used / total and utilisation through NVML (`pip install
  nvidia-ml-py`, imported as `pynvml`) where installed; without it only what the placement
  says (the GPU's name), since `torch.cuda.mem_get_info` would pull torch into the UI.
- Another host (a Ray node): only the placement; its counters cannot be read from here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optlab.tui.process import available_cores

MEMINFO = Path("/proc/meminfo")
GiB = 1024**3


@dataclass
class DeviceInUse:
    host: str
    device: str  # as the placement gives it: "cpu", "cuda:1"
    gpu: str | None = None  # the GPU's name on CUDA
    gpu_index: int | None = None  # the physical index (Ray's gpu_ids, else the device's)
    runs: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.host, self.device)


@dataclass(frozen=True)
class Reading:
    """One device's counters now; None where they cannot be read, with `note` saying why."""

    memory_used: int | None = None  # bytes
    memory_total: int | None = None
    utilisation: float | None = None  # percent: GPU busy, or CPU load over the cores
    note: str = ""


def devices_in_use(runs: Iterable[dict[str, Any]]) -> list[DeviceInUse]:
    """One entry per (host, device) in the runs' placements, in the order runs name them."""
    found: dict[tuple[str, str], DeviceInUse] = {}
    for run in runs:
        placement = run.get("placement") or {}
        device = placement.get("device")
        if not device:
            continue  # not started yet, or a run directory from before placements
        host = str(placement.get("host") or "?")
        entry = found.get((host, str(device)))
        if entry is None:
            entry = found[(host, str(device))] = DeviceInUse(host, str(device), placement.get("gpu"),
                                                             _gpu_index(placement))
        entry.runs.append(str(run.get("name", "?")))
    return list(found.values())


def _gpu_index(placement: dict[str, Any]) -> int | None:
    ids = placement.get("gpu_ids")
    if ids:
        try:
            return int(ids[0])
        except (TypeError, ValueError):
            return None
    device = str(placement.get("device") or "")
    if device.startswith("cuda"):
        _, _, index = device.partition(":")
        return int(index) if index.isdigit() else 0
    return None


def read_meminfo(path: Path = MEMINFO) -> tuple[int, int] | None:
    """(used, total) bytes of RAM: total less what the kernel says is available."""
    try:
        fields = {}
        for line in path.read_text().splitlines():
            name, _, rest = line.partition(":")
            fields[name] = int(rest.split()[0]) * 1024  # kB
        return fields["MemTotal"] - fields["MemAvailable"], fields["MemTotal"]
    except (OSError, KeyError, ValueError, IndexError):
        return None


def read_cpu(meminfo: Path = MEMINFO) -> Reading:
    memory = read_meminfo(meminfo)
    try:
        load = 100.0 * os.getloadavg()[0] / available_cores()
    except OSError:  # no load average on this system
        load = None
    used, total = memory if memory else (None, None)
    return Reading(used, total, load, "" if memory else "RAM not readable")


class Nvml:
    """NVML opened once, on first use; `available` is False without nvidia-ml-py or a driver."""

    def __init__(self) -> None:
        self._module: Any = None
        self._tried = False
        self.error = ""

    @property
    def available(self) -> bool:
        if not self._tried:
            self._tried = True
            try:
                import pynvml

                pynvml.nvmlInit()
                self._module = pynvml
            except ImportError:
                self.error = "pip install nvidia-ml-py for memory and utilisation"
            except Exception as exc:  # pynvml.NVMLError and its many subclasses: no driver, no GPU
                self.error = f"NVML: {exc}"
        return self._module is not None

    def read(self, index: int) -> Reading:
        if not self.available:
            return Reading(note=self.error)
        nvml = self._module
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            busy = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
        except Exception as exc:  # a GPU gone or an index NVML does not know
            return Reading(note=f"NVML: {exc}")
        return Reading(int(memory.used), int(memory.total), float(busy))


class DeviceMonitor:
    """Readings of the devices in use, for the pane; `here` is this host's name (placements
    from other hosts are shown, not read)."""

    def __init__(self, here: str | None = None, nvml: Nvml | None = None,
                 cpu: Callable[[], Reading] = read_cpu) -> None:
        self.here = here if here is not None else socket.gethostname()
        self.nvml = nvml or Nvml()
        self._cpu = cpu

    def read(self, device: DeviceInUse) -> Reading:
        if device.host != self.here:
            return Reading(note=f"on {device.host}: not readable from here")
        if device.device == "cpu":
            return self._cpu()
        if device.gpu_index is None:
            return Reading(note="unknown device")
        return self.nvml.read(device.gpu_index)

    def lines(self, runs: Iterable[dict[str, Any]]) -> list[str]:
        """One line per device in use (what the pane shows)."""
        devices = devices_in_use(runs)
        if not devices:
            return ["no device in use yet (runs not started)"]
        return [describe(device, self.read(device), device.host != self.here) for device in devices]


def describe(device: DeviceInUse, reading: Reading, remote: bool = False) -> str:
    name = device.device + (f"@{device.host}" if remote else "")
    if device.gpu:
        name += f" ({device.gpu})"
    parts = [name]
    if reading.memory_used is not None and reading.memory_total:
        label = "RAM" if device.device == "cpu" else "memory"
        parts.append(f"{label} {reading.memory_used / GiB:.1f} / {reading.memory_total / GiB:.1f} GiB")
    if reading.utilisation is not None:
        parts.append(f"{'load' if device.device == 'cpu' else 'util'} {reading.utilisation:.0f}%")
    if reading.note:
        parts.append(reading.note)
    runs = ", ".join(device.runs)
    parts.append(f"{len(device.runs)} run{'s' if len(device.runs) != 1 else ''}: {runs}")
    return " · ".join(parts)
