"""Helpers the benchmark scripts share: where results go, what machine ran them, markdown tables, and the JSON
state that makes a long benchmark resumable."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

if str(REPO_ROOT) not in sys.path:  # run as `python benchmarks/<script>.py` without installing nbprune
    sys.path.insert(0, str(REPO_ROOT))


def cpu_model() -> str:
    """Return the CPU's model name from /proc/cpuinfo (or platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info() -> dict[str, str]:
    """Return what the numbers depend on: CPU, cores, torch threads, versions, date."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "logical cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def load_state(path: Path, settings: dict | None, empty: dict, owner: str) -> dict:
    """Return a resumable benchmark's saved state, or `empty` (with the format and settings) when there is none yet;
    refuse a file of another format or made with other settings. settings=None: read what is there (reports)."""
    if not path.is_file():
        if settings is None:
            raise SystemExit(f"{owner}: {path} does not exist: run the benchmark first.")
        return {"format": empty["format"], "settings": settings, **empty}
    state = json.loads(path.read_text())
    if state.get("format") != empty["format"]:
        raise SystemExit(f"{owner}: {path} has format {state.get('format')!r}, expected {empty['format']}: move it "
                         f"away or choose another --results-dir.")
    if settings is not None and state["settings"] != settings:
        differing = {k: (state["settings"].get(k), v) for k, v in settings.items() if state["settings"].get(k) != v}
        raise SystemExit(f"{owner}: {path} holds results made with other settings "
                         f"({', '.join(f'{k}: saved {a!r}, asked {b!r}' for k, (a, b) in differing.items())}). "
                         f"Use the saved settings to continue, or another --results-dir for a new run.")
    return state


def save_state(path: Path, state: dict) -> None:
    """Write a benchmark's state atomically, stamped with the time."""
    from nbprune.files import write_text_atomic
    state["updated"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    write_text_atomic(path, json.dumps(state, indent=1, sort_keys=True) + "\n")


def command_line() -> str:
    """Return the command that ran this script, relative to the repository root."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(REPO_ROOT)
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return a GitHub markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine_section(info: dict[str, str]) -> str:
    """Return the machine info as a markdown bullet list."""
    return "".join(f"- {key}: {value}\n" for key, value in info.items())


def _busy_cpu_seconds() -> float | None:
    """Return the CPU seconds all processes have spent busy since boot (/proc/stat), or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class OtherLoad:
    """Measures how many cores other processes kept busy between start() and stop() (None off Linux)."""

    def start(self) -> "OtherLoad":
        self._busy, self._own, self._wall = _busy_cpu_seconds(), _own_cpu_seconds(), time.monotonic()
        return self

    def stop(self) -> float | None:
        busy = _busy_cpu_seconds()
        if busy is None or self._busy is None:
            return None
        wall = time.monotonic() - self._wall
        return max(0.0, (busy - self._busy) - (_own_cpu_seconds() - self._own)) / max(wall, 1e-9)


def wait_until_quiet(max_minutes: float, threshold: float = 0.3, window: float = 3.0) -> tuple[bool, float | None]:
    """Wait until other processes keep fewer than `threshold` cores busy; return (quiet, their last load)."""
    deadline = time.monotonic() + 60 * max_minutes
    while True:
        meter = OtherLoad().start()
        time.sleep(window)
        load = meter.stop()
        if load is None or load < threshold or time.monotonic() >= deadline:
            return load is None or load < threshold, load
